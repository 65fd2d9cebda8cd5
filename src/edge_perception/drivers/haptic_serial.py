"""Serial line protocol to a haptic device, and a link that keeps it alive (pyserial).

Wire format (full description with an example session: docs/haptic_protocol.md). ASCII lines,
NMEA-like: `$<payload>*<CS>` + LF, CS = XOR of the payload bytes (between `$` and `*`) as two
hex digits.

host -> device
    $HAP,<seq>,<pattern>,<intensity %>,<pulse deci-Hz>,<duration ms>,<motor mask hex>*CS
    $PING,<seq>*CS
device -> host
    $ACK,<seq>*CS                 command <seq> received and applied
    $PONG,<seq>*CS                answer to PING <seq>
    $ERR,<code>,<text>*CS         1 bad checksum, 2 bad format, 3 watchdog fallback, 4 motor fault

Pure functions encode and parse lines; HapticSerialLink owns the port. Time is always the
caller's monotonic now_s (testable, no sleeps in here).
"""
from collections import deque
from dataclasses import dataclass
import math
import threading
from typing import Dict, Optional, Tuple

from edge_perception.core.haptics import HapticOutput, pattern_urgency
import numpy as np
import serial

SEQ_MODULO = 65536          # seq is 0..65535 and wraps
MAX_LINE_BYTES = 120        # longer input without a newline is garbage, not a line
MAX_PULSE_DECI_HZ = 999
MAX_DURATION_MS = 600000

ERR_BAD_CHECKSUM = 1
ERR_BAD_FORMAT = 2
ERR_WATCHDOG = 3
ERR_MOTOR_FAULT = 4

HOST_KINDS = ('HAP', 'PING')
_DEC_DIGITS = frozenset('0123456789')
_HEX_DIGITS = frozenset('0123456789abcdefABCDEF')
DEVICE_KINDS = ('ACK', 'PONG', 'ERR')


class ProtocolError(ValueError):
    """A line or a field does not follow the haptic line protocol."""


class HapticLinkError(OSError):
    """The serial port of the haptic device cannot be opened or used."""


@dataclass(frozen=True)
class DeviceMessage:
    """One parsed device -> host line: ACK/PONG carry seq; ERR carries code and text."""

    kind: str
    seq: Optional[int] = None
    code: Optional[int] = None
    text: str = ''


@dataclass(frozen=True)
class HostMessage:
    """One parsed host -> device line (what a device, or a device simulator, receives)."""

    kind: str
    seq: int
    pattern: Optional[int] = None
    intensity_pct: Optional[int] = None
    pulse_deci_hz: Optional[int] = None
    duration_ms: Optional[int] = None
    motor_mask: Optional[int] = None


def checksum(payload: bytes) -> int:
    """XOR of all bytes of payload (the text between `$` and `*`), as in NMEA 0183."""
    value = 0
    for byte in payload:
        value ^= byte
    return value


def frame(payload: str) -> bytes:
    """Wrap a payload as one line: `$payload*CS` + LF."""
    if any(c in payload for c in '$*\r\n') or not payload.isascii():
        raise ProtocolError(f'payload {payload!r} must be ASCII without $, *, CR or LF')
    data = payload.encode('ascii')
    return b'$%s*%02X\n' % (data, checksum(data))


def _check_seq(seq) -> int:
    if isinstance(seq, bool) or not isinstance(seq, (int, np.integer)) \
            or not 0 <= seq < SEQ_MODULO:
        raise ProtocolError(f'seq must be an integer in 0..{SEQ_MODULO - 1}, got {seq!r}')
    return int(seq)


