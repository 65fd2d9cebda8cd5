"""Line protocol (drivers.haptic_protocol) and serial link (drivers.haptic_serial).

The link is tested with real pyserial on a real pseudo-terminal; a thread in the test plays the
microcontroller on the master side and checks every line with its own checksum code.
"""
import math
import os
import time

from edge_perception.core.haptics import HapticConfig, HapticOutput, HapticPatternMapper
from edge_perception.drivers.haptic_protocol import (checksum, DeviceMessage, encode_ack,
                                                     encode_command, encode_error, encode_ping,
                                                     encode_pong, parse_host_line, parse_line,
                                                     ProtocolError)
from edge_perception.drivers.haptic_serial import HapticLinkError, HapticSerialLink
from pty_device import framed, Pty, xor_checksum
import pytest

pytestmark = pytest.mark.skipif(not hasattr(os, 'openpty'), reason='needs POSIX pseudo-terminals')


WARNING = HapticOutput(pattern=2, level=2, intensity=0.7, pulse_hz=4.0, duration_s=1.0,
                       direction_rad=0.3, motor_mask=0xFF)


# ---- pure protocol ------------------------------------------------------------------------

def test_checksum_matches_a_published_nmea_sentence():
    # The classic GGA example of the NMEA 0183 documentation: checksum 47.
    assert checksum(b'GPGGA,123519,4807.038,N,01131.000,E,1,08,0.9,545.4,M,46.9,M,,') == 0x47


def test_encode_command_fields_and_units():
    line = encode_command(7, WARNING)
    assert line == framed(b'HAP,7,2,70,40,1000,FF')
    caution = HapticOutput(pattern=1, level=1, intensity=0.35, pulse_hz=0.5, duration_s=0.25,
                           direction_rad=math.nan, motor_mask=0b101)
    assert encode_command(65535, caution) == framed(b'HAP,65535,1,35,5,250,05')
    assert encode_ping(12) == framed(b'PING,12')


def test_host_lines_parse_back():
    message = parse_host_line(encode_command(7, WARNING))
    assert (message.kind, message.seq, message.pattern, message.intensity_pct,
            message.pulse_deci_hz, message.duration_ms, message.motor_mask) == (
        'HAP', 7, 2, 70, 40, 1000, 0xFF)
    assert parse_host_line(encode_ping(3)).kind == 'PING'


def test_device_lines_parse():
    assert parse_line(framed(b'ACK,42')) == DeviceMessage('ACK', seq=42)
    assert parse_line(framed(b'PONG,0')) == DeviceMessage('PONG', seq=0)
    err = parse_line(framed(b'ERR,3,watchdog, no command for 1000 ms'))
    assert (err.kind, err.code, err.text) == ('ERR', 3, 'watchdog, no command for 1000 ms')
    # CRLF endings and lower-case hex are accepted.
    crlf = framed(b'ACK,42')[:-1] + b'\r\n'
    assert parse_line(crlf).seq == 42
    assert parse_line(b'$ACK,42*%02x\n' % xor_checksum(b'ACK,42')).seq == 42
    for encoded, kind in ((encode_ack(5), 'ACK'), (encode_pong(6), 'PONG'),
                          (encode_error(4, 'motor 1 open'), 'ERR')):
        assert parse_line(encoded).kind == kind


@pytest.mark.parametrize('line, message', [
    (b'$ACK,42*00\n', 'bad checksum'),
    (b'ACK,42*%02X\n' % xor_checksum(b'ACK,42'), 'does not start with'),
    (b'$ACK,42\n', 'does not end with'),
    (b'$ACK,42*ZZ\n', 'not hex'),
    (framed(b'NAK,42'), 'unknown device message'),
    (framed(b'ACK'), 'needs 1 field'),
    (framed(b'ACK,4x'), 'not a base-10 integer'),
    (framed(b'ACK,+4'), 'not a base-10 integer'),
    (framed(b'ACK,70000'), 'not in 0..65535'),
    (framed(b'ERR,1'), 'needs 2 fields'),
    (framed(b'ACK,1' + b'0' * 130), 'longer than'),
])
def test_bad_device_lines_raise_protocol_error(line, message):
    with pytest.raises(ProtocolError, match=message):
        parse_line(line)
    assert issubclass(ProtocolError, ValueError)


