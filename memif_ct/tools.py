"""Traffic tools behind the ``memif-ct`` command: pktgen, sink, echo, forward, ping, capture, loopback.

Each is a plain function on open Interfaces that returns a report, so tests and scripts use
them without the CLI. A run ends early, returning its report with ``interrupted=True``, when
``stop`` (a threading.Event) is set, which the CLI's SIGINT/SIGTERM handler does so that a
signal never lands between a burst and its counter; a KeyboardInterrupt ends it the same way.
``progress`` is called about twice a second with a one-line status for a terminal.
"""

from __future__ import annotations

import array
import contextlib
import logging
import os
import select
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, BinaryIO, Protocol

from . import _native, frames
from .errors import ArgumentError, NativeArgumentError, NotConnectedError
from .interface import Interface
from .macaddr import mac_to_str
from .pcap import PcapWriter

__all__ = [
    "CaptureReport",
    "EchoReport",
    "OnBurst",
    "RxPacked",
    "PingReport",
    "TrafficLoop",
    "TrafficReport",
    "run_capture",
    "run_echo",
    "run_forward",
    "run_loopback",
    "run_pktgen",
    "run_ping",
    "run_sink",
]

log = logging.getLogger(__name__)

Progress = Callable[[str], None]
_PROGRESS_EVERY_S = 0.5


# ---- reports -------------------------------------------------------------------------------


@dataclass
class TrafficReport:
    """pktgen / sink / loopback summary; the ``--json`` keys.

    The check figures, ``verified`` (distinct intact pktgen frames received) to ``not_ours``,
    are None when nothing was checked (no ``verify``): an unchecked run never claims "lost 0".
    A sink that saw no pktgen frame cannot judge loss or order either, so there ``lost`` and
    ``out_of_order`` stay None. ``lost`` counts frames that never arrived intact (a corrupted
    one is lost too); ``out_of_order`` a frame below one already received on the same RX queue
    (a ring keeps order, queues do not between them). ``stalled_s`` is how much of ``seconds``
    the link was down: the rates are averages over all of ``seconds``, stall included.
    """

    tx: int = 0
    rx: int = 0
    verified: int | None = None
    lost: int | None = None
    out_of_order: int | None = None
    corrupted: int | None = None
    duplicates: int | None = None
    not_ours: int | None = None
    tx_bytes: int = 0
    rx_bytes: int = 0
    seconds: float = 0.0
    mpps: float = 0.0
    gbps: float = 0.0
    stalled_s: float = 0.0
    interrupted: bool = False
    zero_copy: bool = False  # the interface ran zero-copy (a client with zero-copy=yes)

    def finish(self, seconds: float, *, by_rx: bool, stalled_s: float = 0.0) -> TrafficReport:
        """Rates over ``seconds``; Gbit/s count frame bytes (no preamble or gap), as testpmd does."""
        self.seconds = round(seconds, 6)
        self.stalled_s = round(min(stalled_s, seconds), 6)
        packets, nbytes = (self.rx, self.rx_bytes) if by_rx else (self.tx, self.tx_bytes)
        if seconds > 0:
            self.mpps = round(packets / seconds / 1e6, 6)
            self.gbps = round(nbytes * 8 / seconds / 1e9, 6)
        return self

    def failures(self) -> list[str]:
        """What a verified run found wrong, in words (e.g. "lost 12"); empty when all held or nothing was checked."""
        if self.verified is None:
            return []
        found = []
        if not self.verified:
            found.append(f"0 of {self.rx} frames were pktgen frames" if self.rx else "no frames received")
        for name, value in (("lost", self.lost), ("out-of-order", self.out_of_order), ("corrupted", self.corrupted),
                            ("duplicates", self.duplicates), ("not-ours", self.not_ours if self.verified else 0)):
            if value:
                found.append(f"{name} {value}")
        return found

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class EchoReport:
    """echo / forward summary: packets per direction."""

    directions: dict[str, int] = field(default_factory=dict)
    dropped: int = 0
    seconds: float = 0.0
    interrupted: bool = False
    zero_copy: bool = False

    def as_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = dict(self.directions)
        d.update(dropped=self.dropped, seconds=round(self.seconds, 6), interrupted=self.interrupted,
                 zero_copy=self.zero_copy)
        return d


@dataclass
class PingReport:
    transmitted: int = 0
    received: int = 0
    rtt_min_us: float | None = None
    rtt_avg_us: float | None = None
    rtt_max_us: float | None = None
    target_mac: str | None = None
    interrupted: bool = False

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class CaptureReport:
    captured: int = 0
    bytes: int = 0
    seconds: float = 0.0
    interrupted: bool = False

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


