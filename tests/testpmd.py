"""Drive a real DPDK ``dpdk-testpmd`` with a ``net_memif`` port: the real-peer test harness.

One ``TestPmd`` owns one testpmd process. It runs testpmd in interactive mode (``-i``) with
stdin as a pipe the harness writes commands to, and stdout+stderr (line-buffered through
``stdbuf``) read by a thread into a log file and an in-memory transcript. Every command is
answered by the next ``testpmd> `` prompt, so a reply is exactly the text between sending a
command and that prompt: statistics are read on demand, never scraped from a periodic dump.

Why interactive and not ``--stats-period``: the periodic dump lags by up to a period, is
redrawn with terminal escapes, and the non-interactive mode without it waits on "Press enter
to exit" (a closed stdin would end it at once). Interactive mode also gives a clean readiness
signal (the first prompt appears only after the port start was attempted) and lets a test
start/stop forwarding and restart the port. If the harness dies, the stdin pipe closes and
testpmd quits by itself (EOF on its command line).

This module must not import memif_ct: it checks memif_ct against an independent peer.
Facts it relies on are recorded in tests/TESTPMD_NOTES.md.

Usage from a test file::

    import testpmd

    testpmd_factory = testpmd.testpmd_factory  # the fixture (it calls require_testpmd())

    def test_x(testpmd_factory):
        sock = testpmd_factory.socket_path("x")
        server = testpmd_factory("server", sock, forward_mode="rxonly")  # started
        server.wait_link_up(timeout_s=5)  # once a client connected
        assert server.stats()["rx_packets"] >= 0
"""

from __future__ import annotations

import glob
import itertools
import os
import re
import shutil
import signal
import subprocess
import tempfile
import threading
import time
import uuid

import pytest

TESTPMD_BINARY = "dpdk-testpmd"
PROMPT = "testpmd> "
LOG_TAIL_LINES = 40
ROLES = ("server", "client")
FORWARD_MODES = ("rxonly", "txonly", "io", "macswap", "icmpecho")
# DPDK 22.11 memif reports this as its max Rx frame; asking for more fails port start.
MEMIF_MAX_FRAME = 1518
# Where Debian/Ubuntu/Fedora and a default `meson install` put DPDK's plugin PMDs.
_PMD_DIR_GLOBS = (
    "/usr/lib/*/dpdk/pmds-*",
    "/usr/lib64/dpdk/pmds-*",
    "/usr/lib/dpdk/pmds-*",
    "/usr/local/lib/*/dpdk/pmds-*",
    "/usr/local/lib64/dpdk/pmds-*",
    "/usr/local/lib/dpdk/pmds-*",
)
_DPDK_RUNTIME_DIR = "/var/run/dpdk"

_STATS_RE = re.compile(
    r"NIC statistics for port (?P<port>\d+)\s+#+\s*"
    r"RX-packets:\s*(?P<rx_packets>\d+)\s+RX-missed:\s*(?P<rx_missed>\d+)\s+"
    r"RX-bytes:\s*(?P<rx_bytes>\d+)\s+"
    r"RX-errors:\s*(?P<rx_errors>\d+)\s+"
    r"RX-nombuf:\s*(?P<rx_nombuf>\d+)\s+"
    r"TX-packets:\s*(?P<tx_packets>\d+)\s+TX-errors:\s*(?P<tx_errors>\d+)\s+"
    r"TX-bytes:\s*(?P<tx_bytes>\d+)"
)
_LINK_RE = re.compile(r"Link status:\s*(up|down)")
_PORT_STARTED_RE = re.compile(r"^Port (\d+): ([0-9A-F]{2}(?::[0-9A-F]{2}){5})\s*$", re.MULTILINE)
_PORT_START_FAILED_RE = re.compile(r"Fail to start port (\d+)[^\n]*")
# e.g. "length[0]=9000 > mbuf_data_size=2176 - give up" (testpmd then keeps its default).
_OPTION_REJECTED_RE = re.compile(r"[^\n]*- give up[^\n]*")

_instance_counter = itertools.count()


class TestPmdError(RuntimeError):
    """testpmd did not start, did not answer, or answered with an error."""

    __test__ = False


