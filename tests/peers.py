"""Test helpers: raw memif control peers, a relay, subprocess peers, and resource counters.

The raw peers speak memif with hand-packed frames (memif-protocol.md section 3) on a plain
SOCK_SEQPACKET socket, independent of memif_ct.wire and memif_ct.handshake, so that a test can
send anything a hostile or broken peer could; only ring sizes come from the C library, which
owns the ring layout. Run as a script (``python peers.py echo ...``) this module is the
subprocess peer of the multi-process tests: a memif_ct Interface that echoes every packet back on
the queue it arrived on.
"""

from __future__ import annotations

import argparse
import array
import contextlib
import mmap
import os
import select
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from memif_ct import _native

if TYPE_CHECKING:
    import memif_ct

HERE = Path(__file__).resolve().parent

MSG_SIZE = 128
COOKIE = 0x3E31F20
VERSION = 0x0200
ACK, HELLO, INIT, ADD_REGION, ADD_RING, CONNECT, CONNECTED, DISCONNECT = range(1, 9)
S2M, M2S = 0, 1
DESC_SIZE = 16
CL = _native.cacheline_size()  # the ring header's cache line, as the C library lays rings out (s5)


# ---- frames (section 3), packed by hand ----------------------------------------------------


def frame(msg_type: int, payload: bytes = b"", size: int = MSG_SIZE) -> bytes:
    data = struct.pack("<H", msg_type) + payload
    return data[:size].ljust(size, b"\0")


def cstr(text: str | bytes, size: int) -> bytes:
    raw = text.encode() if isinstance(text, str) else text
    return raw[:size].ljust(size, b"\0")


def hello(name: str = "raw-server", min_version: int = VERSION, max_version: int = VERSION,
          max_region: int = 255, max_m2s: int = 254, max_s2m: int = 254, max_log2: int = 14) -> bytes:
    return frame(HELLO, cstr(name, 32) + struct.pack("<HHHHHB", min_version, max_version, max_region,
                                                     max_m2s, max_s2m, max_log2))


def init(id: int = 0, version: int = VERSION, mode: int = 0, secret: str | bytes = b"",
         name: str = "raw-client") -> bytes:
    return frame(INIT, struct.pack("<HIB", version, id, mode) + cstr(secret, 24) + cstr(name, 32))


def add_region(index: int, size: int) -> bytes:
    return frame(ADD_REGION, struct.pack("<HQ", index, size))


def add_ring(ring_type: int, index: int, region: int = 0, offset: int = 0, log2: int = 4,
             private_hdr_size: int = 0) -> bytes:
    flags = 1 if ring_type == S2M else 0
    return frame(ADD_RING, struct.pack("<HHHIBH", flags, index, region, offset, log2, private_hdr_size))


def connect_msg(name: str = "raw-client-if") -> bytes:
    return frame(CONNECT, cstr(name, 32))


def connected_msg(name: str = "raw-server-if") -> bytes:
    return frame(CONNECTED, cstr(name, 32))


def disconnect_msg(reason: str, code: int = 0) -> bytes:
    return frame(DISCONNECT, struct.pack("<I", code) + cstr(reason, 96))


def ack() -> bytes:
    return frame(ACK)


def msg_type(data: bytes) -> int:
    return struct.unpack_from("<H", data)[0]


def disconnect_reason(data: bytes) -> str:
    assert msg_type(data) == DISCONNECT, f"expected DISCONNECT, got type {msg_type(data)}"
    return data[6:102].split(b"\0", 1)[0].decode()


# ---- a raw control connection -------------------------------------------------------------


