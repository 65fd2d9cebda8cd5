"""A serial link to the haptic device that keeps it alive (pyserial).

The line protocol (`$HAP`/`$ACK`/`$PING`/`$PONG`/`$ERR`, XOR checksum) is encoded and parsed by
edge_perception.drivers.haptic_protocol (full description: docs/haptic_protocol.md);
HapticSerialLink owns the port. Time is always the
caller's monotonic now_s (testable, no sleeps in here).
"""
from collections import deque
import math
import threading
from typing import Dict, Optional, Tuple

from edge_perception.core.haptics import HapticOutput
from edge_perception.drivers.haptic_protocol import (encode_command, encode_ping,
                                                     ERR_BAD_CHECKSUM, ERR_BAD_FORMAT,
                                                     MAX_LINE_BYTES, parse_line, ProtocolError,
                                                     SEQ_MODULO)
import numpy as np
import serial


class HapticLinkError(OSError):
    """The serial port of the haptic device cannot be opened or used."""


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