def _find_memif_pmd() -> list[str]:
    found = []
    for pattern in _PMD_DIR_GLOBS:
        for pmd_dir in glob.glob(pattern):
            found += glob.glob(os.path.join(pmd_dir, "librte_net_memif.so*"))
    return found


def require_testpmd() -> None:
    """Fail the calling test (never skip) unless testpmd and the memif PMD are installed.

    Real-peer tests are the point of this suite: a machine without DPDK must show red.
    """
    problems = []
    if shutil.which(TESTPMD_BINARY) is None:
        problems.append(f"'{TESTPMD_BINARY}' is not on PATH (Debian/Ubuntu: apt-get install dpdk)")
    if not _find_memif_pmd():
        problems.append(
            "the memif PMD librte_net_memif.so is not in any DPDK pmds-* directory "
            f"({', '.join(_PMD_DIR_GLOBS)}) (Debian/Ubuntu: apt-get install librte-net-memif23 "
            "librte-mempool-ring23)"
        )
    if shutil.which("stdbuf") is None:
        problems.append("'stdbuf' (coreutils) is not on PATH: the harness needs testpmd line-buffered")
    if problems:
        pytest.fail("real-peer tests need DPDK testpmd with net_memif: " + "; ".join(problems), pytrace=False)


class TestPmd:
    """One dpdk-testpmd process with one net_memif port (port 0), as a context manager.

    role: "server" (listener) or "client".
    socket: the memif socket name: a filesystem path, or with socket_abstract=True the abstract
        name DPDK puts after the leading NUL (DPDK's own default is abstract).
    forward_mode: testpmd forwarding engine, one of FORWARD_MODES. Forwarding is not started
        until start_forwarding() (or auto_forward=True), so a busy-polling forwarding lcore
        cannot starve a second testpmd that is still initialising on the same 2 cores.
    rxq, txq: queue counts (memif rings per direction).
    secret, bsize, rsize, memif_id, zero_copy: net_memif devargs (secret, bsize = buffer size
        in bytes, rsize = log2 ring size, id, zero-copy).
    txpkts: testpmd --txpkts for txonly: "64", or a comma list of segment sizes making one
        chained mbuf ("2048,2048,2048,2048,808" = 9000 bytes). Keep each segment within one
        mbuf's usable room (2048 bytes by default). testpmd ignores a segment longer than its
        mbuf size (2176 by default, headroom included) with a "give up" line and keeps
        sending 64 bytes, so start() treats that line as an error.
    mbuf_size: testpmd --mbuf-size: mbuf data room including the 128-byte headroom.
    burst: packets per burst (--burst).
    main_lcore: EAL main lcore among lcores; the other lcore forwards. Two testpmds on 2 cores
        should pick different main lcores so their forwarding lcores differ.
    hugepages: run on huge pages with ``--in-memory`` (memfd-backed memsegs, no mount, no files
        left behind) instead of ``--no-huge -m memory_mb``. A ``zero-copy=yes`` testpmd needs it:
        with --no-huge its memory is one tmpfs memfd that cannot be sealed, which memif-ct refuses
        (TESTPMD_NOTES.md, "Zero-copy client"). The caller makes sure pages are free.
    extra_eal_args, extra_app_args: appended to the EAL / testpmd parts of the command line.
    """

    __test__ = False  # not a pytest test class despite the name

    def __init__(
        self,
        role: str,
        socket: str,
        *,
        socket_abstract: bool = False,
        memif_id: int = 0,
        forward_mode: str = "io",
        rxq: int = 1,
        txq: int = 1,
        secret: str | None = None,
        bsize: int | None = None,
        rsize: int | None = None,
        zero_copy: bool = False,
        txpkts: str | None = None,
        mbuf_size: int | None = None,
        burst: int | None = None,
        total_num_mbufs: int = 16384,
        memory_mb: int = 1024,
        hugepages: bool = False,
        lcores: str = "0,1",
        main_lcore: int | None = None,
        auto_forward: bool = False,
        extra_eal_args: tuple[str, ...] | list[str] = (),
        extra_app_args: tuple[str, ...] | list[str] = (),
        file_prefix: str | None = None,
        log_dir: str | None = None,
        memif_log_level: str = "info",
    ) -> None:
        if role not in ROLES:
            raise ValueError(f"role={role!r}: expected one of {ROLES}")
        if forward_mode not in FORWARD_MODES:
            raise ValueError(f"forward_mode={forward_mode!r}: expected one of {FORWARD_MODES}")
        if not socket or len(socket.encode()) > (106 if socket_abstract else 107):
            raise ValueError(f"socket={socket!r}: must be 1..107 bytes (sun_path limit)")
        if secret is not None and len(secret.encode()) > 23:
            raise ValueError(f"secret={secret!r}: memif secrets hold at most 23 bytes")
        self.role = role
        self.socket = socket
        self.socket_abstract = socket_abstract
        self.memif_id = memif_id
        self.forward_mode = forward_mode
        self.rxq, self.txq = rxq, txq
        self.secret, self.bsize, self.rsize, self.zero_copy = secret, bsize, rsize, zero_copy
        self.txpkts, self.mbuf_size, self.burst = txpkts, mbuf_size, burst
        self.total_num_mbufs, self.memory_mb, self.hugepages = total_num_mbufs, memory_mb, hugepages
        self.lcores = lcores
        self.main_lcore = main_lcore if main_lcore is not None else (0 if role == "server" else 1)
        self.auto_forward = auto_forward
        self.extra_eal_args = list(extra_eal_args)
        self.extra_app_args = list(extra_app_args)
        self.memif_log_level = memif_log_level
        serial = next(_instance_counter)
        self.file_prefix = file_prefix or f"harness-{role}-{os.getpid()}-{serial}-{uuid.uuid4().hex[:6]}"
        self._own_log_dir = log_dir is None
        self.log_dir = log_dir or tempfile.mkdtemp(prefix="harness-testpmd-")
        self.log_path = ""
        self._launches = 0
        self._proc: subprocess.Popen | None = None
        self._reader: threading.Thread | None = None
        self._log_file = None
        self._transcript = ""
        self._cond = threading.Condition()
        self._cmd_lock = threading.Lock()
        self.startup_s: float | None = None
        self.forwarding = False

    # ---- command line -------------------------------------------------------------------

    def devargs(self) -> str:
        args = [
            f"role={self.role}",
            f"id={self.memif_id}",
            f"socket={self.socket}",
            f"socket-abstract={'yes' if self.socket_abstract else 'no'}",
        ]
        if self.secret is not None:
            args.append(f"secret={self.secret}")
        if self.bsize is not None:
            args.append(f"bsize={self.bsize}")
        if self.rsize is not None:
            args.append(f"rsize={self.rsize}")
        if self.zero_copy:
            args.append("zero-copy=yes")
        return ",".join(args)

    def command_line(self) -> list[str]:
        eal = [
            TESTPMD_BINARY,
            "-l",
            self.lcores,
            "--main-lcore",
            str(self.main_lcore),
            *(["--in-memory"] if self.hugepages else ["--no-huge", "-m", str(self.memory_mb)]),
            "--no-pci",
            f"--file-prefix={self.file_prefix}",
            f"--log-level=pmd.net.memif:{self.memif_log_level}",
            f"--vdev=net_memif0,{self.devargs()}",
        ]
        if self.zero_copy:
            eal.append("--single-file-segments")
        eal += self.extra_eal_args
        app = [
            "-i",
            f"--total-num-mbufs={self.total_num_mbufs}",
            f"--forward-mode={self.forward_mode}",
            f"--rxq={self.rxq}",
            f"--txq={self.txq}",
        ]
        if self.mbuf_size is not None:  # must precede --txpkts, which is checked against it
            app.append(f"--mbuf-size={self.mbuf_size}")
        if self.txpkts is not None:
            app.append(f"--txpkts={self.txpkts}")
        if self.burst is not None:
            app.append(f"--burst={self.burst}")
        app += self.extra_app_args
        return eal + ["--"] + app

    # ---- lifecycle ------------------------------------------------------------------------

    def start(self, timeout_s: float = 30.0) -> TestPmd:
        """Launch testpmd and wait until its port 0 is started and it prompts for commands.

        Raises TestPmdError (with the log tail) if it exits, times out, or fails to start the
        port (a client does so when the server socket is not there yet).
        """
        if self.alive():
            raise TestPmdError(f"{self.file_prefix}: already running")
        self._remove_stale_files()
        self._launches += 1
        self.log_path = os.path.join(self.log_dir, f"{self.file_prefix}.{self._launches}.log")
        # Kept open across calls: the reader thread appends until _terminate() closes it.
        # Closed when the process has exited (_terminate), not by a with-block: it lives as long.
        self._log_file = open(self.log_path, "w", encoding="utf-8", errors="replace")
        cmd = ["stdbuf", "-oL", "-eL"] + self.command_line()
        self._log_file.write("$ " + " ".join(cmd) + "\n")
        self._log_file.flush()
        with self._cond:
            self._transcript = ""
        t0 = time.monotonic()
        self._proc = subprocess.Popen(
            cmd,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # keep terminal/CI signals for the process group away
        )
        self._reader = threading.Thread(
            target=self._read_output, args=(self._proc,), name=f"reader-{self.file_prefix}", daemon=True
        )
        self._reader.start()
        deadline = t0 + timeout_s
        try:
            self._wait_for(re.compile(re.escape(PROMPT)), 0, deadline, "the first prompt")
        except TestPmdError:
            self._terminate()
            raise
        self.startup_s = time.monotonic() - t0
        failed = _PORT_START_FAILED_RE.search(self.transcript())
        rejected = _OPTION_REJECTED_RE.search(self.transcript())
        if failed or rejected or not _PORT_STARTED_RE.search(self.transcript()):
            if rejected:
                reason = f"testpmd ignored an option: {rejected.group(0)!r}"
            else:
                reason = failed.group(0) if failed else "no 'Port 0: <MAC>' line"
            err = self._error(f"port 0 did not start as configured ({reason})")
            self._terminate()
            raise err
        if self.auto_forward:
            self.start_forwarding()
        return self

    def stop(self, timeout_s: float = 10.0) -> int | None:
        """Quit gracefully ('quit', then EOF), then SIGTERM, then SIGKILL; always clean up.

        Returns testpmd's exit status (None if it was never started).
        """
        if self._proc is None:
            self._cleanup_files()
            return None
        if self._proc.poll() is None:
            try:
                self._proc.stdin.write(b"quit\n")
                self._proc.stdin.flush()
            except (BrokenPipeError, OSError, ValueError):
                pass
        return self._terminate(timeout_s)

    def kill(self) -> int | None:
        """SIGKILL testpmd at once (a peer dying mid-traffic), then clean up its files."""
        if self._proc is not None and self._proc.poll() is None:
            self._proc.kill()
        return self._terminate(5.0)

    def restart(self, timeout_s: float = 30.0) -> TestPmd:
        self.stop()
        return self.start(timeout_s)

    def close(self) -> None:
        """stop() and remove the log directory this object created."""
        self.stop()
        if self._own_log_dir and not os.environ.get("HARNESS_KEEP_LOGS"):
            shutil.rmtree(self.log_dir, ignore_errors=True)

    def __enter__(self) -> TestPmd:  # not typing.Self: Python 3.10 has none
        if not self.alive():
            self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def alive(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    def _terminate(self, timeout_s: float = 10.0) -> int | None:
        proc = self._proc
        rc = None
        if proc is not None:
            try:
                proc.stdin.close()  # EOF on the command line also makes testpmd quit
            except (BrokenPipeError, OSError, ValueError):
                pass
            for sig in (None, signal.SIGTERM, signal.SIGKILL):
                if sig is not None and proc.poll() is None:
                    proc.send_signal(sig)
                try:
                    rc = proc.wait(timeout=timeout_s if sig is None else 5.0)
                    break
                except subprocess.TimeoutExpired:
                    continue
            if self._reader is not None:
                self._reader.join(timeout=5.0)
            if proc.stdout is not None:
                proc.stdout.close()
        with self._cond:  # the reader may still be draining if join() timed out
            if self._log_file is not None:
                self._log_file.write(f"\n[harness] testpmd exited with status {rc}\n")
                self._log_file.close()
                self._log_file = None
        self.forwarding = False
        self._cleanup_files()
        return rc

    def _socket_file(self) -> str | None:
        return None if self.socket_abstract else self.socket

    def _remove_stale_files(self) -> None:
        # A SIGKILLed server leaves its socket file; DPDK's bind() would then fail.
        if self.role == "server":
            self._cleanup_files()
        else:
            shutil.rmtree(os.path.join(_DPDK_RUNTIME_DIR, self.file_prefix), ignore_errors=True)

    def _cleanup_files(self) -> None:
        path = self._socket_file()
        if self.role == "server" and path and os.path.exists(path):
            try:
                os.unlink(path)
            except OSError:
                pass
        shutil.rmtree(os.path.join(_DPDK_RUNTIME_DIR, self.file_prefix), ignore_errors=True)

    # ---- output -------------------------------------------------------------------------

    def _read_output(self, proc: subprocess.Popen) -> None:
        fd = proc.stdout.fileno()
        while True:
            try:
                chunk = os.read(fd, 65536)
            except OSError:
                chunk = b""
            text = chunk.decode("utf-8", errors="replace")
            with self._cond:
                if text:
                    self._transcript += text
                    if self._log_file is not None:
                        self._log_file.write(text)
                        self._log_file.flush()
                self._cond.notify_all()
            if not chunk:
                return

    def transcript(self) -> str:
        """Everything testpmd printed since the last start()."""
        with self._cond:
            return self._transcript

    def log_tail(self, lines: int = LOG_TAIL_LINES) -> str:
        try:
            with open(self.log_path, encoding="utf-8", errors="replace") as f:
                return "".join(f.readlines()[-lines:])
        except OSError:
            return "\n".join(self.transcript().splitlines()[-lines:])

    def _error(self, what: str) -> TestPmdError:
        return TestPmdError(
            f"testpmd {self.role} ({self.file_prefix}, socket {self.socket!r}): {what}\n"
            f"--- last {LOG_TAIL_LINES} lines of {self.log_path} ---\n{self.log_tail()}"
        )

    def _wait_for(self, pattern: re.Pattern, since: int, deadline: float, what: str) -> re.Match:
        with self._cond:
            while True:
                m = pattern.search(self._transcript, since)
                if m:
                    return m
                if (
                    self._proc is None
                    or self._proc.poll() is not None
                    and not (self._reader and self._reader.is_alive())
                ):
                    rc = self._proc.returncode if self._proc else None
                    raise self._error(f"exited (status {rc}) while waiting for {what}")
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise self._error(f"timed out waiting for {what}")
                self._cond.wait(min(remaining, 0.5))

    def wait_for_log(self, regex: str, timeout_s: float = 10.0, since: int = 0) -> re.Match:
        """Wait until testpmd's output (from offset `since`) matches `regex`."""
        return self._wait_for(re.compile(regex), since, time.monotonic() + timeout_s, repr(regex))

    def log_offset(self) -> int:
        with self._cond:
            return len(self._transcript)

    # ---- commands -------------------------------------------------------------------------

    def command(self, line: str, timeout_s: float = 10.0) -> str:
        """Send one interactive command; return its reply (the text before the next prompt)."""
        with self._cmd_lock:
            if not self.alive():
                raise self._error(f"not running, cannot send {line!r}")
            with self._cond:
                mark = len(self._transcript)
            try:
                self._proc.stdin.write(line.encode() + b"\n")
                self._proc.stdin.flush()
            except (BrokenPipeError, OSError) as e:
                raise self._error(f"cannot send {line!r}: {e}") from e
            m = self._wait_for(
                re.compile(re.escape(PROMPT)), mark, time.monotonic() + timeout_s, f"the reply to {line!r}"
            )
            reply = self.transcript()[mark : m.start()]
            # cmdline echoes the line it read (an async PMD log line may come first); drop it.
            lines = reply.split("\n")
            for i, text in enumerate(lines):
                if text.strip() == line.strip():
                    del lines[i]
                    break
            return "\n".join(lines)

    def stats(self, port: int = 0) -> dict[str, int]:
        """Port counters from 'show port stats': rx_packets, rx_bytes, rx_missed, rx_errors,
        rx_nombuf, tx_packets, tx_bytes, tx_errors. DPDK memif zeroes them on link down."""
        reply = self.command(f"show port stats {port}")
        m = _STATS_RE.search(reply)
        if not m or int(m.group("port")) != port:
            raise self._error(f"cannot parse 'show port stats {port}' reply:\n{reply}")
        return {k: int(v) for k, v in m.groupdict().items() if k != "port"}

    def link_up(self, port: int = 0) -> bool:
        reply = self.command(f"show port info {port}")
        m = _LINK_RE.search(reply)
        if not m:
            raise self._error(f"no 'Link status' in 'show port info {port}' reply:\n{reply}")
        return m.group(1) == "up"

    def _wait_link(self, up: bool, timeout_s: float, poll_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while self.link_up() != up:
            if time.monotonic() >= deadline:
                raise self._error(f"link not {'up' if up else 'down'} after {timeout_s} s")
            time.sleep(poll_s)  # polling a state, bounded by the deadline

    def wait_link_up(self, timeout_s: float = 10.0, poll_s: float = 0.1) -> None:
        self._wait_link(True, timeout_s, poll_s)

    def wait_link_down(self, timeout_s: float = 10.0, poll_s: float = 0.1) -> None:
        self._wait_link(False, timeout_s, poll_s)

    def start_forwarding(self) -> str:
        reply = self.command("start")
        if "packet forwarding" not in reply:
            raise self._error(f"'start' did not start forwarding:\n{reply}")
        self.forwarding = True
        return reply

    def stop_forwarding(self) -> str:
        """'stop': returns testpmd's forward statistics block."""
        reply = self.command("stop")
        self.forwarding = False
        return reply

    def restart_port(self, port: int = 0, timeout_s: float = 10.0) -> bool:
        """'port stop' + 'port start': the only way a testpmd client reconnects (DPDK does
        not retry by itself). Returns True if the port started (a client connected)."""
        if self.forwarding:
            self.stop_forwarding()
        self.command(f"port stop {port}", timeout_s)
        reply = self.command(f"port start {port}", timeout_s)
        return not _PORT_START_FAILED_RE.search(reply)


class TestPmdFactory:
    """Starts TestPmd processes for one test and guarantees they are all stopped after it.

    Socket paths and abstract names it hands out start with 'harness-' and are unique.
    """

    __test__ = False

    def __init__(self) -> None:
        self.instances: list[TestPmd] = []
        self.tmp_dir = tempfile.mkdtemp(prefix="harness-")  # short: sun_path is 108 bytes

    def socket_path(self, name: str = "memif") -> str:
        return os.path.join(self.tmp_dir, f"{name}.sock")

    @staticmethod
    def abstract_name(name: str = "memif") -> str:
        return f"harness-{name}-{os.getpid()}-{uuid.uuid4().hex[:8]}"

    def __call__(self, role: str, socket: str, *, start: bool = True, **kwargs) -> TestPmd:
        kwargs.setdefault("log_dir", self.tmp_dir)
        pmd = TestPmd(role, socket, **kwargs)
        self.instances.append(pmd)
        if start:
            pmd.start()
        return pmd

    def close(self) -> None:
        for pmd in reversed(self.instances):
            try:
                pmd.stop()
            except Exception as e:  # whatever it was, stop the others too
                print(f"[harness] stopping {pmd.file_prefix} failed: {e!r}")
        for pmd in self.instances:
            if pmd.log_path:
                print(f"--- {pmd.role} {pmd.file_prefix}: last {LOG_TAIL_LINES} lines ---")
                print(pmd.log_tail())
        if not os.environ.get("HARNESS_KEEP_LOGS"):
            shutil.rmtree(self.tmp_dir, ignore_errors=True)


@pytest.fixture
def testpmd_factory():
    """Fixture: `testpmd_factory(role, socket, **TestPmd kwargs)` starts a testpmd; every
    process it started is stopped (and its files removed) when the test ends, pass or fail.
    Log tails are printed at teardown, so pytest shows them for failed tests."""
    require_testpmd()
    factory = TestPmdFactory()
    try:
        yield factory
    finally:
        factory.close()
