"""Optional audible rendering of haptic patterns: PCM synthesis, WAV bytes, playback.

Sound is an extra, never required: SoundOutput reports itself unavailable (with the reason)
when no player is installed, and the haptic path works the same either way.

Beeps rise in pitch and rate with urgency (CAUTION < WARNING < CRITICAL); SENSOR_LOST is a
distinct two-tone long-short motif (high long tone, low short tone), the audible twin of the
device's long-short vibration.
"""
from dataclasses import dataclass
import io
import math
import shutil
import subprocess
import threading
from typing import Optional, Sequence, Tuple
import wave

from edge_perception.core.haptics import (
    HapticOutput, PATTERN_CAUTION, PATTERN_CRITICAL, PATTERN_NAMES, PATTERN_OFF,
    PATTERN_SENSOR_LOST, PATTERN_WARNING)
import numpy as np

DEFAULT_PLAYERS = ('aplay', 'paplay')


class SoundError(ValueError):
    """Bad synthesis input or sound configuration."""


class SoundUnavailableError(RuntimeError):
    """No audio player can be used; the message says why."""


@dataclass
class SoundConfig:
    """Tones and rhythms of the alert sounds."""

    sample_rate: int = 16000
    volume: float = 0.5                 # peak amplitude, fraction of int16 full scale
    caution_tone_hz: float = 440.0
    caution_beep_hz: float = 1.0        # beeps per second
    warning_tone_hz: float = 660.0
    warning_beep_hz: float = 3.0
    critical_tone_hz: float = 880.0
    critical_beep_hz: float = 6.0
    beep_duty: float = 0.5              # fraction of each beep period that sounds
    sensor_lost_tones_hz: Tuple[float, float] = (784.0, 392.0)   # long tone, then short tone
    sensor_lost_period_s: float = 1.2
    sensor_lost_long_s: float = 0.45
    sensor_lost_gap_s: float = 0.1
    sensor_lost_short_s: float = 0.15
    fade_s: float = 0.004               # raised-cosine edges: no clicks

    def validate(self) -> None:
        """Raise SoundError naming the first bad field."""
        if isinstance(self.sample_rate, bool) or not isinstance(self.sample_rate, int) \
                or not 4000 <= self.sample_rate <= 192000:
            raise SoundError(f'sample_rate must be an integer in 4000..192000, '
                             f'got {self.sample_rate!r}')
        nyquist = self.sample_rate / 2.0
        tones = [('caution_tone_hz', self.caution_tone_hz),
                 ('warning_tone_hz', self.warning_tone_hz),
                 ('critical_tone_hz', self.critical_tone_hz)]
        if len(self.sensor_lost_tones_hz) != 2:
            raise SoundError('sensor_lost_tones_hz needs exactly two tones (long, short)')
        tones += [(f'sensor_lost_tones_hz[{i}]', tone)
                  for i, tone in enumerate(self.sensor_lost_tones_hz)]
        for name, tone in tones:
            _require(name, tone, 20.0, nyquist * 0.9)
        _require('volume', self.volume, 0.0, 1.0)
        _require('beep_duty', self.beep_duty, 0.05, 0.95)
        for name in ('caution_beep_hz', 'warning_beep_hz', 'critical_beep_hz'):
            _require(name, getattr(self, name), 0.1, 20.0)
        _require('fade_s', self.fade_s, 0.0, 0.05)
        motif = self.sensor_lost_long_s + self.sensor_lost_gap_s + self.sensor_lost_short_s
        for name in ('sensor_lost_long_s', 'sensor_lost_gap_s', 'sensor_lost_short_s'):
            _require(name, getattr(self, name), 0.01, 10.0)
        _require('sensor_lost_period_s', self.sensor_lost_period_s, motif + 0.01, 30.0)


def _require(name: str, value, low: float, high: float) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) \
            or not (math.isfinite(value) and low <= value <= high):
        raise SoundError(f'{name} must be a number in [{low:g}, {high:g}], got {value!r}')


