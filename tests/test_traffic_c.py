"""csrc/traffic.c against frames.py, the reference: the C stamps the very bytes
``build_frames_batch`` builds, gives ``verify_udp_frame``'s verdict (and seq) on any frame, and
keeps the sequence accounting the pure-Python model below keeps (the verifier the tools had
before the C one). Randomised with hypothesis; the C unit tests are tests/c/test_traffic.c."""

from __future__ import annotations

import array
import ctypes
import random
import struct
import zlib

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from memif_ct import _native, frames
from memif_ct.errors import NativeArgumentError

# verify_udp_frame's reasons, by the start of their text, as C verdicts.
_REASONS = {
    "frame of": _native.FRAME_SHORT,
    "magic damaged": 3,
    "ethertype": 4,
    "IPv4 version": 5,
    "IPv4 header checksum": 6,
    "IPv4 total length": 7,
    "UDP length": 8,
    "UDP checksum": 9,
    "payload crc32": 10,
}


def _python_verdict(frame: bytes) -> tuple[int, int | None]:
    res = frames.verify_udp_frame(frame)
    if res.verdict is frames.Verdict.OK:
        return _native.FRAME_OK, res.seq
    if res.verdict is frames.Verdict.NOT_OURS:
        return _native.FRAME_NOT_OURS, None
    return next(v for prefix, v in _REASONS.items() if res.reason.startswith(prefix)), None


sizes = st.one_of(st.integers(60, 200), st.sampled_from([1500, 2048, 9000, 65535]))
seqs = st.integers(0, (1 << 64) - 1)


@settings(max_examples=150, deadline=None)
@given(size=sizes, first=st.integers(0, (1 << 64) - 41), count=st.integers(0, 40),
       src_mac=st.binary(min_size=6, max_size=6), src_port=st.integers(0, 0xFFFF))
def test_stamped_frames_are_build_frames_batch_byte_for_byte(size: int, first: int, count: int, src_mac: bytes,
                                                             src_port: int) -> None:
    stamper = frames.udp_frame_stamper(size, src_mac=src_mac, src_port=src_port)
    packed, _lengths = frames.build_frames_batch(count, size, first, src_mac=src_mac, src_port=src_port)
    assert stamper.stamp(first, count) == packed


def test_stamping_at_addresses_writes_the_same_frames() -> None:
    stamper = frames.udp_frame_stamper(100)
    bufs = [ctypes.create_string_buffer(100) for _ in range(5)]
    assert stamper.stamp_addresses(7, [ctypes.addressof(b) for b in bufs]) == 5
    assert b"".join(b.raw for b in bufs) == frames.build_frames_batch(5, 100, 7)[0]


def _mutate(frame: bytearray, data: st.DataObject) -> bytes:
    """Damage as a faulty data path, a reflector or a stranger would."""
    kind = data.draw(st.sampled_from(["flip", "bytes", "truncate", "extend", "rewrite", "udpsum", "random"]))
    if kind == "flip":
        for _ in range(data.draw(st.integers(1, 3))):
            i = data.draw(st.integers(0, len(frame) - 1))
            frame[i] ^= 1 << data.draw(st.integers(0, 7))
    elif kind == "bytes":
        i = data.draw(st.integers(0, len(frame) - 1))
        chunk = data.draw(st.binary(min_size=1, max_size=8))
        frame[i:i + len(chunk)] = chunk
    elif kind == "truncate":
        del frame[data.draw(st.integers(0, len(frame))):]
    elif kind == "extend":
        frame += data.draw(st.binary(max_size=20))
    elif kind == "rewrite":  # what a reflector may do: MACs, IPs, ports, TTL, with the IPv4 checksum kept right
        frame[0:12] = data.draw(st.binary(min_size=12, max_size=12))
        frame[22] = data.draw(st.integers(0, 255))
        frame[26:34] = data.draw(st.binary(min_size=8, max_size=8))
        frame[34:38] = data.draw(st.binary(min_size=4, max_size=4))
        frame[24:26] = b"\0\0"
        frame[24:26] = struct.pack(">H", frames.inet_checksum(frame[14:34]))
    elif kind == "udpsum":  # a UDP checksum, right or wrong
        end = 14 + ((frame[16] << 8) | frame[17])
        frame[40:42] = b"\0\0"
        pseudo = bytes(frame[26:34]) + struct.pack(">BBH", 0, 17, end - 34)
        good = frames.inet_checksum(pseudo + bytes(frame[34:end])) or 0xFFFF
        frame[40:42] = struct.pack(">H", good if data.draw(st.booleans()) else data.draw(st.integers(1, 0xFFFF)))
    else:
        return data.draw(st.binary(max_size=120))
    return bytes(frame)


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(size=st.integers(60, 160), seq=seqs, data=st.data())
def test_c_verdicts_equal_verify_udp_frame(size: int, seq: int, data: st.DataObject) -> None:
    frame = _mutate(bytearray(frames.build_udp_frame(size, seq)), data)
    assert _native.frame_verify(frame) == _python_verdict(frame)