def encode_command(seq: int, output: HapticOutput) -> bytes:
    """Encode a HapticOutput as a `$HAP` line; raises ProtocolError for out-of-range fields."""
    seq = _check_seq(seq)
    try:
        pattern_urgency(output.pattern)
    except ValueError as error:
        raise ProtocolError(str(error)) from None
    values = {'intensity': output.intensity, 'pulse_hz': output.pulse_hz,
              'duration_s': output.duration_s}
    for name, value in values.items():
        if not math.isfinite(value):
            raise ProtocolError(f'{name} must be finite, got {value}')
    if not 0.0 <= output.intensity <= 1.0:
        raise ProtocolError(f'intensity must be in [0, 1], got {output.intensity}')
    pulse_deci_hz = round(output.pulse_hz * 10.0)
    if not 0 <= pulse_deci_hz <= MAX_PULSE_DECI_HZ:
        raise ProtocolError(
            f'pulse_hz must be in [0, {MAX_PULSE_DECI_HZ / 10}], got {output.pulse_hz}')
    duration_ms = round(output.duration_s * 1000.0)
    if not 1 <= duration_ms <= MAX_DURATION_MS:
        raise ProtocolError(
            f'duration_s must be in [0.001, {MAX_DURATION_MS / 1000}], got {output.duration_s}')
    mask = output.motor_mask
    if isinstance(mask, bool) or not isinstance(mask, (int, np.integer)) or not 0 <= mask <= 255:
        raise ProtocolError(f'motor_mask must be an integer in 0..255, got {mask!r}')
    intensity_pct = round(output.intensity * 100.0)
    return frame(f'HAP,{seq},{int(output.pattern)},{intensity_pct},{pulse_deci_hz},'
                 f'{duration_ms},{int(mask):02X}')


def encode_ping(seq: int) -> bytes:
    """Encode a heartbeat `$PING` line."""
    return frame(f'PING,{_check_seq(seq)}')


def encode_ack(seq: int) -> bytes:
    """Device side: acknowledge command seq."""
    return frame(f'ACK,{_check_seq(seq)}')


def encode_pong(seq: int) -> bytes:
    """Device side: answer PING seq."""
    return frame(f'PONG,{_check_seq(seq)}')


def encode_error(code: int, text: str) -> bytes:
    """Device side: report error code (0..255) with a short text (no `$`, `*`, newline)."""
    if isinstance(code, bool) or not isinstance(code, int) or not 0 <= code <= 255:
        raise ProtocolError(f'error code must be an integer in 0..255, got {code!r}')
    return frame(f'ERR,{code},{text}')


def split_line(line: bytes) -> Tuple[str, list]:
    """Check framing and checksum of one line; return (kind, fields).

    Accepts a trailing LF or CRLF and a checksum in either hex case. Raises ProtocolError.
    """
    if not isinstance(line, (bytes, bytearray)):
        raise ProtocolError(f'line must be bytes, got {type(line).__name__}')
    data = bytes(line).rstrip(b'\r\n')
    if len(data) > MAX_LINE_BYTES:
        raise ProtocolError(f'line of {len(data)} bytes is longer than {MAX_LINE_BYTES}')
    if not data.startswith(b'$'):
        raise ProtocolError(f'line {data!r} does not start with $')
    star = data.rfind(b'*')
    if star < 0 or len(data) - star != 3:
        raise ProtocolError(f'line {data!r} does not end with *<two hex digits>')
    payload, cs_text = data[1:star], data[star + 1:]
    try:
        received = int(cs_text.decode('ascii'), 16)
    except (UnicodeDecodeError, ValueError):
        raise ProtocolError(f'checksum {cs_text!r} of line {data!r} is not hex') from None
    expected = checksum(payload)
    if received != expected:
        raise ProtocolError(
            f'bad checksum in {data!r}: got {received:02X}, computed {expected:02X}')
    try:
        text = payload.decode('ascii')
    except UnicodeDecodeError:
        raise ProtocolError(f'line {data!r} is not ASCII') from None
    if '$' in text or '*' in text:
        raise ProtocolError(f'line {data!r} holds a stray $ or *')
    kind, *fields = text.split(',')
    return kind, fields