def test_bad_host_lines_raise_protocol_error():
    with pytest.raises(ProtocolError, match='6 fields'):
        parse_host_line(framed(b'HAP,1,2,70,40,1000'))
    with pytest.raises(ProtocolError, match='pattern'):
        parse_host_line(framed(b'HAP,1,9,70,40,1000,FF'))
    with pytest.raises(ProtocolError, match='two hex digits'):
        parse_host_line(framed(b'HAP,1,2,70,40,1000,1FF'))


@pytest.mark.parametrize('change, message', [
    ({'intensity': 1.2}, 'intensity'),
    ({'pulse_hz': math.nan}, 'pulse_hz'),
    ({'pulse_hz': 150.0}, 'pulse_hz'),
    ({'duration_s': 0.0}, 'duration_s'),
    ({'motor_mask': 256}, 'motor_mask'),
    ({'pattern': 7}, 'pattern'),
])
def test_unencodable_commands_raise(change, message):
    fields = dict(vars(WARNING), **change)
    with pytest.raises(ProtocolError, match=message):
        encode_command(1, HapticOutput(**fields))


def test_seq_range_is_checked():
    with pytest.raises(ProtocolError, match='seq'):
        encode_ping(65536)
    with pytest.raises(ProtocolError, match='seq'):
        encode_command(-1, WARNING)


# ---- the link on a pseudo-terminal --------------------------------------------------------

@pytest.fixture
def pty():
    end = Pty()
    yield end
    end.device.stop()
    for fd in (end.master, end.slave):
        try:
            os.close(fd)
        except OSError:
            pass