def test_every_verdict_is_reached_and_named() -> None:
    base = frames.build_udp_frame(64, 3)
    cases = {_native.FRAME_OK: base, _native.FRAME_NOT_OURS: b"x" * 64, _native.FRAME_SHORT: base[:59],
             10: base[:63] + b"\0"}
    for verdict, frame in cases.items():
        assert _native.frame_verify(frame) == _python_verdict(frame)
        assert _native.frame_verify(frame)[0] == verdict
    names = {_native.frame_verdict_str(v) for v in range(_native.FRAME_VERDICTS)}
    assert len(names) == _native.FRAME_VERDICTS and "unknown verdict" not in names
    assert _native.frame_verdict_str(_native.FRAME_VERDICTS) == "unknown verdict"


@given(st.binary(max_size=300), st.integers(0, 0xFFFFFFFF))
def test_crc32_is_zlibs(data: bytes, start: int) -> None:
    assert _native.crc32(data, start) == zlib.crc32(data, start)


class _Model:
    """The verifier the tools had in Python: the reference for the C bookkeeping."""

    def __init__(self, expected: int | None) -> None:
        self.expected = expected
        self.seen: set[int] = set()
        self.unique = self.corrupted = self.not_ours = self.duplicates = self.out_of_order = 0
        self.high: dict[int, int] = {}

    def check(self, frame: bytes, queue: int) -> None:
        res = frames.verify_udp_frame(frame)
        if res.verdict is frames.Verdict.CORRUPTED:
            self.corrupted += 1
            return
        if res.verdict is frames.Verdict.NOT_OURS or res.seq is None:
            self.not_ours += 1
            return
        seq = res.seq
        if seq in self.seen or (self.expected is not None and not 0 <= seq < self.expected):
            self.duplicates += 1
            return
        self.seen.add(seq)
        self.unique += 1
        if seq < self.high.get(queue, -1):
            self.out_of_order += 1
        else:
            self.high[queue] = seq


def _frame_for(seq: int, damage: int) -> bytes:
    frame = bytearray(frames.build_udp_frame(64, seq))
    if damage == 1:
        frame[63] ^= 0xFF
    elif damage == 2:
        frame[42:48] = b"OTHERS"
    return bytes(frame)


def _check(checker: _native.FrameChecker, queue: int, burst: list[bytes]) -> None:
    data = bytearray(b"".join(burst))
    lengths = array.array("I", map(len, burst))
    with _native.Pinned(data) as pin:
        checker.check_packed(queue, pin.address, pin.size, lengths, len(burst))


events = st.lists(st.tuples(st.integers(0, 3), st.integers(0, 300), st.sampled_from([0, 0, 0, 0, 1, 2])),
                  max_size=200)


