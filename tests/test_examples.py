"""examples/echo.py and examples/forward.py run as a user runs them, peered by in-process clients.

Each example is a subprocess (``python examples/x.py DEVARGS``) using the package the tests
import; readiness is read from its stdout, and it is stopped with Ctrl-C (SIGINT), after which it
must exit cleanly with its summary.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from memif_ct import frames
from memif_ct.interface import Interface
from peers import receive, send_all

ROOT = Path(__file__).resolve().parent.parent
STEP = 20.0


class Example:
    """An example script as a subprocess; stdout lines collected by a thread as they arrive."""

    def __init__(self, script: str, *args: str) -> None:
        # Environment from conftest (the memif_ct under test). Not PYTHONUNBUFFERED: the examples
        # must flush their own progress lines for a pipe to see them.
        self.proc = subprocess.Popen([sys.executable, f"examples/{script}", *args], cwd=ROOT,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.out: list[str] = []
        self.err: list[str] = []
        self._cond = threading.Condition()
        self._readers = [threading.Thread(target=self._pump, args=(s, b), daemon=True)
                         for s, b in ((self.proc.stdout, self.out), (self.proc.stderr, self.err))]
        for t in self._readers:
            t.start()

    def _pump(self, stream: object, buf: list[str]) -> None:
        for line in stream:  # type: ignore[attr-defined]
            with self._cond:
                buf.append(line)
                self._cond.notify_all()
        with self._cond:
            self._cond.notify_all()

    def wait_line(self, text: str, timeout: float = STEP) -> str:
        def found() -> str | None:
            return next((line for line in self.out if text in line), None)

        with self._cond:
            ok = self._cond.wait_for(lambda: found() is not None or self.proc.poll() is not None, timeout)
            line = found()
        if line is None:
            raise AssertionError(f"no {text!r} on stdout (ok={ok}, rc={self.proc.poll()}); "
                                 f"stdout {''.join(self.out)!r} stderr {''.join(self.err)!r}")
        return line

    def interrupt(self, timeout: float = STEP) -> tuple[int, str, str]:
        self.proc.send_signal(signal.SIGINT)
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"still running {timeout} s after SIGINT") from None
        for t in self._readers:
            t.join(5)
        return rc, "".join(self.out), "".join(self.err)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)


@pytest.fixture
def run_example() -> Iterator[object]:
    started: list[Example] = []

    def start(script: str, *args: str) -> Example:
        ex = Example(script, *args)
        started.append(ex)
        return ex

    try:
        yield start
    finally:
        for ex in started:
            ex.kill()


@pytest.fixture
def clients() -> Iterator[list[Interface]]:
    opened: list[Interface] = []
    try:
        yield opened
    finally:
        for intf in opened:
            intf.close()


def server_args(path: str) -> str:
    return f"role=server,id=0,socket={path},socket-abstract=no"


def client(opened: list[Interface], path: str) -> Interface:
    intf = Interface.from_devargs(f"role=client,id=0,socket={path},socket-abstract=no,reconnect-interval=0.05")
    opened.append(intf)
    intf.wait_up(STEP)
    return intf




def distinct_frames(n: int, first_seq: int = 0) -> list[bytes]:
    """n different frames of assorted sizes; the 3000-byte ones chain over 2048-byte buffers."""
    sizes = (60, 64, 200, 1500, 3000)
    return [frames.build_udp_frame(sizes[i % len(sizes)], first_seq + i, src_mac=bytes([2, 1, 2, 3, 4, i % 256]),
                                   dst_mac=bytes([2, 9, 8, 7, 6, i % 256]))
            for i in range(n)]


def macswapped(frame: bytes) -> bytes:
    return frame[6:12] + frame[0:6] + frame[12:] if len(frame) >= 12 else frame


@pytest.mark.parametrize("script", ["echo.py", "numpy_burst.py"])
def test_echo_examples_swap_macs(sockdir: str, run_example: object, clients: list[Interface], script: str) -> None:
    if script == "numpy_burst.py":
        pytest.importorskip("numpy")
    path = f"{sockdir}/e.sock"
    ex = run_example(script, server_args(path))  # type: ignore[operator]
    ex.wait_line("waiting for a peer")
    c = client(clients, path)
    ex.wait_line("link up")
    sent = distinct_frames(300)  # chains of 3000 bytes among them
    if script == "numpy_burst.py":
        sent.append(b"short")  # shorter than a MAC header: numpy_burst sends it back as it came
    send_all(c, sent)
    got = receive(c, len(sent))
    assert got == [macswapped(p) for p in sent]
    assert all(g[0:6] == p[6:12] and g[6:12] == p[0:6] for g, p in zip(got, sent[:300], strict=False))
    rc, out, err = ex.interrupt()
    assert rc == 0, err
    assert "Traceback" not in err
    # The printed count is the interface's own, so Ctrl-C landing mid-burst cannot skew it.
    m = re.search(r"echoed (\d+) packets", out)
    assert m, out
    assert m.group(1) == str(len(sent)), f"summary says echoed {m.group(1)}, the interface sent {len(sent)}"


def test_forward_example_both_ways(sockdir: str, run_example: object, clients: list[Interface]) -> None:
    pa, pb = f"{sockdir}/a.sock", f"{sockdir}/b.sock"
    ex = run_example("forward.py", server_args(pa), server_args(pb))  # type: ignore[operator]
    ca = client(clients, pa)
    cb = client(clients, pb)
    ex.wait_line("both links up")
    a_to_b = distinct_frames(100)
    send_all(ca, a_to_b)
    assert receive(cb, 100) == a_to_b
    b_to_a = distinct_frames(100, first_seq=1000)
    send_all(cb, b_to_a)
    assert receive(ca, 100) == b_to_a
    rc, out, err = ex.interrupt()
    assert rc == 0, err
    assert "Traceback" not in err
    m = re.search(r"forwarded a->b (\d+), b->a (\d+), dropped (\d+)", out)
    assert m, out
    assert m.groups() == ("100", "100", "0")


def test_forward_example_usage() -> None:
    r = subprocess.run([sys.executable, "examples/forward.py", "only-one"], cwd=ROOT,
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 1
    assert "Cross-connect" in r.stderr


@pytest.mark.parametrize("script", ["echo.py", "forward.py", "numpy_burst.py"])
def test_ctrl_c_before_a_peer_exits_cleanly(sockdir: str, run_example: object, script: str) -> None:
    # "Ctrl-C stops it" (the examples' docstrings) also while still waiting for a peer.
    if script == "numpy_burst.py":
        pytest.importorskip("numpy")
    paths = [f"{sockdir}/a.sock"] + ([f"{sockdir}/b.sock"] if script == "forward.py" else [])
    ex = run_example(script, *map(server_args, paths))  # type: ignore[operator]
    deadline = time.monotonic() + STEP
    while not all(map(os.path.exists, paths)):  # listening: every interface exists, it waits for peers
        assert ex.proc.poll() is None and time.monotonic() < deadline, "".join(ex.err)
        time.sleep(0.005)
    rc, _out, err = ex.interrupt()
    assert "Traceback" not in err, err
    assert rc in (0, 130), err
