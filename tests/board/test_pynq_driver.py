"""The PYNQ driver (host/backends/pynq.py) on a recording ``pynq.Device``: order of operations, errors, files.

The device (tests/board/mock_device.py) keeps device-side DRAM apart from the host buffers and poisons the
host copies after every program, so the bit-exact training comparison below fails if a flush or an
invalidate is missing; the log checks pin the order of register writes and cache operations.
"""

import json
import time

import numpy as np
import pytest

from ultratrain.host.backends import pynq as pynq_backend
from ultratrain.host.runtime import WriteBackError
from ultratrain.host.backends.pynq import (REGISTER_SPAN, VLNV, AllocationError, BitstreamError, BoardError,
                                           DeviceTimeout, HardwareMismatch, PynqBackend, decode_hwcfg,
                                           find_accelerator, set_fabric_clock, verify_bitstream, write_manifest)
from ultratrain.sim.contract import (CTRL_IRQ_ENABLE, CTRL_RESET, CTRL_START, DEFAULT_CONFIG, DESCRIPTOR_BYTES,
                                     STATUS_DONE, STATUS_ERROR, Descriptor, ErrorCode, HardwareConfig, Opcode,
                                     encode_program)
from ultratrain.sim.executor import DeviceError

from .mock_device import POISON, FakeClocks, FakeInterrupt, RecordingDevice
from .workloads import assert_same, reference_run, run_small_net, trainer_steps

def backend_on(device, **kwargs):
    kwargs.setdefault("poll_interval_s", 0.0)
    kwargs.setdefault("arena_bytes", 1 << 20)
    return PynqBackend(device.ip(), **kwargs)


def starts(log):
    return [i for i, e in enumerate(log) if e[0] == "start"]


# ---------------------------------------------------------------------------------------------------------
# bit-exact through the driver, and the mock catches a driver that skips cache maintenance


def test_runtime_on_pynq_driver_equals_emulated():
    device = RecordingDevice()
    assert_same(run_small_net(backend_on(device)), reference_run())
    assert len(starts(device.log)) == 5          # load + 2 x (forward, backward)


@pytest.mark.parametrize("skipped", ["flush", "invalidate"])
def test_missing_cache_maintenance_is_caught(monkeypatch, skipped):
    from pynq.buffer import PynqBuffer
    monkeypatch.setattr(PynqBuffer, skipped, lambda self: None)
    device = RecordingDevice()
    backend = backend_on(device)
    if skipped == "invalidate":
        # Without an invalidate the host reads the stale (poisoned) lines, write-backs included.
        addr = backend.alloc(64)
        backend.write(addr, np.arange(32))
        backend.run(*_program(backend, [Descriptor(Opcode.END)]))
        assert set(backend.read_bytes(addr, 64)) == {POISON}
    # Without a flush the device runs a stale ring; without an invalidate the host reads one. Either way the
    # runtime's write-back check stops the step instead of returning wrong numbers.
    with pytest.raises(WriteBackError, match="stale ring"):
        run_small_net(backend, steps=1)


# ---------------------------------------------------------------------------------------------------------
# order of operations


def _covered(events, lo, hi):
    """Whether the (kind, addr, n) events cover [lo, hi)."""
    spans = sorted((a, a + n) for _, a, n in events)
    pos = lo
    for a, b in spans:
        if a <= pos < b:
            pos = b
    return pos >= hi


def test_order_reset_flush_start_invalidate():
    device = RecordingDevice(busy_polls=3)
    run_small_net(backend_on(device), steps=1)
    log = device.log
    idx = starts(log)
    prev = 0
    for i in idx:
        _, prog_addr, count = log[i]
        segment = log[prev:i]
        ring = (prog_addr, prog_addr + count * DESCRIPTOR_BYTES)
        # The ring (and every other host write) is flushed after the previous program and before START.
        assert _covered([e for e in segment if e[0] == "flush"], *ring)
        # RESET, then the program registers, then START: nothing of the previous call leaks in.
        writes = [(e[1], e[2]) for e in segment if e[0] == "write"]
        names = [n for n, _ in writes]
        reset_at = max(k for k, (n, v) in enumerate(writes) if n == "CTRL" and v & CTRL_RESET)
        assert names[reset_at + 1:] == ["PROG_ADDR", "PROG_COUNT", "CTRL"]
        assert writes[-1][1] & CTRL_START and not writes[-1][1] & CTRL_RESET
        assert ("PROG_ADDR", prog_addr) in writes and ("PROG_COUNT", count) in writes
        # No flush lands between START and the end of the program (the device owns DRAM meanwhile).
        nxt = idx[idx.index(i) + 1] if i != idx[-1] else len(log)
        after = log[i:nxt]
        done = next(k for k, e in enumerate(after) if e[0] == "read" and e[1] == "STATUS"
                    and e[2] & (STATUS_DONE | STATUS_ERROR))
        assert not any(e[0] in ("flush", "invalidate") for e in after[:done])
        # The write-backs are read only after an invalidate of the ring that follows DONE.
        assert _covered([e for e in after[done:] if e[0] == "invalidate"], *ring)
        prev = i
    # Polling: BUSY was seen three times per program before DONE.
    busy = [e for e in log[idx[0]:idx[1]] if e[0] == "read" and e[1] == "STATUS" and e[2] == 1]
    assert len(busy) == 3


