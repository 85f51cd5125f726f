"""What bounds the TX rows: the C floor under a real peer, and what Python may add to it.

One testpmd server in ``rxonly`` mode, memif-ct as its client in this process, 256 x 64-byte
frames a burst. Measured in one run, each for ``--seconds`` a round in ten turns (the paths
take turns, so that the host's spells at another speed fall on all of them alike), median of
``--repeat`` rounds, the baseline measured before each round:

* ``pmd``: testpmd txonly -> testpmd rxonly, the suite's baseline;
* ``C + d us``: the bare ``memif_ct_tx_burst`` through ctypes with nothing else in the loop but
  a busy wait of ``d`` microseconds before each call. ``C us/call`` is the time spent in the call
  for a full burst: the cost of the C TX path with the peer reading on the other core (lines
  written here must be fetched back from its cache), which no Python layer can lower;
* ``buffer C``: the buffer path's three C calls (``memif_ct_tx_alloc``, ``memif_ct_pool_write``,
  ``memif_ct_tx_buffers``) bare through ctypes, arguments made once: its floor, with no Python
  bookkeeping around the calls;
* ``buffer floor``: the least any ctypes implementation of the three-call buffer API does (see
  ``_Floor``): a method call, the queue's lock and one bare C call for each of alloc, write and
  send, and one small object a burst holding the buffers' indexes; no argument check, no pinning;
* ``list floor``: the least ``tx_burst`` of a list of ``bytes`` does: join them, take their
  ``len()`` into an ``array('I')`` (the cheapest way measured), one bare C call; no lock, no check;
* ``packed``, ``buffer`` and ``list``: ``tx_burst_packed``; ``alloc_buffers`` + ``TxBuffers.write``
  + ``tx_buffers``; ``tx_burst`` of 256 ``bytes``: as the suite's rows run them.

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
import threading
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


SLICES = 10  # each path runs in this many turns a round, the paths taking turns


def _rates(steps: dict[str, Callable[[], tuple[int, float]]], seconds: float) -> dict[str, tuple[float, float]]:
    """For each step (which returns packets sent and seconds spent in the call), run for
    ``seconds`` in all: Mpps, and the mean time in the call of the full bursts in microseconds.
    The steps take turns, ``SLICES`` each, so that a spell of the host at another speed (it has
    two, 2-3x apart) falls on all of them alike, not on the ones measured last."""
    sent = dict.fromkeys(steps, 0)
    full = dict.fromkeys(steps, 0)
    in_call = dict.fromkeys(steps, 0.0)
    elapsed = dict.fromkeys(steps, 0.0)
    for _ in range(SLICES):
        for name, step in steps.items():
            t0 = time.monotonic()
            while time.monotonic() - t0 < seconds / SLICES:
                n, spent = step()
                sent[name] += n
                if n == BURST:
                    full[name] += 1
                    in_call[name] += spent
            elapsed[name] += time.monotonic() - t0
    return {name: (sent[name] / elapsed[name] / 1e6, in_call[name] / max(full[name], 1) * 1e6) for name in steps}


class _Handout:
    __slots__ = ("count", "keys", "sizes")

    def __init__(self, keys: array.array[int], count: int) -> None:
        self.keys, self.count, self.sizes = keys, count, keys


class _Floor:
    """The least a ctypes implementation of alloc + write + send does: for each, a method call,
    the queue's lock (a link going down must not unmap what C is using), its arguments set into
    reused ctypes objects and one bare C call; per burst, an object holding the indexes. Data is
    passed pinned already; nothing is checked."""

    __slots__ = ("a1", "a2", "at", "lock", "pool", "q", "size")

    def __init__(self, q: ctypes.c_void_p, pool: _native.Pool, at: ctypes.c_void_p, size: ctypes.c_size_t) -> None:
        self.q, self.pool, self.at, self.size = q, pool, at, size
        self.lock = threading.Lock()
        self.a1, self.a2 = ctypes.c_void_p(), ctypes.c_void_p()

    def alloc(self, count: int) -> _Handout:
        with self.lock:
            keys = array.array("I", [0]) * count
            self.a1.value = keys.buffer_info()[0]
            return _Handout(keys, max(_native.tx_alloc_raw(self.q, self.a1, count), 0))

    def write(self, h: _Handout, lens: array.array[int]) -> None:
        with self.lock:
            self.a1.value = h.keys.buffer_info()[0]
            self.a2.value = lens.buffer_info()[0]
            _native.check(_native.pool_write_raw(self.pool.arg, self.a1, h.count, self.at, self.size, self.a2, SIZE),
                          "pool_write")
            h.sizes = lens

    def send(self, h: _Handout) -> int:
        with self.lock:
            self.a1.value = h.keys.buffer_info()[0]
            self.a2.value = h.sizes.buffer_info()[0]
            return max(_native.tx_buffers_raw(self.q, self.a1, self.a2, h.count), 0)

    def free(self, h: _Handout, n: int) -> None:
        with self.lock:
            left = array.array("I", h.keys[n:h.count])
            self.a1.value = left.buffer_info()[0]
            _native.check(_native.pool_free_raw(self.pool.arg, self.a1, len(left)), "pool_free")


def measure(intf: memif_ct.Interface, seconds: float) -> dict[str, tuple[float, float]]:
    data, lengths = frames.build_frames_batch(BURST, SIZE, 0)
    lens = array.array("I", lengths)
    pinned = _native.Pinned(data)
    q = ctypes.c_void_p(intf.tx_queue(0).c_address)
    at, size, lens_at = ctypes.c_void_p(pinned.address), ctypes.c_size_t(pinned.size), ctypes.c_void_p(
        lens.buffer_info()[0])
    clock = time.perf_counter

    def bare(delay_s: float) -> Callable[[], tuple[int, float]]:
        def step() -> tuple[int, float]:
            _spin(delay_s)
            t = clock()
            n = _native.tx_burst_raw(q, at, size, lens_at, BURST)
            return n, clock() - t
        return step

    queue = intf.tx_queue(0)
    pool = queue._pool  # the queue's own pool: what its buffer path takes from
    assert pool is not None, "a client's TX queue has a pool"
    keys = array.array("I", [0]) * BURST
    keys_at = ctypes.c_void_p(keys.buffer_info()[0])

    def buffer_bare() -> tuple[int, float]:
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

    floor = _Floor(q, pool, at, size)

    def buffer_floor() -> tuple[int, float]:
        t = clock()
        h = floor.alloc(BURST)
        if h.count:
            floor.write(h, lens if h.count == BURST else lens[:h.count])
        n = floor.send(h) if h.count else 0
        if n < h.count:
            floor.free(h, n)
        return n, clock() - t

    packets = [bytes(data[i * SIZE:(i + 1) * SIZE]) for i in range(BURST)]
    list_size, list_lens = ctypes.c_size_t(), ctypes.c_void_p()

    def list_floor() -> tuple[int, float]:
        t = clock()
        joined = b"".join(packets)
        sizes = array.array("I")
        sizes.fromlist(list(map(len, packets)))
        list_size.value = len(joined)
        list_lens.value = sizes.buffer_info()[0]
        n = _native.tx_burst_exact_raw(q, joined, list_size, list_lens, len(sizes))
        return max(n, 0), clock() - t

    def listed() -> tuple[int, float]:
        t = clock()
        n = intf.tx_burst(packets)
        return n, clock() - t

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
        steps = {f"C + {d} us": bare(d * 1e-6) for d in DELAYS_US}
        steps.update({"buffer C": buffer_bare, "buffer floor": buffer_floor, "list floor": list_floor,
                      "packed": packed, "buffer": buffer, "list": listed})
        out = _rates(steps, seconds)
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
    print(f"  {'path':<12} {'Mpps':>7} {'ratio':>6} {'us/call (full burst)':>22}")
    for key in rounds[0]:
        mpps = statistics.median(r[key][0] for r in rounds)
        us = statistics.median(r[key][1] for r in rounds)
        print(f"  {key:<12} {mpps:7.2f} {mpps / pmd:5.2f}x {us:22.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
