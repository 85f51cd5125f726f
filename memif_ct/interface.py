"""The user API: a memif Interface with burst TX/RX per queue.

The control thread (control.py) brings links up and down; the data path here never waits for
it. Each ring end has its own lock, taken uncontended on every burst and by the control thread
only for the instant it marks the end dead during teardown, so unmapping can never race a burst.
"""

from __future__ import annotations

import array
import logging
import select
import threading
import time
from collections.abc import Sequence
from types import TracebackType
from typing import Any

from . import _native, constants as c
from .burst import Packet, RxScratch, pack_packets, rx_into, tx_packed
from .config import InterfaceConfig
from .control import Socket
from .link import LinkResources, QueueRing
from .errors import NotConnectedError

__all__ = ["Interface"]

log = logging.getLogger(__name__)

_MAX_BURST = 65535
_RX_SCRATCH_MIN_BYTES = 1 << 20  # a received packet larger than this is dropped and counted
_STAT_FIELDS = ("packets", "bytes", "chains", "bad_desc", "bad_ring", "drops", "no_space")
_MODE_NAMES = {c.MODE_ETHERNET: "ethernet", c.MODE_IP: "ip", c.MODE_PUNT_INJECT: "punt-inject"}


class _End:
    """One ring end of the current link, guarded for teardown."""

    __slots__ = ("alive", "eventfd", "lock", "native", "scratch")

    def __init__(self, ring: QueueRing) -> None:
        self.native = ring.native
        self.eventfd = ring.eventfd
        self.lock = threading.Lock()
        self.alive = True
        self.scratch: RxScratch | None = None


class _Link:
    def __init__(self, resources: LinkResources) -> None:
        self.resources = resources
        self.rx = [_End(r) for r in resources.rx]
        self.tx = [_End(r) for r in resources.tx]
        self.up_since = time.monotonic()


def _add_stats(total: dict[str, int], stats: _native.QueueStats) -> None:
    for name in _STAT_FIELDS:
        total[name] = total.get(name, 0) + getattr(stats, name)


