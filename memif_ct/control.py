"""The control plane: a memif control socket that listens, dials and runs the handshakes.

handshake.py decides; this module moves bytes and file descriptors over SOCK_SEQPACKET sockets
(SCM_RIGHTS), keeps each connection's PendingLink (link.py) until it becomes a Link, and reports
to whoever registered with it through :class:`LinkListener`, on the control thread of its
:class:`~memif_ct.eventloop.EventLoop` (protocol doc sections 1 and 4). It never imports the user
API: an interface is an ``InterfaceConfig`` plus a listener here.
"""

from __future__ import annotations

import array
import errno
import itertools
import logging
import os
import socket as _socket
import stat
import time
from collections.abc import Callable
from types import TracebackType
from typing import Protocol

from . import constants as c, handshake as hs, wire
from .config import InterfaceConfig, resolve_socket, socket_address, socket_display
from .errors import ConfigError, ProtocolError, SocketError
from .eventloop import EventLoop, Timer
from .link import Link, PendingLink, close_fd

__all__ = ["LinkListener", "Socket"]

log = logging.getLogger(__name__)

_ANCILLARY_SIZE = _socket.CMSG_SPACE(4 * 4) + _socket.CMSG_SPACE(3 * 4)  # a few fds + ucred
# Receive buffer: larger than a message so that a wrong size can be reported exactly in the
# DISCONNECT reason (with MSG_SIZE + 1 a 200-byte message read as "size 129").
_RECV_SIZE = 8 * c.MSG_SIZE
_DIAL_RETRY_S = 0.05  # a full backlog: try again this soon, until the handshake timeout
_ACCEPT_BACKOFF_S = (0.05, 1.0)  # out of fds: stop accepting this long, doubling up to the max


class LinkListener(Protocol):
    """What a Socket reports to, on its control thread. Implementations must not block."""

    def link_up(self, link: Link) -> None:
        """The link is connected; ``link`` holds its queues and regions until link_down."""

    def link_down(self, link: Link, reason: str) -> None:
        """The link is going down; its queues are detached and unmapped right after this."""

    def attempt_failed(self, reason: str) -> None:
        """A connection attempt ended before the link came up (a client retries on its timer)."""


class _Endpoint:
    """One registered interface."""

    def __init__(self, config: InterfaceConfig, listener: LinkListener) -> None:
        self.config = config
        self.listener = listener
        self.connection: _Connection | None = None  # the one connection bound to it
        self.removed = False
        self.retry: Timer | None = None
        self.dial_deadline: float | None = None


class _Connection:
    """One SOCK_SEQPACKET control connection and the handshake running on it."""

    _ids = itertools.count(1)

    def __init__(self, sock: _socket.socket, machine: hs.Handshake,
                 endpoint: _Endpoint | None, display: str) -> None:
        self.number = next(self._ids)
        self.sock = sock
        self.machine = machine
        self.endpoint = endpoint  # client: always; server: once INIT named one
        self.is_client = isinstance(machine, hs.ClientHandshake)
        self.pending = PendingLink()  # what the handshake builds, until it becomes self.link
        self.link: Link | None = None
        self.closed = False
        self.deadline = 0.0
        self.display = display

    def __repr__(self) -> str:
        return f"<connection {self.number} {'client' if self.is_client else 'server'} {self.display}>"


