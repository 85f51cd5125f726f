"""The control plane: a memif control socket that listens, dials and runs the handshakes.

A Socket binds and listens for server interfaces, dials (never blocking) for client interfaces,
and owns the Connections (connection.py) that run one handshake each. It reports to whoever
registered with it through :class:`LinkListener`, on the control thread of its
:class:`~memif_ct.eventloop.EventLoop` (protocol doc sections 1 and 4). It never imports the user
API: an interface is an ``InterfaceConfig`` plus a listener here.
"""

from __future__ import annotations

import errno
import logging
import os
import resource
import socket as _socket
import stat
import struct
import time
from collections import Counter, deque
from collections.abc import Callable
from concurrent.futures import Future
from types import TracebackType
from typing import Protocol

from . import constants as c, handshake as hs, wire
from .config import InterfaceConfig, default_socket_path, resolve_socket, socket_address, socket_display
from .connection import Connection
from .errors import ConfigError, SocketError
from .eventloop import EventLoop, Timer
from .link import Link

__all__ = ["LinkListener", "Socket"]

log = logging.getLogger(__name__)

_DIAL_RETRY_S = 0.05  # a full backlog: try again this soon, until the handshake timeout
_ACCEPT_BACKOFF_S = (0.05, 1.0)  # out of fds: stop accepting this long, doubling up to the max
_SECRET_BACKOFF_S = (0.05, 2.0)  # after a wrong secret, space the next checks this far apart
_HALF_OPEN_S = 1.0  # a client that stalls after INIT yields its interface to a newer one after this
_UCRED = struct.Struct("3i")  # SO_PEERCRED: pid, uid, gid


class LinkListener(Protocol):
    """What a Socket reports to, on its control thread. Implementations must not block."""

    def link_up(self, link: Link) -> None:
        """The link is connected; ``link`` holds its queues and regions until link_down."""

    def link_down(self, link: Link, reason: str) -> None:
        """The link is going down; its queues are detached and unmapped right after this."""

    def attempt_failed(self, reason: str) -> None:
        """A connection attempt ended before the link came up (a client retries on its timer)."""


class _SecretGate:
    """One peer uid's secret checks on one server interface, after that uid sent a wrong secret:
    one check every ``backoff`` seconds (doubling with each wrong one, up to a cap), in the
    order the INITs came; a right secret ends it. A connection that closes while it waits
    gives its turn up, so a peer cannot push the checks of those after it back by sending
    INITs and leaving; and the uids are apart, so one uid's guessing never delays another's."""

    __slots__ = ("backoff", "next_at", "timer", "waiting")

    def __init__(self) -> None:
        self.backoff = 0.0
        self.next_at = 0.0  # monotonic time of the next check
        self.waiting: deque[tuple[Connection, wire.Init]] = deque()
        self.timer: Timer | None = None  # set while INITs wait


class _Endpoint:
    """One registered interface."""

    def __init__(self, config: InterfaceConfig, listener: LinkListener) -> None:
        self.config = config
        self.listener = listener
        self.connection: Connection | None = None  # the one connection bound to it
        self.removed = False
        self.retry: Timer | None = None
        self.dial_deadline: float | None = None
        self.bound_at = 0.0  # when the current connection was bound to it
        self.secret_gates: dict[int, _SecretGate] = {}  # by peer uid, while it is being slowed down


