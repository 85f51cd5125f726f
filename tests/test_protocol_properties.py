"""Property tests of the sans-I/O protocol (wire.py, handshake.py), driven by hypothesis.

Skipped cleanly where hypothesis is not installed; the example-based tests in test_wire.py and
test_handshake.py pin the same rules at chosen points.
"""

from __future__ import annotations

import pytest

hypothesis = pytest.importorskip("hypothesis")

from hypothesis import event, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from memif_ct import _native  # noqa: E402
from memif_ct import constants as C  # noqa: E402
from memif_ct.errors import ProtocolError  # noqa: E402
from memif_ct.handshake import (  # noqa: E402
    ClientHandshake,
    Closed,
    ConnectRequest,
    Established,
    Event,
    Handshake,
    InitReceived,
    Negotiated,
    RegionSpec,
    RingSpec,
    Send,
    ServerHandshake,
    ServerInterfaceParams,
)
from memif_ct.wire import (  # noqa: E402
    Ack,
    AddRegion,
    AddRing,
    Connect,
    Connected,
    Disconnect,
    Hello,
    Init,
    Message,
    pack,
    unpack,
)


def uint(bits: int) -> st.SearchStrategy[int]:
    return st.integers(0, (1 << bits) - 1)


def text(size: int) -> st.SearchStrategy[str]:
    """Text that survives the wire unchanged: no NUL, room for the NUL in a ``size``-byte field."""
    # st.text() draws no surrogates, so every string encodes as UTF-8.
    return st.text(max_size=size - 1).map(lambda s: s.replace("\0", "")).filter(
        lambda s: len(s.encode()) < size)


NAME = text(C.NAME_SIZE)
SECRET = st.binary(max_size=C.SECRET_SIZE - 1).map(lambda b: b.replace(b"\0", b"x"))

MESSAGES: st.SearchStrategy[Message] = st.one_of(
    st.just(Ack()),
    st.builds(Hello, NAME, uint(16), uint(16), uint(16), uint(16), uint(16), uint(8)),
    st.builds(Init, uint(16), uint(32), uint(8), SECRET, NAME),
    st.builds(AddRegion, uint(16), uint(64)),
    st.builds(AddRing, uint(16), uint(16), uint(16), uint(32), uint(8), uint(16)),
    st.builds(Connect, NAME),
    st.builds(Connected, NAME),
    st.builds(Disconnect, uint(32), text(C.DISCONNECT_STRING_SIZE)),
)


@given(MESSAGES)
def test_pack_unpack_round_trip(msg: Message) -> None:
    wire = pack(msg)
    assert len(wire) == C.MSG_SIZE
    assert unpack(wire) == msg


@given(st.binary(min_size=C.MSG_SIZE, max_size=C.MSG_SIZE))
def test_unpack_of_any_frame_is_a_message_or_a_protocol_error(frame: bytes) -> None:
    try:
        msg = unpack(frame)
    except ProtocolError as err:
        assert err.reason.startswith("unknown message type")
        return
    # Whatever was read packs again, and reads back the same (strings stop at their first NUL;
    # undecodable bytes became U+FFFD, which packs as three bytes: compare after one more trip).
    again = unpack(pack(msg))
    assert unpack(pack(again)) == again and type(again) is type(msg)


@given(st.binary(max_size=2 * C.MSG_SIZE).filter(lambda b: len(b) != C.MSG_SIZE))
def test_unpack_of_any_other_size_is_a_protocol_error(frame: bytes) -> None:
    with pytest.raises(ProtocolError, match="invalid message size"):
        unpack(frame)


# ------------------------------------------------------------------------------------------
# Both machines fed arbitrary message sequences: events out, never an exception, one Closed.

# Messages a real peer plausibly sends, so that sequences often get past the first state.
PLAUSIBLE: st.SearchStrategy[Message] = st.one_of(
    st.just(Ack()),
    st.builds(Hello, NAME, st.integers(0x0100, 0x0300), st.integers(0x0200, 0x0300),
              st.integers(0, 3), st.integers(0, 3), st.integers(0, 3), st.integers(0, 16)),
    st.builds(Init, st.sampled_from([0x0200, 0x0201]), st.integers(0, 2), st.integers(0, 2),
              st.sampled_from([b"", b"pw", b"x"]), NAME),
    st.builds(AddRegion, st.integers(0, 2), st.sampled_from([0, 1, 4096, 1 << 20,
                                                             C.MAX_REGION_SIZE + 1])),
    st.builds(AddRing, st.integers(0, 3), st.integers(0, 3), st.integers(0, 2),
              st.sampled_from([0, 160, 4096, (1 << 20) - 160, (1 << 32) - 1]),
              st.integers(0, 16), st.sampled_from([0, 0, 0, 8])),
    st.builds(Connect, NAME),
    st.builds(Connected, NAME),
    st.builds(Disconnect, uint(32), text(C.DISCONNECT_STRING_SIZE)),
)
# None = "the next message of a well-behaved peer", so that sequences also reach the link up
# and stray messages land in every state.
SEQUENCE = st.lists(st.one_of(st.none(), st.tuples(st.one_of(PLAUSIBLE, MESSAGES), st.booleans())),
                    max_size=30)