# ---- the traffic loop ----------------------------------------------------------------------


OnBurst = Callable[[Interface, int, Sequence[bytes | memoryview]], None]  # views: valid only during the call
"""A tool's work on one burst: ``on_burst(intf, queue, packets)``, the packets RX ``queue`` of ``intf`` gave."""

_MAX_BURST = 256
_IDLE_WAIT_S = 0.01
# Polling mode: after a turn that got packets, an empty turn polls again instead of napping for
# this long. A gap between a peer's bursts is microseconds, and the nap (_wait_rx: 0.2 ms when an
# interface polls) lets the ring fill and the peer stall behind it. Idle longer, the loop naps.
# Interrupt mode always sleeps on the eventfd: that is what the user chose it for.
_BUSY_POLL_S = 0.002
_RX_PACKED_BYTES = 2 << 20  # a burst stops at the packet that would not fit; a larger one is dropped
_MAX_RX_QUEUES = 256  # more than a link can have (255): the verifier's per-queue table


class RxPacked:
    """Where a packed burst lands (loopback's reflector): ``data`` holds the packets back to
    back, ``lengths`` ('I') their sizes. Reused for every burst."""

    def __init__(self, size: int = _RX_PACKED_BYTES, max_packets: int = _MAX_BURST) -> None:
        self.data = bytearray(size)
        self.view = memoryview(self.data)
        self.lengths = array.array("I", bytes(4 * max_packets))

    def receive(self, intf: Interface, queue: int, limit: int) -> int:
        """One burst of up to ``limit`` packets from RX ``queue`` of ``intf`` into ``data``."""
        lengths = self.lengths if limit >= len(self.lengths) else array.array("I", bytes(4 * limit))
        try:
            n = intf.rx_burst_into(self.data, lengths, queue)
        except NativeArgumentError as exc:
            if exc.code != _native.ERR_TOO_BIG:
                raise
            # Larger than all of data: rx_burst drops it and counts it in the queue's "drops".
            return len(intf.rx_burst(1, queue))
        if lengths is not self.lengths:
            self.lengths[:n] = lengths[:n]
        return n


class _Report(Protocol):
    interrupted: bool


@contextlib.contextmanager
def _running(report: _Report, stop: threading.Event | None) -> Iterator[None]:
    """The body of a run: Ctrl-C ends it like a set ``stop`` does; either marks the report."""
    try:
        yield
    except KeyboardInterrupt:
        report.interrupted = True
    report.interrupted = report.interrupted or _stopped(stop)


def _stopped(stop: threading.Event | None) -> bool:
    return stop is not None and stop.is_set()


def _check_positive(name: str, value: float | None, *, allow_none: bool = True) -> None:
    if value is None:
        if not allow_none:
            raise ArgumentError(f"{name} is required: expected > 0")
        return
    if value <= 0:
        raise ArgumentError(f"{name}={value} is out of range: expected > 0")


def _wait_rx(intfs: Sequence[Interface], timeout_s: float) -> None:
    """Sleep until a packet may have arrived on an RX queue of ``intfs``, at most ``timeout_s``.

    Interrupt mode sleeps on the queues themselves; a peer in polling mode never signals, so a
    short nap stands in for it; while every link is down this waits for one to come up again.
    """
    up = [intf for intf in intfs if intf.is_up]
    ends = [(intf, q) for intf in up for q in range(intf.num_rx_queues)]
    if not ends:
        time.sleep(min(timeout_s, 0.05))
        return
    if not all(intf.config.interrupt for intf in up):
        time.sleep(min(timeout_s, 0.0002))
        return
    try:
        if len(ends) == 1:
            intf, q = ends[0]
            intf.wait_rx(q, timeout_s)
            return
        fds = {intf.fileno(q): (intf, q) for intf, q in ends}
        poller = select.poll()  # not select(): fd numbers above 1023 are fine
        for fd in fds:
            poller.register(fd, select.POLLIN)
        events = poller.poll(timeout_s * 1000)
        if any(ev & select.POLLNVAL for _fd, ev in events):
            time.sleep(min(timeout_s, 0.01))  # a link went down under us: never spin
        for fd, ev in events:
            if ev & select.POLLIN:
                intf, q = fds[fd]
                intf.wait_rx(q, timeout_s=0)  # consumes the signal where wait_rx reads the eventfd
    except (NotConnectedError, ValueError):  # went down, or came back with other queues, meanwhile
        time.sleep(min(timeout_s, 0.01))