class Socket:
    """A memif control socket and the control thread that serves it.

    Several interfaces may share one Socket, told apart by their id: pass the same Socket object
    to each. Server interfaces make it listen (binding the address, replacing a stale socket
    file left by a dead process); client interfaces dial from it. The thread starts with the
    first interface.
    """

    def __init__(self, path: str | None = None, *, abstract: bool | None = None) -> None:
        self.name, self.abstract = resolve_socket(default_socket_path() if path is None else path, abstract,
                                                  "path", "abstract")
        self.address = socket_address(self.name, self.abstract)
        self.display = socket_display(self.name, self.abstract)
        self._loop = EventLoop(self.display)
        self._endpoints: list[_Endpoint] = []
        self._listener: _socket.socket | None = None
        self._accept_backoff = 0.0
        self._connections: dict[int, Connection] = {}
        self._by_connection: dict[int, _Endpoint] = {}  # connection number -> the interface it serves
        self._deadlines: dict[int, Timer] = {}  # connection number -> its handshake deadline's timer
        self._handshaking: dict[int, int] = {}  # accepted connection not up yet -> its peer's uid
        self._handshakes_by_uid: Counter[int] = Counter()  # what pending_cap() bounds
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

    def in_control_thread(self) -> bool:
        """True on this socket's control thread (in an on_up/on_down callback): a wait there for
        what only that thread can bring would wait for ever."""
        return self._loop.in_loop_thread()

    def disconnect(self, listener: LinkListener, reason: str) -> None:
        """Send DISCONNECT with ``reason`` on the interface's connection and drop it."""
        wire.check_text("reason", reason, c.DISCONNECT_STRING_SIZE)  # here, in the caller's thread
        if not self._closed:
            self._loop.call(lambda: self._disconnect(listener, reason))

    def disconnect_soon(self, listener: LinkListener, reason: str) -> Future[None]:
        """:meth:`disconnect` without waiting: the Future is done once DISCONNECT went out."""
        wire.check_text("reason", reason, c.DISCONNECT_STRING_SIZE)
        if self._closed:
            done: Future[None] = Future()
            done.set_result(None)
            return done
        return self._loop.submit(lambda: self._disconnect(listener, reason))

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
            self._listen(config)
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
            ep.connection.drop(reason)
        if not any(e.config.role == "server" for e in self._endpoints):
            self._stop_listening()

    def _disconnect(self, listener: LinkListener, reason: str) -> None:
        ep = self._find(listener)
        if ep is not None and ep.connection is not None:
            ep.connection.drop(reason)

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

    def _listen(self, config: InterfaceConfig) -> None:
        """Bind for the first server interface: its socket-mode and owner-uid/gid apply."""
        sock = bind_listener(self.name, self.abstract, mode=config.socket_mode)
        if not self.abstract and (config.owner_uid is not None or config.owner_gid is not None):
            try:
                os.chown(self.name, -1 if config.owner_uid is None else config.owner_uid,
                         -1 if config.owner_gid is None else config.owner_gid,
                         follow_symlinks=False)  # (a link swapped in since bind() is not followed)
            except OSError as exc:
                sock.close()
                os.unlink(self.name)
                raise ConfigError(f"owner-uid/owner-gid: cannot chown {self.name}: {exc.strerror}",
                                  key="owner-uid" if config.owner_uid is not None else "owner-gid",
                                  value=config.owner_uid if config.owner_uid is not None else config.owner_gid) from exc
        self._listener = sock
        self._loop.register(sock, self._accept)
        log.info("memif-ct: listening on %s", self.display)

    def _stop_listening(self) -> None:
        if self._listener is None:
            return
        for conn in list(self._connections.values()):
            if not conn.is_client:
                conn.drop("server socket closed")
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
        conn = Connection(self, sock, machine, None, self.display)
        conn.peer_uid = peer_uid(sock)
        waiting = self._handshakes_by_uid[conn.peer_uid]
        self._handshaking[conn.number] = conn.peer_uid
        self._handshakes_by_uid[conn.peer_uid] += 1
        self._start(conn, timeout)
        if waiting >= pending_cap():  # (a quarter of our fds: one uid's silent peers cannot take them all)
            conn.drop(f"too many handshakes in progress from uid {conn.peer_uid}")

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
        uid = peer_uid(sock)
        if cfg.allowed_uids is not None and uid not in cfg.allowed_uids:
            sock.close()
            self._failed(ep, f"server uid {uid} is not in allowed-uids")
            return
        machine = hs.ClientHandshake(
            id=cfg.id, mode=cfg.mode, secret=cfg.secret, app_name=cfg.app_name, if_name=cfg.name,
            num_s2m=cfg.tx_queues, num_m2s=cfg.rx_queues, log2_ring_size=cfg.log2_ring_size,
        )
        conn = Connection(self, sock, machine, cfg, self.display)
        self._bind(conn, ep)
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

    def _start(self, conn: Connection, timeout_s: float) -> None:
        self._connections[conn.number] = conn
        self._loop.register(conn.sock, conn.readable)
        conn.deadline = time.monotonic() + timeout_s
        self._deadlines[conn.number] = self._loop.call_later(timeout_s, lambda: self._check_deadline(conn))
        conn.start()

    def _check_deadline(self, conn: Connection) -> None:
        if conn.closed or conn.link is not None:
            return
        left = conn.deadline - time.monotonic()
        if left > 0:  # INIT moved the deadline to the interface's own timeout
            self._deadlines[conn.number] = self._loop.call_later(left, lambda: self._check_deadline(conn))
            return
        conn.drop("handshake timeout")

    def connection_init(self, conn: Connection, init: wire.Init) -> list[hs.Event]:
        """ConnectionOwner: the server interface INIT names checks it (protocol s4).

        While wrong secrets keep coming from a peer uid, that uid's checks are spaced out
        (_SecretGate), so guessing a secret costs time; a right secret resets that. An INIT that
        would wait past its connection's deadline is refused at once, unchecked: what waits is
        bounded by the deadline, whatever the peer sends."""
        ep = self._server_endpoint(init.id)
        gate = ep.secret_gates.get(conn.peer_uid) if ep is not None else None
        if ep is None or gate is None:
            return self._check_init(conn, init)
        gate.waiting = deque(w for w in gate.waiting if not w[0].closed)
        now = time.monotonic()
        if not gate.waiting and now >= gate.next_at:
            return self._check_init(conn, init)
        if max(gate.next_at, now) + len(gate.waiting) * gate.backoff >= conn.deadline:
            return conn.machine.disconnect("Too many wrong secrets: try again later")
        gate.waiting.append((conn, init))
        if gate.timer is None:
            uid = conn.peer_uid
            gate.timer = self._loop.call_later(max(gate.next_at - now, 0.0), lambda: self._open_gate(ep, uid))
        return []

    def _open_gate(self, ep: _Endpoint, uid: int) -> None:
        """Check the INITs waiting at ``uid``'s gate whose turn has come, in order."""
        gate = ep.secret_gates.get(uid)
        if gate is None:
            return
        gate.timer = None
        while gate.waiting:
            now = time.monotonic()
            if now < gate.next_at:
                gate.timer = self._loop.call_later(gate.next_at - now, lambda: self._open_gate(ep, uid))
                return
            conn, init = gate.waiting.popleft()
            if not conn.closed:  # (one that left gave its turn up)
                conn.process(self._check_init(conn, init))  # moves next_at, or ends the gate
        if not gate.backoff:
            ep.secret_gates.pop(uid, None)

    def _server_endpoint(self, interface_id: int) -> _Endpoint | None:
        return next((e for e in self._endpoints if e.config.role == "server" and e.config.id == interface_id), None)

    def _check_init(self, conn: Connection, init: wire.Init) -> list[hs.Event]:
        assert isinstance(conn.machine, hs.ServerHandshake)
        ep = self._server_endpoint(init.id)
        params = None
        if ep is not None:
            cfg = ep.config
            if cfg.allowed_uids is not None and conn.peer_uid not in cfg.allowed_uids:
                return conn.machine.disconnect(f"Permission denied: uid {conn.peer_uid} is not allowed")
            # A client stuck between INIT and CONNECT yields to a newer one (issue 8), once the
            # newer one passed the checks: one with a wrong secret must not throw it out.
            other = ep.connection
            stuck = (other if other is not None and other.link is None
                     and time.monotonic() - ep.bound_at >= _HALF_OPEN_S else None)
            params = hs.ServerInterfaceParams(
                id=cfg.id, mode=cfg.mode, secret=cfg.secret, num_s2m=cfg.rx_queues, num_m2s=cfg.tx_queues,
                if_name=cfg.name, already_connected=other is not None and stuck is None,
                max_map_bytes=cfg.max_map_bytes,
            )
        out = conn.machine.accept_init(params)
        closed = next((e for e in out if isinstance(e, hs.Closed)), None)
        if ep is not None and closed is None:
            gate = ep.secret_gates.get(conn.peer_uid)
            if gate is not None:  # right: this uid is not slowed down any more
                gate.backoff = gate.next_at = 0.0
                if not gate.waiting:
                    ep.secret_gates.pop(conn.peer_uid, None)
            if stuck is not None:
                stuck.drop("handshake superseded by a newer client")
            self._bind(conn, ep)
            conn.deadline = time.monotonic() + ep.config.handshake_timeout_s
        elif ep is not None and closed is not None:
            reason = closed.reason
            if reason in ("Incorrect secret", "Secret required"):
                lo, hi = _SECRET_BACKOFF_S
                gate = ep.secret_gates.setdefault(conn.peer_uid, _SecretGate())
                gate.backoff = min(max(gate.backoff * 2, lo), hi)
                gate.next_at = time.monotonic() + gate.backoff
            self._report(lambda: ep.listener.attempt_failed(reason), "attempt_failed listener")
        return out

    def connection_up(self, conn: Connection, link: Link) -> None:
        """ConnectionOwner: tell the interface its link is up."""
        self._handshake_over(conn)
        ep = self._by_connection.get(conn.number)
        assert ep is not None
        self._report(lambda: ep.listener.link_up(link), "link_up listener")

    def _handshake_over(self, conn: Connection) -> None:
        """An accepted connection came up or closed: its uid has one handshake fewer in progress."""
        uid = self._handshaking.pop(conn.number, None)
        if uid is not None:
            self._handshakes_by_uid[uid] -= 1
            if not self._handshakes_by_uid[uid]:
                del self._handshakes_by_uid[uid]

    def connection_closed(self, conn: Connection, reason: str) -> None:
        """ConnectionOwner: link down first (the data path stops), then free everything.

        The listener learns ``reason`` for every way a connection ends (our DISCONNECT, the
        peer's, EOF, timeout), before or after its link was up.
        """
        self._connections.pop(conn.number, None)
        self._handshake_over(conn)
        deadline = self._deadlines.pop(conn.number, None)
        if deadline is not None:  # (the timer would hold the connection until its time)
            deadline.cancel()
        self._loop.unregister(conn.sock)
        conn.sock.close()
        ep = self._by_connection.pop(conn.number, None)
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

    def _bind(self, conn: Connection, ep: _Endpoint) -> None:
        ep.connection = conn
        ep.bound_at = time.monotonic()
        conn.config = ep.config
        self._by_connection[conn.number] = ep


