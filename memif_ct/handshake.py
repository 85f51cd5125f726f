"""memif handshake v2.0, sans-I/O: the client and server state machines.

Nothing here touches a socket, an fd, a clock or a thread, so every rule of the handshake can be
tested exhaustively in-process (the h11 approach, see style.md). The I/O layer (``control.py``)
owns the socket and the fds; it calls ``start()``, feeds every received message to
``receive(msg, has_fd)`` (one signature for both roles) and performs the events that come out:

* ``Send(msg, fd)``: send ``wire.pack(msg)``, with ``fd`` as SCM_RIGHTS when it is not None.
* ``Closed(reason, by_peer)``: close the control socket and every fd of this connection. It is
  always the last event of a batch and is emitted exactly once; afterwards every method returns [].
* When ``wire.unpack`` raises ``ProtocolError`` (or the socket fails), call
  ``machine.disconnect(reason)`` and perform what it returns, so that the peer hears why and the
  machine ends up closed.

The server machine never owns fds: ``RegionAdded``/``RingAdded`` say which fd-carrying message
was accepted, and the I/O layer closes the fd of any message for which no such event came out.
The client never expects an fd (the server sends none) and ignores ``has_fd``, as libmemif and
DPDK do; the I/O layer closes such an fd like any other unclaimed one.
"""

from __future__ import annotations

import hmac
import logging
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum

from . import _native
from .constants import (
    ADD_RING_FLAG_S2M,
    MAX_LOG2_RING_SIZE,
    DEFAULT_MAX_MAP_BYTES,
    MAX_REGION_SIZE,
    MAX_REGIONS,
    MAX_RINGS_PER_DIRECTION,
    MIN_LOG2_RING_SIZE,
    RING_TYPE_M2S,
    RING_TYPE_S2M,
    VERSION,
)
from .errors import ArgumentError, ArgumentTypeError, MemifError
from .wire import (
    Ack,
    AddRegion,
    AddRing,
    Connect,
    Connected,
    Disconnect,
    Hello,
    Init,
    Message,
    message_name,
    secret_bytes,
)

__all__ = [
    "Send", "Negotiated", "Established", "PeerDisconnect", "Closed",
    "InitReceived", "RegionAdded", "RingAdded", "ConnectRequest", "Event",
    "RegionSpec", "RingSpec", "ServerInterfaceParams",
    "Handshake", "ClientState", "ClientHandshake", "ServerState", "ServerHandshake",
    "LocalProtocolError",
]

logger = logging.getLogger(__name__)


class LocalProtocolError(MemifError, RuntimeError):
    """The I/O layer called a handshake method in a state where it makes no sense (a bug)."""


# --------------------------------------------------------------------------------------------
# Events (what the machines ask the I/O layer to do or tell it happened) and inputs.


@dataclass(frozen=True)
class Send:
    """Send ``msg``; pass ``fd`` with it as SCM_RIGHTS when not None."""
    msg: Message
    fd: int | None = None


@dataclass(frozen=True)
class Negotiated:
    """Client: the HELLO was accepted; build memory for exactly these numbers, then setup()."""
    num_s2m: int
    num_m2s: int
    log2_ring_size: int
    peer_name: str


@dataclass(frozen=True)
class Established:
    """The link is up (client: CONNECTED received; server: about to send CONNECTED, so that its
    link is up before the client's can be, as in DPDK and libmemif)."""
    peer_if_name: str


@dataclass(frozen=True)
class PeerDisconnect:
    """The peer sent DISCONNECT; a Closed(by_peer=True) follows."""
    code: int
    reason: str


@dataclass(frozen=True)
class Closed:
    """Last event ever: close the socket and every fd and mapping of this connection."""
    reason: str
    by_peer: bool = False


@dataclass(frozen=True)
class InitReceived:
    """Server: look up the interface ``init.id`` on this socket and call accept_init()."""
    init: Init


@dataclass(frozen=True)
class RegionAdded:
    """Server: keep the fd that came with this ADD_REGION."""
    index: int
    size: int


@dataclass(frozen=True)
class RingAdded:
    """Server: keep the eventfd that came with this ADD_RING."""
    type: int
    index: int
    region: int
    offset: int
    log2_ring_size: int