@settings(max_examples=150, deadline=None)
@given(events=events, expected=st.one_of(st.none(), st.integers(1, 300)), offset=st.integers(0, 1 << 40),
       burst=st.integers(1, 40))
def test_c_bookkeeping_equals_the_python_model(events: list[tuple[int, int, int]], expected: int | None,
                                               offset: int, burst: int) -> None:
    if expected is not None:
        offset = 0  # pktgen's seqs start at 0
    model, checker = _Model(expected), _native.FrameChecker(4, expected)
    for start in range(0, len(events), burst):
        chunk = events[start:start + burst]
        for queue in range(4):
            frames_q = [_frame_for(offset + seq, damage) for q, seq, damage in chunk if q == queue]
            for frame in frames_q:
                model.check(frame, queue)
            _check(checker, queue, frames_q)
    assert (checker.unique, checker.duplicates, checker.corrupted, checker.not_ours, checker.out_of_order) == (
        model.unique, model.duplicates, model.corrupted, model.not_ours, model.out_of_order)
    assert checker.checked == len(events)
    if model.seen:
        assert (checker.lowest, checker.highest) == (min(model.seen), max(model.seen))


def test_a_sinks_window_grows_both_ways_and_keeps_what_it_saw() -> None:
    checker = _native.FrameChecker(1)
    seqs = [5_000_000, 10, 5_000_000, 40_000_000, 10, 3_000_000]
    _check(checker, 0, [frames.build_udp_frame(64, s) for s in seqs])
    assert (checker.unique, checker.duplicates, checker.out_of_order) == (4, 2, 2)
    assert (checker.lowest, checker.highest) == (10, 40_000_000)


def test_a_seq_too_far_from_the_others_is_not_ours() -> None:
    checker = _native.FrameChecker(1)
    _check(checker, 0, [frames.build_udp_frame(64, s) for s in (1, 1 << 40, 2)])
    assert (checker.unique, checker.not_ours, checker.far, checker.checked) == (2, 1, 1, 3)


def test_macswap_packed_equals_frames_macswap() -> None:
    rng = random.Random(1)
    burst = [rng.randbytes(rng.randint(1, 80)) for _ in range(50)]
    data = bytearray(b"".join(burst))
    lengths = array.array("I", map(len, burst))
    with _native.Pinned(data) as pin:
        assert _native.macswap_packed_raw(_native.pointer_arg(pin.address), _native.size_arg(pin.size),
                                          _native.pointer_arg(lengths.buffer_info()[0]), len(burst)) == 50
    assert bytes(data) == b"".join(frames.macswap(p) if len(p) >= 12 else p for p in burst)


def test_bad_arguments_are_refused_not_followed() -> None:
    template = bytearray(frames.build_udp_frame(64, 0))
    template[17] = 0  # an IPv4 length that does not say 64 bytes
    with pytest.raises(NativeArgumentError):
        _native.FrameStamper(bytes(template), b"\0" * 300)
    with pytest.raises(NativeArgumentError):
        _native.FrameStamper(frames.build_udp_frame(64, 0), b"\0" * 10)  # pattern table too short
    stamper = frames.udp_frame_stamper(64)
    out = bytearray(127)
    with _native.Pinned(out) as pin, pytest.raises(NativeArgumentError) as exc:
        stamper.stamp_into(0, 2, pin.address, pin.size)
    assert exc.value.code == _native.ERR_TOO_BIG
    checker = _native.FrameChecker(2, 10)
    data = bytearray(frames.build_udp_frame(64, 1))
    with _native.Pinned(data) as pin:
        with pytest.raises(NativeArgumentError) as exc:
            checker.check_packed(0, pin.address, pin.size - 1, array.array("I", [64]), 1)
        assert exc.value.code == _native.ERR_RANGE
        with pytest.raises(NativeArgumentError) as exc:
            checker.check_packed(2, pin.address, pin.size, array.array("I", [64]), 1)
        assert exc.value.code == _native.ERR_ARG
    assert checker.checked == 0
