"""The control channel's I/O: Unix sockets, SCM_RIGHTS, timers, and one thread per Socket.

protocol.py decides; this module moves bytes and file descriptors, and keeps each connection's
PendingLink (link.py: regions, queues, eventfds) until it becomes the interface's link or is
torn down. All of it runs on the Socket's control thread, which sleeps in select() and wakes
only for control events, timers or commands from user threads (protocol doc sections 1, 4).
"""

from __future__ import annotations

import array
import errno
import heapq
import itertools
import logging
import os
import queue
import selectors
import socket as _socket
import stat
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from types import TracebackType
from typing import TYPE_CHECKING, TypeVar

from . import _native, constants as c, protocol as p
from .config import resolve_socket, socket_address, socket_display
from .errors import ConfigError, MemifError, ProtocolError
from .link import LinkResources, PendingLink, close_fd, new_eventfd

if TYPE_CHECKING:
    from .interface import Interface

__all__ = ["Socket"]

log = logging.getLogger(__name__)

_ANCILLARY_SIZE = _socket.CMSG_SPACE(4 * 4) + _socket.CMSG_SPACE(3 * 4)  # a few fds + ucred
# Receive buffer: larger than a message so that a wrong size can be reported exactly in the
# DISCONNECT reason (with MSG_SIZE + 1 a 200-byte message read as "size 129").
_RECV_SIZE = 8 * c.MSG_SIZE
_T = TypeVar("_T")


# ---- one control connection ---------------------------------------------------------------


class _Connection:
    """One SOCK_SEQPACKET control connection and the handshake running on it."""

    _ids = itertools.count(1)

    def __init__(self, owner: Socket, sock: _socket.socket, machine: p.ClientHandshake | p.ServerHandshake,
                 interface: Interface | None) -> None:
        self.number = next(self._ids)
        self.owner = owner
        self.sock = sock
        self.machine = machine
        self.interface = interface  # client: always; server: once INIT named one
        self.is_client = isinstance(machine, p.ClientHandshake)
        self.pending = PendingLink()  # what the handshake builds, until it becomes self.link
        self.link: LinkResources | None = None
        self.closed = False
        self.deadline = time.monotonic() + (interface.config.handshake_timeout_s if interface else 5.0)

    def __repr__(self) -> str:
        side = "client" if self.is_client else "server"
        return f"<connection {self.number} {side} {self.owner.display}>"

    def release_pending(self) -> None:
        """Free what a handshake built but never handed over (or a torn-down link's rest)."""
        self.pending.release()


# ---- the Socket --------------------------------------------------------------------------


_Command = Callable[[], None]
_Timer = tuple[float, int, Callable[[], None]]


