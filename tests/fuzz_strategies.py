"""Hypothesis strategies for malformed sensor messages, shared by the reliability tests."""
from builtin_interfaces.msg import Time
from hypothesis import HealthCheck, settings, strategies as st
from sensor_msgs.msg import CameraInfo, Image

# Every encoding a node may meet, right or wrong for it, and nonsense.
ENCODINGS = ['16UC1', '32FC1', 'mono16', 'mono8', 'rgb8', 'bgr8', 'rgba8', 'bgra8', '8UC3',
             '64FC1', 'yuv422', 'bayer_rggb8', '', 'garbage']


def fuzz_settings(max_examples):
    """Reproducible runs (derandomized), no per-example deadline (real nodes, shared cores)."""
    return settings(max_examples=max_examples, deadline=None, derandomize=True,
                    suppress_health_check=[HealthCheck.function_scoped_fixture,
                                           HealthCheck.too_slow])


@st.composite
def images(draw, max_side=48):
    """sensor_msgs/Image whose encoding, sizes, step, endianness and data disagree freely."""
    msg = Image()
    msg.header.frame_id = draw(st.sampled_from(['', 'cam', 'x' * 300]))
    msg.header.stamp = Time(sec=draw(st.integers(0, 2**31 - 1)),
                            nanosec=draw(st.integers(0, 999_999_999)))
    msg.encoding = draw(st.sampled_from(ENCODINGS))
    msg.height = draw(st.integers(0, max_side))
    msg.width = draw(st.integers(0, max_side))
    msg.step = draw(st.integers(0, 400))
    msg.is_bigendian = draw(st.booleans())
    msg.data = draw(st.binary(min_size=0, max_size=6000))
    return msg


@st.composite
def camera_infos(draw):
    """sensor_msgs/CameraInfo with any sizes and any (NaN, inf, zero) intrinsics."""
    msg = CameraInfo()
    msg.width = draw(st.integers(0, 50))
    msg.height = draw(st.integers(0, 50))
    msg.k = [draw(st.floats(allow_nan=True, allow_infinity=True)) for _ in range(9)]
    return msg
