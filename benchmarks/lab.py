"""The bench: one testpmd server and one testpmd client kept for the whole run, and how to measure.

Starting a testpmd takes 1-2 s, so the suite does not start one per figure. A testpmd server
(``net_memif0``, id 0) stays up; its forwarding engine and TX frame layout are switched between
measurements with testpmd's own ``set fwd`` / ``set txpkts``. Whoever is measured connects to it
as the client: the testpmd client for the baselines, or memif-ct (in this process, or a
``memif-ct`` tool as a child process). The testpmd client gives way with ``port stop`` (a DPDK
client disconnects in dev_stop and reconnects only in dev_start: tests/TESTPMD_NOTES.md).

Every rate is a count over a timed window: testpmd's port counters, read before and after, or
our own counts checked against them. CPU cost comes from ``time.process_time()`` for this
process and ``/proc/<pid>/stat`` for a child (testpmd, a tool), so no extra dependency.
Forwarding is stopped between measurements so that a busy-polling lcore does not take a core
from whatever runs next on a small machine.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

import testpmd

import memif_ct

CLK_TCK = os.sysconf("SC_CLK_TCK")
WARMUP_S = 0.2
# 9,000 bytes as testpmd chains it (one 2,048-byte mbuf segment each): 5 memif slots of 2,048.
TXPKTS = {64: "64", 512: "512", 1500: "1500", 9000: "2048,2048,2048,2048,808"}


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process so far, from /proc/<pid>/stat (all its threads)."""
    with open(f"/proc/{pid}/stat", encoding="ascii") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime, stime: fields 14 and 15


@dataclass
class Figure:
    """One measurement: a rate and, where it could be taken, its CPU cost."""

    packets: int
    seconds: float
    bytes: int = 0
    cpu_s: float | None = None  # CPU seconds the measured side used in the window
    extra: dict[str, object] = field(default_factory=dict)

    @property
    def mpps(self) -> float:
        return self.packets / self.seconds / 1e6

    @property
    def gbps(self) -> float:
        return self.bytes * 8 / self.seconds / 1e9

    @property
    def mpps_per_cpu_s(self) -> float | None:
        """Million packets per CPU-second of the measured side."""
        return self.packets / self.cpu_s / 1e6 if self.cpu_s else None


