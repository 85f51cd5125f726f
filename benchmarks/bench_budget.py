"""What bounds the TX rows: the C floor under a real peer, and what Python may add to it.

One testpmd server in ``rxonly`` mode, memif-ct as its client in this process, 256 x 64-byte
frames a burst. Measured in one run, each for ``--seconds``, median of ``--repeat`` rounds:

* ``pmd``: testpmd txonly -> testpmd rxonly, the suite's baseline;
* ``C + d us``: the bare ``memif_ct_tx_burst`` through ctypes with nothing else in the loop but
  a busy wait of ``d`` microseconds before each call. ``C us/call`` is the time spent in the call
  for a full burst: the cost of the C TX path with the peer reading on the other core (lines
  written here must be fetched back from its cache), which no Python layer can lower;
* ``buffer C``: the buffer path's three C calls (``memif_ct_tx_alloc``, ``memif_ct_pool_write``,
  ``memif_ct_tx_buffers``) bare through ctypes, arguments made once: its floor, with no Python
  bookkeeping around the calls;
* ``packed`` and ``buffer``: ``tx_burst_packed``, and ``alloc_buffers`` + ``TxBuffers.write`` +
  ``tx_buffers``, as the suite's rows run them.

A burst's time is then about the C time plus the delay (or the Python around the call), so the
delay at which ``C + d us`` falls to the baseline is the budget Python has per burst to keep up.
Run on demand: ``python -m benchmarks.bench_budget [--seconds 1] [--repeat 3]``.
"""

from __future__ import annotations

import argparse
import array
import ctypes
import statistics
import sys
import time
from collections.abc import Callable

import memif_ct
from memif_ct import _native, frames

from .lab import Bench
from .rows import BURST, Settings, pmd_to_pmd

SIZE = 64
DELAYS_US = (0, 2, 4, 8)


def _spin(seconds: float) -> None:
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        pass


def _rate(step: Callable[[], tuple[int, float]], seconds: float) -> tuple[float, float]:
    """Mpps of ``step`` (which returns packets sent and seconds spent in the call) over
    ``seconds``, and the mean time in the call of the full bursts, in microseconds."""
    sent = full = 0
    in_call = 0.0
    t0 = time.monotonic()
    while time.monotonic() - t0 < seconds:
        n, spent = step()
        sent += n
        if n == BURST:
            full += 1
            in_call += spent
    return sent / (time.monotonic() - t0) / 1e6, in_call / max(full, 1) * 1e6


def measure(intf: memif_ct.Interface, seconds: float) -> dict[str, tuple[float, float]]:
    data, lengths = frames.build_frames_batch(BURST, SIZE, 0)
    lens = array.array("I", lengths)
    pinned = _native.Pinned(data)
    q = ctypes.c_void_p(intf.tx_queue(0).c_address)
    at, size, lens_at = ctypes.c_void_p(pinned.address), ctypes.c_size_t(pinned.size), ctypes.c_void_p(
        lens.buffer_info()[0])
    clock = time.perf_counter
    out: dict[str, tuple[float, float]] = {}

    def bare(delay_s: float) -> Callable[[], tuple[int, float]]:
        def step() -> tuple[int, float]:
            _spin(delay_s)
            t = clock()
            n = _native.tx_burst_raw(q, at, size, lens_at, BURST)
            return n, clock() - t
        return step

    queue = intf.tx_queue(0)
    pool = queue._pool  # the queue's own pool: what its buffer path takes from
    keys = array.array("I", [0]) * BURST
    keys_at = ctypes.c_void_p(keys.buffer_info()[0])

    def buffer_bare() -> tuple[int, float]:
        assert pool is not None
        t = clock()
        k = _native.tx_alloc_raw(q, keys_at, BURST)
        n = 0
        if k > 0:  # (the first k lengths and bytes of the burst: pool_write takes data to spare)
            _native.check(_native.pool_write_raw(pool.arg, keys_at, k, at, size, lens_at, SIZE), "pool_write")
            n = _native.tx_buffers_raw(q, keys_at, lens_at, k)
        if k > 0 and n < k:
            keys_left = array.array("I", keys[max(n, 0):k])
            _native.check(_native.pool_free_raw(pool.arg, ctypes.c_void_p(keys_left.buffer_info()[0]),
                                                len(keys_left)), "pool_free")
        return max(n, 0), clock() - t

    def packed() -> tuple[int, float]:
        t = clock()
        n = intf.tx_burst_packed(data, lens)
        return n, clock() - t

    def buffer() -> tuple[int, float]:
        t = clock()
        bufs = intf.alloc_buffers(BURST, size=SIZE)
        k = len(bufs)
        if k:
            bufs.write(data, lens if k == BURST else lens[:k])
        n = intf.tx_buffers(bufs) if k else 0
        if n < k:
            intf.free_buffers(bufs[n:])
        return n, clock() - t

    try:
        for d in DELAYS_US:
            out[f"C + {d} us"] = _rate(bare(d * 1e-6), seconds)
        out["buffer C"] = _rate(buffer_bare, seconds)
        out["packed"] = _rate(packed, seconds)
        out["buffer"] = _rate(buffer, seconds)
    finally:
        pinned.release()
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=float, default=1.0)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args(argv)
    rounds: list[dict[str, tuple[float, float]]] = []
    base: list[float] = []
    with Bench("memif-ct-budget") as bench:
        for _ in range(args.repeat):
            base.append(pmd_to_pmd(SIZE)(bench, Settings(args.seconds, {})).mpps)
            server = bench.configure("rxonly", SIZE)
            with bench.memif_client() as intf:
                server.start_forwarding()
                rounds.append(measure(intf, args.seconds))
            bench.quiesce()
    pmd = statistics.median(base)
    print(f"memif-ct {memif_ct.__version__}: {BURST} x {SIZE} B bursts into testpmd rxonly, median of "
          f"{args.repeat} round(s) of {args.seconds:g} s; baseline testpmd txonly -> rxonly {pmd:.2f} Mpps")
    print(f"  {'path':<10} {'Mpps':>7} {'ratio':>6} {'us/call (full burst)':>22}")
    for key in rounds[0]:
        mpps = statistics.median(r[key][0] for r in rounds)
        us = statistics.median(r[key][1] for r in rounds)
        print(f"  {key:<10} {mpps:7.2f} {mpps / pmd:5.2f}x {us:22.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