@dataclass(frozen=True)
class ConnectRequest:
    """Server: map the regions, check ring cookies, then call connected() or disconnect()."""
    peer_if_name: str


Event = (Send | Negotiated | Established | PeerDisconnect | Closed | InitReceived | RegionAdded
         | RingAdded | ConnectRequest)


@dataclass(frozen=True)
class RegionSpec:
    index: int
    size: int
    fd: int


@dataclass(frozen=True)
class RingSpec:
    type: int  # RING_TYPE_S2M or RING_TYPE_M2S
    index: int
    region: int
    offset: int
    log2_ring_size: int
    eventfd: int


@dataclass(frozen=True)
class ServerInterfaceParams:
    """What the I/O layer knows about the server interface an INIT names."""
    id: int
    mode: int
    secret: str | None
    num_s2m: int
    num_m2s: int
    if_name: str
    already_connected: bool = False
    max_map_bytes: int = DEFAULT_MAX_MAP_BYTES  # regions of one connection, in bytes


def _ring_type_name(ring_type: int) -> str:
    return "S2M" if ring_type == RING_TYPE_S2M else "M2S"


def _check_arguments(ints: Sequence[tuple[str, object, int, int]],
                     texts: Sequence[tuple[str, object]]) -> None:
    """Constructor arguments: each int within its range, each name a str."""
    for field, value, low, high in ints:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ArgumentTypeError(f"{field} must be an int, not {type(value).__name__}")
        if not low <= value <= high:
            raise ArgumentError(f"{field}={value} out of range {low}..{high}")
    for field, value in texts:
        if not isinstance(value, str):
            raise ArgumentTypeError(f"{field} must be a str, not {type(value).__name__}")


class Handshake(ABC):
    """What both roles share, and all the I/O layer needs without knowing which role it runs:
    ``start()``, ``receive(msg, has_fd)``, ``disconnect(reason)``, ``close_reason``."""

    def __init__(self) -> None:
        self._close_reason: str | None = None

    @property
    def close_reason(self) -> str | None:
        """Why the machine closed (None while open)."""
        return self._close_reason

    @abstractmethod
    def start(self) -> list[Event]:
        """Call once the connection exists; perform the events it returns."""

    @abstractmethod
    def receive(self, msg: Message, has_fd: bool = False) -> list[Event]:
        """Feed one message from the peer; ``has_fd`` says whether an fd came with it."""

    @abstractmethod
    def _state_name(self) -> str: ...

    @abstractmethod
    def _mark_closed(self) -> None: ...

    def disconnect(self, reason: str) -> list[Event]:
        """Local decision to drop the connection: tell the peer why, then close."""
        if self._close_reason is not None:
            return []
        return self._drop(reason)

    def _drop(self, reason: str) -> list[Event]:
        logger.info("dropping memif connection in state %s: %s", self._state_name(), reason)
        self._mark_closed()
        self._close_reason = reason
        return [Send(Disconnect(0, reason)), Closed(reason, by_peer=False)]

    def _peer_disconnected(self, msg: Disconnect) -> list[Event]:
        logger.info("peer disconnected in state %s: code %d, %r", self._state_name(), msg.code,
                    msg.reason)
        self._mark_closed()
        self._close_reason = msg.reason
        return [PeerDisconnect(msg.code, msg.reason), Closed(msg.reason, by_peer=True)]

    def _unexpected(self, msg: Message) -> list[Event]:
        return self._drop(f"unexpected message {message_name(msg)} in state {self._state_name()}")


# --------------------------------------------------------------------------------------------
# Client (memif-protocol.md section 4: the client negotiates and creates all shared memory).


class ClientState(Enum):
    WAIT_HELLO = "WAIT_HELLO"
    WAIT_ACK = "WAIT_ACK"  # INIT, ADD_REGION or ADD_RING sent
    WAIT_CONNECTED = "WAIT_CONNECTED"
    ESTABLISHED = "ESTABLISHED"
    CLOSED = "CLOSED"