# ---- binding the listener -----------------------------------------------------------------


def pending_cap() -> int:
    """How many handshakes one peer uid may have in progress on one socket (a listening
    Socket): a quarter of the fds this process may open (RLIMIT_NOFILE), at least 16."""
    soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    return 1 << 20 if soft == resource.RLIM_INFINITY else max(16, soft // 4)


def peer_uid(sock: _socket.socket) -> int:
    """The uid of the process at the other end (SO_PEERCRED: as of connect/listen time)."""
    _pid, uid, _gid = _UCRED.unpack(sock.getsockopt(_socket.SOL_SOCKET, _socket.SO_PEERCRED, _UCRED.size))
    return int(uid)


def bind_listener(name: str, abstract: bool, *, mode: int = 0o600) -> _socket.socket:
    """A listening, non-blocking SOCK_SEQPACKET socket at ``name``; a stale socket file left by a
    dead server is replaced (protocol s1). ConfigError naming ``socket`` otherwise.

    A filesystem socket file gets ``mode`` from the moment it exists, less the umask: the mode is
    set on the socket before bind(), which creates the file with it, so no window is open to
    others. Then the file is given ``mode`` itself (socket-mode=0660 under umask 022 was 0640, and
    the group could not connect): never more than was asked. An abstract socket has no
    permissions: allowed-uids is its access control."""
    address = socket_address(name, abstract)
    sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_SEQPACKET | _socket.SOCK_CLOEXEC)
    try:
        sock.setsockopt(_socket.SOL_SOCKET, _socket.SO_PASSCRED, 1)
        if not abstract:
            os.fchmod(sock.fileno(), mode)
        try:
            sock.bind(address)
        except OSError as exc:
            if exc.errno != errno.EADDRINUSE or abstract:
                raise _bind_error(name, abstract, exc) from exc
            _replace_stale_socket_file(name)
            try:
                sock.bind(address)
            except OSError as exc2:
                raise _bind_error(name, abstract, exc2) from exc2
        if not abstract:
            try:
                _give_mode(name, mode)
            except OSError as exc:
                os.unlink(name)
                raise ConfigError(f"socket-mode: cannot give {name} mode {mode:04o}: {exc.strerror}",
                                  key="socket-mode", value=f"{mode:04o}") from exc
        sock.listen(16)
        sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    return sock