class TrafficLoop:
    """The receive loop that sink, echo, forward, capture and pktgen's receive side plug into.

    Each turn takes one burst from every RX queue of every interface in ``intfs`` and hands each
    non-empty one to the tool's ``on_burst(intf, queue, packets)``. With nothing to read it
    sleeps (on the queues in interrupt mode; while every link is down, until one is up again);
    in polling mode it polls again instead within ``_BUSY_POLL_S`` of the last turn that got
    packets.
    It calls ``progress`` with ``status()`` about twice a second, and ends a run at ``stop``,
    Ctrl-C (either sets the report's ``interrupted``), ``count`` or ``duration_s``. ``count``
    is reached when ``counted()`` (by default: the packets received) gets to it; no burst reads
    past it. Each ``tick()`` also notes whether every link is up, so that ``down_s()`` can say
    how much of a measured span was a stall rather than traffic.
    """

    def __init__(self, intfs: Sequence[Interface], *, status: Callable[[], str], count: int | None = None,
                 counted: Callable[[], int] | None = None, duration_s: float | None = None,
                 stop: threading.Event | None = None, progress: Progress | None = None) -> None:
        _check_positive("count", count)
        _check_positive("duration_s", duration_s)
        self.intfs = list(intfs)
        # Polling mode, as _wait_rx tells it (which asks only the interfaces that are up).
        self._polls = not all(intf.config.interrupt for intf in self.intfs)
        self.received = 0
        self.count = count
        self.counted = counted if counted is not None else lambda: self.received
        self.duration_s = duration_s
        self.stop = stop
        self.progress = progress
        self.status = status
        self.first_rx: float | None = None  # time.monotonic() of the first and last turn that got packets
        self.last_rx: float | None = None
        self.start = time.monotonic()
        self._next_tick = self.start + _PROGRESS_EVERY_S
        self._down_since: float | None = None  # the link stall in progress, if any
        self._down_spans: list[tuple[float, float]] = []  # the stalls that are over

    def done(self) -> bool:
        if _stopped(self.stop):
            return True
        if self.count is not None and self.counted() >= self.count:
            return True
        return self.duration_s is not None and self.elapsed() >= self.duration_s

    def elapsed(self) -> float:
        return time.monotonic() - self.start

    def _queues(self) -> Iterator[tuple[Interface, int, int]]:
        """(intf, queue, how many packets its burst may take) for each RX queue, until ``count``."""
        for intf in self.intfs:
            for q in range(intf.num_rx_queues):
                limit = _MAX_BURST if self.count is None else min(_MAX_BURST, self.count - self.counted())
                if limit <= 0:
                    return
                yield intf, q, limit

    def receive(self, on_burst: OnBurst) -> int:
        """One burst from each RX queue of each interface, each to ``on_burst``; how many packets came."""
        got = 0
        for intf, q, limit in self._queues():
            try:
                pkts = intf.rx_burst(limit, q)
            except (NotConnectedError, ValueError):
                continue  # the link went down, or came back with fewer queues, since we counted
            got += self._deliver(on_burst, intf, q, pkts)
        return self._got(got)

    def receive_checked(self, report: TrafficReport, verifier: _Verifier | None) -> int:
        """As receive(), with the buffer API in C: each burst read where it lies (rx_peek), counted
        into ``report`` and checked by ``verifier`` if given, then its slots given back."""
        got = 0
        checker = verifier.checker if verifier is not None else None
        for intf, q, limit in self._queues():
            try:
                n, nbytes = intf.rx_queue(q).rx_check(limit, checker, q)
            except (NotConnectedError, ValueError):
                continue  # the link went down, or came back with fewer queues, since we counted
            self.received += n
            got += n
            report.rx += n
            report.rx_bytes += nbytes
        if verifier is not None and got:
            verifier.note_corrupted()
        return self._got(got)

    def receive_reflected(self, report: EchoReport, macswap: bool) -> int:
        """Echo's turn: each RX queue's burst read where it lies and copied once into a TX buffer
        of the queue of the same number (mod the TX count), MACs swapped if asked."""
        got = 0
        for intf, q, limit in self._queues():
            try:
                n_tx = intf.num_tx_queues
                if not n_tx:
                    continue
                n, sent = intf.rx_queue(q).reflect(intf.tx_queue(q % n_tx), limit, macswap=macswap)
            except (NotConnectedError, ValueError):
                continue
            self.received += n
            got += n
            report.directions["rx"] += n
            report.directions["tx"] += sent
            report.dropped += n - sent
        return self._got(got)

    def _busy_polling(self) -> bool:
        """Polling mode, and packets came within the last ``_BUSY_POLL_S``: an empty turn then
        polls again instead of napping."""
        last = self.last_rx
        return self._polls and last is not None and time.monotonic() - last < _BUSY_POLL_S

    def _got(self, got: int) -> int:
        if got:
            self.last_rx = time.monotonic()
            if self.first_rx is None:
                self.first_rx = self.last_rx
        return got

    def _deliver(self, on_burst: OnBurst, intf: Interface, queue: int, pkts: Sequence[bytes | memoryview]) -> int:
        if pkts:
            self.received += len(pkts)
            on_burst(intf, queue, pkts)
        return len(pkts)

    def tick(self) -> None:
        """Once a turn: note the link state; draw the progress line about twice a second."""
        now = time.monotonic()
        down = not all(intf.is_up for intf in self.intfs)
        if down and self._down_since is None:
            self._down_since = now
        elif not down and self._down_since is not None:
            self._down_spans.append((self._down_since, now))
            self._down_since = None
        if self.progress is not None and now >= self._next_tick:
            self._next_tick = now + _PROGRESS_EVERY_S
            self.progress(self.status())

    def down_s(self, start: float, end: float) -> float:
        """Seconds between ``start`` and ``end`` (time.monotonic()) that a link was seen down at a tick."""
        spans = [*self._down_spans, *([(self._down_since, end)] if self._down_since is not None else [])]
        return sum(max(0.0, min(b, end) - max(a, start)) for a, b in spans)

    def run(self, report: _Report, on_burst: OnBurst | None = None, *,
            receiver: Callable[[], int] | None = None, until: Callable[[], bool] | None = None,
            each_turn: Callable[[], object] | None = None) -> None:
        """Turn until the run ends (or ``until()`` says so), calling ``each_turn()`` first in each;
        each turn's receiving is ``receiver()`` if given (it returns the packets it took), else
        bursts go to ``on_burst`` (a list of bytes)."""
        if receiver is not None:
            receive = receiver
        elif on_burst is not None:
            def receive() -> int:
                return self.receive(on_burst)
        else:
            raise ArgumentError("TrafficLoop.run needs on_burst or a receiver")
        with _running(report, self.stop):
            while not self.done() and not (until is not None and until()):
                if each_turn is not None:
                    each_turn()
                if not receive() and not self._busy_polling():
                    _wait_rx(self.intfs, _IDLE_WAIT_S)
                self.tick()


