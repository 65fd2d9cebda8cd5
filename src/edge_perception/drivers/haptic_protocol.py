"""Serial line protocol of the haptic device: encode and parse its lines (pure functions).

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

No I/O here: edge_perception.drivers.haptic_serial.HapticSerialLink owns the port and uses
these functions; a device simulator (tests) parses the host's lines with parse_host_line.
"""
from dataclasses import dataclass
import math
from typing import Optional, Tuple

from edge_perception.core.haptics import HapticOutput, pattern_urgency
import numpy as np

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