class ClientHandshake(Handshake):
    """Client side: HELLO -> Negotiated + INIT; setup(); each ACK sends the next message."""

    def __init__(self, *, id: int, mode: int, secret: str | None, app_name: str,
                 if_name: str, num_s2m: int, num_m2s: int, log2_ring_size: int) -> None:
        super().__init__()
        _check_arguments(
            (("id", id, 0, 0xFFFFFFFF), ("mode", mode, 0, 0xFF),
             ("num_s2m", num_s2m, 1, MAX_RINGS_PER_DIRECTION),
             ("num_m2s", num_m2s, 1, MAX_RINGS_PER_DIRECTION),
             ("log2_ring_size", log2_ring_size, MIN_LOG2_RING_SIZE, MAX_LOG2_RING_SIZE)),
            (("app_name", app_name), ("if_name", if_name)))
        self._id, self._mode, self._app_name, self._if_name = id, mode, app_name, if_name
        self._secret = secret_bytes(secret)
        self._want = (num_s2m, num_m2s, log2_ring_size)
        self._state = ClientState.WAIT_HELLO
        self._negotiated: Negotiated | None = None
        self._peer_max_region = 0
        self._queue: deque[Send] | None = None
        self._peer_if_name: str | None = None

    @property
    def state(self) -> ClientState:
        return self._state

    @property
    def negotiated(self) -> Negotiated | None:
        """Ring counts and size agreed from HELLO (None before HELLO)."""
        return self._negotiated

    @property
    def peer_if_name(self) -> str | None:
        """The server's interface name from CONNECTED."""
        return self._peer_if_name

    def _state_name(self) -> str:
        return self._state.value

    def _mark_closed(self) -> None:
        self._state = ClientState.CLOSED

    def start(self) -> list[Event]:
        """Nothing to send: the server speaks first (HELLO, section 4)."""
        if self._state is not ClientState.WAIT_HELLO:
            raise LocalProtocolError(f"start() in state {self._state.value}")
        return []

    def receive(self, msg: Message, has_fd: bool = False) -> list[Event]:
        """Feed one message from the server. The server sends no fd: ``has_fd`` is ignored."""
        if self._state is ClientState.CLOSED:
            logger.debug("ignoring %s after close", message_name(msg))
            return []
        if isinstance(msg, Disconnect):
            return self._peer_disconnected(msg)
        if self._state is ClientState.WAIT_HELLO and isinstance(msg, Hello):
            return self._on_hello(msg)
        if self._state is ClientState.WAIT_ACK and isinstance(msg, Ack):
            return self._on_ack()
        if self._state is ClientState.WAIT_CONNECTED and isinstance(msg, Connected):
            self._state = ClientState.ESTABLISHED
            self._peer_if_name = msg.if_name
            logger.info("memif link up, peer interface %r", msg.if_name)
            return [Established(msg.if_name)]
        return self._unexpected(msg)

    def _on_hello(self, hello: Hello) -> list[Event]:
        if not hello.min_version <= VERSION <= hello.max_version:
            return self._drop(f"incompatible version: peer supports 0x{hello.min_version:04x}.."
                              f"0x{hello.max_version:04x}, need 0x{VERSION:04x}")
        want_s2m, want_m2s, want_log2 = self._want
        log2 = min(hello.max_log2_ring_size, want_log2)  # section 4: negotiation is the client's
        if log2 < MIN_LOG2_RING_SIZE:
            return self._drop(f"peer max_log2_ring_size {hello.max_log2_ring_size} too small")
        self._negotiated = Negotiated(min(hello.max_s2m_ring + 1, want_s2m),
                                      min(hello.max_m2s_ring + 1, want_m2s), log2, hello.name)
        self._peer_max_region = hello.max_region
        self._state = ClientState.WAIT_ACK
        logger.debug("negotiated %s", self._negotiated)
        init = Init(VERSION, self._id, self._mode, self._secret, self._app_name)
        return [self._negotiated, Send(init)]

    def setup(self, regions: Sequence[RegionSpec], rings: Sequence[RingSpec]) -> list[Event]:
        """Store the memory plan the I/O layer built after Negotiated; the ACKs will send it.

        Returns [] normally, or a drop when the server cannot take that many regions. A plan that
        does not match Negotiated is a bug of the caller and raises ArgumentError.
        """
        if self._state is ClientState.CLOSED:
            return []
        if self._state is not ClientState.WAIT_ACK or self._queue is not None:
            raise LocalProtocolError(f"setup() in state {self._state.value}")
        neg = self._negotiated
        assert neg is not None
        if [r.index for r in regions] != list(range(len(regions))) or not regions:
            raise ArgumentError(f"region indexes must be 0..n-1 in order, got "
                                f"{[r.index for r in regions]}")
        plan = sorted(rings, key=lambda r: (r.type, r.index))  # S2M (0) first, section 4
        for ring_type, count in ((RING_TYPE_S2M, neg.num_s2m), (RING_TYPE_M2S, neg.num_m2s)):
            got = [r.index for r in plan if r.type == ring_type]
            if got != list(range(count)):
                raise ArgumentError(f"{_ring_type_name(ring_type)} ring indexes {got}, "
                                    f"expected 0..{count - 1}")
        for r in plan:
            if r.type not in (RING_TYPE_S2M, RING_TYPE_M2S) or r.region >= len(regions) \
                    or r.log2_ring_size != neg.log2_ring_size:
                raise ArgumentError(f"bad ring {r}")
        if len(regions) - 1 > self._peer_max_region:
            return self._drop(f"need {len(regions)} regions, peer max_region is "
                              f"{self._peer_max_region}")
        queue: deque[Send] = deque(Send(AddRegion(r.index, r.size), fd=r.fd) for r in regions)
        for r in plan:
            flags = ADD_RING_FLAG_S2M if r.type == RING_TYPE_S2M else 0
            queue.append(Send(AddRing(flags, r.index, r.region, r.offset, r.log2_ring_size, 0),
                              fd=r.eventfd))
        queue.append(Send(Connect(self._if_name)))
        self._queue = queue
        return []

    def _on_ack(self) -> list[Event]:
        if self._queue is None:
            return self._drop("ACK received before setup()")
        send = self._queue.popleft()
        if isinstance(send.msg, Connect):
            self._state = ClientState.WAIT_CONNECTED
        return [send]