def _int_field(kind: str, name: str, text: str, low: int, high: int, base: int = 10) -> int:
    digits = _HEX_DIGITS if base == 16 else _DEC_DIGITS
    # int() alone would also take ' 7', '+7' and '1_0'; the protocol allows plain digits only.
    if not text or not set(text) <= digits:
        raise ProtocolError(f'{kind} field {name}={text!r} is not a base-{base} integer')
    value = int(text, base)
    if not low <= value <= high:
        raise ProtocolError(f'{kind} field {name}={text!r} is not in {low}..{high}')
    return value


def parse_line(line: bytes) -> DeviceMessage:
    """Parse one device -> host line ($ACK, $PONG, $ERR); raises ProtocolError."""
    kind, fields = split_line(line)
    if kind in ('ACK', 'PONG'):
        if len(fields) != 1:
            raise ProtocolError(f'{kind} needs 1 field (seq), got {len(fields)}')
        return DeviceMessage(kind, seq=_int_field(kind, 'seq', fields[0], 0, SEQ_MODULO - 1))
    if kind == 'ERR':
        if len(fields) < 2:
            raise ProtocolError(f'ERR needs 2 fields (code, text), got {len(fields)}')
        code = _int_field(kind, 'code', fields[0], 0, 255)
        return DeviceMessage(kind, code=code, text=','.join(fields[1:]))
    raise ProtocolError(f'unknown device message {kind!r}; expected one of {DEVICE_KINDS}')


def parse_host_line(line: bytes) -> HostMessage:
    """Parse one host -> device line ($HAP, $PING); raises ProtocolError. For device simulators."""
    kind, fields = split_line(line)
    if kind == 'PING':
        if len(fields) != 1:
            raise ProtocolError(f'PING needs 1 field (seq), got {len(fields)}')
        return HostMessage(kind, seq=_int_field(kind, 'seq', fields[0], 0, SEQ_MODULO - 1))
    if kind == 'HAP':
        if len(fields) != 6:
            raise ProtocolError(f'HAP needs 6 fields, got {len(fields)}')
        if len(fields[5]) != 2:
            raise ProtocolError(f'HAP motor mask {fields[5]!r} must be two hex digits')
        return HostMessage(
            kind,
            seq=_int_field(kind, 'seq', fields[0], 0, SEQ_MODULO - 1),
            pattern=_int_field(kind, 'pattern', fields[1], 0, 4),
            intensity_pct=_int_field(kind, 'intensity', fields[2], 0, 100),
            pulse_deci_hz=_int_field(kind, 'pulse', fields[3], 0, MAX_PULSE_DECI_HZ),
            duration_ms=_int_field(kind, 'duration', fields[4], 1, MAX_DURATION_MS),
            motor_mask=_int_field(kind, 'motor_mask', fields[5], 0, 255, base=16))
    raise ProtocolError(f'unknown host message {kind!r}; expected one of {HOST_KINDS}')