def _tone(tone_hz: float, n_samples: int, sample_rate: int, fade_s: float) -> np.ndarray:
    t = np.arange(n_samples) / sample_rate
    signal = np.sin(2.0 * np.pi * tone_hz * t)
    n_fade = min(int(round(fade_s * sample_rate)), n_samples // 2)
    if n_fade > 0:
        ramp = 0.5 - 0.5 * np.cos(np.pi * np.arange(n_fade) / n_fade)
        signal[:n_fade] *= ramp
        signal[n_samples - n_fade:] *= ramp[::-1]
    return signal


def _place(track: np.ndarray, start_s: float, length_s: float, tone_hz: float,
           config: SoundConfig) -> None:
    rate = config.sample_rate
    start = int(round(start_s * rate))
    stop = min(int(round((start_s + length_s) * rate)), track.size)
    if start < stop:
        track[start:stop] = _tone(tone_hz, stop - start, rate, config.fade_s)


def synthesize(pattern: int, duration_s: float, config: Optional[SoundConfig] = None
               ) -> np.ndarray:
    """Render duration_s of a pattern's sound as mono int16 PCM at config.sample_rate.

    Beeps start at t = k / beep_hz; the last one is cut at duration_s. OFF is silence.
    """
    config = config or SoundConfig()
    config.validate()
    if isinstance(duration_s, bool) or not isinstance(duration_s, (int, float)) \
            or not (math.isfinite(duration_s) and 0.0 < duration_s <= 600.0):
        raise SoundError(f'duration_s must be in (0, 600], got {duration_s!r}')
    if pattern not in PATTERN_NAMES or isinstance(pattern, bool):
        raise SoundError(f'unknown haptic pattern {pattern!r}; expected one of '
                         f'{sorted(PATTERN_NAMES)}')
    track = np.zeros(int(round(duration_s * config.sample_rate)), dtype=np.float64)
    if pattern == PATTERN_SENSOR_LOST:
        long_hz, short_hz = config.sensor_lost_tones_hz
        for k in range(math.ceil(duration_s / config.sensor_lost_period_s)):
            start = k * config.sensor_lost_period_s
            _place(track, start, config.sensor_lost_long_s, long_hz, config)
            _place(track, start + config.sensor_lost_long_s + config.sensor_lost_gap_s,
                   config.sensor_lost_short_s, short_hz, config)
    elif pattern != PATTERN_OFF:
        tone_hz, beep_hz = {
            PATTERN_CAUTION: (config.caution_tone_hz, config.caution_beep_hz),
            PATTERN_WARNING: (config.warning_tone_hz, config.warning_beep_hz),
            PATTERN_CRITICAL: (config.critical_tone_hz, config.critical_beep_hz),
        }[pattern]
        period = 1.0 / beep_hz
        for k in range(math.ceil(duration_s * beep_hz - 1e-9)):
            _place(track, k * period, config.beep_duty * period, tone_hz, config)
    return np.round(track * (config.volume * 32767.0)).astype(np.int16)


def synthesize_output(output: HapticOutput, duration_s: Optional[float] = None,
                      config: Optional[SoundConfig] = None) -> np.ndarray:
    """Render the sound of a HapticOutput, for its duration_s unless given."""
    return synthesize(output.pattern, output.duration_s if duration_s is None else duration_s,
                      config)


def _check_samples(samples) -> np.ndarray:
    samples = np.asarray(samples)
    if samples.dtype != np.int16 or samples.ndim != 1:
        raise SoundError(f'samples must be a 1-D int16 array (mono PCM), got '
                         f'{samples.dtype} with shape {samples.shape}')
    return samples


def to_wav_bytes(samples: np.ndarray, sample_rate: int) -> bytes:
    """Mono 16-bit little-endian WAV file contents of samples."""
    samples = _check_samples(samples)
    if isinstance(sample_rate, bool) or not isinstance(sample_rate, int) or sample_rate <= 0:
        raise SoundError(f'sample_rate must be a positive integer, got {sample_rate!r}')
    buffer = io.BytesIO()
    with wave.open(buffer, 'wb') as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(sample_rate)
        wav.writeframes(samples.astype('<i2').tobytes())
    return buffer.getvalue()


class SoundOutput:
    """Play PCM through the first player found on PATH (aplay, then paplay).

    available is False, with reason saying why, when there is none; play() then raises
    SoundUnavailableError. A new play() stops the sound still playing (newest alert wins).
    command: an explicit player argv that reads a WAV file on stdin (overrides players).
    """

    def __init__(self, players: Sequence[str] = DEFAULT_PLAYERS,
                 command: Optional[Sequence[str]] = None,
                 config: Optional[SoundConfig] = None):
        """Look for a player; nothing is started yet. config: tones used by play_pattern()."""
        self.config = config or SoundConfig()
        self.config.validate()
        self._lock = threading.Lock()
        self._process: Optional[subprocess.Popen] = None
        self._feeder: Optional[threading.Thread] = None
        self.last_error = ''
        self.player: Optional[str] = None
        self._command: Optional[list] = None
        self.reason = ''
        if command is not None:
            command = list(command)
            if not command or shutil.which(command[0]) is None:
                self.reason = f'player command {command!r} not found on PATH'
            else:
                self.player, self._command = command[0], command
            return
        for name in players:
            if shutil.which(name) is not None:
                self.player = name
                break
        if self.player is None:
            self.reason = (f'no audio player found on PATH (looked for {", ".join(players)}; '
                           'install alsa-utils or pulseaudio-utils)')

    @property
    def available(self) -> bool:
        """True if a player was found."""
        return self.player is not None

    def _argv(self, sample_rate: int) -> Tuple[list, str]:
        if self._command is not None:
            return self._command, 'wav'
        if self.player == 'paplay':
            return ['paplay', '--raw', '--format=s16le', f'--rate={sample_rate}',
                    '--channels=1'], 'raw'
        return [self.player, '-q', '-'], 'wav'

    def play(self, samples: np.ndarray, sample_rate: int, wait: bool = False) -> None:
        """Play samples; return at once unless wait. Raises SoundUnavailableError, SoundError.

        With wait=True a player failure raises SoundUnavailableError; otherwise it is kept in
        last_error.
        """
        if not self.available:
            raise SoundUnavailableError(self.reason)
        data_wav = to_wav_bytes(samples, sample_rate)
        argv, form = self._argv(sample_rate)
        data = data_wav if form == 'wav' else _check_samples(samples).astype('<i2').tobytes()
        with self._lock:
            self._stop_locked()
            try:
                process = subprocess.Popen(argv, stdin=subprocess.PIPE,
                                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            except OSError as error:
                self.last_error = f'cannot start {argv[0]}: {error}'
                raise SoundUnavailableError(self.last_error) from error
            self._process = process
            self._feeder = threading.Thread(target=self._feed, args=(process, data), daemon=True)
            self._feeder.start()
        if wait:
            self.wait()
            if self.last_error:
                raise SoundUnavailableError(self.last_error)

    def play_pattern(self, output: HapticOutput, duration_s: Optional[float] = None,
                     wait: bool = False) -> None:
        """Synthesize and play the sound of a HapticOutput (for its duration_s unless given)."""
        samples = synthesize_output(output, duration_s, self.config)
        self.play(samples, self.config.sample_rate, wait=wait)

    def _feed(self, process: subprocess.Popen, data: bytes) -> None:
        try:
            _, stderr = process.communicate(data)
        except (OSError, ValueError) as error:
            self.last_error = f'{self.player} failed: {error}'
            return
        # A negative code is our own terminate() from a newer play(): not an error.
        if process.returncode and process.returncode > 0:
            self.last_error = (f'{self.player} exited with {process.returncode}: '
                               f'{stderr.decode(errors="replace").strip()[:200]}')
        else:
            self.last_error = ''

    def wait(self, timeout_s: Optional[float] = None) -> bool:
        """Wait for the current sound to finish; True if it has."""
        feeder = self._feeder
        if feeder is None:
            return True
        feeder.join(timeout_s)
        return not feeder.is_alive()

    def stop(self) -> None:
        """Stop the sound now, if any."""
        with self._lock:
            self._stop_locked()

    def _stop_locked(self) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.terminate()
        self._process = None