class RawPeer:
    """One raw SOCK_SEQPACKET control connection; every call is bounded by a timeout."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.fds: list[int] = []  # fds received, closed by close()

    @classmethod
    def connect(cls, address: str | bytes) -> RawPeer:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET | socket.SOCK_CLOEXEC)
        sock.settimeout(5.0)
        sock.connect(address)
        return cls(sock)

    def send(self, data: bytes, fds: list[int] | tuple[int, ...] = ()) -> None:
        anc = [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", fds).tobytes())] if fds else []
        self.sock.sendmsg([data], anc)

    def recv(self, timeout_s: float = 5.0) -> tuple[bytes, list[int]]:
        """One message and the fds that came with it (kept, closed by close()); b"" at EOF."""
        self.sock.settimeout(timeout_s)
        data, anc, _flags, _addr = self.sock.recvmsg(4096, socket.CMSG_SPACE(16 * 4))
        fds: list[int] = []
        for level, kind, raw in anc:
            if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                arr = array.array("i")
                arr.frombytes(raw[: len(raw) - len(raw) % 4])
                fds.extend(arr)
        self.fds.extend(fds)
        return data, fds

    def expect(self, msg_type_: int, timeout_s: float = 5.0) -> tuple[bytes, list[int]]:
        data, fds = self.recv(timeout_s)
        assert data, f"peer closed while we waited for message type {msg_type_}"
        if msg_type(data) == DISCONNECT and msg_type_ != DISCONNECT:
            raise AssertionError(f"got DISCONNECT {disconnect_reason(data)!r}, expected type {msg_type_}")
        assert msg_type(data) == msg_type_, f"got message type {msg_type(data)}, expected {msg_type_}"
        return data, fds

    def expect_disconnect(self, timeout_s: float = 5.0) -> str:
        """Read the DISCONNECT our side sends, then check that it closed the connection."""
        data, _ = self.expect(DISCONNECT, timeout_s)
        reason = disconnect_reason(data)
        eof, _ = self.recv(timeout_s)
        assert eof == b"", f"after DISCONNECT expected EOF, got type {msg_type(eof)}"
        return reason

    def expect_eof(self, timeout_s: float = 5.0) -> None:
        data, _ = self.recv(timeout_s)
        assert data == b"", f"expected EOF, got message type {msg_type(data)}"

    def close(self) -> None:
        for fd in self.fds:
            with contextlib.suppress(OSError):
                os.close(fd)
        self.fds.clear()
        self.sock.close()


class RawServer:
    """A raw listener: accept() hands out RawPeers."""

    def __init__(self, address: str | bytes) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET | socket.SOCK_CLOEXEC)
        self.sock.bind(address)
        self.sock.listen(8)
        self.address = address

    def accept(self, timeout_s: float = 5.0) -> RawPeer:
        self.sock.settimeout(timeout_s)
        conn, _ = self.sock.accept()
        return RawPeer(conn)

    def close(self) -> None:
        self.sock.close()
        if isinstance(self.address, str):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.address)


# ---- shared memory a raw client builds (section 5: one region, rings first) ----------------


def ring_bytes(log2: int) -> int:
    """Bytes of one ring (two cache lines of header, then descriptors) as the C library lays
    it out: the one ring size in the project, so peer and server agree on any build."""
    return _native.ring_bytes(log2)


@dataclass
class RawMemory:
    """A memfd region laid out like VPP/DPDK, plus one eventfd per ring, for a raw client."""

    num_s2m: int = 1
    num_m2s: int = 1
    log2: int = 4
    buffer_size: int = 2048
    cookie: int = COOKIE
    seal: bool = True
    fd: int = -1
    size: int = 0
    map: mmap.mmap | None = None
    eventfds: list[int] = field(default_factory=list)

    def __post_init__(self) -> None:
        n = 1 << self.log2
        rings = (self.num_s2m + self.num_m2s) * ring_bytes(self.log2)
        self.size = rings + (self.num_s2m + self.num_m2s) * n * self.buffer_size
        self.fd = os.memfd_create("raw-peer", os.MFD_CLOEXEC | os.MFD_ALLOW_SEALING)
        os.ftruncate(self.fd, self.size)
        if self.seal:
            import fcntl
            fcntl.fcntl(self.fd, fcntl.F_ADD_SEALS, fcntl.F_SEAL_SHRINK)
        self.map = mmap.mmap(self.fd, self.size, flags=mmap.MAP_SHARED)
        for t, count in ((S2M, self.num_s2m), (M2S, self.num_m2s)):
            for i in range(count):
                struct.pack_into("<I", self.map, self.ring_offset(t, i), self.cookie)
                self.eventfds.append(os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC))

    def ring_offset(self, ring_type: int, index: int) -> int:
        return (index + ring_type * self.num_s2m) * ring_bytes(self.log2)

    def buffer_offset(self, ring_type: int, index: int, slot: int) -> int:
        rings = (self.num_s2m + self.num_m2s) * ring_bytes(self.log2)
        n = 1 << self.log2
        return rings + ((index + ring_type * self.num_s2m) * n + slot) * self.buffer_size

    def eventfd(self, ring_type: int, index: int) -> int:
        return self.eventfds[index + ring_type * self.num_s2m]

    def handshake_messages(self) -> list[tuple[bytes, list[int]]]:
        """ADD_REGION, every ADD_RING and CONNECT, each with its fd, in protocol order."""
        out: list[tuple[bytes, list[int]]] = [(add_region(0, self.size), [self.fd])]
        for t, count in ((S2M, self.num_s2m), (M2S, self.num_m2s)):
            for i in range(count):
                out.append((add_ring(t, i, 0, self.ring_offset(t, i), self.log2), [self.eventfd(t, i)]))
        out.append((connect_msg(), []))
        return out

    # Descriptor access (section 5): 0 u16 flags, 2 u16 region, 4 u32 length, 8 u32 offset.
    def write_desc(self, ring_type: int, index: int, slot: int, flags: int, region: int, length: int,
                   offset: int) -> None:
        assert self.map is not None
        base = self.ring_offset(ring_type, index) + 2 * CL + DESC_SIZE * (slot & ((1 << self.log2) - 1))
        struct.pack_into("<HHII", self.map, base, flags, region, length, offset)

    def head(self, ring_type: int, index: int) -> int:
        assert self.map is not None
        return struct.unpack_from("<H", self.map, self.ring_offset(ring_type, index) + 6)[0]

    def set_head(self, ring_type: int, index: int, value: int) -> None:
        # One aligned 16-bit store through a memoryview cast (not pack_into's byte writes).
        assert self.map is not None
        memoryview(self.map).cast("H")[(self.ring_offset(ring_type, index) + 6) // 2] = value & 0xFFFF

    def tail(self, ring_type: int, index: int) -> int:
        assert self.map is not None
        return struct.unpack_from("<H", self.map, self.ring_offset(ring_type, index) + CL)[0]

    def close(self) -> None:
        if self.map is not None:
            self.map.close()
            self.map = None
        for fd in [self.fd, *self.eventfds]:
            if fd >= 0:
                with contextlib.suppress(OSError):
                    os.close(fd)
        self.fd = -1
        self.eventfds.clear()


def raw_client_handshake(peer: RawPeer, mem: RawMemory, *, id: int = 0) -> None:
    """A complete, correct client handshake from a raw peer; returns once CONNECTED arrived."""
    peer.expect(HELLO)
    peer.send(init(id=id))
    peer.expect(ACK)
    for data, fds in mem.handshake_messages():
        peer.send(data, fds)
        if msg_type(data) == CONNECT:
            peer.expect(CONNECTED)
        else:
            peer.expect(ACK)


def raw_server_handshake(peer: RawPeer, hello_fds: tuple[int, ...] = (), **hello_args: object) -> dict[str, object]:
    """A complete server handshake from a raw peer; returns what the client sent (fds kept)."""
    peer.send(hello(**hello_args), hello_fds)  # type: ignore[arg-type]
    got: dict[str, object] = {"regions": {}, "rings": {}}
    data, _ = peer.expect(INIT)
    got["init"] = data
    peer.send(ack())
    while True:
        data, fds = peer.recv()
        assert data, "client closed during handshake"
        t = msg_type(data)
        if t == ADD_REGION:
            index, size = struct.unpack_from("<HQ", data, 2)
            got["regions"][index] = (fds[0], size)  # type: ignore[index]
            peer.send(ack())
        elif t == ADD_RING:
            flags, index, region, offset, log2, _priv = struct.unpack_from("<HHHIBH", data, 2)
            ring_type = S2M if flags & 1 else M2S
            got["rings"][(ring_type, index)] = (region, offset, log2, fds[0])  # type: ignore[index]
            peer.send(ack())
        elif t == CONNECT:
            peer.send(connected_msg())
            return got
        else:
            raise AssertionError(f"unexpected message type {t} from client")


# ---- a transparent relay, so a raw listener can also serve a healthy interface -------------


class Relay(threading.Thread):
    """Forward messages and their fds between two control connections until either closes."""

    def __init__(self, a: socket.socket, b: socket.socket) -> None:
        super().__init__(daemon=True)
        self.a, self.b = a, b
        self._stop_r, self._stop_w = os.pipe()

    def run(self) -> None:
        socks = {self.a.fileno(): (self.a, self.b), self.b.fileno(): (self.b, self.a)}
        try:
            while True:
                ready, _, _ = select.select([self.a, self.b, self._stop_r], [], [])
                if self._stop_r in ready:
                    return
                for s in ready:
                    src, dst = socks[s.fileno()]
                    data, anc, _f, _ = src.recvmsg(4096, socket.CMSG_SPACE(16 * 4))
                    if not data:
                        return
                    fds = array.array("i")
                    for level, kind, raw in anc:
                        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                            fds.frombytes(raw[: len(raw) - len(raw) % 4])
                    try:
                        dst.sendmsg([data], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, fds.tobytes())] if fds else [])
                    finally:
                        for fd in fds:
                            os.close(fd)
        except OSError:
            return
        finally:
            self.a.close()
            self.b.close()

    def stop(self) -> None:
        os.write(self._stop_w, b"x")
        self.join(5)
        os.close(self._stop_r)
        os.close(self._stop_w)


# ---- resource counters and waiting ------------------------------------------------------------


def fd_count() -> int:
    return len(os.listdir("/proc/self/fd"))


def memfd_mappings() -> int:
    with open("/proc/self/maps") as f:
        return sum(1 for line in f if "memfd:" in line)


def wait_for(cond: Callable[[], object], timeout_s: float = 5.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout_s
    while not cond():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} not reached within {timeout_s} s")
        time.sleep(0.002)


def short_dir() -> str:
    return tempfile.mkdtemp(prefix="mct", dir="/tmp")


def abstract_name() -> str:
    return f"@memif-ct-test-{uuid.uuid4().hex[:12]}"


# ---- traffic ------------------------------------------------------------------------------


def payloads(sizes: range | list[int], queues: int, seed: int = 0) -> dict[int, list[bytes]]:
    """Packets of the given sizes spread over the queues (size s on queue s % queues), each
    carrying its queue number and random bytes, so a packet on the wrong queue is caught."""
    import random

    rng = random.Random(seed)
    out: dict[int, list[bytes]] = {q: [] for q in range(queues)}
    for size in sizes:
        q = size % queues
        body = bytes([q]) + rng.randbytes(size - 1)
        out[q].append(body[:size])
    return out


def pump(tx: object, rx: object, packets: dict[int, list[bytes]], *, interrupt: bool,
         timeout_s: float = 30.0, burst: int = 64) -> dict[int, list[bytes]]:
    """Send ``packets[q]`` on TX queue q of ``tx`` and collect what RX queue q of ``rx`` gets,
    until every queue received as many packets as were sent there. Drains with rx_burst; in
    interrupt mode waits with wait_rx (the RX eventfd) when nothing moved."""
    sent = {q: 0 for q in packets}
    got: dict[int, list[bytes]] = {q: [] for q in packets}
    deadline = time.monotonic() + timeout_s
    while any(len(got[q]) < len(packets[q]) for q in packets):
        if time.monotonic() > deadline:
            counts = {q: (sent[q], len(got[q]), len(packets[q])) for q in packets}
            raise TimeoutError(f"traffic stalled: (sent, received, total) per queue {counts}")
        moved = False
        for q, pkts in packets.items():
            if sent[q] < len(pkts):
                n = tx.tx_burst(pkts[sent[q]: sent[q] + burst], queue=q)  # type: ignore[attr-defined]
                sent[q] += n
                moved = moved or n > 0
            while True:
                batch = rx.rx_burst(256, queue=q)  # type: ignore[attr-defined]
                if not batch:
                    break
                got[q].extend(batch)
                moved = True
        if not moved:
            waiting = [q for q in packets if len(got[q]) < len(packets[q])]
            if interrupt:
                rx.wait_rx(waiting[0], timeout_s=0.01)  # type: ignore[attr-defined]
            else:
                time.sleep(0.0002)
    return got


def assert_same(sent: dict[int, list[bytes]], got: dict[int, list[bytes]]) -> None:
    for q in sent:
        assert len(got[q]) == len(sent[q]), f"queue {q}: {len(got[q])} packets, expected {len(sent[q])}"
        for i, (a, b) in enumerate(zip(sent[q], got[q], strict=True)):
            assert a == b, f"queue {q} packet {i}: {len(b)} bytes received differ from {len(a)} sent"


# ---- a subprocess peer ---------------------------------------------------------------------


class PeerProcess:
    """``python peers.py echo ...`` in a child process; killed (SIGKILL) by close()."""

    def __init__(self, *args: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, str(HERE / "peers.py"), *args], stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        ready, _, _ = select.select([self.proc.stdout], [], [], 20.0)
        line = self.proc.stdout.readline() if ready else ""  # type: ignore[union-attr]
        if line.strip() != "ready":
            self.kill()
            err = self.proc.stderr.read() if self.proc.stderr else ""  # type: ignore[union-attr]
            raise RuntimeError(f"peer process did not start: {line!r} {err}")

    @property
    def pid(self) -> int:
        return self.proc.pid

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def close(self) -> None:
        self.kill()
        for f in (self.proc.stdout, self.proc.stderr):
            if f is not None:
                f.close()


@contextlib.contextmanager
def peer_process(*args: str) -> Iterator[PeerProcess]:
    p = PeerProcess(*args)
    try:
        yield p
    finally:
        p.close()


def _echo_main(argv: list[str]) -> None:
    """Echo every packet back on the queue it came in on, forever (until killed)."""
    ap = argparse.ArgumentParser()
    ap.add_argument("mode")
    ap.add_argument("--role", required=True)
    ap.add_argument("--socket", required=True)
    ap.add_argument("--id", type=int, default=0)
    ap.add_argument("--queues", type=int, default=1)
    ap.add_argument("--rsize", type=int, default=10)
    ap.add_argument("--interrupt", default="yes")
    ap.add_argument("--secret", default=None)
    ap.add_argument("--mode", dest="if_mode", default="ethernet")
    args = ap.parse_args(argv)
    import memif_ct

    interrupt = args.interrupt == "yes"
    intf = memif_ct.Interface(
        role=args.role, socket=args.socket, id=args.id, rx_queues=args.queues, tx_queues=args.queues,
        log2_ring_size=args.rsize, interrupt=interrupt, secret=args.secret, mode=args.if_mode,
        reconnect_interval_s=0.02,
    )
    print("ready", flush=True)
    pending: list[list[bytes]] = [[] for _ in range(args.queues)]
    while True:
        if not intf.is_up:
            pending = [[] for _ in range(args.queues)]
            try:
                intf.wait_up(1.0)
            except TimeoutError:
                continue
        progress = False
        for q in range(args.queues):
            try:
                if len(pending[q]) < 4096:
                    got = intf.rx_burst(256, q)
                    pending[q].extend(got)
                    progress = progress or bool(got)
                if pending[q]:
                    n = intf.tx_burst(pending[q][:256], q)
                    del pending[q][:n]
                    progress = progress or bool(n)
            except (ValueError, memif_ct.MemifError):
                break  # link went down under us
        if progress:
            continue
        if interrupt and intf.is_up and not any(pending):
            try:
                select.select([intf.fileno(q) for q in range(args.queues)], [], [], 0.05)
            except (OSError, ValueError, memif_ct.MemifError):
                pass
        else:
            time.sleep(0.0002)  # polling, or waiting for the parent to drain its RX ring


if __name__ == "__main__":
    _echo_main(sys.argv[1:])


# ---- traffic through an Interface ----------------------------------------------------------


def send_all(intf: memif_ct.Interface, pkts: list[bytes], timeout: float = 20.0) -> None:
    """Transmit every packet, retrying while the ring is full; fail after ``timeout``."""
    sent = 0
    end = time.monotonic() + timeout
    while sent < len(pkts):
        sent += intf.tx_burst(pkts[sent:])
        if sent < len(pkts):
            assert time.monotonic() < end, f"only {sent} of {len(pkts)} packets could be sent"
            time.sleep(0.0005)


def receive(intf: memif_ct.Interface, n: int, timeout: float = 20.0) -> list[bytes]:
    """Receive exactly ``n`` packets (waiting on the RX queue); fail after ``timeout``."""
    got: list[bytes] = []
    end = time.monotonic() + timeout
    while len(got) < n:
        left = end - time.monotonic()
        assert left > 0, f"received {len(got)} of {n} packets"
        if intf.wait_rx(timeout_s=min(left, 0.1)):
            got.extend(intf.rx_burst(256))
    return got


class Loopback:
    """A memif_ct server and client of the same id on one Socket in this process, both up.
    ``opts`` go to both; ``client_opts`` to the client only (e.g. ``zero_copy=True``)."""

    def __init__(self, where: str, *, client_opts: dict[str, object] | None = None, **opts: object) -> None:
        import memif_ct

        self.socket = memif_ct.Socket(where)
        try:
            self.server = memif_ct.Interface(role="server", socket=self.socket, id=0, **opts)
            self.client = memif_ct.Interface(role="client", socket=self.socket, id=0, **opts, **(client_opts or {}))
            self.client.wait_up(5)
            self.server.wait_up(5)
        except BaseException:
            self.socket.close()
            raise

    def close(self) -> None:
        try:
            self.client.close()
            self.server.close()
        finally:
            self.socket.close()