class Socket:
    """A memif control socket and the control thread that serves it.

    Several interfaces may share one Socket, told apart by their id: pass the same Socket object
    to each. Server interfaces make it listen (binding the address, replacing a stale socket
    file left by a dead process); client interfaces dial from it. The thread starts with the
    first interface.
    """

    def __init__(self, path: str = c.DEFAULT_SOCKET, *, abstract: bool | None = None) -> None:
        self.name, self.abstract = resolve_socket(path, bool(abstract))
        self.address = socket_address(self.name, self.abstract)
        self.display = socket_display(self.name, self.abstract)
        self._loop = EventLoop(self.display)
        self._endpoints: list[_Endpoint] = []
        self._listener: _socket.socket | None = None
        self._accept_backoff = 0.0
        self._connections: dict[int, _Connection] = {}
        self._closed = False

    @property
    def listening(self) -> bool:
        """True while a server interface keeps this socket bound and listening."""
        return self._listener is not None

    def attach(self, config: InterfaceConfig, listener: LinkListener) -> None:
        """Register an interface: a server starts listening, a client dials at once."""
        if self._closed:
            raise SocketError(errno.EBADF, f"socket {self.display} is closed")
        self._loop.call(lambda: self._attach(config, listener))

    def detach(self, listener: LinkListener, reason: str = "interface closed") -> None:
        """Unregister an interface, dropping its connection with ``reason``. Idempotent."""
        if not self._closed:
            self._loop.call(lambda: self._detach(listener, reason))

    def disconnect(self, listener: LinkListener, reason: str) -> None:
        """Send DISCONNECT with ``reason`` on the interface's connection and drop it."""
        if not self._closed:
            self._loop.call(lambda: self._disconnect(listener, reason))

    def close(self) -> None:
        """Disconnect every interface on this socket, stop listening and stop the thread."""
        if self._closed:
            return
        if self._loop.in_loop_thread():
            raise SocketError(errno.EDEADLK, "Socket.close() called from its own control thread (an on_up/on_down "
                              "callback?): it would wait for itself")
        self._closed = True
        try:
            if self._loop.running:
                self._loop.call(self._shutdown)
        finally:
            self._loop.stop()

    def __enter__(self) -> Socket:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<memif_ct.Socket {self.display} interfaces={len(self._endpoints)}>"

    # ---- interfaces (control thread) -----------------------------------------------------

    def _find(self, listener: LinkListener) -> _Endpoint | None:
        return next((ep for ep in self._endpoints if ep.listener is listener), None)

    def _attach(self, config: InterfaceConfig, listener: LinkListener) -> None:
        for other in self._endpoints:
            if other.config.id == config.id and other.config.role == config.role:
                raise ConfigError(f"id={config.id} is already used by a {config.role} interface on socket "
                                  f"{self.display}", key="id", value=config.id)
        if config.role == "server" and self._listener is None:
            self._listen()
        ep = _Endpoint(config, listener)
        self._endpoints.append(ep)
        if config.role == "client":
            self._dial(ep)

    def _detach(self, listener: LinkListener, reason: str) -> None:
        ep = self._find(listener)
        if ep is None:
            return
        ep.removed = True
        if ep.retry is not None:
            ep.retry.cancel()
        self._endpoints.remove(ep)
        if ep.connection is not None:
            self._drop(ep.connection, reason)
        if not any(e.config.role == "server" for e in self._endpoints):
            self._stop_listening()

    def _disconnect(self, listener: LinkListener, reason: str) -> None:
        ep = self._find(listener)
        if ep is not None and ep.connection is not None:
            self._drop(ep.connection, reason)

    def _shutdown(self) -> None:
        for ep in list(self._endpoints):
            self._detach(ep.listener, "socket closed")
        self._stop_listening()

    @staticmethod
    def _report(fn: Callable[[], None], what: str) -> None:
        """Call a listener: its failure is logged and never breaks the control plane."""
        try:
            fn()
        except Exception:
            log.exception("memif-ct: %s raised", what)

    # ---- server --------------------------------------------------------------------------

    def _listen(self) -> None:
        sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_SEQPACKET | _socket.SOCK_CLOEXEC)
        try:
            sock.setsockopt(_socket.SOL_SOCKET, _socket.SO_PASSCRED, 1)
            try:
                sock.bind(self.address)
            except OSError as exc:
                if exc.errno != errno.EADDRINUSE or self.abstract:
                    raise self._bind_error(exc) from exc
                self._replace_stale_socket_file()
                try:
                    sock.bind(self.address)
                except OSError as exc2:
                    raise self._bind_error(exc2) from exc2
            sock.listen(16)
            sock.setblocking(False)
        except BaseException:
            sock.close()
            raise
        self._listener = sock
        self._loop.register(sock, self._accept)
        log.info("memif-ct: listening on %s", self.display)

    def _bind_error(self, exc: OSError) -> ConfigError:
        if exc.errno == errno.EADDRINUSE:
            msg = (f"socket={self.display}: a live memif server already listens there (to put several "
                   "interfaces on one socket in one process, pass them the same memif_ct.Socket)")
        else:
            msg = f"socket={self.display}: cannot listen: {exc.strerror}"
        return ConfigError(msg, key="socket", value=self.display)

    def _replace_stale_socket_file(self) -> None:
        """A socket file nobody accepts on is left by a dead server: replace it (protocol s1)."""
        st = os.lstat(self.name)
        if not stat.S_ISSOCK(st.st_mode):
            raise ConfigError(f"socket={self.name} exists and is not a socket; refusing to replace it",
                              key="socket", value=self.name)
        probe = _socket.socket(_socket.AF_UNIX, _socket.SOCK_SEQPACKET | _socket.SOCK_CLOEXEC)
        try:
            probe.settimeout(1.0)
            probe.connect(self.name)
        except OSError as exc:
            if exc.errno not in (errno.ECONNREFUSED, errno.ENOENT):
                raise self._bind_error(exc) from exc
            log.warning("memif-ct: replacing stale socket file %s", self.name)
            try:
                os.unlink(self.name)
            except FileNotFoundError:
                pass
            return
        finally:
            probe.close()
        raise self._bind_error(OSError(errno.EADDRINUSE, os.strerror(errno.EADDRINUSE)))

    def _stop_listening(self) -> None:
        if self._listener is None:
            return
        for conn in list(self._connections.values()):
            if not conn.is_client:
                self._drop(conn, "server socket closed")
        self._loop.unregister(self._listener)
        self._listener.close()
        self._listener = None
        if not self.abstract:
            try:
                os.unlink(self.name)
            except FileNotFoundError:
                pass

    def _accept(self) -> None:
        listener = self._listener
        assert listener is not None
        try:
            sock, _ = listener.accept()
        except (BlockingIOError, InterruptedError):
            return
        except OSError as exc:
            # Out of fds or memory: the pending connection stays queued and the listener stays
            # readable, so stop watching it for a while instead of spinning.
            self._accept_backoff = min(max(self._accept_backoff * 2, _ACCEPT_BACKOFF_S[0]), _ACCEPT_BACKOFF_S[1])
            log.warning("memif-ct: accept on %s failed (%s); pausing accepts for %.2f s",
                        self.display, exc.strerror, self._accept_backoff)
            self._loop.unregister(listener)
            self._loop.call_later(self._accept_backoff, self._resume_accepting)
            return
        self._accept_backoff = 0.0
        sock.setblocking(False)
        app_name = next((e.config.app_name for e in self._endpoints if e.config.role == "server"), "memif-ct")
        # max_region is the highest region *index* accepted: MAX_REGIONS regions fit the table.
        machine = hs.ServerHandshake(app_name=app_name, max_region=c.MAX_REGIONS - 1)
        timeout = min((e.config.handshake_timeout_s for e in self._endpoints if e.config.role == "server"),
                      default=c.DEFAULT_HANDSHAKE_TIMEOUT_S)
        self._start(_Connection(sock, machine, None, self.display), timeout)

    def _resume_accepting(self) -> None:
        if self._listener is not None:
            self._loop.register(self._listener, self._accept)

    # ---- client --------------------------------------------------------------------------

    def _dial(self, ep: _Endpoint) -> None:
        ep.retry = None
        if ep.removed or ep.connection is not None:
            return
        cfg = ep.config
        if ep.dial_deadline is None:
            ep.dial_deadline = time.monotonic() + cfg.handshake_timeout_s
        sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_SEQPACKET | _socket.SOCK_CLOEXEC | _socket.SOCK_NONBLOCK)
        try:
            sock.connect(self.address)  # never blocks: a full backlog is EAGAIN at once
        except BlockingIOError:
            sock.close()
            if time.monotonic() < ep.dial_deadline:
                ep.retry = self._loop.call_later(_DIAL_RETRY_S, lambda: self._dial(ep))
                return
            self._failed(ep, f"connect to {self.display} timed out: the server does not accept connections")
            return
        except OSError as exc:
            sock.close()
            self._failed(ep, f"connect to {self.display} failed: {exc.strerror}")
            return
        ep.dial_deadline = None
        machine = hs.ClientHandshake(
            id=cfg.id, mode=cfg.mode, secret=cfg.secret, app_name=cfg.app_name, if_name=cfg.name,
            num_s2m=cfg.tx_queues, num_m2s=cfg.rx_queues, log2_ring_size=cfg.log2_ring_size,
        )
        conn = _Connection(sock, machine, ep, self.display)
        ep.connection = conn
        self._start(conn, cfg.handshake_timeout_s)

    def _failed(self, ep: _Endpoint, reason: str) -> None:
        """An attempt of ``ep`` ended before its link came up: report it, retry a client."""
        ep.dial_deadline = None
        log.debug("memif-ct %s id=%d: %s", self.display, ep.config.id, reason)
        self._report(lambda: ep.listener.attempt_failed(reason), "attempt_failed listener")
        self._redial_later(ep)

    def _redial_later(self, ep: _Endpoint) -> None:
        cfg = ep.config
        if cfg.role == "client" and cfg.reconnect and not ep.removed and ep.retry is None:
            ep.retry = self._loop.call_later(cfg.reconnect_interval_s, lambda: self._dial(ep))

    # ---- one connection ------------------------------------------------------------------

    def _start(self, conn: _Connection, timeout_s: float) -> None:
        self._connections[conn.number] = conn
        self._loop.register(conn.sock, lambda: self._readable(conn))
        conn.deadline = time.monotonic() + timeout_s
        self._loop.call_later(timeout_s, lambda: self._check_deadline(conn))
        self._process(conn, conn.machine.start())

    def _check_deadline(self, conn: _Connection) -> None:
        if conn.closed or conn.link is not None:
            return
        left = conn.deadline - time.monotonic()
        if left > 0:  # INIT moved the deadline to the interface's own timeout
            self._loop.call_later(left, lambda: self._check_deadline(conn))
            return
        self._drop(conn, "handshake timeout")

    def _readable(self, conn: _Connection) -> None:
        if conn.closed:
            return
        try:
            data, ancdata, flags, _addr = conn.sock.recvmsg(_RECV_SIZE, _ANCILLARY_SIZE)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as exc:
            self._close(conn, f"control channel error: {exc.strerror}")
            return
        fds = _fds_from(ancdata)
        try:
            if not data and not flags & _socket.MSG_CTRUNC:
                self._close(conn, "peer closed the control channel")
                return
            problem = ("control message truncated" if flags & _socket.MSG_CTRUNC
                       else f"{len(fds)} fds in one message, expected 1" if len(fds) > 1
                       else f"invalid message size above {_RECV_SIZE}, expected {c.MSG_SIZE}"
                       if flags & _socket.MSG_TRUNC else None)
            if problem is not None:
                self._drop(conn, problem)
                return
            try:
                msg = wire.unpack(data)
            except ProtocolError as exc:
                self._drop(conn, exc.reason)
                return
            log.debug("%r <- %s%s", conn, wire.message_name(msg), " +fd" if fds else "")
            self._process(conn, conn.machine.receive(msg, has_fd=bool(fds)), fds)
        finally:
            for fd in fds:
                close_fd(fd)  # every fd not claimed by an event

    def _process(self, conn: _Connection, events: list[hs.Event], fds: list[int] | None = None) -> None:
        pending = list(events)
        while pending and not conn.closed:
            event = pending.pop(0)
            try:
                more = self._handle(conn, event, fds)
            except Exception as exc:
                # Any failure handling one connection (bad input, or a bug) drops that
                # connection with a reason, never the control thread.
                reason = exc.reason if isinstance(exc, ProtocolError) else f"local error: {exc}"
                log.warning("%r: %s", conn, reason)
                more, pending = conn.machine.disconnect(reason[:95]), []
            pending = more + pending

    def _handle(self, conn: _Connection, event: hs.Event, fds: list[int] | None) -> list[hs.Event]:
        machine = conn.machine
        if isinstance(event, hs.Send):
            self._send(conn, event)
        elif isinstance(event, hs.Negotiated):
            assert conn.endpoint is not None and isinstance(machine, hs.ClientHandshake)
            regions, rings = conn.pending.create_client_memory(conn.endpoint.config, event)
            return machine.setup(regions, rings)
        elif isinstance(event, hs.InitReceived):
            assert isinstance(machine, hs.ServerHandshake)
            return self._on_init(conn, machine, event.init)
        elif isinstance(event, hs.RegionAdded):
            assert fds
            conn.pending.add_region_fd(event.index, fds.pop(), event.size)
        elif isinstance(event, hs.RingAdded):
            assert fds
            conn.pending.add_ring(event, fds.pop())
        elif isinstance(event, hs.ConnectRequest):
            assert isinstance(machine, hs.ServerHandshake)
            conn.link = conn.pending.server_link(machine, event.peer_if_name)
            return machine.connected()
        elif isinstance(event, hs.Established):
            if isinstance(machine, hs.ClientHandshake):
                conn.link = conn.pending.client_link(machine, event.peer_if_name)
            link, ep = conn.link, conn.endpoint
            assert ep is not None and link is not None
            log.info("%r: link up with %s (%s)", conn, link.peer_if_name, link.peer_name)
            self._report(lambda: ep.listener.link_up(link), "link_up listener")
        elif isinstance(event, hs.Closed):
            self._close(conn, event.reason)
        return []

    def _on_init(self, conn: _Connection, machine: hs.ServerHandshake, init: wire.Init) -> list[hs.Event]:
        ep = next((e for e in self._endpoints if e.config.role == "server" and e.config.id == init.id), None)
        params = None
        if ep is not None:
            cfg = ep.config
            params = hs.ServerInterfaceParams(
                id=cfg.id, mode=cfg.mode, secret=cfg.secret, num_s2m=cfg.rx_queues, num_m2s=cfg.tx_queues,
                if_name=cfg.name, already_connected=ep.connection is not None,
            )
        out = machine.accept_init(params)
        closed = next((e for e in out if isinstance(e, hs.Closed)), None)
        if ep is not None and closed is None:
            conn.endpoint = ep
            ep.connection = conn
            conn.deadline = time.monotonic() + ep.config.handshake_timeout_s
        elif ep is not None and closed is not None:
            reason = closed.reason
            self._report(lambda: ep.listener.attempt_failed(reason), "attempt_failed listener")
        return out

    def _send(self, conn: _Connection, event: hs.Send) -> None:
        data = wire.pack(event.msg)
        anc = [] if event.fd is None else [
            (_socket.SOL_SOCKET, _socket.SCM_RIGHTS, array.array("i", [event.fd]).tobytes())]
        log.debug("%r -> %s%s", conn, wire.message_name(event.msg), " +fd" if anc else "")
        try:
            conn.sock.sendmsg([data], anc)
        except OSError as exc:
            if isinstance(event.msg, wire.Disconnect):
                return  # the peer may be gone already; we are closing anyway
            raise SocketError(exc.errno, f"send {wire.message_name(event.msg)} failed: {exc.strerror}") from exc

    def _drop(self, conn: _Connection, reason: str) -> None:
        """Our decision: tell the peer why (DISCONNECT), then close."""
        self._process(conn, conn.machine.disconnect(reason))
        if not conn.closed:
            self._close(conn, reason)

    def _close(self, conn: _Connection, reason: str) -> None:
        """Tear a connection down: link down first (the data path stops), then free everything.

        The listener learns ``reason`` for every way a connection ends (our DISCONNECT, the
        peer's, EOF, timeout), before or after its link was up.
        """
        if conn.closed:
            return
        conn.closed = True
        self._connections.pop(conn.number, None)
        self._loop.unregister(conn.sock)
        conn.sock.close()
        ep = conn.endpoint
        if ep is not None and ep.connection is conn:
            ep.connection = None
        link, conn.link = conn.link, None
        if link is not None:
            if ep is not None:
                self._report(lambda: ep.listener.link_down(link, reason), "link_down listener")
            link.close()
        conn.pending.release()
        log.info("%r closed: %s", conn, reason)
        if ep is not None and link is None:
            self._failed(ep, reason)
        elif ep is not None:
            self._redial_later(ep)


def _fds_from(ancdata: list[tuple[int, int, bytes]]) -> list[int]:
    fds: list[int] = []
    for level, kind, data in ancdata:
        if level == _socket.SOL_SOCKET and kind == _socket.SCM_RIGHTS:
            arr = array.array("i")
            arr.frombytes(data[: len(data) - len(data) % arr.itemsize])
            fds.extend(arr)
    return fds