class Interface:
    """A memif interface, server or client, configured like DPDK's net_memif.

    >>> with Interface(role="server", socket="/tmp/memif.sock", id=0) as intf:  # doctest: +SKIP
    ...     intf.wait_up(timeout_s=5.0)
    ...     intf.tx_burst([b"..."])

    ``socket`` is a path (``@name`` is abstract), or a :class:`Socket` shared by several
    interfaces told apart by ``id``. Data-path calls on a link that is down behave like DPDK's:
    ``tx_burst`` returns 0 and ``rx_burst`` an empty list.
    """

    def __init__(self, config: InterfaceConfig | None = None, *, socket: Socket | str | None = None,
                 **options: Any) -> None:
        shared: Socket | None = socket if isinstance(socket, Socket) else None
        if config is None:
            if isinstance(socket, str):
                options["socket"] = socket
            elif shared is not None:
                options.setdefault("socket", shared.display)
            config = InterfaceConfig.from_kwargs(**options)
        elif options:
            raise TypeError("pass either an InterfaceConfig or keyword options, not both")
        if socket is not None and not isinstance(socket, (Socket, str)):
            raise TypeError(f"socket must be a path or a memif_ct.Socket, not {type(socket).__name__}")
        self.config = config
        self._cond = threading.Condition()
        self._link: _Link | None = None
        self._last_reason: str | None = None
        self._closing = False
        self._closed = False
        self._link_ups = 0
        self._totals: dict[str, list[dict[str, int]]] = {"rx": [], "tx": []}
        if config.zero_copy and config.role == "client":
            log.warning("memif-ct %s: zero-copy=yes is not implemented yet; using copy mode", config.name)
        self._own_socket = shared is None
        self.socket = shared if shared is not None else Socket(config.socket, abstract=config.socket_abstract)
        try:
            self.socket.add_interface(self)
        except BaseException:
            self._closed = True
            if self._own_socket:
                self.socket.close()
            raise

    @classmethod
    def from_devargs(cls, devargs: str, *, socket: Socket | None = None) -> Interface:
        """Build from DPDK-style devargs, e.g. ``net_memif0,role=client,id=0,socket=/tmp/m.sock``."""
        return cls(InterfaceConfig.from_devargs(devargs), socket=socket)

    # ---- link state --------------------------------------------------------------------

    @property
    def is_up(self) -> bool:
        """True while the link is connected."""
        return self._link is not None

    @property
    def num_rx_queues(self) -> int:
        """RX queues of the current link (negotiated; 0 while down)."""
        link = self._link
        return len(link.rx) if link is not None else 0

    @property
    def num_tx_queues(self) -> int:
        """TX queues of the current link (negotiated; 0 while down)."""
        link = self._link
        return len(link.tx) if link is not None else 0

    @property
    def last_disconnect_reason(self) -> str | None:
        """The reason of the last disconnect or failed attempt, by either side."""
        return self._last_reason

    def wait_up(self, timeout_s: float | None = 5.0) -> None:
        """Block until the link is up; TimeoutError (with the last disconnect reason) if not."""
        with self._cond:
            if not self._cond.wait_for(lambda: self._link is not None or self._closed, timeout_s):
                raise TimeoutError(
                    f"memif interface {self._describe()} did not come up within {timeout_s} s; "
                    f"last disconnect reason: {self._last_reason or 'none'}"
                )
        if self._closed:
            raise NotConnectedError(f"memif interface {self._describe()} is closed")

    def wait_down(self, timeout_s: float | None = 5.0) -> None:
        """Block until the link is down; TimeoutError if it stays up."""
        with self._cond:
            if not self._cond.wait_for(lambda: self._link is None, timeout_s):
                raise TimeoutError(f"memif interface {self._describe()} still up after {timeout_s} s")

    def disconnect(self, reason: str = "disconnected by user") -> None:
        """Send DISCONNECT with ``reason`` and drop the link (a client will reconnect if configured)."""
        self.socket.disconnect_interface(self, reason)

    def close(self) -> None:
        """Disconnect, release every fd and mapping, and leave the socket. Idempotent."""
        if self._closed:
            return
        try:
            self.socket.remove_interface(self)
        finally:
            with self._cond:
                self._closed = True
                self._cond.notify_all()
            if self._own_socket:
                self.socket.close()

    def __enter__(self) -> Interface:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<memif_ct.Interface {self._describe()} {'up' if self.is_up else 'down'}>"

    def _describe(self) -> str:
        cfg = self.config
        return f"{cfg.name} ({cfg.role}, id={cfg.id}, socket={self.socket.display})"

    # ---- called by the control thread ---------------------------------------------------

    def _link_up(self, resources: LinkResources) -> None:
        link = _Link(resources)
        for end in link.rx:
            end.native.set_polling(not self.config.interrupt)
            if self.config.role == "client":
                end.native.refill()
        with self._cond:
            self._link = link
            self._link_ups += 1
            self._last_reason = None
            self._cond.notify_all()

    def _link_down(self, resources: LinkResources, reason: str) -> None:
        with self._cond:
            link = self._link
            if link is None or link.resources is not resources:
                return
            self._link = None
            for direction, ends in (("rx", link.rx), ("tx", link.tx)):
                totals = self._totals[direction]
                for i, end in enumerate(ends):
                    with end.lock:
                        end.alive = False
                    while len(totals) <= i:
                        totals.append({})
                    _add_stats(totals[i], end.native.stats())
            # Set together with _link = None (under the condition), so a reader never sees the
            # reason of this disconnect while is_up is still true; it replaces any older reason
            # (e.g. "Already connected" of a rejected second client).
            self._last_reason = reason
            self._cond.notify_all()
        log.info("memif interface %s: link down: %s", self._describe(), reason)

    def _note_disconnect(self, reason: str, *, local: bool) -> None:
        self._last_reason = reason
        log.log(logging.DEBUG if local else logging.INFO, "memif interface %s: %s", self._describe(), reason)

    # ---- data path ----------------------------------------------------------------------

    def _end(self, ends: list[_End], queue: int, direction: str) -> _End:
        if isinstance(queue, bool) or not isinstance(queue, int):
            raise TypeError(f"queue must be an int, not {type(queue).__name__}")
        if not 0 <= queue < len(ends):  # no negative indexing into the ring ends
            configured = self.config.tx_queues if direction == "tx" else self.config.rx_queues
            raise ValueError(
                f"queue={queue!r} is out of range: the link has {len(ends)} {direction} queue(s) "
                f"(configured {configured}), expected 0..{len(ends) - 1}"
            )
        return ends[queue]

    def tx_burst(self, packets: Sequence[Packet], queue: int = 0) -> int:
        """Queue packets on TX queue ``queue``; returns how many were queued (a prefix).

        Packets longer than one buffer go out as descriptor chains. Returns 0 while down.
        """
        link = self._link
        if link is None:
            return 0
        end = self._end(link.tx, queue, "tx")
        if not packets:
            return 0
        data, lengths = pack_packets(packets)
        return self._tx(end, data, lengths, len(lengths))

    def tx_burst_packed(self, data: object, lengths: array.array[int], queue: int = 0,
                        count: int | None = None) -> int:
        """Queue ``count`` packets packed back to back in ``data`` with u32 ``lengths``.

        The zero-copy-from-Python path: ``data`` may be bytes or any writable buffer (bytearray,
        numpy array); ``lengths`` an ``array('I')``. Returns how many were queued.
        """
        link = self._link
        if link is None:
            return 0
        end = self._end(link.tx, queue, "tx")
        n = len(lengths) if count is None else count
        return self._tx(end, data, lengths, n)

    def _tx(self, end: _End, data: object, lengths: array.array[int], count: int) -> int:
        with end.lock:
            if not end.alive:
                return 0
            n = tx_packed(end.native, data, lengths, count)
            if n and end.native.needs_signal():
                _native.eventfd_signal(end.eventfd)
        return n

    def rx_burst(self, max_packets: int = 256, queue: int = 0) -> list[bytes]:
        """Receive up to ``max_packets`` from RX queue ``queue``; chains come reassembled."""
        if isinstance(max_packets, bool) or not isinstance(max_packets, int) or not 1 <= max_packets <= _MAX_BURST:
            raise ValueError(f"max_packets={max_packets!r} is out of range: expected 1..{_MAX_BURST}")
        link = self._link
        if link is None:
            return []
        end = self._end(link.rx, queue, "rx")
        with end.lock:
            if not end.alive:
                return []
            scratch = end.scratch
            if scratch is None or scratch.max_packets < max_packets:
                scratch = end.scratch = RxScratch(max(_RX_SCRATCH_MIN_BYTES, max_packets * 2048), max_packets)
            if self.config.interrupt:
                _native.eventfd_clear(end.eventfd)  # before reading the ring: no lost wakeup
            return scratch.receive(end.native, max_packets)

    def rx_burst_into(self, out: object, lengths: array.array[int], queue: int = 0) -> int:
        """Receive into a caller's writable buffer; returns the count, lengths in ``lengths``."""
        link = self._link
        if link is None:
            return 0
        end = self._end(link.rx, queue, "rx")
        with end.lock:
            if not end.alive:
                return 0
            if self.config.interrupt:
                _native.eventfd_clear(end.eventfd)
            return rx_into(end.native, out, lengths)

    def wait_tx_drained(self, timeout_s: float = 1.0) -> bool:
        """Wait until the peer has consumed everything queued on every TX queue; True if so.

        A tool that sends and then closes calls this first, or the peer never sees the tail.
        """
        deadline = time.monotonic() + timeout_s
        while True:
            link = self._link
            if link is None:
                return False
            ring_size = 1 << link.resources.log2_ring_size
            drained = True
            for end in link.tx:
                with end.lock:  # the ring may be unmapped the moment the end is dead
                    drained = drained and end.alive and end.native.free() == ring_size
            if drained:
                return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.001)

    def fileno(self, queue: int = 0) -> int:
        """The RX interrupt eventfd of ``queue`` for select/epoll; a new one after each reconnect."""
        link = self._link
        if link is None:
            raise NotConnectedError(f"memif interface {self._describe()} is down: no eventfd")
        return self._end(link.rx, queue, "rx").eventfd

    def wait_rx(self, queue: int = 0, timeout_s: float | None = None) -> bool:
        """Wait until RX queue ``queue`` has packets (interrupt mode: on its eventfd). True if any."""
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        while True:
            link = self._link
            if link is not None:
                end = self._end(link.rx, queue, "rx")
                # pending() reads the ring in shared memory: under the end's lock, as every
                # burst does, or a teardown between the alive check and the read unmaps it.
                with end.lock:
                    if end.alive and end.native.pending():
                        return True
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                return False
            step = 0.05 if left is None else min(0.05, left)
            if link is not None and self.config.interrupt and end.alive:
                # poll, not select: eventfd numbers above 1023 are fine. Waiting on a number
                # that teardown just closed (or that was reused) only costs a spurious wakeup.
                poller = select.poll()
                poller.register(end.eventfd, select.POLLIN)
                if any(ev & select.POLLNVAL for _fd, ev in poller.poll(step * 1000)):
                    time.sleep(step)  # closed under us: never spin
            else:
                time.sleep(min(step, 0.001) if link is not None else step)

    # ---- introspection ------------------------------------------------------------------

    def stats(self) -> dict[str, Any]:
        """Per-queue counters, cumulative across reconnects.

        ``{"rx": [{"packets", "bytes", "drops", "errors", "chains", ...}, ...], "tx": [...],
        "link_ups": n}``; ``errors`` counts bad descriptors and impossible ring indexes.
        """
        with self._cond:  # link and totals from one instant: a link is never counted twice
            link = self._link
            snapshot = {d: [dict(t) for t in self._totals[d]] for d in ("rx", "tx")}
            link_ups = self._link_ups
        out: dict[str, Any] = {"link_ups": link_ups}
        for direction in ("rx", "tx"):
            totals = snapshot[direction]
            ends = getattr(link, direction) if link is not None else []
            for i, end in enumerate(ends):
                while len(totals) <= i:
                    totals.append({})
                _add_stats(totals[i], end.native.stats())
            configured = self.config.rx_queues if direction == "rx" else self.config.tx_queues
            while len(totals) < configured:
                totals.append({})
            rows = []
            for i, t in enumerate(totals):
                row = {name: t.get(name, 0) for name in _STAT_FIELDS}
                row["errors"] = row["bad_desc"] + row["bad_ring"]
                row["queue"] = i
                rows.append(row)
            out[direction] = rows
        return out

    def details(self) -> dict[str, Any]:
        """Role, negotiated ring counts and sizes, regions, peer names, link state, last reason."""
        cfg = self.config
        link = self._link
        d: dict[str, Any] = {
            "name": cfg.name,
            "id": cfg.id,
            "role": cfg.role,
            "socket": self.socket.display,
            "mode": _MODE_NAMES.get(cfg.mode, str(cfg.mode)),
            "interrupt": cfg.interrupt,
            "link": "up" if link is not None else "down",
            "link_ups": self._link_ups,
            "last_disconnect_reason": self._last_reason,
            "configured": {"rx_queues": cfg.rx_queues, "tx_queues": cfg.tx_queues,
                           "log2_ring_size": cfg.log2_ring_size, "buffer_size": cfg.buffer_size},
        }
        if link is not None:
            res = link.resources
            d.update(
                rx_queues=len(link.rx),
                tx_queues=len(link.tx),
                log2_ring_size=res.log2_ring_size,
                ring_size=1 << res.log2_ring_size,
                buffer_size=res.buffer_size,
                regions=[{"index": r.index, "size": r.size} for r in res.regions],
                peer_name=res.peer_name,
                peer_if_name=res.peer_if_name,
                up_for_s=round(time.monotonic() - link.up_since, 3),
            )
        return d




