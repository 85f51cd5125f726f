"""One control connection: a SOCK_SEQPACKET socket and the handshake running on it.

handshake.py decides; a Connection moves its messages and file descriptors (SCM_RIGHTS), builds
or maps the link's resources through its PendingLink (link.py), and tells its owner (the
``control.Socket``) about the moments only the owner can handle: an INIT naming an interface,
the link coming up, and the end (protocol doc sections 1 and 4). Everything runs on the
owner's control thread.
"""

from __future__ import annotations

import array
import errno
import itertools
import logging
import socket as _socket
from typing import Protocol

from . import constants as c, handshake as hs, wire
from .config import InterfaceConfig
from .errors import ProtocolError, SocketError
from .link import Link, PendingLink, close_fd

__all__ = ["Connection", "ConnectionOwner"]

log = logging.getLogger(__name__)

_ANCILLARY_SIZE = _socket.CMSG_SPACE(4 * 4) + _socket.CMSG_SPACE(3 * 4)  # a few fds + ucred
# Receive buffer: larger than a message so that a wrong size can be reported exactly in the
# DISCONNECT reason (with MSG_SIZE + 1 a 200-byte message read as "size 129").
_RECV_SIZE = 8 * c.MSG_SIZE


class ConnectionOwner(Protocol):
    """What a Connection asks of the socket that owns it."""

    def connection_init(self, conn: Connection, init: wire.Init) -> list[hs.Event]:
        """Server: find the interface INIT names, run accept_init, bind the connection to it."""

    def connection_up(self, conn: Connection, link: Link) -> None:
        """The link is up."""

    def connection_closed(self, conn: Connection, reason: str) -> None:
        """Tear down: stop watching and close the socket, link down, free the resources."""