class HapticSerialLink:
    """A serial link to a haptic device that notices when the device stops answering.

    - send() writes a `$HAP` command; the device acknowledges each with `$ACK,<seq>`.
    - poll() (call it often, e.g. at 20-50 Hz, from one timer) reads replies without blocking,
      sends `$PING` when nothing was sent for heartbeat_period_s, re-sends the latest command
      once when it is not acknowledged within retry_after_s (or the device reports a garbled
      line), and reopens the port reopen_interval_s after an I/O error (device unplugged and
      plugged back, e.g. under a stable /dev/serial/by-id/ name); after a reopen it re-sends
      the latest command if that is still within its duration_s.
    - device_alive is True while an ACK or PONG arrived within device_timeout_s of the latest
      now_s given to send()/poll().
    - send() never raises for I/O trouble: the failure lands in last_error and stats, and the
      link recovers by itself. It raises ProtocolError (a ValueError) for an unencodable command.
    All methods are thread-safe.
    """

    def __init__(self, port: str, baudrate: int = 115200, heartbeat_period_s: float = 0.5,
                 device_timeout_s: float = 1.5, reopen_interval_s: float = 1.0,
                 retry_after_s: float = 0.1, write_timeout_s: float = 0.1):
        """Configure the link; nothing is opened until open()."""
        if not isinstance(port, str) or not port:
            raise ValueError(f'port must be a non-empty device path, got {port!r}')
        if isinstance(baudrate, bool) or not isinstance(baudrate, int) or baudrate <= 0:
            raise ValueError(f'baudrate must be a positive integer, got {baudrate!r}')
        for name, value in (('heartbeat_period_s', heartbeat_period_s),
                            ('device_timeout_s', device_timeout_s),
                            ('reopen_interval_s', reopen_interval_s),
                            ('retry_after_s', retry_after_s),
                            ('write_timeout_s', write_timeout_s)):
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
                raise ValueError(f'{name} must be a positive number of seconds, got {value!r}')
        if device_timeout_s <= heartbeat_period_s:
            raise ValueError(
                f'device_timeout_s ({device_timeout_s}) must exceed heartbeat_period_s '
                f'({heartbeat_period_s}), or a healthy device looks dead between heartbeats')
        self.port = port
        self.baudrate = baudrate
        self.heartbeat_period_s = float(heartbeat_period_s)
        self.device_timeout_s = float(device_timeout_s)
        self.reopen_interval_s = float(reopen_interval_s)
        self.retry_after_s = float(retry_after_s)
        self.write_timeout_s = float(write_timeout_s)

        self._lock = threading.RLock()
        self._serial: Optional[serial.Serial] = None
        self._want_open = False
        self._opened_once = False
        self._reopen_at_s = -math.inf
        self._rx = bytearray()
        self._next_seq = 0
        self._now_s = -math.inf
        self._last_tx_s = -math.inf
        self._last_reply_s: Optional[float] = None
        self._silent_since_s: Optional[float] = None   # start of the silence being timed
        self._timeout_reported = False
        self._pending: Dict[int, Tuple[float, str]] = {}   # seq -> (sent at, 'HAP' or 'PING')
        self._command: Optional[HapticOutput] = None       # latest command asked by send()
        self._command_s = -math.inf
        self._command_seq: Optional[int] = None
        self._command_acked = False
        self._command_retried = False
        self._last_error = ''
        self._rtt_ms = deque(maxlen=512)
        self._counts = dict.fromkeys(
            ('sent', 'acked', 'unacked', 'resent', 'send_failed', 'pings', 'pongs',
             'pings_unanswered', 'unexpected_replies', 'device_errors', 'rx_bad_lines',
             'io_errors', 'open_failures', 'reconnects', 'device_timeouts'), 0)

    # -- port handling -------------------------------------------------------------------------

    def open(self) -> None:  # noqa: A003 (the API name; a method, not the builtin)
        """Open the port; raises HapticLinkError with the reason if it cannot be opened.

        Even after a failed open, poll() keeps retrying every reopen_interval_s until close().
        """
        with self._lock:
            self._want_open = True
            if self._serial is None:
                self._open_port()

    def close(self) -> None:
        """Close the port and stop reopening it."""
        with self._lock:
            self._want_open = False
            self._close_port()
            self._pending.clear()

    def __enter__(self):
        """Open on entering a with-block."""
        self.open()
        return self

    def __exit__(self, *exc_info):
        """Close on leaving a with-block."""
        self.close()

    @property
    def is_open(self) -> bool:
        """True while the port is open."""
        return self._serial is not None

    def _open_port(self) -> None:
        try:
            port = serial.Serial(port=self.port, baudrate=self.baudrate, timeout=0,
                                 write_timeout=self.write_timeout_s, exclusive=True)
        except (serial.SerialException, OSError, ValueError) as error:
            self._counts['open_failures'] += 1
            message = (f'cannot open haptic device port {self.port!r} at {self.baudrate} baud: '
                       f'{error} (is the device plugged in, and may this user open it, e.g. '
                       'group dialout?)')
            self._last_error = message
            raise HapticLinkError(message) from error
        self._serial = port
        self._rx.clear()
        self._silent_since_s = None     # restart the reply clock at the next tick
        self._timeout_reported = False
        if self._opened_once:
            self._counts['reconnects'] += 1
        self._opened_once = True

    def _close_port(self) -> None:
        port, self._serial = self._serial, None
        if port is not None:
            try:
                port.close()
            except (serial.SerialException, OSError):
                pass  # the device is gone already; nothing left to release

    def _io_failed(self, what: str, error: Exception, now_s: float) -> None:
        self._counts['io_errors'] += 1
        self._last_error = f'{what} haptic device port {self.port!r} failed: {error}'
        self._close_port()
        self._reopen_at_s = now_s + self.reopen_interval_s

    # -- sending -------------------------------------------------------------------------------

    def _tick(self, now_s: float) -> float:
        if not math.isfinite(now_s):
            raise ValueError(f'now_s must be finite, got {now_s}')
        # Callers on two threads may read the clock in one order and take the lock in the other.
        self._now_s = max(self._now_s, float(now_s))
        if self._serial is not None and self._silent_since_s is None:
            self._silent_since_s = self._now_s
        return self._now_s

    def _take_seq(self) -> int:
        seq = self._next_seq
        self._next_seq = (seq + 1) % SEQ_MODULO
        return seq

    def _write(self, line: bytes, seq: int, kind: str, now_s: float) -> bool:
        if self._serial is None:
            return False
        try:
            self._serial.write(line)
        except (serial.SerialException, OSError) as error:
            self._io_failed('writing to', error, now_s)
            return False
        self._pending[seq] = (now_s, kind)
        self._last_tx_s = now_s
        return True

    def send(self, output: HapticOutput, now_s: float) -> int:
        """Send a command now; return its seq. I/O failure is recorded, not raised."""
        with self._lock:
            now_s = self._tick(now_s)
            seq = self._next_seq
            line = encode_command(seq, output)   # bad input raises before any state changes
            self._take_seq()
            self._command, self._command_s, self._command_seq = output, now_s, seq
            self._command_acked = False
            self._command_retried = False
            self._transmit_command(line, seq, now_s)
            return seq

    def _transmit_command(self, line: bytes, seq: int, now_s: float) -> None:
        if self._write(line, seq, 'HAP', now_s):
            self._counts['sent'] += 1
        else:
            self._counts['send_failed'] += 1
            if not self._last_error:
                self._last_error = f'haptic device port {self.port!r} is not open'

    def _resend_command(self, now_s: float) -> None:
        """Send the latest command again under a new seq, if it has not expired."""
        if self._command is None or now_s - self._command_s >= self._command.duration_s:
            return
        seq = self._take_seq()
        self._command_seq = seq
        self._counts['resent'] += 1
        self._transmit_command(encode_command(seq, self._command), seq, now_s)

    # -- receiving -----------------------------------------------------------------------------

    def poll(self, now_s: float) -> None:
        """Read and handle replies, send a heartbeat or a retry when due, reopen after errors."""
        with self._lock:
            now_s = self._tick(now_s)
            if self._serial is None and self._want_open and now_s >= self._reopen_at_s:
                try:
                    self._open_port()
                except HapticLinkError:
                    self._reopen_at_s = now_s + self.reopen_interval_s
                else:
                    self._tick(now_s)
                    self._resend_command(now_s)
            if self._serial is not None:
                self._read(now_s)
            if self._serial is not None:
                if (self._command is not None and not self._command_acked
                        and not self._command_retried and self._command_seq in self._pending
                        and now_s - self._pending[self._command_seq][0] >= self.retry_after_s):
                    self._command_retried = True
                    self._resend_command(now_s)
                if now_s - self._last_tx_s >= self.heartbeat_period_s:
                    seq = self._take_seq()
                    if self._write(encode_ping(seq), seq, 'PING', now_s):
                        self._counts['pings'] += 1
            self._expire(now_s)

    def _read(self, now_s: float) -> None:
        while self._serial is not None:
            try:
                data = self._serial.read(4096)   # timeout=0: returns what is there, maybe b''
            except (serial.SerialException, OSError) as error:
                self._io_failed('reading from', error, now_s)
                return
            if not data:
                return
            self._rx += data
            while True:
                end = self._rx.find(b'\n')
                if end < 0:
                    break
                line = bytes(self._rx[:end + 1])
                del self._rx[:end + 1]
                self._handle_line(line, now_s)
            if len(self._rx) > MAX_LINE_BYTES:
                self._counts['rx_bad_lines'] += 1
                self._last_error = (f'garbage from haptic device: {len(self._rx)} bytes without '
                                    'a newline (wrong baud rate?)')
                self._rx.clear()

    def _handle_line(self, line: bytes, now_s: float) -> None:
        if not line.strip():
            return
        try:
            message = parse_line(line)
        except ProtocolError as error:
            self._counts['rx_bad_lines'] += 1
            self._last_error = f'bad line from haptic device: {error}'
            return
        if message.kind == 'ERR':
            self._counts['device_errors'] += 1
            self._last_error = f'haptic device error {message.code}: {message.text}'
            if message.code in (ERR_BAD_CHECKSUM, ERR_BAD_FORMAT) and not self._command_acked:
                self._resend_command(now_s)   # the command was garbled on the way: try again
            return
        self._last_reply_s = now_s
        self._silent_since_s = now_s
        self._timeout_reported = False
        sent = self._pending.get(message.seq)
        expected_kind = 'HAP' if message.kind == 'ACK' else 'PING'
        if sent is None or sent[1] != expected_kind:
            self._counts['unexpected_replies'] += 1
            return
        del self._pending[message.seq]
        self._rtt_ms.append((now_s - sent[0]) * 1000.0)
        if message.kind == 'ACK':
            self._counts['acked'] += 1
            if message.seq == self._command_seq:
                self._command_acked = True
        else:
            self._counts['pongs'] += 1

    def _expire(self, now_s: float) -> None:
        for seq in [s for s, (t, _) in self._pending.items()
                    if now_s - t > self.device_timeout_s]:
            _, kind = self._pending.pop(seq)
            self._counts['unacked' if kind == 'HAP' else 'pings_unanswered'] += 1
        if (self._serial is not None and self._silent_since_s is not None
                and not self._timeout_reported
                and now_s - self._silent_since_s > self.device_timeout_s):
            self._timeout_reported = True
            self._counts['device_timeouts'] += 1
            self._last_error = (
                f'no reply from haptic device on {self.port!r} for '
                f'{now_s - self._silent_since_s:.2f} s (timeout {self.device_timeout_s} s)')

    # -- state ---------------------------------------------------------------------------------

    @property
    def device_alive(self) -> bool:
        """True while the port is open and an ACK/PONG came within device_timeout_s."""
        with self._lock:
            return (self._serial is not None and self._last_reply_s is not None
                    and self._now_s - self._last_reply_s <= self.device_timeout_s)

    @property
    def last_error(self) -> str:
        """The most recent problem, in words ('' if none yet); it stays after recovery."""
        return self._last_error

    @property
    def stats(self) -> dict:
        """Counters and round-trip times (ms, over the last 512 replies) for diagnostics.

        Counters count lines: a command whose first line went unanswered and whose re-send was
        acknowledged adds 1 to both 'unacked' and 'acked'.
        """
        with self._lock:
            stats = dict(self._counts)
            stats['pending'] = len(self._pending)
            stats['port_open'] = self._serial is not None
            stats['device_alive'] = self.device_alive
            stats['rtt_samples'] = len(self._rtt_ms)
            if self._rtt_ms:
                rtt = np.asarray(self._rtt_ms)
                stats['rtt_ms_p50'] = float(np.percentile(rtt, 50))
                stats['rtt_ms_p95'] = float(np.percentile(rtt, 95))
                stats['rtt_ms_max'] = float(rtt.max())
            else:
                stats['rtt_ms_p50'] = stats['rtt_ms_p95'] = stats['rtt_ms_max'] = math.nan
            return stats