PARAMS = st.one_of(st.none(), st.builds(
    ServerInterfaceParams, st.integers(0, 2), st.integers(0, 2), st.sampled_from([None, "", "pw"]),
    st.integers(1, 4), st.integers(1, 4), NAME, st.booleans()))


def good_peer(role: str, queues: int) -> list[tuple[Message, bool]]:
    """What a well-behaved peer of ``role`` sends, in order, with whether an fd comes along."""
    if role == "client":  # the peer is a server
        return [(Hello("s", 0x0200, 0x0200, 255, 254, 254, 14), False),
                *[(Ack(), False)] * (2 + 2 * queues), (Connected("s"), False)]
    rb = _native.ring_bytes(10)
    return [(Init(0x0200, 0, 0, b"pw", "c"), False), (AddRegion(0, 2 * queues * rb), True),
            *[(AddRing(flag, i, 0, (i + t * queues) * rb, 10), True)
              for t, flag in ((0, C.ADD_RING_FLAG_S2M), (1, 0)) for i in range(queues)],
            (Connect("c"), False)]


def plan(neg: Negotiated) -> tuple[list[RegionSpec], list[RingSpec]]:
    rb = _native.ring_bytes(neg.log2_ring_size)
    rings = [RingSpec(t, i, 0, (i + t * neg.num_s2m) * rb, neg.log2_ring_size, 10 + i)
             for t in (C.RING_TYPE_S2M, C.RING_TYPE_M2S)
             for i in range(neg.num_s2m if t == C.RING_TYPE_S2M else neg.num_m2s)]
    return [RegionSpec(0, len(rings) * rb, 3)], rings


class Driver:
    """Performs what the I/O layer would, and checks every batch the machine returns."""

    def __init__(self, machine: Handshake, params: ServerInterfaceParams | None) -> None:
        self.machine, self.params, self.closed, self.established = machine, params, 0, False

    def perform(self, events: list[Event]) -> None:
        assert sum(isinstance(e, Send) for e in events) <= 1  # lock-step, section 1
        for i, ev in enumerate(events):
            if isinstance(ev, Closed):
                assert i == len(events) - 1, "Closed is the last event of its batch"
                self.closed += 1
            elif isinstance(ev, Established):
                self.established = True
            elif isinstance(ev, Send):
                assert len(pack(ev.msg)) == C.MSG_SIZE  # everything a machine sends packs
            elif isinstance(ev, Negotiated):
                assert isinstance(self.machine, ClientHandshake)
                self.perform(self.machine.setup(*plan(ev)))
            elif isinstance(ev, InitReceived):
                assert isinstance(self.machine, ServerHandshake)
                self.perform(self.machine.accept_init(self.params))
            elif isinstance(ev, ConnectRequest):
                assert isinstance(self.machine, ServerHandshake)
                self.perform(self.machine.connected())
        assert self.closed <= 1, "Closed comes out at most once"


@settings(max_examples=300)
@given(st.sampled_from(["client", "server"]), st.integers(0, 12), SEQUENCE, PARAMS,
       st.integers(1, 4), st.booleans())
def test_machines_survive_any_message_sequence(role: str, good_steps: int,
                                               sequence: list[tuple[Message, bool] | None],
                                               params: ServerInterfaceParams | None,
                                               queues: int, matching_params: bool) -> None:
    """Any state is reached (``good_steps`` well-behaved messages first), then anything may
    come: the machine returns events, sends at most one message per batch, closes once."""
    machine: Handshake
    if role == "client":
        machine = ClientHandshake(id=0, mode=0, secret="pw", app_name="c", if_name="c",
                                  num_s2m=queues, num_m2s=queues, log2_ring_size=10)
    else:
        machine = ServerHandshake(app_name="s", max_region=1, max_log2_ring_size=12)
    if matching_params:
        params = ServerInterfaceParams(0, 0, "pw", queues, queues, "s")
    driver = Driver(machine, params)
    driver.perform(machine.start())
    script = iter(good_peer(role, queues))
    for step in [None] * good_steps + sequence:
        msg, has_fd = next(script, (Ack(), False)) if step is None else step
        was_closed = driver.closed
        events = machine.receive(msg, has_fd=has_fd)
        assert not (was_closed and events), "after Closed every call returns []"
        driver.perform(events)
    event(f"{role} {'reached' if driver.established else 'did not reach'} the link up")
    driver.perform(machine.disconnect("end of test"))
    assert driver.closed == 1 and machine.close_reason is not None
    assert machine.disconnect("again") == [] and machine.receive(Ack(), has_fd=True) == []