# ---- pktgen / sink / loopback --------------------------------------------------------------


class _Verifier:
    """Checks received frames against frames.py's layout and keeps the sequence accounting in C
    (csrc/traffic.c, a whole burst per call): corrupted, not ours, duplicates, out-of-order (per
    RX queue), and how many distinct ones arrived. ``expected``: pktgen's seqs are 0..expected-1
    (a fixed bitmap); None for a sink (a window that follows the seqs seen)."""

    def __init__(self, expected: int | None) -> None:
        self._c = _native.FrameChecker(_MAX_RX_QUEUES, expected)
        self._corrupted_seen = 0

    @property
    def checker(self) -> _native.FrameChecker:
        return self._c

    def note_corrupted(self) -> None:
        """One warning per burst that brought corrupted frames."""
        corrupted = self._c.corrupted
        if corrupted != self._corrupted_seen:
            log.warning("%d corrupted frame(s) received, the last: %s", corrupted - self._corrupted_seen,
                        _native.frame_verdict_str(self._c.last_corrupt))
            self._corrupted_seen = corrupted

    @property
    def unique(self) -> int:
        return self._c.unique

    def span(self) -> int:
        """Sequence numbers from the lowest to the highest seen (what a sink should have had)."""
        return self._c.highest - self._c.lowest + 1 if self._c.unique else 0

    def record(self, report: TrafficReport, *, lost: int | None) -> None:
        """Put the figures into ``report``; ``lost`` None when the run could not judge loss."""
        c = self._c
        report.verified = c.unique
        report.lost = lost
        report.out_of_order = c.out_of_order if c.unique else None
        report.corrupted = c.corrupted
        report.duplicates = c.duplicates
        report.not_ours = c.not_ours


