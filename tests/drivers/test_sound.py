"""Synthesised alert sounds of edge_perception.drivers.sound: beep counts and pitches via FFT."""
import io
import sys
import wave

from edge_perception.core.haptics import (
    HapticConfig, HapticPatternMapper, LEVEL_SENSOR_LOST, PATTERN_CAUTION, PATTERN_CRITICAL,
    PATTERN_OFF, PATTERN_SENSOR_LOST, PATTERN_WARNING)
from edge_perception.drivers.sound import (
    SoundConfig, SoundError, SoundOutput, SoundUnavailableError, synthesize, synthesize_output,
    to_wav_bytes)
import numpy as np
import pytest

RATE = 16000


def sounding_segments(samples, rate=RATE, smooth_s=0.002):
    """Return (start_s, length_s) of each audible stretch (envelope above 10 % of peak)."""
    envelope = np.convolve(np.abs(samples.astype(float)),
                           np.ones(int(smooth_s * rate)) / int(smooth_s * rate), mode='same')
    on = envelope > 0.1 * envelope.max()
    edges = np.flatnonzero(np.diff(np.concatenate(([0], on.astype(int), [0]))))
    starts, stops = edges[0::2], edges[1::2]
    return [(a / rate, (b - a) / rate) for a, b in zip(starts, stops)]


def dominant_hz(samples, rate=RATE):
    """Return the frequency of the FFT magnitude peak, Hz."""
    window = np.hanning(samples.size)
    spectrum = np.abs(np.fft.rfft(samples.astype(float) * window))
    return np.fft.rfftfreq(samples.size, 1.0 / rate)[np.argmax(spectrum)]


@pytest.mark.parametrize('pattern, tone_hz, beeps_per_s', [
    (PATTERN_CAUTION, 440.0, 1.0),
    (PATTERN_WARNING, 660.0, 3.0),
    (PATTERN_CRITICAL, 880.0, 6.0),
])
def test_beep_count_length_and_pitch(pattern, tone_hz, beeps_per_s):
    config = SoundConfig(sample_rate=RATE)
    samples = synthesize(pattern, 2.0, config)
    assert samples.dtype == np.int16 and samples.shape == (2 * RATE,)
    segments = sounding_segments(samples)
    assert len(segments) == int(2.0 * beeps_per_s)
    period = 1.0 / beeps_per_s
    for k, (start, length) in enumerate(segments):
        assert start == pytest.approx(k * period, abs=0.01)
        assert length == pytest.approx(config.beep_duty * period, abs=0.01)
    assert dominant_hz(samples) == pytest.approx(tone_hz, abs=2.0)
    assert np.abs(samples).max() == pytest.approx(config.volume * 32767, rel=0.01)


def test_rate_and_pitch_rise_with_urgency():
    beeps, pitches = [], []
    for pattern in (PATTERN_CAUTION, PATTERN_WARNING, PATTERN_CRITICAL):
        samples = synthesize(pattern, 3.0)
        beeps.append(len(sounding_segments(samples)))
        pitches.append(dominant_hz(samples))
    assert beeps[0] < beeps[1] < beeps[2]
    assert pitches[0] < pitches[1] < pitches[2]


def test_sensor_lost_is_a_long_high_then_short_low_motif():
    config = SoundConfig(sample_rate=RATE)
    samples = synthesize(PATTERN_SENSOR_LOST, 2 * config.sensor_lost_period_s, config)
    segments = sounding_segments(samples)
    assert len(segments) == 4
    high_hz, low_hz = config.sensor_lost_tones_hz
    for (start, length), expected_s, expected_hz in zip(
            segments, [config.sensor_lost_long_s, config.sensor_lost_short_s] * 2,
            [high_hz, low_hz] * 2):
        assert length == pytest.approx(expected_s, abs=0.01)
        piece = samples[int(start * RATE):int((start + length) * RATE)]
        assert dominant_hz(piece) == pytest.approx(expected_hz, rel=0.02)
    # Two tones, neither of them a beep tone: it cannot be mistaken for another alert.
    beep_tones = {config.caution_tone_hz, config.warning_tone_hz, config.critical_tone_hz}
    assert not beep_tones & set(config.sensor_lost_tones_hz)


def test_off_is_silence_and_output_duration_is_used():
    assert not synthesize(PATTERN_OFF, 0.5).any()
    output = HapticPatternMapper(HapticConfig(command_duration_s=0.75)).command_for(
        LEVEL_SENSOR_LOST, 0.0)
    assert synthesize_output(output).size == int(0.75 * SoundConfig().sample_rate)


@pytest.mark.parametrize('args, message', [
    ((9, 1.0), 'unknown haptic pattern'),
    ((PATTERN_WARNING, 0.0), 'duration_s'),
    ((PATTERN_WARNING, float('nan')), 'duration_s'),
])
def test_bad_synthesis_input_is_rejected(args, message):
    with pytest.raises(SoundError, match=message):
        synthesize(*args)
    assert issubclass(SoundError, ValueError)


def test_bad_sound_config_is_rejected():
    with pytest.raises(SoundError, match='critical_tone_hz'):
        synthesize(PATTERN_CRITICAL, 1.0, SoundConfig(sample_rate=8000, critical_tone_hz=5000.0))
    with pytest.raises(SoundError, match='sensor_lost_period_s'):
        SoundConfig(sensor_lost_period_s=0.5).validate()


def test_wav_bytes_hold_the_samples():
    samples = synthesize(PATTERN_WARNING, 0.5)
    with wave.open(io.BytesIO(to_wav_bytes(samples, RATE))) as wav:
        assert (wav.getnchannels(), wav.getsampwidth(), wav.getframerate()) == (1, 2, RATE)
        decoded = np.frombuffer(wav.readframes(wav.getnframes()), dtype='<i2')
    np.testing.assert_array_equal(decoded, samples)
    with pytest.raises(SoundError, match='int16'):
        to_wav_bytes(samples.astype(np.float32), RATE)


def test_missing_player_is_reported_not_fatal():
    output = SoundOutput(players=('no-such-audio-player-xyz',))
    assert not output.available
    assert 'no-such-audio-player-xyz' in output.reason
    with pytest.raises(SoundUnavailableError, match='no audio player'):
        output.play(synthesize(PATTERN_CAUTION, 0.1), RATE)


def test_player_command_receives_the_wav(tmp_path):
    # A real subprocess standing in for aplay: it stores what it is fed on stdin.
    target = tmp_path / 'played.wav'
    copy_stdin = f'import sys; open({str(target)!r}, "wb").write(sys.stdin.buffer.read())'
    output = SoundOutput(command=[sys.executable, '-c', copy_stdin])
    assert output.available
    samples = synthesize(PATTERN_CRITICAL, 0.25)
    output.play(samples, RATE, wait=True)
    assert target.read_bytes() == to_wav_bytes(samples, RATE)
    assert output.last_error == ''


def test_failing_player_is_reported(tmp_path):
    output = SoundOutput(command=[sys.executable, '-c', 'import sys; sys.exit(3)'])
    with pytest.raises(SoundUnavailableError, match='exited with 3'):
        output.play(synthesize(PATTERN_CAUTION, 0.1), RATE, wait=True)
