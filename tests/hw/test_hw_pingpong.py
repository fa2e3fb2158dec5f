"""RTL regression of the ping-pong buffer alone (tests/hw/tb_pingpong.py; thesis section 3.5.2).

The buffer converts to Verilog as it is (its RAM is the ``ut_ram_sdp`` template that tests/hw/rtl.py appends),
so the bench runs on :class:`~ultratrain.hw.pingpong.PingPongBuffer` itself. The quick case has a depth
that is not a power of two (the second half starts at ``depth``, not at a power-of-two address) and four
write lanes; the slow sweep adds the shapes of PE1's input buffer (one 128-bit lane per row group) and
output buffer (16-bit lanes).
"""

import pytest

from .rtl import run_bench

pytestmark = pytest.mark.rtl


def _run(width: int, depth: int, granularity: int, testcase=None) -> None:
    def factory():
        from ultratrain.hw.pingpong import PingPongBuffer
        return PingPongBuffer(width, depth, granularity)

    run_bench(f"pingpong_w{width}_d{depth}_g{granularity}", factory, "tb_pingpong", testcase=testcase,
              extra_env={"PP_WIDTH": str(width), "PP_DEPTH": str(depth), "PP_GRAN": str(granularity)})


def test_pingpong():
    _run(64, 12, 16)


@pytest.mark.slow
@pytest.mark.parametrize("width, depth, granularity", [(32, 3, 8), (256, 64, 128), (128, 512, 16)])
def test_pingpong_shapes(width, depth, granularity):
    _run(width, depth, granularity)