def run_pktgen(
    intf: Interface,
    *,
    count: int,
    size: int,
    burst: int = 256,
    queues: int = 1,
    verify: bool = False,
    drain_s: float = 1.0,
    stall_timeout_s: float = 10.0,
    progress: Progress | None = None,
    stop: threading.Event | None = None,
    reflector: Callable[[], int] | None = None,
) -> TrafficReport:
    """Send ``count`` sequenced UDP frames of ``size`` bytes; with ``verify`` expect them back.

    ``reflector`` is called once per loop turn when the peer lives in this thread (loopback).
    """
    _check_positive("count", count, allow_none=False)
    if not 60 <= size <= 65535:
        raise ArgumentError(f"size={size} is out of range: expected 60..65535 bytes")
    if not 1 <= burst <= 4096:
        raise ArgumentError(f"burst={burst} is out of range: expected 1..4096")
    if not 1 <= queues <= 255:
        raise ArgumentError(f"queues={queues} is out of range: expected 1..255")
    report = TrafficReport(zero_copy=bool(intf.details()["zero_copy"]))
    verifier = _Verifier(count) if verify else None
    rx = TrafficLoop([intf], status=lambda: f"pktgen: tx {report.tx}/{count} rx {report.rx}", stop=stop,
                     progress=progress)
    stamper = frames.udp_frame_stamper(size, src_mac=intf.config.mac)
    # Frames that fit one buffer are stamped straight into TX buffers (the buffer API, in C);
    # larger ones are stamped into one reused buffer and sent packed, as chains.
    in_place = size <= (intf.details().get("buffer_size") or 65535)
    tx_data = bytearray(burst * size)
    tx_pin = _native.Pinned(tx_data)
    tx_view = memoryview(tx_data)
    tx_lengths = array.array("I", [size]) * burst
    last_progress = last_rx = rx.start
    next_seq = 0
    pending: tuple[int, int] | None = None  # (first, count) of the frames stamped in tx_data, not yet sent
    queue = 0
    # With verify, keep no more in flight than our RX rings can take back: a reflector that
    # finds no posted buffer drops the frame (testpmd counts it in TX-dropped), and DPDK 22.11
    # overruns a full ring with chains (TESTPMD_NOTES.md, D1). So a burst is at most half of
    # what the rings hold (1,024 slots take only 204 frames of 9,000 bytes in 2,048-byte slots).
    window = count
    presumed_lost = 0
    if verify:
        details = intf.details()
        bsize = details.get("buffer_size") or intf.config.buffer_size
        slots_per_frame = -(-size // bsize)
        rings = max(1, intf.num_rx_queues)
        fit = (details.get("ring_size", 1024) // slots_per_frame) * rings
        burst = max(1, min(burst, fit // 2))
        window = max(burst, fit - burst)

    def delivered() -> int:
        return verifier.unique if verifier is not None else 0

    with _running(report, stop):
        while report.tx < count and not _stopped(stop):
            n = min(burst, count - next_seq) if pending is None else pending[1]
            in_flight = report.tx - delivered() - presumed_lost
            sent = 0
            if verify and in_flight + n > window:
                if time.monotonic() - last_rx > drain_s:
                    presumed_lost += in_flight  # the reflector dropped them: stop waiting
                    last_rx = time.monotonic()
            elif intf.is_up and in_place:
                sent = _tx_frames(intf, queue, stamper, next_seq, n)
                if sent < 0:  # a frame is larger than the peer's buffers: stamp packed and chain
                    in_place, sent = False, 0
                next_seq += sent
            elif intf.is_up:
                if pending is None:
                    stamper.stamp_into(next_seq, n, tx_pin.address, tx_pin.size)
                    next_seq += n
                    pending = (0, n)
                first, n = pending
                sent = intf.tx_burst_packed(tx_view[first * size:(first + n) * size], tx_lengths, queue, n)
                pending = None if sent == n else (first + sent, n - sent)
            if sent:
                report.tx += sent
                report.tx_bytes += sent * size
                last_progress = time.monotonic()
                if pending is None:
                    queue = (queue + 1) % queues
            if reflector is not None:
                reflector()
            if verify and rx.receive_checked(report, verifier):
                last_rx = last_progress = time.monotonic()
            if not sent:
                if time.monotonic() - last_progress > stall_timeout_s:
                    log.warning("pktgen: no progress for %.1f s (link %s)", stall_timeout_s,
                                "up" if intf.is_up else "down")
                    break
                if not intf.is_up:
                    time.sleep(0.01)
            rx.tick()
        if not verify:
            intf.wait_tx_drained(drain_s)  # the peer reads the tail before we may close
    tx_view.release()
    tx_pin.release()
    if verify and not report.interrupted:
        # Stragglers: until every frame is back, or none came for drain_s.
        quiet_from = time.monotonic()
        rx.run(report, receiver=lambda: rx.receive_checked(report, verifier), each_turn=reflector,
               until=lambda: delivered() >= report.tx
               or time.monotonic() - max(quiet_from, rx.last_rx or 0) > drain_s)
    end = time.monotonic()
    if verifier is not None:
        verifier.record(report, lost=report.tx - verifier.unique)
    return report.finish(end - rx.start, by_rx=verify, stalled_s=rx.down_s(rx.start, end))


def _tx_frames(intf: Interface, queue: int, stamper: _native.FrameStamper, first_seq: int, count: int) -> int:
    """Frames stamped straight into TX buffers of ``queue``: how many went; -1 if one is larger
    than a buffer; 0 while the link is down."""
    try:
        return intf.tx_queue(queue).tx_frames(stamper, first_seq, count)
    except NotConnectedError:
        return 0
    except NativeArgumentError as exc:
        if exc.code == _native.ERR_TOO_BIG:
            return -1
        raise


def run_sink(
    intf: Interface,
    *,
    count: int | None = None,
    duration_s: float | None = None,
    verify: bool = False,
    progress: Progress | None = None,
    stop: threading.Event | None = None,
) -> TrafficReport:
    """Count (and with ``verify`` check) received frames until ``count`` or ``duration_s``.

    With ``verify`` the frames must be pktgen's: loss and order are judged from their sequence
    numbers (the first seen is taken as the start).
    """
    report = TrafficReport(zero_copy=bool(intf.details()["zero_copy"]))
    loop = TrafficLoop([intf], status=lambda: f"sink: rx {report.rx} pkts {report.rx_bytes} bytes", count=count,
                       duration_s=duration_s, stop=stop, progress=progress)
    verifier = _Verifier(None) if verify else None
    loop.run(report, receiver=lambda: loop.receive_checked(report, verifier))
    if verifier is not None:
        # The first frame seen is taken as the start: with none of pktgen's, loss cannot be judged.
        verifier.record(report, lost=verifier.span() - verifier.unique if verifier.unique else None)
    # Rate over the span packets actually arrived in, so waiting for the peer does not dilute it.
    first, last = loop.first_rx, loop.last_rx
    if first is None or last is None or last <= first:
        first, last = loop.start, time.monotonic()
    return report.finish(last - first, by_rx=True, stalled_s=loop.down_s(first, last))


def run_loopback(
    *,
    count: int = 10000,
    size: int = 64,
    burst: int = 256,
    socket_name: str | None = None,
    log2_ring_size: int = 10,
    buffer_size: int = 2048,
    progress: Progress | None = None,
    stop: threading.Event | None = None,
    up_timeout_s: float = 10.0,
) -> TrafficReport:
    """A server and a client of the same id on one socket in this process; frames go
    client -> server, are reflected, and verified back at the client."""
    from .control import Socket

    name = socket_name or f"@memif-ct-loopback-{os.getpid()}-{time.monotonic_ns()}"
    common: dict[str, Any] = {
        "id": 0, "log2_ring_size": log2_ring_size, "buffer_size": buffer_size, "interrupt": False,
    }
    with Socket(name) as sock, \
            Interface(role="server", socket=sock, name="loopback-server", **common) as server, \
            Interface(role="client", socket=sock, name="loopback-client", **common) as client:
        client.wait_up(up_timeout_s)
        server.wait_up(up_timeout_s)

        bounce = RxPacked()
        pending = [0, 0, 0]  # what the server received and has not sent back yet: byte offset, first, count

        def reflect() -> int:
            # Whatever the client has not yet made room for waits here for the next turn;
            # pktgen's own receive consumes at the client, which re-posts buffers.
            offset, first, n = pending
            if not n:
                offset, first, n = 0, 0, bounce.receive(server, 0, _MAX_BURST)
                if not n:
                    pending[:] = [0, 0, 0]
                    return 0
            lengths = bounce.lengths if not first else bounce.lengths[first:first + n]
            sent = server.tx_burst_packed(bounce.view[offset:], lengths, 0, n)
            if sent == n:  # the usual: all of it went, nothing to add up (an int per packet)
                pending[:] = [0, 0, 0]
            else:
                pending[:] = [offset + sum(lengths[:sent]), first + sent, n - sent]
            return sent

        return run_pktgen(client, count=count, size=size, burst=burst, verify=True, reflector=reflect,
                          progress=progress, stop=stop)


# ---- echo / forward ------------------------------------------------------------------------


def _send_all(intf: Interface, pkts: list[bytes | memoryview], queue: int, deadline_s: float = 0.05) -> int:
    """Transmit pkts on queue, retrying briefly while the ring is full; returns how many went."""
    sent = intf.tx_burst(pkts, queue)
    if sent < len(pkts):
        end = time.monotonic() + deadline_s
        while sent < len(pkts) and time.monotonic() < end and intf.is_up:
            n = intf.tx_burst(pkts[sent:], queue)
            sent += n
            if not n:
                time.sleep(0.0001)
    return sent


def _pass_on(report: EchoReport, key: str, dst: Interface, queue: int, pkts: Sequence[bytes | memoryview]) -> None:
    """Send pkts on ``dst``'s TX queue ``queue`` (mod its count); count those sent under ``key``."""
    n_tx = dst.num_tx_queues
    sent = _send_all(dst, list(pkts), queue % n_tx) if n_tx else 0
    report.directions[key] += sent
    report.dropped += len(pkts) - sent


def run_echo(
    intf: Interface,
    *,
    macswap: bool = False,
    count: int | None = None,
    duration_s: float | None = None,
    progress: Progress | None = None,
    stop: threading.Event | None = None,
) -> EchoReport:
    """Reflect every packet back on the queue it arrived on (optionally swapping MACs)."""
    report = EchoReport(directions={"rx": 0, "tx": 0}, zero_copy=bool(intf.details()["zero_copy"]))
    loop = TrafficLoop([intf], status=lambda: f"echo: rx {report.directions['rx']} tx {report.directions['tx']} "
                                              f"dropped {report.dropped}",
                       count=count, duration_s=duration_s, stop=stop, progress=progress)

    loop.run(report, receiver=lambda: loop.receive_reflected(report, macswap))
    intf.wait_tx_drained(0.5)  # what we echoed last reaches the peer before we may close
    report.seconds = loop.elapsed()
    return report


def run_forward(
    a: Interface,
    b: Interface,
    *,
    count: int | None = None,
    duration_s: float | None = None,
    progress: Progress | None = None,
    stop: threading.Event | None = None,
) -> EchoReport:
    """Cross-connect two interfaces both ways, queue i to queue i (mod the other's count);
    ``count`` counts the packets forwarded."""
    report = EchoReport(directions={"a_to_b": 0, "b_to_a": 0})
    loop = TrafficLoop([a, b], status=lambda: f"forward: a->b {report.directions['a_to_b']} "
                                              f"b->a {report.directions['b_to_a']} dropped {report.dropped}",
                       count=count, counted=lambda: sum(report.directions.values()), duration_s=duration_s,
                       stop=stop, progress=progress)

    def on_burst(src: Interface, queue: int, pkts: Sequence[bytes | memoryview]) -> None:
        if src is a:
            _pass_on(report, "a_to_b", b, queue, pkts)
        else:
            _pass_on(report, "b_to_a", a, queue, pkts)

    loop.run(report, on_burst)
    a.wait_tx_drained(0.5)
    b.wait_tx_drained(0.5)
    report.seconds = loop.elapsed()
    return report


# ---- ping ----------------------------------------------------------------------------------


def default_src_ip(target_ip: str) -> str:
    """An address next to the target in its /24 (x.x.x.1, or .2 when the target is .1)."""
    parts = frames.ip_to_bytes(target_ip)
    last = 2 if parts[3] == 1 else 1
    return frames.bytes_to_ip(parts[:3] + bytes([last]))


def run_ping(
    intf: Interface,
    target_ip: str,
    *,
    count: int = 4,
    interval_s: float = 1.0,
    timeout_s: float = 1.0,
    src_ip: str | None = None,
    src_mac: bytes | None = None,
    size: int = 56,
    on_line: Callable[[str], None] | None = None,
    stop: threading.Event | None = None,
) -> PingReport:
    """Resolve ``target_ip`` with ARP, then send ICMP echo requests and time the replies."""
    _check_positive("count", count, allow_none=False)
    _check_positive("interval_s", interval_s, allow_none=False)
    target = frames.ip_to_bytes(target_ip)
    src_ip = src_ip or default_src_ip(target_ip)
    src = frames.ip_to_bytes(src_ip)
    mac = src_mac or intf.config.mac
    say = on_line or (lambda _line: None)
    report = PingReport()
    ident = os.getpid() & 0xFFFF
    rtts: list[float] = []

    def poll(until: float, want: Callable[[bytes, int], bool]) -> bool:
        while time.monotonic() < until and not _stopped(stop):
            for pkt in intf.rx_burst(64):
                now = time.perf_counter_ns()
                arp = frames.parse_arp(pkt)
                if arp is not None and arp.op == frames.ARP_REQUEST and arp.target_ip == src:
                    intf.tx_burst([frames.build_arp_reply(mac, src, arp.sender_mac, arp.sender_ip)])
                    continue
                if want(pkt, now):
                    return True
            _wait_rx([intf], 0.005)
        return False

    with _running(report, stop):
        target_mac: bytes | None = None
        for _attempt in range(3):
            intf.tx_burst([frames.build_arp_request(mac, src, target)])

            def arp_reply(pkt: bytes, _now: int) -> bool:
                nonlocal target_mac
                arp = frames.parse_arp(pkt)
                if arp is not None and arp.op == frames.ARP_REPLY and arp.sender_ip == target:
                    target_mac = arp.sender_mac
                    return True
                return False

            if poll(time.monotonic() + timeout_s, arp_reply):
                break
        if target_mac is None:
            say(f"ping: {target_ip}: no ARP reply (from {src_ip})")
            return report
        report.target_mac = mac_to_str(target_mac)
        say(f"PING {target_ip} ({report.target_mac}) from {src_ip}: {size} data bytes")
        payload = bytes(range(256)) * (size // 256 + 1)
        for seq in range(1, count + 1):
            if _stopped(stop):
                break
            sent_at = time.perf_counter_ns()
            req = frames.build_icmp_echo_request(src_mac=mac, dst_mac=target_mac, src_ip=src, dst_ip=target,
                                                 ident=ident, seq=seq, payload=payload[:size])
            if intf.tx_burst([req]) != 1:
                say(f"ping: icmp_seq={seq}: transmit ring full or link down")
            report.transmitted += 1

            def echo_reply(pkt: bytes, now: int, seq: int = seq, sent_at: int = sent_at) -> bool:
                echo = frames.parse_icmp_echo(pkt)
                if echo is None or not echo.is_reply or echo.ident != ident or echo.seq != seq:
                    return False
                rtt_us = (now - sent_at) / 1000
                rtts.append(rtt_us)
                report.received += 1
                bad = "" if echo.checksums_ok else " (BAD CHECKSUM)"
                say(f"{len(pkt) - 34} bytes from {frames.bytes_to_ip(echo.src_ip)}: icmp_seq={seq} "
                    f"ttl={echo.ttl} time={rtt_us / 1000:.3f} ms{bad}")
                return True

            got = poll(time.monotonic() + timeout_s, echo_reply)
            if not got:
                say(f"no reply for icmp_seq={seq}")
            if seq < count:
                rest = interval_s - (time.perf_counter_ns() - sent_at) / 1e9
                if rest > 0:
                    if stop is not None:
                        stop.wait(rest)
                    else:
                        time.sleep(rest)
    if rtts:
        report.rtt_min_us = round(min(rtts), 3)
        report.rtt_avg_us = round(sum(rtts) / len(rtts), 3)
        report.rtt_max_us = round(max(rtts), 3)
    return report


# ---- capture -------------------------------------------------------------------------------


def run_capture(
    intf: Interface,
    path: str | BinaryIO,
    *,
    count: int | None = None,
    duration_s: float | None = None,
    progress: Progress | None = None,
    stop: threading.Event | None = None,
) -> CaptureReport:
    """Write received packets to a pcap file (Ethernet, or raw IP for mode=ip), or to an open
    binary stream (left open)."""
    report = CaptureReport()
    loop = TrafficLoop([intf], status=lambda: f"capture: {report.captured} packets", count=count,
                       duration_s=duration_s, stop=stop, progress=progress)
    with PcapWriter.for_mode(path, intf.config.mode) as writer:

        def on_burst(_intf: Interface, _queue: int, pkts: Sequence[bytes | memoryview]) -> None:
            for pkt in pkts:
                writer.write(pkt, time.time_ns())
            report.captured += len(pkts)
            report.bytes += sum(map(len, pkts))

        loop.run(report, on_burst)
    report.seconds = loop.elapsed()
    return report
