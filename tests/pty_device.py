"""A microcontroller played on the master end of a real pseudo-terminal (os.openpty()).

The haptic device simulator shared by the serial-link unit tests and the haptic node's
integration tests: it parses the host's lines with its own checksum code (independent of the
implementation under test) and answers ACK/PONG, or stays silent on request.
"""
from functools import reduce
import operator
import os
import select
import threading


def xor_checksum(payload: bytes) -> int:
    """Compute the NMEA XOR over payload, independently of the code under test."""
    return reduce(operator.xor, payload, 0)


def framed(payload: bytes) -> bytes:
    return b'$' + payload + b'*' + b'%02X' % xor_checksum(payload) + b'\n'


class FakeDevice(threading.Thread):
    """The microcontroller, played on the master end of a pty.

    mode: 'answer' (ACK/PONG), 'silent' (reads, never answers).
    drop_first_hap: do not acknowledge the first HAP. err_first_hap: answer it with ERR 1.
    """

    def __init__(self, master_fd):
        super().__init__(daemon=True)
        self.master_fd = master_fd
        self.mode = 'answer'
        self.drop_first_hap = False
        self.err_first_hap = False
        self.lines = []          # (kind, fields) of every well-formed line, in order
        self.bad_lines = []      # lines with a wrong checksum or framing
        self._haps_seen = 0
        self._stop_requested = threading.Event()
        self._lock = threading.Lock()

    def stop(self):
        self._stop_requested.set()
        self.join(timeout=5)

    def write(self, data: bytes):
        os.write(self.master_fd, data)

    def received(self, kind):
        with self._lock:
            return [fields for k, fields in self.lines if k == kind]

    def run(self):
        buffer = b''
        while not self._stop_requested.is_set():
            ready, _, _ = select.select([self.master_fd], [], [], 0.01)
            if not ready:
                continue
            try:
                data = os.read(self.master_fd, 1024)
            except OSError:   # EIO: the other side is gone
                return
            buffer += data
            while b'\n' in buffer:
                line, buffer = buffer.split(b'\n', 1)
                self._handle(line)

    def _handle(self, line):
        if not line.startswith(b'$') or b'*' not in line:
            self.bad_lines.append(line)
            return
        payload, cs = line[1:].rsplit(b'*', 1)
        if int(cs, 16) != xor_checksum(payload):
            self.bad_lines.append(line)
            return
        kind, *fields = payload.decode('ascii').split(',')
        with self._lock:
            self.lines.append((kind, fields))
        if self.mode != 'answer':
            return
        if kind == 'HAP':
            self._haps_seen += 1
            if self._haps_seen == 1 and self.drop_first_hap:
                return
            if self._haps_seen == 1 and self.err_first_hap:
                self.write(framed(b'ERR,1,bad checksum'))
                return
            self.write(framed(b'ACK,' + fields[0].encode()))
        elif kind == 'PING':
            self.write(framed(b'PONG,' + fields[0].encode()))


class Pty:
    """A pseudo-terminal with a FakeDevice on its master end."""

    def __init__(self):
        self.master, self.slave = os.openpty()
        self.path = os.ttyname(self.slave)
        self.device = FakeDevice(self.master)
        self.device.start()

    def unplug(self):
        self.device.stop()
        os.close(self.master)
        os.close(self.slave)
