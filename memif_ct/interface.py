"""The user API: a memif Interface with burst TX/RX per queue.

An Interface registers with a control ``Socket`` (control.py) as a ``LinkListener``; the
control thread brings links up and down and the data path here never waits for it. Each ring
end is one ``Queue`` (queue.py) with its own teardown guard, so unmapping can never race a burst.
"""

from __future__ import annotations

import errno
import logging
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from types import TracebackType
from typing import Any

from . import _native
from .config import InterfaceConfig, mode_name
from .control import Socket
from .errors import ArgumentError, ArgumentTypeError, LinkTimeout, NotConnectedError, SocketError
from .link import Link
from .queue import Packet, Queue, RxBurst, TxBuffers, check_burst_size, check_packets, check_timeout, no_buffers

__all__ = ["Interface", "OnAttemptFailed", "OnDown", "OnUp"]

log = logging.getLogger(__name__)


OnUp = Callable[["Interface"], object]
OnDown = Callable[["Interface", str], object]
OnAttemptFailed = Callable[["Interface", str], object]


def _add_stats(total: dict[str, int], stats: dict[str, int]) -> None:
    for name in _native.STATS_FIELDS:
        total[name] = total.get(name, 0) + stats[name]


class _LinkState:
    """One Interface's link as the control plane reports it (a control.LinkListener).

    Its methods run on the control thread; everything they change is guarded by ``cond``.
    """

    def __init__(self, intf: Interface, on_up: OnUp | None, on_down: OnDown | None,
                 on_attempt_failed: OnAttemptFailed | None = None) -> None:
        self.intf = intf
        self.on_up = on_up
        self.on_down = on_down
        self.on_attempt_failed = on_attempt_failed
        self.cond = threading.Condition()
        self.link: Link | None = None
        self.last_reason: str | None = None
        self.link_ups = 0
        self.closed = False
        self.totals: dict[str, list[dict[str, int]]] = {"rx": [], "tx": []}

    def link_up(self, link: Link) -> None:
        cfg = self.intf.config
        for queue in link.rx:
            queue.set_polling(not cfg.interrupt)
            if cfg.role == "client":
                queue.refill()
        with self.cond:
            self.link = link
            self.link_ups += 1
            self.last_reason = None
            self.cond.notify_all()
        log.info("memif interface %s: link up", self.intf)
        on_up = self.on_up
        if on_up is not None:
            self._callback(lambda: on_up(self.intf), "on_up")

    def link_down(self, link: Link, reason: str) -> None:
        with self.cond:
            if self.link is not link:
                return
            self.link = None
            for direction, queues in (("rx", link.rx), ("tx", link.tx)):
                totals = self.totals[direction]
                for i, queue in enumerate(queues):
                    queue.detach()
                    while len(totals) <= i:
                        totals.append({})
                    _add_stats(totals[i], queue.stats())
            # Set together with link = None (under the condition), so a reader never sees the
            # reason of this disconnect while is_up is still true.
            self.last_reason = reason
            self.cond.notify_all()
        log.info("memif interface %s: link down: %s", self.intf, reason)
        on_down = self.on_down
        if on_down is not None:
            self._callback(lambda: on_down(self.intf, reason), "on_down")

    def attempt_failed(self, reason: str) -> None:
        with self.cond:
            self.last_reason = reason
            self.cond.notify_all()
        log.debug("memif interface %s: %s", self.intf, reason)
        on_attempt_failed = self.on_attempt_failed
        if on_attempt_failed is not None:
            self._callback(lambda: on_attempt_failed(self.intf, reason), "on_attempt_failed")

    def _callback(self, fn: Callable[[], object], name: str) -> None:
        try:
            fn()
        except Exception:
            log.exception("memif interface %s: %s callback raised", self.intf, name)