class Bench:
    """The long-lived testpmd pair and a place for sockets; a context manager that stops both."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self.tmp_dir = tempfile.mkdtemp(prefix=f"{prefix}-")  # short: sun_path is 108 bytes
        self.factory = testpmd.TestPmdFactory()
        shutil.rmtree(self.factory.tmp_dir, ignore_errors=True)
        self.factory.tmp_dir = self.tmp_dir  # sockets and logs here, named after our prefix
        self.sock = os.path.join(self.tmp_dir, "pmd.sock")
        self._server: testpmd.TestPmd | None = None
        self._client: testpmd.TestPmd | None = None
        self._fwd = ""
        self._txpkts = ""

    def __enter__(self) -> Bench:
        return self

    def __exit__(self, exc_type: object, *exc: object) -> None:
        # The factory prints every testpmd's log tail: worth reading after a failure only.
        with contextlib.redirect_stdout(sys.stderr if exc_type else io.StringIO()):
            self.factory.close()

    def file_prefix(self, role: str) -> str:
        return f"{self.prefix}-{role}-{uuid.uuid4().hex[:6]}"

    def socket(self, name: str) -> str:
        return os.path.join(self.tmp_dir, f"{name}.sock")

    # ---- the testpmd pair --------------------------------------------------------------

    @property
    def server(self) -> testpmd.TestPmd:
        if self._server is None:
            self._server = self.factory("server", self.sock, forward_mode="rxonly",
                                        file_prefix=self.file_prefix("server"))
            self._fwd, self._txpkts = "rxonly", "64"
        return self._server

    def configure(self, fwd: str, size: int = 64) -> testpmd.TestPmd:
        """The server, forwarding stopped, set to engine ``fwd`` sending ``size``-byte frames."""
        server = self.server
        if server.forwarding:
            server.stop_forwarding()
        if fwd != self._fwd:
            server.command(f"set fwd {fwd}")
            self._fwd = fwd
        if TXPKTS[size] != self._txpkts:
            reply = server.command(f"set txpkts {TXPKTS[size]}")
            if "give up" in reply or "error" in reply.lower():
                raise testpmd.TestPmdError(f"set txpkts {TXPKTS[size]}: {reply.strip()}")
            self._txpkts = TXPKTS[size]
        return server

    @contextlib.contextmanager
    def testpmd_client(self, fwd: str, size: int = 64) -> Iterator[testpmd.TestPmd]:
        """The testpmd client connected to the server (started once, then port start/stop)."""
        if self._client is None:
            self.server  # noqa: B018  (it must listen before the client dials)
            self._client = self.factory("client", self.sock, forward_mode=fwd, txpkts=TXPKTS[size],
                                        file_prefix=self.file_prefix("client"))
            self._client_cfg = (fwd, TXPKTS[size])
        else:
            if self._client_cfg != (fwd, TXPKTS[size]):
                self._client.command(f"set fwd {fwd}")
                self._client.command(f"set txpkts {TXPKTS[size]}")
                self._client_cfg = (fwd, TXPKTS[size])
            reply = self._client.command("port start 0")
            if "Fail" in reply:
                raise testpmd.TestPmdError(f"testpmd client did not reconnect: {reply.strip()}")
        try:
            self.server.wait_link_up(20)
            yield self._client
        finally:
            self.quiesce()
            if self._client.forwarding:
                self._client.stop_forwarding()
            self._client.command("port stop 0")  # disconnects: the server is free for memif-ct
            self.server.wait_link_down(10)

    # ---- memif-ct as the client ------------------------------------------------------------

    def devargs(self, *, interrupt: bool = False, socket: str | None = None, role: str = "client",
                zero_copy: bool = False) -> str:
        return (f"role={role},id=0,socket={socket or self.sock},socket-abstract=no,"
                f"interrupt={'yes' if interrupt else 'no'}" + (",zero-copy=yes" if zero_copy else ""))

    @contextlib.contextmanager
    def memif_client(self, *, interrupt: bool = False) -> Iterator[memif_ct.Interface]:
        with memif_ct.Interface.from_devargs(self.devargs(interrupt=interrupt)) as intf:
            intf.wait_up(20)
            self.server.wait_link_up(20)
            yield intf
            self.quiesce()
        self.server.wait_link_down(10)

    def quiesce(self) -> None:
        """Stop the server's forwarding: before a client disconnects, always. A testpmd server
        whose lcore was polling when its client sent DISCONNECT died of SIGSEGV here (22.11.11)."""
        if self._server is not None and self._server.forwarding:
            self._server.stop_forwarding()


def window(pmd: testpmd.TestPmd, seconds: float, pid: int | None = None, key: str = "rx",
           also: int | None = None) -> Figure:
    """testpmd's ``key`` (rx or tx) packets and bytes over ``seconds``; CPU of ``pid`` (default
    testpmd itself) in the same window, and of ``also`` as extra["also_cpu_s"]. Starts after a
    short warm-up."""
    time.sleep(WARMUP_S)
    pid = pid or pmd.pid
    assert pid is not None
    pids = [pid] + ([also] if also else [])
    a, c0, t0 = pmd.stats(), [cpu_seconds(p) for p in pids], time.monotonic()
    time.sleep(seconds)
    b, c1, t1 = pmd.stats(), [cpu_seconds(p) for p in pids], time.monotonic()
    fig = Figure(b[f"{key}_packets"] - a[f"{key}_packets"], t1 - t0, b[f"{key}_bytes"] - a[f"{key}_bytes"],
                 c1[0] - c0[0])
    if also:
        fig.extra["also_cpu_s"] = c1[1] - c0[1]
    return fig


def settle(pmd: testpmd.TestPmd, key: str, expected: int, timeout_s: float = 5.0) -> int:
    """testpmd's counter ``key`` once it reached ``expected`` (or the timeout passed)."""
    value = pmd.stats()[key]
    deadline = time.monotonic() + timeout_s
    while value < expected and time.monotonic() < deadline:
        time.sleep(0.05)
        value = pmd.stats()[key]
    return value


def check(name: str, ours: int, peer: int, slack: int = 0) -> None:
    """A figure counts only if testpmd's own port counters agree with ours."""
    if not 0 <= peer - ours <= slack:
        raise RuntimeError(f"{name}: we counted {ours} packets, testpmd counted {peer}: figures disagree")


@contextlib.contextmanager
def tool(*args: str) -> Iterator[subprocess.Popen[str]]:
    """A ``memif-ct`` command as a child process (``--json``); stopped with SIGINT on exit."""
    cmd = [sys.executable, "-m", "memif_ct", *args, "--json"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            cwd=tempfile.gettempdir())  # never the source tree: the installed package
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def tool_report(proc: subprocess.Popen[str], timeout_s: float = 120.0) -> dict[str, object]:
    """The last stdout line of a finished tool, its JSON summary; raises if it failed."""
    out, err = proc.communicate(timeout=timeout_s)
    lines = out.strip().splitlines()
    report = json.loads(lines[-1]) if lines else {}
    if proc.returncode != 0 or report.get("error"):
        raise RuntimeError(f"{' '.join(map(str, proc.args))}: exit {proc.returncode}, "
                           f"error {report.get('error')!r}\n{err[-2000:]}")
    return report