def test_buffers_allocated_once_and_reused():
    device = RecordingDevice()
    backend = backend_on(device)
    run_small_net(backend, steps=1)
    n_alloc = len(device.events("allocate"))
    run_small_net(backend, steps=3, seed=1)      # a second runtime on the same backend: same arena
    assert len(device.events("allocate")) == n_alloc == 1
    assert backend.allocated_bytes == 1 << 20


def test_interrupt_path_enables_irq_and_waits():
    device = RecordingDevice(busy_polls=10**6)   # would poll forever: only the interrupt ends the wait
    irq = FakeInterrupt(device)
    backend = backend_on(device, interrupt=irq, timeout_s=5.0)
    assert_same(run_small_net(backend, steps=1), reference_run(steps=1))
    assert irq.waits == 3
    start_writes = [e[2] for e in device.events("write") if e[1] == "CTRL" and e[2] & CTRL_START]
    assert all(v & CTRL_IRQ_ENABLE for v in start_writes)
    # The W1C write that drops the line follows every program.
    assert len([e for e in device.events("write") if e[1] == "STATUS" and e[2] & STATUS_DONE]) == 3


def test_counters_read_after_each_program():
    device = RecordingDevice()
    backend = backend_on(device)
    run_small_net(backend, steps=1)
    assert backend.runs == 3
    assert backend.last_counters["cycles"] == device.cycles > 0
    assert set(backend.last_counters) == {"cycles", "pe1_busy", "pe2_busy", "pe3_busy", "vec_busy", "load_busy",
                                          "axi_stall"}
    assert backend.total_cycles >= 3 * 1000


# ---------------------------------------------------------------------------------------------------------
# errors


def _program(backend, descriptors):
    raw = encode_program(descriptors)
    addr = backend.alloc(len(raw))
    backend.write_bytes(addr, raw)
    return addr, len(descriptors)


def test_timeout_is_honoured_and_resets_the_device():
    device = RecordingDevice(hang=True)
    backend = backend_on(device, timeout_s=0.2, poll_interval_s=0.01)
    addr, count = _program(backend, [Descriptor(Opcode.END)])
    t0 = time.monotonic()
    with pytest.raises(DeviceTimeout, match=r"0.2 s .*reset"):
        backend.run(addr, count)
    elapsed = time.monotonic() - t0
    assert 0.2 <= elapsed < 2.0
    assert device.log[-1] == ("write", "CTRL", CTRL_RESET)


def test_interrupt_wait_times_out_too():
    class SilentInterrupt:
        async def wait(self):
            import asyncio
            await asyncio.sleep(3600)
    device = RecordingDevice(hang=True)
    backend = backend_on(device, interrupt=SilentInterrupt(), timeout_s=0.2)
    addr, count = _program(backend, [Descriptor(Opcode.END)])
    with pytest.raises(DeviceTimeout):
        backend.run(addr, count)
    assert device.log[-1] == ("write", "CTRL", CTRL_RESET)


def test_device_error_names_code_and_descriptor_and_does_not_leak():
    device = RecordingDevice()
    backend = backend_on(device)
    bad = Descriptor(Opcode.PE1, a=8, b=1, c=15, d=8, src_a=0x6000_0000, dst=0x6000_0000)   # c not x16
    addr, count = _program(backend, [Descriptor(Opcode.END), bad, Descriptor(Opcode.END)])
    with pytest.raises(DeviceError) as err:
        backend.run(addr + DESCRIPTOR_BYTES, 2)
    assert err.value.code == ErrorCode.BAD_SHAPE and err.value.pc == 0 and err.value.desc.opcode == Opcode.PE1
    assert "BAD_SHAPE" in str(err.value)
    # The next program starts from RESET: the error status does not survive into it.
    backend.run(addr, 1)
    assert device.status == 0 and device.pc == 0