def _give_mode(path: str, mode: int) -> None:
    """chmod the socket file bind() just made, if the umask took bits of ``mode`` from it, and if
    it is still a socket of ours. Through an O_PATH descriptor opened without following links,
    so that a symlink swapped in since bind() gets no file of ours another mode."""
    fd = os.open(path, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        st = os.fstat(fd)
        if stat.S_ISSOCK(st.st_mode) and st.st_uid == os.geteuid() and stat.S_IMODE(st.st_mode) != mode:
            os.chmod(f"/proc/self/fd/{fd}", mode)  # the inode opened, whatever the path is now
    finally:
        os.close(fd)


def _bind_error(name: str, abstract: bool, exc: OSError) -> ConfigError:
    display = socket_display(name, abstract)
    if exc.errno == errno.EADDRINUSE:
        msg = (f"socket={display}: another process already listens there, a memif server or not (to put "
               "several interfaces on one socket in one process, pass them the same memif_ct.Socket)")
    else:
        msg = f"socket={display}: cannot listen: {exc.strerror}"
    return ConfigError(msg, key="socket", value=display)


def _replace_stale_socket_file(path: str) -> None:
    """A socket file nobody accepts on is left by a dead server: replace it (protocol s1)."""
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
            raise _bind_error(path, False, exc) from exc
        log.warning("memif-ct: replacing stale socket file %s", path)
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass
        return
    finally:
        probe.close()
    raise _bind_error(path, False, OSError(errno.EADDRINUSE, os.strerror(errno.EADDRINUSE)))
