"""Fuzzing the C burst path (csrc/burst.c) against a hostile peer, two ways (issue 8, item 11).

* ``test_libfuzzer_finds_nothing``: builds tests/fuzz/fuzz_burst.c with clang (``meson setup
  -Dfuzz=true``: libFuzzer, ASan, UBSan, the library compiled in with coverage) and runs it for
  ``MEMIF_CT_FUZZ_SECONDS`` (default 20) with a fixed seed. Any crash or broken invariant fails
  the test, naming the reproducer and the command that replays it. clang and its compiler
  runtime are required: missing, the test fails with install instructions (.ci/run installs
  them). ``MEMIF_CT_FUZZ_CORPUS=DIR`` keeps the corpus between runs (README, "Fuzzing"). The same
  target fuzzes the zero-copy path (tests/fuzz/fuzz_zc.h: pools, tx_buffers, reclaim, rx_peek and
  rx_release in both roles, tx_reserve/commit/unreserve, drop_pool) for inputs whose first byte
  is >= 0xC0; tests/fuzz/seeds/ (read only) starts it on each of those paths.
* ``test_hostile_peer_against_installed_library``: hypothesis drives the installed library
  through ``memif_ct._native``. One end of each ring is ours (client or server); the other is
  a Python peer that shares no code with the library and writes what it likes: descriptors
  (flags, region, length, offset), its own index, ring flags. Regions: the rings' region, a
  second buffer region (libmemif's layout), one unmapped (base NULL), a tiny and an empty one.
  Deterministic (``derandomize``); ``MEMIF_CT_FUZZ_EXAMPLES`` sets how many sessions.

Both check the same invariants; fuzz_burst.c lists them. The C target also lets the peer
scribble on our own index and binds queues to rings at peer-chosen addresses.
"""

from __future__ import annotations

import ctypes
import os
import re
import shutil
import struct
import subprocess
from dataclasses import dataclass, field, replace
from pathlib import Path

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from memif_ct import _native
from memif_ct import constants as C

ROOT = Path(__file__).resolve().parents[1]
FUZZ_SECONDS = int(os.environ.get("MEMIF_CT_FUZZ_SECONDS", "20"))
FUZZ_EXAMPLES = int(os.environ.get("MEMIF_CT_FUZZ_EXAMPLES", "600"))
FUZZ_SEED = int(os.environ.get("MEMIF_CT_FUZZ_SEED", "1"))
CLANG_HINT = (
    "install clang and its compiler runtime (Debian/Ubuntu: `apt-get install -y clang libclang-rt-dev`; "
    ".ci/run does), and meson and ninja (`pip install meson ninja`)"
)


# ---- libFuzzer ----------------------------------------------------------------------------------


def _run(cmd: list[str], *, env: dict[str, str] | None = None, cwd: Path | None = None,
         timeout: float = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, env={**os.environ, **(env or {})}, cwd=cwd, capture_output=True, text=True,
                          timeout=timeout, check=False)