def test_no_end_is_reported():
    device = RecordingDevice()
    backend = backend_on(device)
    addr, _ = _program(backend, [Descriptor(Opcode.LOAD_B, a=1, src_a=0x6000_0000)] * 2)
    with pytest.raises(DeviceError) as err:
        backend.run(addr, 2)
    assert err.value.code == ErrorCode.NO_END and err.value.pc == 2


@pytest.mark.parametrize("override, match", [
    ({"ID": 0x12345678}, "ID 0x12345678"),
    ({"VERSION": 2 << 16}, "contract version 2.0"),
    ({"HWCFG0": HardwareConfig(pe1_rows=4).hwcfg_registers()["HWCFG0"]}, "pe1_rows: device 4 vs host 8"),
    ({"HWCFG2": HardwareConfig(wmem_words=2048).hwcfg_registers()["HWCFG2"]}, "wmem_words: device 2048"),
])
def test_identity_mismatch_is_a_clear_error(override, match):
    device = RecordingDevice(identity=override)
    with pytest.raises(HardwareMismatch, match=match):
        backend_on(device)


def test_decode_hwcfg_inverts_the_contract():
    cfg = HardwareConfig(pe1_rows=4, wmem_words=1024, pe3_max_d=128, axi_data_bits=64)
    decoded = decode_hwcfg(cfg.hwcfg_registers())
    assert {k: v for k, v in cfg.as_dict().items()} == decoded


def test_allocation_failure_names_the_size():
    device = RecordingDevice(alloc_limit=1 << 20)
    backend = backend_on(device, arena_bytes=1 << 20)
    backend.alloc(1000)
    with pytest.raises(AllocationError, match=r"could not get 2000000 bytes .*asked for 2000000 bytes; 1048576 bytes already held"):
        backend.alloc(2_000_000)
    budget = backend_on(RecordingDevice(), arena_bytes=1 << 20, max_bytes=2 << 20)
    budget.alloc(1 << 20)
    budget.alloc(1 << 20)
    with pytest.raises(AllocationError, match="allocating 64 bytes .*max_bytes=2097152"):
        budget.alloc(64)


def test_bad_arguments():
    device = RecordingDevice()
    with pytest.raises(ValueError, match="timeout_s"):
        backend_on(device, timeout_s=0)
    with pytest.raises(ValueError, match="arena_bytes"):
        backend_on(device, arena_bytes=100)
    backend = backend_on(device)
    with pytest.raises(ValueError, match="nbytes"):
        backend.alloc(0)
    with pytest.raises(IndexError, match="not inside a buffer"):
        backend.write_bytes(0x10, b"\0" * 4)
    addr = backend.alloc(64)
    with pytest.raises(OverflowError):
        backend.write(addr, [40000])


# ---------------------------------------------------------------------------------------------------------
# bitstream files, overlay and clock


def make_pair(tmp_path, hwh=b"<hwh/>"):
    bit = tmp_path / "ultratrain.bit"
    bit.write_bytes(b"\x00\x09bitstream" * 10)
    bit.with_suffix(".hwh").write_bytes(hwh)
    return bit


def test_manifest_round_trip_and_mismatches(tmp_path):
    bit = make_pair(tmp_path)
    write_manifest(bit, part="xczu3eg-sbva484-1-i")
    manifest = verify_bitstream(bit)
    assert manifest["build"]["part"] == "xczu3eg-sbva484-1-i" and manifest["vlnv"] == VLNV
    bit.with_suffix(".hwh").write_bytes(b"<hwh other='build'/>")
    with pytest.raises(BitstreamError, match="ultratrain.hwh does not match its manifest"):
        verify_bitstream(bit)
    verify_bitstream(bit, check_hash=False)
    with pytest.raises(BitstreamError, match="another hardware configuration"):
        verify_bitstream(bit, HardwareConfig(pe1_rows=4), check_hash=False)
    data = json.loads(bit.with_suffix(".manifest.json").read_text())
    data["contract_version"] = [0, 9]
    bit.with_suffix(".manifest.json").write_text(json.dumps(data))
    with pytest.raises(BitstreamError, match="contract version"):
        verify_bitstream(bit, check_hash=False)


