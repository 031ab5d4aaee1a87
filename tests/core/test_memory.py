"""Peak memory per backend (awml_harness/memory.py): a transient allocation inside a
measured block is seen whether or not it sets the process's record, blocks of different
names keep their own peaks, and the kernel's high-water mark is left alone."""

from __future__ import annotations

import sys
import time

import pytest

from awml_harness.memory import METHOD_PROC, PeakMemory, current_rss, high_water_rss, merge

MB = 2**20
linux_only = pytest.mark.skipif(current_rss() is None, reason="needs /proc/self/statm (Linux)")


def _hold(nbytes: int, seconds: float) -> None:
    """Allocate, touch every page, hold, free: a transient peak of about `nbytes`."""
    block = bytearray(nbytes)
    for i in range(0, nbytes, 4096):
        block[i] = 1
    time.sleep(seconds)
    del block


@linux_only
def test_a_transient_peak_below_the_process_record_is_sampled_per_name():
    _hold(400 * MB, 0.01)  # the process record is now well above what follows
    record = high_water_rss()
    mem = PeakMemory()
    with mem.measure("big"):
        _hold(150 * MB, 0.05)
    with mem.measure("small"):
        _hold(1 * MB, 0.05)
    big, small = mem.record("big"), mem.record("small")
    assert big["method"] == METHOD_PROC
    assert big["peak_rss_increase_bytes"] >= 140 * MB, big
    assert small["peak_rss_increase_bytes"] < 40 * MB, small
    assert big["peak_rss_bytes"] - small["peak_rss_bytes"] >= 100 * MB
    assert high_water_rss() >= record  # measuring never lowers the kernel's mark (no clear_refs)
    assert mem.record("never") is None


@linux_only
def test_a_new_process_record_is_exact_and_peaks_accumulate_over_blocks():
    mem = PeakMemory()
    target = high_water_rss() + 200 * MB
    with mem.measure("b"):
        block = bytearray(target - current_rss())  # sets a new record, freed before the block ends
        for i in range(0, len(block), 4096):
            block[i] = 1
        del block
    first = mem.record("b")["peak_rss_bytes"]
    assert first >= target - 8 * MB
    with mem.measure("b"):
        pass
    assert mem.record("b")["peak_rss_bytes"] == first  # the highest of the name's blocks


def test_shards_merge_to_the_highest_peak():
    a = {"method": METHOD_PROC, "peak_rss_bytes": 5, "peak_rss_increase_bytes": 3}
    b = {"method": METHOD_PROC, "peak_rss_bytes": 4, "peak_rss_increase_bytes": 7, "cuda_peak_allocated_bytes": 2}
    assert merge([a, None, b]) == {"method": METHOD_PROC, "peak_rss_bytes": 5, "peak_rss_increase_bytes": 7,
                                   "cuda_peak_allocated_bytes": 2}
    assert merge([None, None]) is None


def test_cuda_peak_of_torch_allocations():
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device: the CUDA peak is measured on GPU machines only")
    mem = PeakMemory()
    with mem.measure("gpu", "cuda:0"):
        x = torch.empty(64 * MB, dtype=torch.uint8, device="cuda:0")
        del x
    assert mem.record("gpu")["cuda_peak_allocated_bytes"] >= 64 * MB
    with mem.measure("cpu", "cpu"):
        pass
    assert "cuda_peak_allocated_bytes" not in mem.record("cpu")


def test_measuring_imports_no_torch():
    import subprocess

    code = ("import sys\nfrom awml_harness.memory import PeakMemory\nm = PeakMemory()\n"
            "with m.measure('x', 'cuda:0'):\n    pass\nprint('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env={"PYTHONPATH": str(__import__("pathlib").Path(__file__).parents[2])})
    assert out.stdout.strip() == "False", out.stderr


@linux_only
def test_a_forked_child_reads_its_own_rss():
    import os

    current_rss()  # the parent's descriptor is open now
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: grows by 200 MB, which only its own statm shows
        try:
            before = current_rss()
            ballast = bytearray(200 * MB)
            for i in range(0, len(ballast), 4096):
                ballast[i] = 1
            os.write(write, str(current_rss() - before).encode())
        finally:
            os._exit(0)
    os.waitpid(pid, 0)
    assert int(os.read(read, 64)) > 150 * MB