class Interface:
    """A memif interface, server or client, configured like DPDK's net_memif.

    >>> with Interface(role="server", socket="/tmp/memif.sock", id=0) as intf:  # doctest: +SKIP
    ...     intf.wait_up(timeout_s=5.0)
    ...     intf.tx_burst([b"..."])

    ``socket`` is a path (``@name`` is abstract), or a :class:`Socket` shared by several
    interfaces told apart by ``id``. Data-path calls on a link that is down behave like DPDK's:
    ``tx_burst`` returns 0 and ``rx_burst`` an empty list.

    ``on_up(intf)`` and ``on_down(intf, reason)`` are called once per link transition, **on the
    socket's control thread**: keep them short and never block in them (no ``wait_up``, no
    ``close``). An exception they raise is logged and otherwise ignored. A server's ``on_up``
    runs just before it sends CONNECTED: its link is up before the client's can be.
    ``on_attempt_failed(intf, reason)`` is called the same way for each connection attempt that
    ends before the link comes up (the peer's DISCONNECT reason, or why connect() failed).
    """

    def __init__(self, config: InterfaceConfig | None = None, *, socket: Socket | str | None = None,
                 on_up: OnUp | None = None, on_down: OnDown | None = None,
                 on_attempt_failed: OnAttemptFailed | None = None, **options: Any) -> None:
        if socket is not None and not isinstance(socket, (Socket, str)):
            raise ArgumentTypeError(f"socket must be a path or a memif_ct.Socket, not {type(socket).__name__}")
        for name, fn in (("on_up", on_up), ("on_down", on_down), ("on_attempt_failed", on_attempt_failed)):
            if fn is not None and not callable(fn):
                raise ArgumentTypeError(f"{name} must be callable, not {type(fn).__name__}")
        shared = socket if isinstance(socket, Socket) else None
        if config is None:
            if isinstance(socket, str):
                options["socket"] = socket
            elif shared is not None:
                options.setdefault("socket", shared.display)
            config = InterfaceConfig.from_kwargs(**options)
        elif options:
            raise ArgumentTypeError("pass either an InterfaceConfig or keyword options, not both")
        self.config = config
        self._state = _LinkState(self, on_up, on_down, on_attempt_failed)
        self._own_socket = shared is None
        self.socket = shared if shared is not None else Socket(config.socket, abstract=config.socket_abstract)
        try:
            self.socket.attach(config, self._state)
        except BaseException:
            self._state.closed = True
            if self._own_socket:
                self.socket.close()
            raise

    @classmethod
    def from_devargs(cls, devargs: str, *, socket: Socket | None = None, on_up: OnUp | None = None,
                     on_down: OnDown | None = None, on_attempt_failed: OnAttemptFailed | None = None) -> Interface:
        """Build from DPDK-style devargs, e.g. ``net_memif0,role=client,id=0,socket=/tmp/m.sock``."""
        return cls(InterfaceConfig.from_devargs(devargs), socket=socket, on_up=on_up, on_down=on_down,
                   on_attempt_failed=on_attempt_failed)

    # ---- link state --------------------------------------------------------------------

    @property
    def is_up(self) -> bool:
        """True while the link is connected."""
        return self._state.link is not None

    @property
    def num_rx_queues(self) -> int:
        """RX queues of the current link (negotiated; 0 while down)."""
        link = self._state.link
        return len(link.rx) if link is not None else 0

    @property
    def num_tx_queues(self) -> int:
        """TX queues of the current link (negotiated; 0 while down)."""
        link = self._state.link
        return len(link.tx) if link is not None else 0

    @property
    def last_disconnect_reason(self) -> str | None:
        """The reason of the last disconnect or failed attempt, by either side."""
        return self._state.last_reason

    def wait_up(self, timeout_s: float | None = 5.0) -> None:
        """Block until the link is up; LinkTimeout (a TimeoutError) with the last disconnect
        reason if it is not up within ``timeout_s``; NotConnectedError if the interface closes."""
        state = self._state
        timeout_s = self._wait_timeout("wait_up", timeout_s, blocks=state.link is None and not state.closed)
        with state.cond:
            if not state.cond.wait_for(lambda: state.link is not None or state.closed, timeout_s):
                raise LinkTimeout(
                    f"memif interface {self} did not come up within {timeout_s} s; "
                    f"last disconnect reason: {state.last_reason or 'none'}"
                )
        if state.closed:
            raise NotConnectedError(f"memif interface {self} is closed")

    def wait_down(self, timeout_s: float | None = 5.0) -> None:
        """Block until the link is down; LinkTimeout (a TimeoutError) if it stays up."""
        state = self._state
        timeout_s = self._wait_timeout("wait_down", timeout_s, blocks=state.link is not None)
        with state.cond:
            if not state.cond.wait_for(lambda: state.link is None, timeout_s):
                raise LinkTimeout(f"memif interface {self} still up after {timeout_s} s")

    def _wait_timeout(self, what: str, timeout_s: object, *, blocks: bool = True) -> float | None:
        """A wait's ``timeout_s``, checked; SocketError(EDEADLK) on the control thread for one
        that ``blocks`` without a limit, or waits for a link change, which only that thread makes."""
        checked = check_timeout("timeout_s", timeout_s)
        if blocks and (checked is None or checked > 0) and self.socket.in_control_thread():
            raise SocketError(errno.EDEADLK, f"{what}() called from the control thread (an on_up/on_down "
                              "callback?) would wait for itself; pass timeout_s=0 there")
        return checked

    def disconnect(self, reason: str = "disconnected by user") -> None:
        """Send DISCONNECT with ``reason`` and drop the link (a client will reconnect if configured).
        ``reason``: a str; its UTF-8 is cut to the message's 95 bytes, as DPDK and libmemif cut it."""
        self.socket.disconnect(self._state, reason)

    def disconnect_soon(self, reason: str = "disconnected by user") -> Future[None]:
        """:meth:`disconnect` without waiting for the control thread: returns at once; the
        ``concurrent.futures.Future`` is done once DISCONNECT was sent and the link dropped."""
        return self.socket.disconnect_soon(self._state, reason)

    def close(self) -> None:
        """Disconnect, release every fd and mapping, and leave the socket. Idempotent."""
        state = self._state
        if state.closed:
            return
        try:
            self.socket.detach(state)
        finally:
            with state.cond:
                state.closed = True
                state.cond.notify_all()
            if self._own_socket:
                self.socket.close()

    def __enter__(self) -> Interface:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<memif_ct.Interface {self} {'up' if self.is_up else 'down'}>"

    def __str__(self) -> str:
        cfg = self.config
        return f"{cfg.name} ({cfg.role}, id={cfg.id}, socket={self.socket.display})"

    # ---- queues -------------------------------------------------------------------------

    def _queue(self, direction: str, queue: int) -> Queue | None:
        link = self._state.link
        if link is not None and type(queue) is int:  # the burst calls' path: as few steps as it takes
            queues = link.tx if direction == "tx" else link.rx
            if 0 <= queue < len(queues):
                return queues[queue]
        if type(queue) is not int and (isinstance(queue, bool) or not isinstance(queue, int)):
            raise ArgumentTypeError(f"queue must be an int, not {type(queue).__name__}")
        if link is None:
            return None
        queues = link.tx if direction == "tx" else link.rx
        if not 0 <= queue < len(queues):  # no negative indexing into the ring ends
            configured = self.config.tx_queues if direction == "tx" else self.config.rx_queues
            raise ArgumentError(
                f"queue={queue!r} is out of range: the link has {len(queues)} {direction} queue(s) "
                f"(configured {configured}), expected 0..{len(queues) - 1}"
            )
        return queues[queue]

    def tx_queue(self, queue: int = 0) -> Queue:
        """The :class:`~memif_ct.queue.Queue` of TX queue ``queue`` of the current link.

        It stays valid until the link goes down (then it moves nothing); NotConnectedError if
        the link is down now."""
        q = self._queue("tx", queue)
        if q is None:
            raise NotConnectedError(f"memif interface {self} is down: no TX queue {queue}")
        return q

    def rx_queue(self, queue: int = 0) -> Queue:
        """The :class:`~memif_ct.queue.Queue` of RX queue ``queue`` of the current link (see tx_queue)."""
        q = self._queue("rx", queue)
        if q is None:
            raise NotConnectedError(f"memif interface {self} is down: no RX queue {queue}")
        return q

    # ---- data path ----------------------------------------------------------------------

    def tx_burst(self, packets: Sequence[Packet], queue: int = 0) -> int:
        """Queue packets on TX queue ``queue``; returns how many were queued (a prefix).

        Packets longer than one buffer go out as descriptor chains. Returns 0 while down.
        ``packets`` must be a list or tuple (TypeError otherwise, e.g. for a generator or a
        single bytes object); a packet the ring can never carry raises ValueError naming its
        size, instead of returning 0 for ever.
        """
        q = self._queue("tx", queue)
        if q is None:
            check_packets(packets)  # a wrong type is an error even while the link is down
            return 0
        return q.tx_burst(packets)  # which checks the type itself

    def tx_burst_packed(self, data: object, lengths: object, queue: int = 0,
                        count: int | None = None) -> int:
        """Queue ``count`` (default: all) packets packed back to back in ``data``, their sizes
        in ``lengths``. Returns how many were queued (a prefix).

        ``data`` may be bytes or any C-contiguous buffer, read-only ones too (bytearray, mmap,
        memoryview, a numpy array of any dtype: its bytes are sent); ``lengths`` an
        ``array('I')`` or a numpy ``uint32`` array (any 1-D C-contiguous buffer of 32-bit
        unsigned ints), copied before use. TypeError for another type or dtype.
        """
        q = self._queue("tx", queue)
        if q is None:
            return 0
        return q.tx_packed(data, lengths, count)

    def rx_burst(self, max_packets: int = 256, queue: int = 0) -> list[bytes]:
        """Receive up to ``max_packets`` from RX queue ``queue``; chains come reassembled."""
        q = self._queue("rx", queue)
        if q is None:
            check_burst_size("max_packets", max_packets)  # a bad size is an error even while down
            return []
        return q.rx_burst(max_packets)  # which checks the size itself

    def rx_burst_into(self, out: object, lengths: object, queue: int = 0) -> int:
        """Receive into a caller's writable buffer; returns the count, lengths in ``lengths``.

        ``out`` may be any writable C-contiguous buffer (bytearray, mmap, a numpy array);
        packets land back to back from its start. ``lengths`` is a writable ``array('I')`` or
        numpy ``uint32`` array; its length is the most packets taken. If the next packet is
        larger than ``out`` it stays in the ring and ValueError says both sizes: call again
        with a bigger buffer."""
        q = self._queue("rx", queue)
        return 0 if q is None else q.rx_into(out, lengths)

    # ---- buffer API: no copies ------------------------------------------------------------

    def alloc_buffers(self, count: int, size: int = 1500, queue: int = 0) -> TxBuffers:
        """Up to ``count`` writable buffers of ``size`` bytes in shared memory, to fill in place
        and send with :meth:`tx_buffers` (as libmemif's ``memif_buffer_alloc``).

        A :class:`~memif_ct.TxBuffers`: a sequence of memoryviews, each of one whole buffer the
        peer cannot be reading, made when first asked for (``tx_buffers(bufs)`` needs none). ``size`` may be
        up to the buffer size (``bsize``, at most 65,535; larger packets: ``tx_burst``, which
        chains), ValueError naming the limit otherwise. Fewer than ``count`` (or none) when the
        ring and the pool are short of free buffers, or the link is down. A client's buffers
        come from its own pool (copy mode: the ring's buffers; ``zero-copy=yes``: its arena) and
        may be sent in any order; a server's are the ones the client posted, sent in the order
        handed out, and may be shorter than ``size`` if the client posted smaller ones.
        numpy: ``np.frombuffer(buf, np.uint8)`` writes straight into the buffer.
        """
        q = self._queue("tx", queue)
        if q is None:
            check_burst_size("count", count)
            return no_buffers()
        return q.alloc_buffers(count, size)

    def tx_buffers(self, bufs: Sequence[memoryview], lengths: object = None, queue: int = 0) -> int:
        """Send buffers :meth:`alloc_buffers` handed out, one packet each, without copying.

        ``lengths`` (a sequence of ints, ``array('I')`` or numpy ``uint32`` array) defaults to
        each view's length, so ``buf[:n]`` sends ``n`` bytes; for the TxBuffers itself (or a
        slice of it, or a buffer's own view), to each buffer's size as handed out, or what
        ``TxBuffers.write`` wrote. Returns how many were sent (a prefix); those views are
        released, the rest stay the caller's. ValueError for a view that did not come from
        ``alloc_buffers`` on this queue (or was sent already) or a length out of range; 0
        while the link is down.
        """
        q = self._queue("tx", queue)
        if q is None:
            check_packets(bufs, "bufs")
            return 0
        return q.tx_buffers(bufs, lengths)

    def free_buffers(self, bufs: Sequence[memoryview], queue: int = 0) -> None:
        """Give back buffers :meth:`alloc_buffers` handed out that will not be sent (their views
        are released). A server can give back only the ones handed out last. No-op while down."""
        q = self._queue("tx", queue)
        if q is None:
            check_packets(bufs, "bufs")
            return
        q.free_buffers(bufs)

    def rx_buffers(self, max_packets: int = 256, queue: int = 0) -> RxBurst:
        """Up to ``max_packets`` received packets as read-only memoryviews into shared memory,
        without copying (as libmemif's ``memif_rx_burst`` + ``memif_refill_queue``).

        >>> with intf.rx_buffers(256) as burst:  # doctest: +SKIP
        ...     for view in burst:
        ...         handle(view)

        A chain is one view: where its buffers are contiguous in memory it points there,
        otherwise the chain is assembled into scratch memory of the queue and the view points
        there. Leaving the ``with`` block (or ``burst.release()``, or the next ``rx_buffers`` /
        ``rx_burst`` on the queue) releases every view (using one then raises ValueError) and
        gives the slots back to the ring. Do not keep slices or numpy arrays made from a view
        past that: they are not released with it, and the peer reuses the memory.
        """
        q = self._queue("rx", queue)
        if q is None:
            check_burst_size("max_packets", max_packets)
            return RxBurst(None)
        return q.rx_buffers(max_packets)

    def wait_tx_drained(self, timeout_s: float = 1.0) -> bool:
        """Wait until the peer has consumed everything queued on every TX queue; True if so.

        A tool that sends and then closes calls this first, or the peer never sees the tail.
        """
        limit = self._wait_timeout("wait_tx_drained", timeout_s, blocks=timeout_s is None)
        deadline = float("inf") if limit is None else time.monotonic() + limit
        while True:
            link = self._state.link
            if link is None:
                return False
            if all(q.alive and q.free() == link.ring_size for q in link.tx):
                return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.001)

    def fileno(self, queue: int = 0) -> int:
        """The RX interrupt eventfd of ``queue`` for select/epoll; a new one after each reconnect.

        It turns readable when the peer signals; call ``wait_rx(queue, timeout_s=0)`` (which
        reads it) before sleeping on it again."""
        return self.rx_queue(queue).eventfd

    def wait_rx(self, queue: int = 0, timeout_s: float | None = None) -> bool:
        """Wait until RX queue ``queue`` has packets; True if any, False on timeout.

        Interrupt mode sleeps on the queue's eventfd (and consumes its signal); polling mode
        re-checks the ring every millisecond. Waits across link changes until the deadline;
        NotConnectedError once the interface is closed.
        """
        # On the control thread a finite wait only polls the ring (the link cannot change meanwhile).
        timeout_s = self._wait_timeout("wait_rx", timeout_s, blocks=timeout_s is None or self._state.link is None)
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        while True:
            if self._state.closed:
                raise NotConnectedError(f"memif interface {self} is closed")
            q = self._queue("rx", queue)
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            if q is not None and q.wait(left):
                return True
            if deadline is not None and time.monotonic() >= deadline:
                return False
            step = 0.05 if left is None else min(left, 0.05)
            if q is None:
                with self._state.cond:  # down: sleep until it is up again, or the deadline
                    self._state.cond.wait_for(lambda: self._state.link is not None or self._state.closed, step)
            elif not q.alive:  # detached, its link still the current one for a moment: never spin
                time.sleep(min(step, 0.005))

    # ---- introspection ------------------------------------------------------------------

    def stats(self) -> dict[str, Any]:
        """Per-queue counters, cumulative across reconnects.

        ``{"rx": [{"queue", "packets", "bytes", "errors", ...}, ...], "tx": [...], "link_ups": n}``
        with every field of ``memif_ct._native.STATS_FIELDS``; ``errors`` counts bad
        descriptors, impossible ring indexes and chains no correct sender publishes
        (``bad_chain``); ``skipped`` counts the slots given up when a peer's index jumped
        beyond the ring.
        """
        state = self._state
        with state.cond:  # link and totals from one instant: a link is never counted twice
            link = state.link
            snapshot = {d: [dict(t) for t in state.totals[d]] for d in ("rx", "tx")}
            link_ups = state.link_ups
        out: dict[str, Any] = {"link_ups": link_ups}
        for direction in ("rx", "tx"):
            totals = snapshot[direction]
            queues = (link.rx if direction == "rx" else link.tx) if link is not None else []
            for i, queue in enumerate(queues):
                while len(totals) <= i:
                    totals.append({})
                _add_stats(totals[i], queue.stats())
            configured = self.config.rx_queues if direction == "rx" else self.config.tx_queues
            while len(totals) < configured:
                totals.append({})
            rows = []
            for i, t in enumerate(totals):
                row = {"queue": i, **{name: t.get(name, 0) for name in _native.STATS_FIELDS}}
                row["errors"] = row["bad_desc"] + row["bad_ring"] + row["bad_chain"]
                rows.append(row)
            out[direction] = rows
        return out

    def details(self) -> dict[str, Any]:
        """Role, negotiated ring counts and sizes, regions, peer names, link state, last reason."""
        cfg = self.config
        link = self._state.link
        d: dict[str, Any] = {
            "name": cfg.name,
            "id": cfg.id,
            "role": cfg.role,
            "socket": self.socket.display,
            "mode": mode_name(cfg.mode),
            "interrupt": cfg.interrupt,
            "link": "up" if link is not None else "down",
            "zero_copy": link.zero_copy if link is not None else cfg.zero_copy,
            "link_ups": self._state.link_ups,
            "last_disconnect_reason": self._state.last_reason,
            "configured": {"rx_queues": cfg.rx_queues, "tx_queues": cfg.tx_queues,
                           "log2_ring_size": cfg.log2_ring_size, "buffer_size": cfg.buffer_size},
        }
        if link is not None:
            d.update(
                rx_queues=len(link.rx),
                tx_queues=len(link.tx),
                log2_ring_size=link.log2_ring_size,
                ring_size=link.ring_size,
                buffer_size=link.buffer_size,
                regions=[{"index": r.index, "size": r.size, "created": r.created, "hugepages": r.hugetlb}
                         for r in link.regions],
                peer_name=link.peer_name,
                peer_if_name=link.peer_if_name,
                up_for_s=round(time.monotonic() - link.up_since, 3),
            )
        return d