def poll_until(link, condition, timeout_s=5.0):
    """Poll the link until condition() holds or the deadline passes; return condition()."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        link.poll(time.monotonic())
        if condition():
            return True
        time.sleep(0.002)   # poll period, the way a node's timer would call poll()
    return condition()


def test_open_reports_a_missing_port_clearly(tmp_path):
    link = HapticSerialLink(str(tmp_path / 'ttyNOPE'))
    with pytest.raises(HapticLinkError, match='ttyNOPE'):
        link.open()
    assert 'cannot open haptic device port' in link.last_error
    assert not link.device_alive
    assert link.stats['open_failures'] == 1


def test_link_arguments_are_checked():
    with pytest.raises(ValueError, match='device_timeout_s'):
        HapticSerialLink('/dev/null', heartbeat_period_s=1.0, device_timeout_s=0.5)
    with pytest.raises(ValueError, match='baudrate'):
        HapticSerialLink('/dev/null', baudrate=0)


def test_commands_are_acknowledged_and_decoded_by_the_device(pty):
    mapper = HapticPatternMapper(HapticConfig(motor_count=4))
    link = HapticSerialLink(pty.path, heartbeat_period_s=0.2, device_timeout_s=1.0)
    link.open()
    try:
        outputs = [mapper.command_for(level, bearing)
                   for level, bearing in ((1, 0.0), (2, math.pi / 2), (3, math.pi), (4, 0.0))]
        seqs = [link.send(out, time.monotonic()) for out in outputs]
        assert seqs == sorted(set(seqs))
        assert poll_until(link, lambda: link.stats['acked'] == len(outputs))
        haps = pty.device.received('HAP')
        assert [int(f[0]) for f in haps] == seqs
        for fields, out in zip(haps, outputs):
            assert int(fields[1]) == out.pattern
            assert int(fields[2]) == round(out.intensity * 100)
            assert int(fields[3]) == round(out.pulse_hz * 10)
            assert int(fields[4]) == round(out.duration_s * 1000)
            assert int(fields[5], 16) == out.motor_mask
        assert pty.device.bad_lines == []
        assert link.device_alive
        stats = link.stats
        assert stats['sent'] == 4 and stats['unacked'] == 0 and stats['pending'] == 0
        assert stats['rtt_samples'] == 4 and stats['rtt_ms_p50'] >= 0.0
    finally:
        link.close()
    assert not link.is_open and not link.device_alive


def test_heartbeat_keeps_an_idle_link_alive(pty):
    link = HapticSerialLink(pty.path, heartbeat_period_s=0.05, device_timeout_s=0.3)
    link.open()
    try:
        assert poll_until(link, lambda: link.stats['pongs'] >= 3)
        assert link.device_alive
        assert len(pty.device.received('PING')) >= 3
        assert pty.device.received('HAP') == []
    finally:
        link.close()


def test_silent_device_is_reported_and_recovery_is_noticed(pty):
    link = HapticSerialLink(pty.path, heartbeat_period_s=0.05, device_timeout_s=0.3)
    link.open()
    try:
        assert poll_until(link, lambda: link.device_alive)
        pty.device.mode = 'silent'
        link.send(WARNING, time.monotonic())
        assert poll_until(link, lambda: not link.device_alive)
        assert 'no reply from haptic device' in link.last_error
        assert poll_until(link, lambda: link.stats['unacked'] >= 1)
        assert link.stats['device_timeouts'] == 1
        assert link.is_open   # silence is not an I/O error: the port stays open
        pty.device.mode = 'answer'
        assert poll_until(link, lambda: link.device_alive)
        link.send(WARNING, time.monotonic())
        acked = link.stats['acked']
        assert poll_until(link, lambda: link.stats['acked'] == acked + 1)
    finally:
        link.close()


def test_unacknowledged_command_is_sent_again(pty):
    pty.device.drop_first_hap = True
    link = HapticSerialLink(pty.path, heartbeat_period_s=0.5, device_timeout_s=1.5,
                            retry_after_s=0.05)
    link.open()
    try:
        link.send(WARNING, time.monotonic())
        assert poll_until(link, lambda: link.stats['acked'] == 1)
        haps = pty.device.received('HAP')
        assert len(haps) == 2 and haps[0][0] != haps[1][0] and haps[0][1:] == haps[1][1:]
        assert link.stats['resent'] == 1
    finally:
        link.close()


def test_garbled_command_reported_by_the_device_is_sent_again(pty):
    pty.device.err_first_hap = True
    link = HapticSerialLink(pty.path, retry_after_s=10.0, device_timeout_s=20.0)
    link.open()
    try:
        link.send(WARNING, time.monotonic())
        assert poll_until(link, lambda: link.stats['acked'] == 1)
        assert link.stats['device_errors'] == 1
        assert 'haptic device error 1: bad checksum' in link.last_error
        assert len(pty.device.received('HAP')) == 2
    finally:
        link.close()


def test_device_errors_and_garbage_are_reported(pty):
    link = HapticSerialLink(pty.path)
    link.open()
    try:
        pty.device.write(framed(b'ERR,4,motor 2 open circuit'))
        assert poll_until(link, lambda: link.stats['device_errors'] == 1)
        assert link.last_error == 'haptic device error 4: motor 2 open circuit'
        pty.device.write(b'$ACK,1*00\n')
        assert poll_until(link, lambda: link.stats['rx_bad_lines'] == 1)
        assert 'bad checksum' in link.last_error
        pty.device.write(b'x' * 300)   # no newline: wrong baud rate looks like this
        assert poll_until(link, lambda: link.stats['rx_bad_lines'] == 2)
        # Either reported on its own, or, when the device's next PONG arrived before the link
        # polled, as one over-long line ending in that PONG: both are the garbage, reported.
        assert ('without a newline' in link.last_error
                or 'is longer than' in link.last_error), link.last_error
    finally:
        link.close()


def test_unplugged_device_is_reopened_and_gets_the_current_command(tmp_path):
    # A stable name pointing at the current tty, as udev's /dev/serial/by-id/ links do.
    port = tmp_path / 'ttyHAPTIC'
    first = Pty()
    os.symlink(first.path, port)
    link = HapticSerialLink(str(port), heartbeat_period_s=0.05, device_timeout_s=0.3,
                            reopen_interval_s=0.05)
    command = HapticOutput(pattern=3, level=3, intensity=1.0, pulse_hz=0.0, duration_s=30.0,
                           direction_rad=0.0, motor_mask=0x01)
    second = None
    try:
        link.open()
        link.send(command, time.monotonic())
        assert poll_until(link, lambda: link.stats['acked'] == 1)
        first.unplug()
        assert poll_until(link, lambda: not link.is_open)
        assert not link.device_alive
        assert 'failed' in link.last_error
        assert link.stats['io_errors'] >= 1
        # Nothing there: reopening fails, is counted, and is retried.
        os.remove(port)
        assert poll_until(link, lambda: link.stats['open_failures'] >= 1)
        assert not link.device_alive
        # Plugged back (a new tty behind the same name).
        second = Pty()
        os.symlink(second.path, port)
        assert poll_until(link, lambda: link.device_alive)
        assert link.stats['reconnects'] == 1
        assert poll_until(link, lambda: len(second.device.received('HAP')) >= 1)
        fields = second.device.received('HAP')[0]
        assert int(fields[1]) == 3 and int(fields[5], 16) == 0x01
    finally:
        link.close()
        if second is not None:
            second.unplug()