# --------------------------------------------------------------------------------------------
# Server (memif-protocol.md section 4: the server checks and accepts what the client offers).


class ServerState(Enum):
    IDLE = "IDLE"  # start() not called yet
    WAIT_INIT = "WAIT_INIT"
    INIT_RECEIVED = "INIT_RECEIVED"  # waiting for accept_init()
    WAIT_ADD = "WAIT_ADD"  # INIT accepted: regions, rings, then CONNECT
    CONNECT_RECEIVED = "CONNECT_RECEIVED"  # waiting for connected() or disconnect()
    ESTABLISHED = "ESTABLISHED"
    CLOSED = "CLOSED"


class ServerHandshake(Handshake):
    """Server side of one accepted connection.

    ``max_m2s_ring``/``max_s2m_ring`` are ring *counts*; ``max_region`` is the highest region
    *index* (libmemif and VPP reject ``index > max_region``), sent as-is. Ring sizes come from
    the C library (``_native.ring_bytes``), which owns the ring layout and its cache-line size.
    """

    def __init__(self, *, app_name: str, max_region: int = MAX_REGIONS,
                 max_m2s_ring: int = MAX_RINGS_PER_DIRECTION,
                 max_s2m_ring: int = MAX_RINGS_PER_DIRECTION,
                 max_log2_ring_size: int = MAX_LOG2_RING_SIZE) -> None:
        super().__init__()
        _check_arguments(
            (("max_region", max_region, 0, 0xFFFF), ("max_m2s_ring", max_m2s_ring, 1, 0x10000),
             ("max_s2m_ring", max_s2m_ring, 1, 0x10000),
             # Beyond MAX_LOG2_RING_SIZE the C library has no ring layout to offer.
             ("max_log2_ring_size", max_log2_ring_size, MIN_LOG2_RING_SIZE, MAX_LOG2_RING_SIZE)),
            (("app_name", app_name),))
        self._app_name = app_name
        self._max_region, self._max_log2 = max_region, max_log2_ring_size
        self._max_m2s, self._max_s2m = max_m2s_ring, max_s2m_ring
        self._state = ServerState.IDLE
        self._init: Init | None = None
        self._params: ServerInterfaceParams | None = None
        self._regions: list[RegionAdded] = []
        self._rings: list[RingAdded] = []
        self._peer_if_name: str | None = None

    @property
    def state(self) -> ServerState:
        return self._state

    @property
    def init(self) -> Init | None:
        """The client's INIT, once received."""
        return self._init

    @property
    def peer_name(self) -> str | None:
        """The client's app name from INIT."""
        return None if self._init is None else self._init.name

    @property
    def peer_if_name(self) -> str | None:
        """The client's interface name from CONNECT."""
        return self._peer_if_name

    @property
    def params(self) -> ServerInterfaceParams | None:
        """The interface accepted by accept_init()."""
        return self._params

    @property
    def regions(self) -> list[RegionAdded]:
        """Accepted regions, index order (= arrival order)."""
        return list(self._regions)

    @property
    def rings(self) -> list[RingAdded]:
        """Accepted rings in arrival order."""
        return list(self._rings)

    @property
    def num_s2m(self) -> int:
        return sum(1 for r in self._rings if r.type == RING_TYPE_S2M)

    @property
    def num_m2s(self) -> int:
        return sum(1 for r in self._rings if r.type == RING_TYPE_M2S)

    @property
    def log2_ring_size(self) -> int | None:
        """Ring size the client chose (all rings agree once CONNECT was accepted)."""
        return self._rings[0].log2_ring_size if self._rings else None

    def _state_name(self) -> str:
        return self._state.value

    def _mark_closed(self) -> None:
        self._state = ServerState.CLOSED

    def start(self) -> list[Event]:
        """Greet a freshly accepted client; HELLO is sent at once (section 4)."""
        if self._state is not ServerState.IDLE:
            raise LocalProtocolError(f"start() in state {self._state.value}")
        self._state = ServerState.WAIT_INIT
        # Section 4 negotiation is min(hello.max_*_ring + 1, cfg): the field is count - 1.
        hello = Hello(self._app_name, VERSION, VERSION, self._max_region, self._max_m2s - 1,
                      self._max_s2m - 1, self._max_log2)
        return [Send(hello)]

    def receive(self, msg: Message, has_fd: bool = False) -> list[Event]:
        """Feed one message from the client; ``has_fd`` says whether an fd came with it."""
        if self._state is ServerState.CLOSED:
            logger.debug("ignoring %s after close", message_name(msg))
            return []
        if isinstance(msg, Disconnect):
            return self._peer_disconnected(msg)
        if self._state is ServerState.WAIT_INIT and isinstance(msg, Init):
            if msg.version != VERSION:
                return self._drop(f"incompatible version 0x{msg.version:04x}, "
                                  f"expected 0x{VERSION:04x}")
            self._init = msg
            self._state = ServerState.INIT_RECEIVED
            return [InitReceived(msg)]
        if self._state is ServerState.WAIT_ADD:
            if isinstance(msg, AddRegion):
                return self._on_add_region(msg, has_fd)
            if isinstance(msg, AddRing):
                return self._on_add_ring(msg, has_fd)
            if isinstance(msg, Connect):
                return self._on_connect(msg)
        return self._unexpected(msg)

    def accept_init(self, params: ServerInterfaceParams | None) -> list[Event]:
        """Check the INIT against the interface with its id (None: no such interface)."""
        if self._state is ServerState.CLOSED:
            return []
        if self._state is not ServerState.INIT_RECEIVED:
            raise LocalProtocolError(f"accept_init() in state {self._state.value}")
        init = self._init
        assert init is not None
        if params is None:
            return self._drop("ID not found")
        if params.already_connected:
            return self._drop("Already connected")
        if params.mode != init.mode:
            return self._drop("Mode mismatch")
        server_secret = secret_bytes(params.secret)
        if server_secret:  # section 4: with no server secret, ignore the client's field
            if not init.secret:
                return self._drop("Secret required")
            # Compared as C strings, in constant time.
            if not hmac.compare_digest(init.secret, server_secret):
                return self._drop("Incorrect secret")
        self._params = params
        self._state = ServerState.WAIT_ADD
        logger.debug("INIT accepted from %r for id %d", init.name, init.id)
        return [Send(Ack())]

    def _on_add_region(self, msg: AddRegion, has_fd: bool) -> list[Event]:
        if not has_fd:
            return self._drop("missing region fd")
        expected = len(self._regions)
        if msg.index != expected:  # section 4: region indexes arrive in order
            return self._drop(f"region index {msg.index} out of order, expected {expected}")
        if msg.index > self._max_region:
            return self._drop(f"region index {msg.index} above max_region {self._max_region}")
        if not 0 < msg.size <= MAX_REGION_SIZE:  # refused before the ACK, so never mapped
            return self._drop(f"invalid region size {msg.size}")
        assert self._params is not None
        if sum(r.size for r in self._regions) + msg.size > self._params.max_map_bytes:
            # The reason never says how much would fit: no probing for the limit.
            return self._drop(f"region {msg.index} exceeds the memory this server maps per connection")
        added = RegionAdded(msg.index, msg.size)
        self._regions.append(added)
        return [added, Send(Ack())]

    def _on_add_ring(self, msg: AddRing, has_fd: bool) -> list[Event]:
        params = self._params
        assert params is not None
        if not has_fd:
            return self._drop("missing interrupt fd")
        ring_type = RING_TYPE_S2M if msg.flags & ADD_RING_FLAG_S2M else RING_TYPE_M2S
        kind = _ring_type_name(ring_type)
        queues = params.num_s2m if ring_type == RING_TYPE_S2M else params.num_m2s
        if msg.index >= queues:  # section 4: ring index < configured queue count
            return self._drop(f"ring index {msg.index} out of range, server has {queues} "
                              f"{kind} queues")
        if any(r.type == ring_type and r.index == msg.index for r in self._rings):
            return self._drop(f"duplicate {kind} ring {msg.index}")
        if msg.region >= len(self._regions):
            return self._drop(f"{kind} ring {msg.index} in unknown region {msg.region}")
        if not MIN_LOG2_RING_SIZE <= msg.log2_ring_size <= self._max_log2:
            return self._drop(f"{kind} ring {msg.index} log2_ring_size {msg.log2_ring_size} "
                              f"out of range {MIN_LOG2_RING_SIZE}..{self._max_log2}")
        if msg.private_hdr_size != 0:
            return self._drop("private header not supported")
        region = self._regions[msg.region]
        if msg.offset + _native.ring_bytes(msg.log2_ring_size) > region.size:
            return self._drop(f"{kind} ring {msg.index} outside region {msg.region}")
        added = RingAdded(ring_type, msg.index, msg.region, msg.offset, msg.log2_ring_size)
        self._rings.append(added)
        return [added, Send(Ack())]

    def _on_connect(self, msg: Connect) -> list[Event]:
        for ring_type in (RING_TYPE_S2M, RING_TYPE_M2S):
            kind = _ring_type_name(ring_type)
            indexes = {r.index for r in self._rings if r.type == ring_type}
            if not indexes:
                return self._drop(f"no {kind} rings")
            missing = min(set(range(len(indexes) + 1)) - indexes)
            if missing < len(indexes):
                return self._drop(f"{kind} rings not contiguous: ring {missing} missing")
        sizes = sorted({r.log2_ring_size for r in self._rings})
        if len(sizes) > 1:  # DPDK and libmemif clients use one ring size per interface
            return self._drop(f"rings differ in log2_ring_size ({sizes[0]} and {sizes[-1]})")
        self._peer_if_name = msg.if_name
        self._state = ServerState.CONNECT_RECEIVED
        return [ConnectRequest(msg.if_name)]

    def connected(self, if_name: str | None = None) -> list[Event]:
        """Memory mapped and cookies checked: answer CONNECTED (default name: params.if_name)."""
        if self._state is ServerState.CLOSED:
            return []
        if self._state is not ServerState.CONNECT_RECEIVED:
            raise LocalProtocolError(f"connected() in state {self._state.value}")
        params = self._params
        assert params is not None and self._peer_if_name is not None
        self._state = ServerState.ESTABLISHED
        logger.info("memif link up, peer %r interface %r", self.peer_name, self._peer_if_name)
        return [Established(self._peer_if_name),
                Send(Connected(params.if_name if if_name is None else if_name))]