def test_missing_files_say_what_to_do(tmp_path):
    with pytest.raises(BitstreamError, match="make bitstream"):
        verify_bitstream(tmp_path / "ultratrain.bit")
    bit = tmp_path / "ultratrain.bit"
    bit.write_bytes(b"bit")
    with pytest.raises(BitstreamError, match="no ultratrain.hwh beside it"):
        verify_bitstream(bit)
    bit.with_suffix(".hwh").write_bytes(b"hwh")
    with pytest.raises(BitstreamError, match="no manifest"):
        verify_bitstream(bit)


def test_find_accelerator_checks_the_hwh_against_the_register_map():
    good = {"axi_intc_0": {"type": "xilinx.com:ip:axi_intc:4.1", "addr_range": 0x10000},
            "ultratrain_0": {"type": VLNV, "addr_range": 0x1000}}
    assert find_accelerator(good) == "ultratrain_0"
    with pytest.raises(HardwareMismatch, match="no accelerator of type"):
        find_accelerator({"axi_intc_0": good["axi_intc_0"]})
    with pytest.raises(HardwareMismatch, match="register map needs"):
        find_accelerator({"u": {"type": VLNV, "addr_range": REGISTER_SPAN - 4}})


def test_fabric_clock_is_set_and_read_back():
    clocks = FakeClocks()
    assert set_fabric_clock(clocks, 100.0) == 100.0
    assert set_fabric_clock(FakeClocks(actual=99.999), 100.0) == pytest.approx(99.999)
    with pytest.raises(BoardError, match="reads 187.500 MHz after setting 100 MHz"):
        set_fabric_clock(FakeClocks(actual=187.5), 100.0)


def test_from_bitstream_flow(tmp_path, monkeypatch):
    bit = make_pair(tmp_path)
    write_manifest(bit)
    device = RecordingDevice()
    loaded = []

    class FakeOverlay:
        def __init__(self, path, download=True):
            loaded.append((path, download))
            self.ip_dict = {"ultratrain_0": {"type": VLNV, "addr_range": 0x1000}}
            self.ultratrain_0 = device.ip()
    monkeypatch.setattr(pynq_backend.pynq, "Overlay", FakeOverlay)
    clocks = FakeClocks()
    backend = PynqBackend.from_bitstream(bit, clocks=clocks, poll_interval_s=0.0)
    assert loaded == [(str(bit), True)] and clocks.fclk0_mhz == 100.0 and backend.clock_mhz == 100.0
    assert backend.identity["HWCFG0"] == DEFAULT_CONFIG.hwcfg_registers()["HWCFG0"]
    monkeypatch.setenv("ULTRATRAIN_BITSTREAM", str(tmp_path / "absent.bit"))
    with pytest.raises(BitstreamError, match="absent.bit"):
        pynq_backend.make_backend("fixed")
    with pytest.raises(ValueError, match="fixed point only"):
        pynq_backend.make_backend("float")


# ---------------------------------------------------------------------------------------------------------
# the trainer on the driver: a device failure leaves the checkpoint intact


def test_trainer_steps_on_the_driver_equal_emulated():
    from ultratrain.host.backends.emulated import EmulatedBackend
    on_driver = trainer_steps(backend_on(RecordingDevice(), arena_bytes=4 << 20), steps=3)
    emulated = trainer_steps(EmulatedBackend(size=64 << 20), steps=3)
    assert on_driver[0] == emulated[0] and on_driver[2] == emulated[2]
    assert_same(on_driver[1], emulated[1])


def test_trainer_device_failure_leaves_checkpoint_intact(tmp_path):
    from ultratrain.host.cli import load_training_data
    from ultratrain.host.trainer import TrainConfig, Trainer
    data = load_training_data("tests/data/fashion-mnist-subset", train_limit=32, test_limit=16)
    config = TrainConfig(epochs=2, batch_size=16, eval_batch=16, backend="pynq", lr_schedule="constant")
    device = RecordingDevice()
    trainer = Trainer(config, data, backend=backend_on(device, arena_bytes=4 << 20), out=tmp_path,
                      progress=False, log=lambda msg: None)
    trainer.fit(epochs=1)
    checkpoint = (tmp_path / "checkpoint.npz").read_bytes()
    device.hang = True
    trainer.backend.timeout_s = 0.05
    with pytest.raises(DeviceTimeout):
        trainer.fit(resume=True, epochs=1)
    assert (tmp_path / "checkpoint.npz").read_bytes() == checkpoint