class Socket:
    """A memif control socket and the thread that serves it.

    Several interfaces may share one Socket, told apart by their id: pass the same Socket object
    to each. Server interfaces make it listen (binding the address, replacing a stale socket
    file left by a dead process); client interfaces connect from it. An Interface given a socket
    path instead of a Socket gets a private Socket that closes with it.
    """

    def __init__(self, path: str = c.DEFAULT_SOCKET, *, abstract: bool | None = None) -> None:
        self.name, self.abstract = resolve_socket(path, bool(abstract))
        self.address = socket_address(self.name, self.abstract)
        self.display = socket_display(self.name, self.abstract)
        self._interfaces: list[Interface] = []
        self._listener: _socket.socket | None = None
        self._connections: dict[int, _Connection] = {}
        self._selector = selectors.DefaultSelector()
        self._wakeup = new_eventfd()
        self._selector.register(self._wakeup, selectors.EVENT_READ, None)
        self._commands: queue.SimpleQueue[_Command] = queue.SimpleQueue()
        self._timers: list[_Timer] = []
        self._timer_seq = itertools.count()
        self._stopping = False
        self._closed = False
        self._thread = threading.Thread(target=self._run, name=f"memif-ct control {self.display}", daemon=True)
        self._thread.start()

    # -- public --

    @property
    def listening(self) -> bool:
        """True while a server interface keeps this socket bound and listening."""
        return self._listener is not None

    def close(self) -> None:
        """Disconnect every interface on this socket, stop listening and stop the thread."""
        if self._closed:
            return
        self._closed = True
        if threading.current_thread() is self._thread:
            raise RuntimeError("Socket.close() called from its own control thread")
        try:
            self.call(self._shutdown)
        finally:
            self._stopping = True
            self._wake()
            self._thread.join(timeout=10)
            if self._thread.is_alive():
                # Closing fds a live thread still uses could hand their numbers to other files.
                log.error("control thread of socket %s did not stop; leaving its fds open", self.display)
            else:
                self._selector.close()
                fd, self._wakeup = self._wakeup, -1
                close_fd(fd)

    def __enter__(self) -> Socket:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<memif_ct.Socket {self.display} interfaces={len(self._interfaces)}>"

    # -- used by Interface (any thread) --

    def call(self, fn: Callable[[], _T], timeout_s: float = 30.0) -> _T:
        """Run fn on the control thread and return its result (or raise its exception)."""
        if threading.current_thread() is self._thread:
            return fn()
        if self._stopping or not self._thread.is_alive():
            raise MemifError(f"socket {self.display} is closed")
        fut: Future[_T] = Future()

        def run() -> None:
            try:
                fut.set_result(fn())
            except BaseException as exc:  # handed to the caller
                fut.set_exception(exc)

        self._commands.put(run)
        self._wake()
        return fut.result(timeout=timeout_s)

    def add_interface(self, intf: Interface) -> None:
        self.call(lambda: self._add_interface(intf))

    def remove_interface(self, intf: Interface, reason: str = "interface closed") -> None:
        if self._stopping:
            return  # the socket closed first and took every interface down with it
        self.call(lambda: self._remove_interface(intf, reason))

    def disconnect_interface(self, intf: Interface, reason: str) -> None:
        self.call(lambda: self._disconnect_interface(intf, reason))

    # -- control thread --

    def _wake(self) -> None:
        fd = self._wakeup
        if fd < 0:
            return  # closed: its number may belong to another file now
        try:
            os.eventfd_write(fd, 1)
        except OSError:
            pass

    def _run(self) -> None:
        while not self._stopping:
            timeout = None
            if self._timers:
                timeout = max(0.0, self._timers[0][0] - time.monotonic())
            try:
                events = self._selector.select(timeout)
            except (OSError, ValueError):
                if self._stopping:
                    break
                raise
            for key, _mask in events:
                try:
                    if key.data is None:
                        os.eventfd_read(self._wakeup)
                    else:
                        key.data()
                except Exception:  # one broken connection must not stop the thread
                    log.exception("memif-ct control thread %s: unexpected error", self.display)
            self._run_commands()
            self._run_timers()
        self._run_commands()

    def _run_commands(self) -> None:
        while True:
            try:
                cmd = self._commands.get_nowait()
            except queue.Empty:
                return
            cmd()

    def _run_timers(self) -> None:
        now = time.monotonic()
        while self._timers and self._timers[0][0] <= now:
            _, _, fn = heapq.heappop(self._timers)
            try:
                fn()
            except Exception:
                log.exception("memif-ct control thread %s: timer failed", self.display)

    def _after(self, delay_s: float, fn: Callable[[], None]) -> None:
        heapq.heappush(self._timers, (time.monotonic() + delay_s, next(self._timer_seq), fn))

    def _shutdown(self) -> None:
        for intf in list(self._interfaces):
            self._remove_interface(intf, "socket closed")
        self._stop_listening()

    # -- interfaces --

    def _add_interface(self, intf: Interface) -> None:
        cfg = intf.config
        for other in self._interfaces:
            if other.config.id == cfg.id and other.config.role == cfg.role:
                raise ConfigError(
                    f"id={cfg.id} is already used by a {cfg.role} interface on socket {self.display}",
                    key="id", value=cfg.id,
                )
        if cfg.role == "server" and self._listener is None:
            self._listen()
        self._interfaces.append(intf)
        if cfg.role == "client":
            self._connect(intf)

    def _remove_interface(self, intf: Interface, reason: str) -> None:
        if intf not in self._interfaces:
            return
        self._interfaces.remove(intf)
        intf._closing = True
        self._disconnect_interface(intf, reason)
        if not any(i.config.role == "server" for i in self._interfaces):
            self._stop_listening()

    def _disconnect_interface(self, intf: Interface, reason: str) -> None:
        for conn in list(self._connections.values()):
            if conn.interface is intf:
                self._drop(conn, conn.machine.disconnect(reason))

    # -- server side --

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
        self._selector.register(sock, selectors.EVENT_READ, self._accept)
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
        path = self.name
        st = os.lstat(path)
        if not stat.S_ISSOCK(st.st_mode):
            raise ConfigError(f"socket={path} exists and is not a socket; refusing to replace it",
                              key="socket", value=path)
        probe = _socket.socket(_socket.AF_UNIX, _socket.SOCK_SEQPACKET | _socket.SOCK_CLOEXEC)
        try:
            probe.settimeout(1.0)
            probe.connect(path)
        except OSError as exc:
            if exc.errno not in (errno.ECONNREFUSED, errno.ENOENT):
                raise self._bind_error(exc) from exc
            log.warning("memif-ct: replacing stale socket file %s", path)
            try:
                os.unlink(path)
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
                self._drop(conn, conn.machine.disconnect("server socket closed"))
        self._selector.unregister(self._listener)
        self._listener.close()
        self._listener = None
        if not self.abstract:
            try:
                os.unlink(self.name)
            except FileNotFoundError:
                pass

    def _accept(self) -> None:
        assert self._listener is not None
        try:
            sock, _ = self._listener.accept()
        except (BlockingIOError, InterruptedError):
            return
        sock.setblocking(False)
        # max_region is the highest region *index* accepted: MAX_REGIONS regions fit the table.
        machine = p.ServerHandshake(app_name=self._server_app_name(), max_region=c.MAX_REGIONS - 1,
                                    cacheline_size=_native.cacheline_size())
        conn = _Connection(self, sock, machine, None)
        self._register(conn)
        self._process(conn, machine.start())

    def _server_app_name(self) -> str:
        for intf in self._interfaces:
            if intf.config.role == "server":
                return intf.config.app_name
        return "memif-ct"

    def _find_server(self, interface_id: int) -> Interface | None:
        for intf in self._interfaces:
            if intf.config.role == "server" and intf.config.id == interface_id:
                return intf
        return None

    # -- client side --

    def _connect(self, intf: Interface) -> None:
        if intf not in self._interfaces or intf._closing:
            return
        if any(conn.interface is intf for conn in self._connections.values()):
            return
        cfg = intf.config
        sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_SEQPACKET | _socket.SOCK_CLOEXEC)
        try:
            sock.connect(self.address)
        except OSError as exc:
            sock.close()
            intf._note_disconnect(f"connect to {self.display} failed: {exc.strerror}", local=True)
            self._schedule_reconnect(intf)
            return
        sock.setblocking(False)
        machine = p.ClientHandshake(
            id=cfg.id, mode=cfg.mode, secret=cfg.secret, app_name=cfg.app_name, if_name=cfg.name,
            num_s2m=cfg.tx_queues, num_m2s=cfg.rx_queues, log2_ring_size=cfg.log2_ring_size,
        )
        self._register(_Connection(self, sock, machine, intf))

    def _schedule_reconnect(self, intf: Interface) -> None:
        if intf.config.reconnect and intf in self._interfaces and not intf._closing:
            self._after(intf.config.reconnect_interval_s, lambda: self._connect(intf))

    def _client_memory(self, conn: _Connection, neg: p.Negotiated) -> list[p.Event]:
        assert conn.interface is not None and isinstance(conn.machine, p.ClientHandshake)
        regions, rings = conn.pending.create_client_memory(conn.interface.config, neg)
        return conn.machine.setup(regions, rings)

    # -- connection I/O --

    def _register(self, conn: _Connection) -> None:
        self._connections[conn.number] = conn
        self._selector.register(conn.sock, selectors.EVENT_READ, lambda: self._readable(conn))
        if conn.interface is not None:
            timeout = conn.interface.config.handshake_timeout_s
        else:
            # An accepted connection belongs to no interface until INIT names one: use the
            # shortest handshake_timeout_s of the server interfaces listening here (a fixed 5 s
            # ignored the configured value for silent and pre-INIT peers).
            timeout = min((i.config.handshake_timeout_s for i in self._interfaces
                           if i.config.role == "server"), default=5.0)
        conn.deadline = time.monotonic() + timeout
        self._after(timeout, lambda: self._handshake_timeout(conn))

    def _handshake_timeout(self, conn: _Connection) -> None:
        if conn.closed or conn.link is not None:
            return
        left = conn.deadline - time.monotonic()
        if left > 0:  # INIT moved the deadline to the interface's own timeout
            self._after(left, lambda: self._handshake_timeout(conn))
            return
        self._drop(conn, conn.machine.disconnect("handshake timeout"))

    def _readable(self, conn: _Connection) -> None:
        if conn.closed:
            return
        try:
            data, ancdata, flags, _addr = conn.sock.recvmsg(_RECV_SIZE, _ANCILLARY_SIZE)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as exc:
            self._peer_gone(conn, f"control channel error: {exc.strerror}")
            return
        fds = _fds_from(ancdata)
        try:
            if flags & _socket.MSG_CTRUNC:
                self._drop(conn, conn.machine.disconnect("control message truncated"))
                return
            if not data:
                self._peer_gone(conn, "peer closed the control channel")
                return
            if len(fds) > 1:
                self._drop(conn, conn.machine.disconnect(f"{len(fds)} fds in one message, expected 1"))
                return
            if flags & _socket.MSG_TRUNC:
                self._drop(conn, conn.machine.disconnect(
                    f"invalid message size above {_RECV_SIZE}, expected {c.MSG_SIZE}"))
                return
            try:
                msg = p.unpack(data)
            except ProtocolError as exc:
                self._drop(conn, conn.machine.disconnect(exc.reason))
                return
            log.debug("%r <- %s%s", conn, p.message_name(msg), " +fd" if fds else "")
            if isinstance(conn.machine, p.ServerHandshake):
                events = conn.machine.receive(msg, has_fd=bool(fds))
            else:
                events = conn.machine.receive(msg)
            self._process(conn, events, fds)
        finally:
            for fd in fds:
                close_fd(fd)  # every fd not claimed by an event

    def _process(self, conn: _Connection, events: list[p.Event], fds: list[int] | None = None) -> None:
        pending = list(events)
        while pending and not conn.closed:
            event = pending.pop(0)
            try:
                more = self._handle(conn, event, fds)
            except Exception as exc:
                # Any failure handling one connection (bad input, or a bug) drops that connection
                # with a reason; before, only ProtocolError/OSError/ValueError did, and anything
                # else escaped to the thread loop leaving the connection half open.
                reason = exc.reason if isinstance(exc, ProtocolError) else f"local error: {exc}"
                log.warning("%r: %s", conn, reason)
                more = conn.machine.disconnect(reason[:95])
                pending = []
            pending = more + pending

    def _handle(self, conn: _Connection, event: p.Event, fds: list[int] | None) -> list[p.Event]:
        if isinstance(event, p.Send):
            self._send(conn, event)
        elif isinstance(event, p.Negotiated):
            return self._client_memory(conn, event)
        elif isinstance(event, p.InitReceived):
            intf = self._find_server(event.init.id)
            params = None
            if intf is not None:
                cfg = intf.config
                busy = intf.is_up or any(
                    other.interface is intf for other in self._connections.values() if other is not conn
                )
                params = p.ServerInterfaceParams(
                    id=cfg.id, mode=cfg.mode, secret=cfg.secret, num_s2m=cfg.rx_queues, num_m2s=cfg.tx_queues,
                    if_name=cfg.name, already_connected=busy,
                )
            out = conn.machine.accept_init(params)  # type: ignore[union-attr]
            if intf is not None and not any(isinstance(e, p.Closed) for e in out):
                conn.interface = intf
                conn.deadline = time.monotonic() + intf.config.handshake_timeout_s
            elif intf is not None:
                intf._note_disconnect(_closed_reason(out), local=True)
            return out
        elif isinstance(event, p.RegionAdded):
            assert fds
            conn.pending.add_region_fd(event.index, fds.pop(), event.size)
        elif isinstance(event, p.RingAdded):
            assert fds
            conn.pending.add_ring(event, fds.pop())
        elif isinstance(event, p.ConnectRequest):
            assert isinstance(conn.machine, p.ServerHandshake)
            conn.link = conn.pending.server_link(conn.machine, event.peer_if_name)
            return conn.machine.connected()
        elif isinstance(event, p.Established):
            if isinstance(conn.machine, p.ClientHandshake):
                conn.link = conn.pending.client_link(conn.machine, event.peer_if_name)
            assert conn.interface is not None and conn.link is not None
            conn.interface._link_up(conn.link)
            log.info("%r: link up with %s (%s)", conn, conn.link.peer_if_name, conn.link.peer_name)
        elif isinstance(event, p.PeerDisconnect):
            pass  # the Closed(by_peer=True) that follows carries the same reason to _close
        elif isinstance(event, p.Closed):
            self._close(conn, event.reason, local=not event.by_peer)
        return []

    def _send(self, conn: _Connection, event: p.Send) -> None:
        data = p.pack(event.msg)
        anc: list[tuple[int, int, bytes]] = []
        if event.fd is not None:
            anc = [(_socket.SOL_SOCKET, _socket.SCM_RIGHTS, array.array("i", [event.fd]).tobytes())]
        log.debug("%r -> %s%s", conn, p.message_name(event.msg), " +fd" if anc else "")
        try:
            conn.sock.sendmsg([data], anc)
        except OSError as exc:
            if isinstance(event.msg, p.Disconnect):
                return  # the peer may be gone already; we are closing anyway
            raise OSError(exc.errno, f"send {p.message_name(event.msg)} failed: {exc.strerror}") from exc

    def _drop(self, conn: _Connection, events: list[p.Event]) -> None:
        self._process(conn, events)
        if not conn.closed:
            self._close(conn, "closed", local=True)

    def _peer_gone(self, conn: _Connection, reason: str) -> None:
        self._close(conn, reason, local=False)

    def _close(self, conn: _Connection, reason: str, *, local: bool) -> None:
        """Tear a connection down: link down first (the data path stops), then free everything.

        The interface learns ``reason`` here, for every way a connection ends (our DISCONNECT,
        the peer's, EOF, timeout), before or after its link was up, and only once the link is
        down: a user who sees the reason never sees is_up still true.
        """
        if conn.closed:
            return
        conn.closed = True
        self._connections.pop(conn.number, None)
        try:
            self._selector.unregister(conn.sock)
        except (KeyError, ValueError):
            pass
        conn.sock.close()
        intf = conn.interface
        if conn.link is not None:
            if intf is not None:
                intf._link_down(conn.link, reason)
            conn.link.close()
            conn.link = None
        conn.release_pending()
        log.info("%r closed: %s", conn, reason)
        if intf is not None:
            intf._note_disconnect(reason, local=local)
        if intf is not None and conn.is_client:
            self._schedule_reconnect(intf)


def _closed_reason(events: list[p.Event]) -> str:
    for e in events:
        if isinstance(e, p.Closed):
            return e.reason
    return ""


def _fds_from(ancdata: list[tuple[int, int, bytes]]) -> list[int]:
    fds: list[int] = []
    for level, kind, data in ancdata:
        if level == _socket.SOL_SOCKET and kind == _socket.SCM_RIGHTS:
            arr = array.array("i")
            arr.frombytes(data[: len(data) - len(data) % arr.itemsize])
            fds.extend(arr)
    return fds