@pytest.fixture(scope="module")
def fuzz_burst(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """tests/fuzz/fuzz_burst built by meson with -Dfuzz=true and CC=clang."""
    missing = [tool for tool in ("clang", "meson", "ninja") if shutil.which(tool) is None]
    if missing:
        pytest.fail(f"the libFuzzer target needs {', '.join(missing)}, not found on PATH: {CLANG_HINT}")
    build = tmp_path_factory.mktemp("fuzz") / "build-fuzz"
    env = {"CC": "clang"}
    for cmd in (
        ["meson", "setup", str(build), str(ROOT), "-Dfuzz=true", "-Dtests=false", "-Dexamples=false"],
        ["meson", "compile", "-C", str(build), "fuzz_burst"],
    ):
        proc = _run(cmd, env=env)
        if proc.returncode != 0:
            pytest.fail(f"{' '.join(cmd)} failed (exit {proc.returncode}); {CLANG_HINT}\n"
                        f"{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}")
    return build / "fuzz_burst"


@pytest.mark.timeout(FUZZ_SECONDS + 600)
def test_libfuzzer_finds_nothing(fuzz_burst: Path, tmp_path: Path) -> None:
    corpus = Path(os.environ.get("MEMIF_CT_FUZZ_CORPUS") or tmp_path / "corpus")
    artifacts = tmp_path / "artifacts"
    corpus.mkdir(parents=True, exist_ok=True)
    artifacts.mkdir()
    cmd = [
        str(fuzz_burst), f"-max_total_time={FUZZ_SECONDS}", f"-seed={FUZZ_SEED}", "-timeout=10",
        "-rss_limit_mb=4096", "-print_final_stats=1", f"-artifact_prefix={artifacts}/", str(corpus),
        str(ROOT / "tests" / "fuzz" / "seeds"),
    ]
    proc = _run(cmd, cwd=tmp_path, timeout=FUZZ_SECONDS + 300)
    found = sorted(artifacts.iterdir())
    log = proc.stderr
    assert proc.returncode == 0 and not found, (
        f"fuzz_burst found a defect (exit {proc.returncode}). Reproducer(s): {', '.join(map(str, found)) or 'none'}\n"
        f"replay: {fuzz_burst} {found[0] if found else '<reproducer>'}\n"
        f"run: {' '.join(cmd)}\n--- last lines of its output ---\n{log[-6000:]}"
    )
    done = re.search(r"^Done (\d+) runs in (\d+) second", log, re.MULTILINE)
    final = re.findall(r"\bcov: (\d+) ft: (\d+) corp: (\d+)", log)
    assert done and final, f"no libFuzzer summary in its output:\n{log[-3000:]}"
    runs = int(done.group(1))
    assert runs > 1000, f"fuzz_burst ran only {runs} inputs in {FUZZ_SECONDS} s:\n{log[-3000:]}"
    cov, features, inputs = final[-1]
    print(f"fuzz_burst: {runs} runs in {done.group(2)} s, cov {cov}, ft {features}, corpus {inputs} inputs, "
          f"seed {FUZZ_SEED}, no defect")


# ---- hypothesis: a Python peer against the installed library -------------------------------------

CL = _native.cacheline_size()
DESC = struct.Struct("<HHIII")  # flags, region, length, offset, metadata (memif-protocol.md section 5)
U16 = struct.Struct("<H")
S2M, M2S = C.RING_TYPE_S2M, C.RING_TYPE_M2S
NEXT = C.DESC_FLAG_NEXT
MAIN, EXTRA, UNMAPPED, TINY, EMPTY = range(5)
NUM_REGIONS = 5
HEAD_AT, TAIL_AT, DESC_AT = 6, CL, 2 * CL


@dataclass(frozen=True)
class Desc:
    flags: int
    region: int
    length: int
    offset: int
    metadata: int = 0


@dataclass
class World:
    """Shared memory, the region table, and the two queues of our side."""

    role: int
    ring_size: int
    bsize: int
    buf_region: int
    sizes: dict[int, int]
    mem: dict[int, bytearray]
    ring_off: dict[int, int]
    buf_off: dict[int, int]
    table: _native.RegionTable
    queues: dict[int, _native.CQueue] = field(default_factory=dict)  # by ring type
    anchors: dict[int, ctypes.Array[ctypes.c_char]] = field(default_factory=dict)  # keep the memory still
    seq: int = 0

    # -- reading shared memory (now, or as it was in a snapshot) --

    def index(self, ring_type: int, at: int, mem: dict[int, bytes | bytearray] | None = None) -> int:
        return int(U16.unpack_from((mem or self.mem)[MAIN], self.ring_off[ring_type] + at)[0])

    def desc_at(self, ring_type: int, slot: int) -> int:
        return self.ring_off[ring_type] + DESC_AT + DESC.size * (slot & (self.ring_size - 1))

    def desc(self, ring_type: int, slot: int, mem: dict[int, bytes | bytearray] | None = None) -> Desc:
        return Desc(*DESC.unpack_from((mem or self.mem)[MAIN], self.desc_at(ring_type, slot)))

    def valid(self, d: Desc) -> bool:
        """The protocol's rule, written apart from the library's: a mapped region, inside it, not empty."""
        return d.region < NUM_REGIONS and d.region != UNMAPPED and 0 < d.length and \
            d.offset + d.length <= self.sizes[d.region]

    def peer_at(self) -> int:
        """Where the peer keeps its index: a client peer writes head, a server peer tail."""
        return HEAD_AT if self.role == C.ROLE_SERVER else TAIL_AT

    def snapshot(self) -> dict[int, bytes]:
        return {r: bytes(m) for r, m in self.mem.items()}

    def stats(self, ring_type: int) -> dict[str, int]:
        return self.queues[ring_type].stats()


def make_world(role: int, log2: int, bsize: int, libmemif_layout: bool, unmapped_size: int, tiny_size: int) -> World:
    layout = _native.Layout.compute(1, 1, log2, bsize)
    ring_size = 1 << log2
    sizes = {MAIN: layout.total_size, EXTRA: 2 * ring_size * bsize, UNMAPPED: unmapped_size, TINY: tiny_size,
             EMPTY: 0}
    mem = {r: bytearray((0xA5 ^ (r << 5) ^ i ^ (i >> 7)) & 0xFF for i in range(max(size, 1)))
           for r, size in sizes.items() if r != UNMAPPED}
    table = _native.RegionTable(NUM_REGIONS)
    anchors = {r: (ctypes.c_char * len(buf)).from_buffer(buf) for r, buf in mem.items()}
    for r, anchor in anchors.items():
        table.set(r, ctypes.addressof(anchor), sizes[r])
    table.set(UNMAPPED, 0, unmapped_size)  # claims bytes, maps none
    buf_region = EXTRA if libmemif_layout else MAIN
    ring_off = {t: layout.ring_offset(t, 0) for t in (S2M, M2S)}
    buf_off = {t: t * ring_size * bsize if libmemif_layout else layout.buffer_offset(t, 0) for t in (S2M, M2S)}
    w = World(role, ring_size, bsize, buf_region, sizes, mem, ring_off, buf_off, table, anchors=anchors)
    base = ctypes.addressof(anchors[MAIN])
    for t in (S2M, M2S):
        _native.ring_init(base + ring_off[t], log2, buf_region, buf_off[t], bsize)
        w.queues[t] = _native.CQueue(base + ring_off[t], log2, role=role, ring_type=t, regions=table,
                                     buffer_region=buf_region, buffer_offset=buf_off[t], buffer_size=bsize)
    if role == C.ROLE_CLIENT:
        assert w.queues[M2S].refill() == ring_size  # the client posts every buffer at connect
    return w


def check_only_allowed_changed(w: World, before: dict[int, bytes], allowed: dict[int, bytearray]) -> None:
    for r, now in w.mem.items():
        was = before[r]
        if now == was:
            continue
        for start in range(0, len(now), 64):
            if now[start : start + 64] == was[start : start + 64]:
                continue
            for i in range(start, min(start + 64, len(now))):
                assert now[i] == was[i] or allowed[r][i], f"region {r} byte {i} changed; this call may not write it"


def allow(allowed: dict[int, bytearray], region: int, offset: int, length: int) -> None:
    if region in allowed:
        end = min(offset + length, len(allowed[region]))
        allowed[region][offset:end] = b"\x01" * max(0, end - offset)


def check_counters(was: dict[str, int], now: dict[str, int], packets: int, nbytes: int) -> None:
    assert all(now[k] >= was[k] for k in was), f"a counter shrank: {was} -> {now}"
    assert now["packets"] - was["packets"] == packets and now["bytes"] - was["bytes"] == nbytes, (was, now, packets)


def anomalies(s: dict[str, int]) -> int:
    return s["bad_desc"] + s["bad_ring"] + s["drops"]


# -- our side: TX --


def our_tx(w: World, lengths: list[int], zero_last: bool, short_data: bool) -> None:
    t = S2M if w.role == C.ROLE_CLIENT else M2S
    q = w.queues[t]
    if zero_last and lengths:
        lengths = [*lengths[:-1], 0]
    w.seq += 1
    data = bytes((w.seq * 167 + i * 29 + (i >> 8)) & 0xFF for i in range(max(0, sum(lengths) - short_data)))
    bad_args = 0 in lengths or len(data) < sum(lengths)
    too_long = w.role == C.ROLE_CLIENT and any(-(-n // w.bsize) > w.ring_size for n in lengths)
    arr = (ctypes.c_uint32 * max(1, len(lengths)))(*lengths)
    before, was = w.snapshot(), w.stats(t)
    rc = _native.tx_burst_raw(q.arg, data, ctypes.c_size_t(len(data)), arr, len(lengths))
    allowed = {r: bytearray(len(m)) for r, m in w.mem.items()}
    if bad_args or too_long:  # a wrong call is reported before a packet too big, and changes nothing
        assert rc == (_native.ERR_ARG if bad_args else _native.ERR_TOO_BIG), rc
    elif w.role == C.ROLE_CLIENT:
        check_client_tx(w, before, lengths, data, _native.check(rc, "memif_ct_tx_burst"), allowed)
    else:
        check_server_tx(w, before, lengths, data, rc, allowed)
    check_only_allowed_changed(w, before, allowed)
    check_counters(was, w.stats(t), max(rc, 0), sum(lengths[: max(rc, 0)]))
    event(f"tx: {'error ' + _native.strerror(rc) if rc < 0 else 'sent some' if rc else 'sent none'}")


def check_client_tx(w: World, before: dict[int, bytes], lengths: list[int], data: bytes, rc: int,
                    allowed: dict[int, bytearray]) -> None:
    head0, tail = w.index(S2M, HEAD_AT, before), w.index(S2M, TAIL_AT, before)
    used = (head0 - tail) & 0xFFFF
    if used > w.ring_size:  # the server's tail is impossible: nothing may be sent
        assert rc == 0
        return
    free, expect, slots = w.ring_size - used, 0, 0
    for n in lengths:  # "a packet that does not fit in the free slots is not started"
        if slots + -(-n // w.bsize) > free:
            break
        slots += -(-n // w.bsize)
        expect += 1
    assert rc == expect, (rc, expect, lengths, free)
    allow(allowed, MAIN, w.ring_off[S2M] + HEAD_AT, 2)
    if slots:
        assert w.index(S2M, HEAD_AT) == (head0 + slots) & 0xFFFF
    slot, pos = head0, 0
    for n in lengths[:rc]:
        left = n
        while left:
            d = w.desc(S2M, slot)
            chunk = min(left, w.bsize)
            left -= chunk
            assert d.region == w.buf_region and d.length == chunk and d.flags == (NEXT if left else 0), d
            assert d.offset == w.buf_off[S2M] + (slot & (w.ring_size - 1)) * w.bsize, d
            assert w.mem[d.region][d.offset : d.offset + chunk] == data[pos : pos + chunk]
            allow(allowed, MAIN, w.desc_at(S2M, slot), 12)
            allow(allowed, d.region, d.offset, chunk)
            pos += chunk
            slot += 1


def check_server_tx(w: World, before: dict[int, bytes], lengths: list[int], data: bytes, rc: int,
                    allowed: dict[int, bytearray]) -> None:
    tail0, head = w.index(M2S, TAIL_AT, before), w.index(M2S, HEAD_AT, before)
    avail = (head - tail0) & 0xFFFF
    if avail > w.ring_size:  # the client's head is impossible
        assert rc == 0
        return
    posted = [w.desc(M2S, tail0 + i, before) for i in range(avail)]
    never = bool(lengths) and avail == w.ring_size and all(map(w.valid, posted)) and \
        sum(d.length for d in posted) < lengths[0]
    assert (rc == _native.ERR_TOO_BIG) == never, (rc, never)  # a packet no posted ring can take is said so
    if never:
        return
    assert 0 <= rc <= len(lengths), rc
    published = (w.index(M2S, TAIL_AT) - tail0) & 0xFFFF
    assert published <= avail, (published, avail)
    allow(allowed, MAIN, w.ring_off[M2S] + TAIL_AT, 2)
    # A posted buffer over this ring's descriptors lets our writes rewrite descriptors the fill
    # re-reads, so data may land in any valid buffer; buffers over each other only make the
    # read-back ambiguous.
    ring_end = w.ring_off[M2S] + DESC_AT + DESC.size * w.ring_size
    valid = [d for d in posted[:published] if w.valid(d)]
    if any(d.region == MAIN and d.offset < ring_end and w.ring_off[M2S] < d.offset + d.length for d in valid):
        for r, mask in allowed.items():
            allow(allowed, r, 0, len(mask))
        return
    overlap = False
    for i, a in enumerate(valid):
        allow(allowed, a.region, a.offset, a.length)
        overlap |= any(a.region == b.region and a.offset < b.offset + b.length and b.offset < a.offset + a.length
                       for b in valid[:i])
    for i in range(published):
        allow(allowed, MAIN, w.desc_at(M2S, tail0 + i), 8)  # flags and length; region, offset stay
    packets, pos, chain, in_chain = 0, 0, b"", False
    for i in range(published):
        was, d = posted[i], w.desc(M2S, tail0 + i)
        assert (d.region, d.offset, d.metadata) == (was.region, was.offset, was.metadata), (was, d)
        if d.length == 0:  # handed back unused: never inside a chain
            assert d.flags == 0 and not in_chain, d
            continue
        assert w.valid(was) and d.length <= was.length and d.flags in (0, NEXT), (was, d)
        chain += bytes(w.mem[d.region][d.offset : d.offset + d.length])
        in_chain = bool(d.flags & NEXT)
        if not in_chain:
            assert packets < rc and len(chain) == lengths[packets], (packets, rc, len(chain))
            assert overlap or chain == data[pos : pos + lengths[packets]], f"packet {packets} reads back wrong"
            pos += lengths[packets]
            packets, chain = packets + 1, b""
    assert not in_chain and packets == rc, (packets, rc)  # no partial chain is ever published


# -- our side: RX --


def our_rx(w: World, max_pkts: int, out_size: int, keep: bool) -> None:
    t = S2M if w.role == C.ROLE_SERVER else M2S
    q = w.queues[t]
    out = ctypes.create_string_buffer(max(1, out_size))
    lengths = (ctypes.c_uint32 * max(1, max_pkts))()
    flags = _native.RX_KEEP_TOO_BIG if keep else 0
    before, was = w.snapshot(), w.stats(t)
    rc = _native.rx_burst_ex_raw(q.arg, out, ctypes.c_size_t(out_size), lengths, max_pkts, flags)
    kept = rc == _native.ERR_TOO_BIG
    n = 0 if kept else _native.check(rc, "memif_ct_rx_burst_ex")
    assert n <= max_pkts and (not kept or (keep and max_pkts and lengths[0] > out_size)), (rc, max_pkts)
    got = list(lengths[:n])
    assert all(got) and sum(got) <= out_size, got
    now = w.stats(t)
    check_counters(was, now, n, sum(got))
    event(f"rx: {'kept a packet too big' if kept else 'received some' if n else 'received none'}")
    allowed = {r: bytearray(len(m)) for r, m in w.mem.items()}
    if t == S2M:  # server: releases by storing tail
        old, new = w.index(S2M, TAIL_AT, before), w.index(S2M, TAIL_AT)
        peer, limit = w.index(S2M, HEAD_AT, before), w.ring_size
        allow(allowed, MAIN, w.ring_off[S2M] + TAIL_AT, 2)
        for i in range((new - old) & 0xFFFF):  # released slots carry the consumed mark: length 0
            s = (old + i) & (w.ring_size - 1)
            if w.desc(S2M, s) != w.desc(S2M, s, before):
                assert w.desc(S2M, s).length == 0, w.desc(S2M, s)
                allow(allowed, MAIN, w.desc_at(S2M, s) + 4, 4)
    else:  # client: keeps every buffer posted, so its last tail is head - ring_size
        old = (w.index(M2S, HEAD_AT, before) - w.ring_size) & 0xFFFF
        new = (w.index(M2S, HEAD_AT) - w.ring_size) & 0xFFFF
        peer, limit = w.index(M2S, TAIL_AT, before), w.ring_size
        allow(allowed, MAIN, w.ring_off[M2S] + HEAD_AT, 2)
        for s in range(w.ring_size):
            d = w.desc(M2S, s)
            if d != w.desc(M2S, s, before):  # re-posted: the client's own buffer, whole
                assert d == Desc(0, w.buf_region, w.bsize, w.buf_off[M2S] + s * w.bsize), d
                allow(allowed, MAIN, w.desc_at(M2S, s), DESC.size)
    check_only_allowed_changed(w, before, allowed)
    avail = (peer - old) & 0xFFFF
    if avail > limit:  # impossible peer index: nothing delivered, and it is counted
        assert n == 0 and not kept and now["bad_ring"] > was["bad_ring"]
        return
    consumed = (new - old) & 0xFFFF
    assert consumed <= avail, (consumed, avail)

    def valid_at(index: int, d: Desc) -> bool:
        """A server may point a segment anywhere valid; a client takes back only the buffer it
        posted in that slot, holding no more than it posted."""
        if t == S2M:
            return w.valid(d)
        slot = index & (w.ring_size - 1)
        return w.valid(d) and d.region == w.buf_region and d.length <= w.bsize and \
            d.offset == w.buf_off[M2S] + slot * w.bsize

    def chain(start: int, limit: int) -> tuple[int, bool, bool, list[Desc]]:
        """The chain at slot old + start as it was: (end, complete, valid, descriptors)."""
        descs: list[Desc] = []
        ok = True
        end = start
        while end < limit:
            descs.append(w.desc(t, old + end, before))
            ok = ok and valid_at(old + end, descs[-1])
            end += 1
            if not descs[-1].flags & NEXT:
                return end, True, ok, descs
        return end, False, ok, descs

    delivered, pos, chains, i = 0, 0, 0, 0
    while i < consumed:  # the released slots, chain by chain: delivered ones in order, exact bytes
        i, complete, valid, descs = chain(i, consumed)
        chains += 1
        if valid and complete and delivered < n:
            payload = b"".join(before[d.region][d.offset : d.offset + d.length] for d in descs)
            if payload == out.raw[pos : pos + got[delivered]]:
                pos += len(payload)
                delivered += 1
    assert delivered == n, f"{n - delivered} packet(s) delivered that are no whole valid chain released now"
    assert chains - n <= anomalies(now) - anomalies(was), "a chain was dropped and no counter shows it"
    if kept:
        _, complete, valid, descs = chain(consumed, avail)
        assert n == 0 and complete and valid and sum(d.length for d in descs) == lengths[0] > out_size
    if max_pkts and avail:
        _, complete, valid, descs = chain(0, avail)
        total = sum(d.length for d in descs)
        assert not (complete and valid and total <= out_size) or n >= 1, "a whole valid packet that fits stalled"
        assert not (keep and complete and valid and total > out_size) or (kept and consumed == 0)


# -- the peer --


def peer_write(w: World, ring_type: int, descs: list[tuple[int, tuple[int, int, tuple[str, int], tuple[str, int]]]],
               move: tuple[str, int]) -> None:
    """Write descriptors at the peer's index (+k), then move its index."""
    index = w.index(ring_type, w.peer_at())
    for k, (flags, region, (omode, oval), (lmode, lval)) in descs:
        size = w.sizes.get(region, 0)
        offset = {"abs": oval, "end": size + oval, "slot": w.buf_off[ring_type] + (oval % w.ring_size) * w.bsize}[omode]
        length = {"abs": lval, "fit": size - offset + lval, "small": lval}[lmode]
        desc = Desc(flags, region, length & 0xFFFFFFFF, offset & 0xFFFFFFFF)
        DESC.pack_into(w.mem[MAIN], w.desc_at(ring_type, index + k), desc.flags, desc.region, desc.length,
                       desc.offset, 0)
    mode, value = move
    if mode == "ring":  # at the edge of the possible, give or take one: head a ring ahead of tail;
        # tail level with head on M2S, a ring behind it on S2M
        other = w.index(ring_type, TAIL_AT if w.peer_at() == HEAD_AT else HEAD_AT)
        if w.peer_at() == HEAD_AT:
            value += other + w.ring_size
        else:
            value += other - (w.ring_size if ring_type == S2M else 0)
    elif mode == "add":
        value += index
    U16.pack_into(w.mem[MAIN], w.ring_off[ring_type] + w.peer_at(), value & 0xFFFF)


def peer_honest(w: World, ring_type: int, lengths: list[int], nexts: list[bool]) -> None:
    """What a well-behaved peer does: publish whole chains (or post buffers) in the ring's own
    slots, as many as the ring has room for; or, as a server on S2M, release what it read."""
    index = w.index(ring_type, w.peer_at())
    other = w.index(ring_type, TAIL_AT if w.peer_at() == HEAD_AT else HEAD_AT)
    # A client fills what the server has not released; a server publishes what the client posted.
    room = w.ring_size - ((index - other) & 0xFFFF) if w.peer_at() == HEAD_AT else (other - index) & 0xFFFF
    lengths = lengths[: max(0, min(room, w.ring_size))]
    nexts = [*nexts[: len(lengths) - 1], False][: len(lengths)]  # never a partial chain
    if not (w.role == C.ROLE_CLIENT and ring_type == S2M):
        for k, (length, more) in enumerate(zip(lengths, nexts, strict=True)):
            slot = (index + k) & (w.ring_size - 1)
            DESC.pack_into(w.mem[MAIN], w.desc_at(ring_type, slot), NEXT if more else 0, w.buf_region,
                           min(length, w.bsize), w.buf_off[ring_type] + slot * w.bsize, 0)
    U16.pack_into(w.mem[MAIN], w.ring_off[ring_type] + w.peer_at(), (index + len(lengths)) & 0xFFFF)


def peer_tamper(w: World, ring_type: int, lengths: list[int], nexts: list[bool], victim: int,
                tamper: tuple[str, int]) -> None:
    """An honest publication with one thing wrong in one descriptor: where validation has to hold."""
    index = w.index(ring_type, w.peer_at())
    peer_honest(w, ring_type, lengths, nexts)
    published = (w.index(ring_type, w.peer_at()) - index) & 0xFFFF
    if not published or (w.role == C.ROLE_CLIENT and ring_type == S2M):
        return
    slot = index + victim % published
    d = w.desc(ring_type, slot)
    what, value = tamper
    size = w.sizes[d.region]
    d = {
        "length": replace(d, length=value),
        "region": replace(d, region=value),
        "end": replace(d, length=(size - d.offset + value) & 0xFFFFFFFF),  # reaches the region's end, +-1
        "offset": replace(d, offset=(size - d.length + value) & 0xFFFFFFFF),  # moved to the region's end, +-1
        "flags": replace(d, flags=d.flags ^ NEXT),
    }[what]
    DESC.pack_into(w.mem[MAIN], w.desc_at(ring_type, slot), d.flags, d.region, d.length, d.offset, d.metadata)


def peer_flags(w: World, ring_type: int, value: int) -> None:
    U16.pack_into(w.mem[MAIN], w.ring_off[ring_type] + 4, value)
    tx_type = S2M if w.role == C.ROLE_CLIENT else M2S
    assert w.queues[tx_type].needs_signal() == (not w.index(tx_type, 4) & C.RING_FLAG_MASK_INT)


# -- strategies --

u32 = st.integers(0, 0xFFFFFFFF)
HOSTILE_DESC = st.tuples(
    st.sampled_from([0, 0, NEXT, NEXT | 0x8000]) | st.integers(0, 0xFFFF),
    st.sampled_from([MAIN, EXTRA, EXTRA, UNMAPPED, TINY, EMPTY, 5, 6]) | st.integers(0, 0xFFFF),
    st.tuples(st.just("slot"), st.integers(0, 15)) | st.tuples(st.just("end"), st.integers(-300, 2))
    | st.tuples(st.just("abs"), u32),
    st.tuples(st.just("small"), st.integers(0, 300)) | st.tuples(st.just("fit"), st.integers(-2, 2))
    | st.tuples(st.just("abs"), u32) | st.just(("small", 0)),
)
# A short buffer that ends just before, at, or just past the end of its region.
EDGE_DESC = st.tuples(
    st.sampled_from([0, NEXT]),
    st.sampled_from([MAIN, EXTRA, UNMAPPED, TINY, EMPTY]),
    st.tuples(st.just("end"), st.integers(-128, -1)),
    st.tuples(st.just("fit"), st.integers(-1, 1)),
)
# Slots count from the peer's index: below it is what it has published already.
DESCS = st.lists(st.tuples(st.integers(-8, 17), HOSTILE_DESC | EDGE_DESC), max_size=6)
RARELY = st.integers(0, 15).map(lambda n: n == 0)
HONEST = st.tuples(st.sampled_from([S2M, M2S]), st.lists(st.integers(1, 256), max_size=16),
                   st.lists(RARELY | st.booleans(), min_size=16, max_size=16))
TAMPER = st.tuples(st.just("length"), st.sampled_from([0, 0xFFFFFFFF])) \
    | st.tuples(st.just("region"), st.sampled_from([UNMAPPED, EMPTY, TINY, EXTRA, 5, 0xFFFF])) \
    | st.tuples(st.sampled_from(["end", "offset"]), st.integers(-1, 1)) | st.tuples(st.just("flags"), st.just(0))
MOVE = st.tuples(st.just("add"), st.integers(0, 2)) | st.tuples(st.just("add"), st.integers(-3, 18)) \
    | st.tuples(st.just("ring"), st.integers(-1, 1)) | st.tuples(st.just("set"), st.integers(0, 0xFFFF))
PEER = st.one_of(
    HONEST.map(lambda args: (peer_honest, *args)),
    st.tuples(HONEST, st.integers(0, 15), TAMPER).map(lambda args: (peer_tamper, *args[0], *args[1:])),
    st.tuples(st.just(peer_write), st.sampled_from([S2M, M2S]), DESCS, MOVE),
    st.tuples(st.just(peer_flags), st.sampled_from([S2M, M2S]), st.integers(0, 3)),
)
TX = st.tuples(st.lists(st.integers(1, 200) | st.integers(1, 1200), max_size=8), RARELY, RARELY)
RX = st.tuples(st.integers(0, 9), st.integers(0, 200) | st.integers(0, 5000), st.booleans())


@pytest.mark.timeout(900)  # a failure is shrunk to a short session, which can take minutes
@settings(max_examples=FUZZ_EXAMPLES, derandomize=True, deadline=None, database=None, report_multiple_bugs=False,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(
    role=st.sampled_from([C.ROLE_CLIENT, C.ROLE_SERVER]),
    log2=st.integers(1, 4),
    bsize=st.integers(C.MIN_BUFFER_SIZE, 256),
    libmemif_layout=st.booleans(),
    unmapped_size=u32,
    tiny_size=st.integers(1, 64),
    rounds=st.lists(st.tuples(PEER, TX, RX), min_size=1, max_size=16),
)
def test_hostile_peer_against_installed_library(role: int, log2: int, bsize: int, libmemif_layout: bool,
                                                unmapped_size: int, tiny_size: int, rounds: list[tuple]) -> None:
    """Rounds of: the peer acts (well, with one thing wrong, or as it likes), we send, we receive."""
    w = make_world(role, log2, bsize, libmemif_layout, unmapped_size, tiny_size)
    for (peer_op, *peer_args), tx, rx in rounds:
        peer_op(w, *peer_args)
        our_tx(w, *tx)
        our_rx(w, *rx)
        for q in w.queues.values():
            assert q.pending() <= w.ring_size and q.free() <= w.ring_size