class Connection:
    """One control connection. ``config`` is the interface it serves (a server's is known once
    INIT names one); ``link`` is set once the link is up."""

    _ids = itertools.count(1)

    def __init__(self, owner: ConnectionOwner, sock: _socket.socket, machine: hs.Handshake,
                 config: InterfaceConfig | None, display: str) -> None:
        self.number = next(self._ids)
        self.owner = owner
        self.sock = sock
        self.machine = machine
        self.config = config
        self.is_client = isinstance(machine, hs.ClientHandshake)
        self.pending = PendingLink()  # what the handshake builds, until it becomes self.link
        self.link: Link | None = None
        self.closed = False
        self.deadline = 0.0
        self.display = display
        self.peer_uid = -1  # set by the owner from SO_PEERCRED

    def __repr__(self) -> str:
        return f"<connection {self.number} {'client' if self.is_client else 'server'} {self.display}>"

    def start(self) -> None:
        """Begin the handshake (a server greets with HELLO at once)."""
        self.process(self.machine.start())

    def readable(self) -> None:
        """The socket has a message (or EOF): feed it to the handshake."""
        if self.closed:
            return
        try:
            # CLOEXEC: the peer's memfd and eventfds must not outlive the link in a child we start.
            data, ancdata, flags, _addr = self.sock.recvmsg(_RECV_SIZE, _ANCILLARY_SIZE, _socket.MSG_CMSG_CLOEXEC)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as exc:
            self.close(f"control channel error: {exc.strerror}")
            return
        fds = _fds_from(ancdata)
        try:
            if not data and not flags & _socket.MSG_CTRUNC:
                self.close("peer closed the control channel")
                return
            problem = ("control message truncated" if flags & _socket.MSG_CTRUNC
                       else f"{len(fds)} fds in one message, expected 1" if len(fds) > 1
                       else f"invalid message size above {_RECV_SIZE}, expected {c.MSG_SIZE}"
                       if flags & _socket.MSG_TRUNC else None)
            if problem is not None:
                self.drop(problem)
                return
            try:
                msg = wire.unpack(data)
            except ProtocolError as exc:
                self.drop(exc.reason)
                return
            log.debug("%r <- %s%s", self, wire.message_name(msg), " +fd" if fds else "")
            self.process(self.machine.receive(msg, has_fd=bool(fds)), fds)
        finally:
            for fd in fds:
                close_fd(fd)  # every fd not claimed by an event

    def process(self, events: list[hs.Event], fds: list[int] | None = None) -> None:
        """Carry out the handshake's events, and those they lead to, in order."""
        pending = list(events)
        while pending and not self.closed:
            event = pending.pop(0)
            try:
                more = self._handle(event, fds)
            except Exception as exc:
                # Any failure handling one connection (bad input, or a bug) drops that
                # connection with a reason, never the control thread.
                reason = exc.reason if isinstance(exc, ProtocolError) else f"local error: {exc}"
                log.warning("%r: %s", self, reason)
                # What is left is dropped, but a Closed already on its way is kept: a machine
                # that closed (sending its DISCONNECT failed) will not make another.
                more, pending = self.machine.disconnect(reason[:95]), [e for e in pending if isinstance(e, hs.Closed)]
            pending = more + pending

    def _handle(self, event: hs.Event, fds: list[int] | None) -> list[hs.Event]:
        machine = self.machine
        if isinstance(event, hs.Send):
            self._send(event)
        elif isinstance(event, hs.Negotiated):
            assert self.config is not None and isinstance(machine, hs.ClientHandshake)
            regions, rings = self.pending.create_client_memory(self.config, event)
            return machine.setup(regions, rings)
        elif isinstance(event, hs.InitReceived):
            return self.owner.connection_init(self, event.init)
        elif isinstance(event, hs.RegionAdded):
            assert fds
            self.pending.add_region_fd(event.index, fds.pop(), event.size)
        elif isinstance(event, hs.RingAdded):
            assert fds
            self.pending.add_ring(event, fds.pop())
        elif isinstance(event, hs.ConnectRequest):
            assert isinstance(machine, hs.ServerHandshake)
            assert self.config is not None  # bound at INIT
            self.link = self.pending.server_link(
                machine, event.peer_if_name, allow_unsealed_hugetlbfs=self.config.accept_unsealed_hugetlbfs)
            return machine.connected()
        elif isinstance(event, hs.Established):
            if isinstance(machine, hs.ClientHandshake):
                self.link = self.pending.client_link(machine, event.peer_if_name)
            assert self.link is not None
            log.info("%r: link up with %s (%s)", self, self.link.peer_if_name, self.link.peer_name)
            self.owner.connection_up(self, self.link)
        elif isinstance(event, hs.Closed):
            self.close(event.reason)
        return []

    def _send(self, event: hs.Send) -> None:
        data = wire.pack(event.msg)
        anc = [] if event.fd is None else [
            (_socket.SOL_SOCKET, _socket.SCM_RIGHTS, array.array("i", [event.fd]).tobytes())]
        log.debug("%r -> %s%s", self, wire.message_name(event.msg), " +fd" if anc else "")
        try:
            self.sock.sendmsg([data], anc)
        except OSError as exc:
            if isinstance(event.msg, wire.Disconnect):
                return  # the peer may be gone already; we are closing anyway
            if exc.errno in (errno.EPIPE, errno.ECONNRESET):
                # Gone before our message (a stale-socket probe does that to every HELLO): as
                # ordinary as an EOF, nothing to warn about.
                self.close("peer closed the control channel")
                return
            raise SocketError(exc.errno, f"send {wire.message_name(event.msg)} failed: {exc.strerror}") from exc

    def drop(self, reason: str) -> None:
        """Our decision: tell the peer why (DISCONNECT), then close."""
        self.process(self.machine.disconnect(reason))
        if not self.closed:
            self.close(reason)

    def close(self, reason: str) -> None:
        """End the connection once; the owner tears it down (link down first)."""
        if not self.closed:
            self.closed = True
            self.owner.connection_closed(self, reason)


def _fds_from(ancdata: list[tuple[int, int, bytes]]) -> list[int]:
    fds: list[int] = []
    for level, kind, data in ancdata:
        if level == _socket.SOL_SOCKET and kind == _socket.SCM_RIGHTS:
            arr = array.array("i")
            arr.frombytes(data[: len(data) - len(data) % arr.itemsize])
            fds.extend(arr)
    return fds
