"""The ``memif-ct`` command: info, echo, pktgen, sink, ping, capture, forward, loopback.

Every subcommand takes its interface as DPDK-style devargs. Human-readable lines go to stdout;
with ``--json`` the last line of stdout is one JSON object, whose ``error`` is null on success
and says what failed otherwise (also when the run never started). A live progress line is drawn
on stderr when it is a terminal. Ctrl-C ends a run cleanly and still prints the summary. The
exit statuses are in ``EXIT_STATUS`` (and ``memif-ct --help``).
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import logging
import os
import queue
import signal
import stat
import sys
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any, Final, TextIO

from . import __version__, library_info, macaddr, tools
from .config import InterfaceConfig, mode_name
from .constants import MODE_ETHERNET
from .errors import ArgumentError, ConfigError, LinkTimeout, MemifError
from .interface import Interface

__all__ = ["EXIT_STATUS", "main"]

log = logging.getLogger(__name__)

EXIT_STATUS: Final = """\
exit status:
  0    the run did what was asked and every check held (ended by --count, --duration, or, for
       a tool that runs until stopped, Ctrl-C/SIGTERM)
  1    it failed: --verify verified nothing or found loss, reordering, corruption, duplicates or
       frames not pktgen's; pktgen sent fewer than --count; ping got no reply; the link never
       came up within --wait-up; a memif or OS error
  2    usage: a bad option (usage on stderr, nothing on stdout), a bad devargs key or value, or
       an option the interface cannot take (capture -w a file that cannot be written, --queues
       past tx-queues, an Ethernet tool on mode=ip)
  130  SIGINT/SIGTERM before the run started (while waiting for the link)

While it waits for the link a command says so on a terminal and prints why each attempt failed
(on stderr). A client rejected for a reason that waiting will not change (incorrect or missing
secret, mode mismatch, permission denied, incompatible version) stops at once with exit 1; "ID
not found" does once it has been the answer for 2 s (a DPDK server answers it while its port is
still starting). --wait-up 0 waits for ever.

With --json the last stdout line is one JSON object on every exit but a usage error from option
parsing; its "error" is null on success and names the failure otherwise. Check figures (verified,
lost, out_of_order, corrupted, duplicates, not_ours) are null when nothing was checked (no
--verify). "stalled_s" is how much of "seconds" the link was down; the rates include it."""


class _Output:
    def __init__(self, as_json: bool, out: TextIO = sys.stdout, err: TextIO = sys.stderr) -> None:
        self.as_json = as_json
        self.out = out
        self.err = err
        self.tty = err.isatty()
        self._progress_drawn = False

    def line(self, text: str) -> None:
        self.clear_progress()
        if not self.as_json:
            print(text, file=self.out, flush=True)

    def progress(self, text: str) -> None:
        if self.tty:
            self.err.write("\r\x1b[K" + text)
            self.err.flush()
            self._progress_drawn = True

    def note(self, text: str) -> None:
        """A line on stderr about what is going on (not part of the result)."""
        self.clear_progress()
        print(text, file=self.err, flush=True)

    def clear_progress(self) -> None:
        if self._progress_drawn:
            self.err.write("\r\x1b[K")
            self.err.flush()
            self._progress_drawn = False

    def summary(self, data: dict[str, Any], human: str, error: str | None = None) -> None:
        """The run's last word: ``data`` plus ``error`` (None on success) as JSON, or ``human``
        with the error appended to its last line."""
        self.clear_progress()
        if self.as_json:
            print(json.dumps(data | {"error": error}, sort_keys=True), file=self.out, flush=True)
        else:
            print(human if error is None else f"{human}; {error}", file=self.out, flush=True)

    def failed(self, command: str, error: str, *, quiet: bool = False, **data: Any) -> None:
        """A failure that ends a command without (or after) its summary: ``error`` on stderr unless
        ``quiet``, and with ``--json`` one JSON object carrying it as ``error``."""
        self.clear_progress()
        if not quiet:
            print(f"memif-ct {command}: {error}", file=self.err, flush=True)
        if self.as_json:
            print(json.dumps({"command": command, **data, "error": error}, sort_keys=True), file=self.out, flush=True)


class _Stop:
    """SIGINT/SIGTERM: before a run starts, interrupt the wait; during a run, set ``event`` and
    let the tool finish its current burst, so the summary counts every packet exactly."""

    def __init__(self) -> None:
        self.event = threading.Event()
        self.running = False
        self.started = False

    def handler(self, signum: int, frame: object) -> None:
        # Not event.set() here: the handler runs in the main thread, which may be inside
        # event.wait() holding the event's (non-reentrant) lock, and set() would wait for it
        # forever (seen as a ping that ignored SIGINT). A thread sets it once that lock is free.
        if self.running:
            threading.Thread(target=self.event.set, name="memif-ct-stop", daemon=True).start()
            return
        self.event.set()  # no run yet, so no wait on it: set at once, as before
        raise KeyboardInterrupt

    def __enter__(self) -> threading.Event:
        self.running = self.started = True
        return self.event

    def __exit__(self, *exc: object) -> None:
        self.running = False


# Rejections a server gives that waiting will not change (lower case; DPDK's, VPP's, libmemif's
# and ours). "ID not found" is final only after _ID_NOT_FOUND_GRACE_S: DPDK testpmd listens before
# its port starts and answers it meanwhile (tests/TESTPMD_NOTES.md, "Readiness").
_FINAL_REJECTIONS: Final = ("incorrect secret", "secret required", "secret mismatch", "mode mismatch",
                            "only ethernet mode supported", "incompatible memif version", "permission denied",
                            "is not in allowed-uids")
_ID_NOT_FOUND: Final = ("id not found", "id mismatch")
_ID_NOT_FOUND_GRACE_S: Final = 2.0
_NO_LISTENER: Final = ("connection refused", "no such file or directory")
_SO_ACCEPTCON: Final = 0x10000  # /proc/net/unix Flags of a listening socket


def _abstract_listening(name: str) -> bool:
    """True if a Unix socket listens on the abstract name ``name`` in this network namespace."""
    try:
        with open("/proc/net/unix") as f:
            lines = f.read().splitlines()[1:]
    except OSError:
        return False
    for line in lines:
        fields = line.split(None, 7)
        if len(fields) == 8 and fields[7] == "@" + name and int(fields[3], 16) & _SO_ACCEPTCON:
            return True
    return False


def socket_kind_hint(cfg: InterfaceConfig) -> str | None:
    """When a client finds no listener, whether one listens on the other kind of socket at that name."""
    if cfg.socket_abstract:
        try:
            is_socket = stat.S_ISSOCK(os.stat(cfg.socket).st_mode)
        except OSError:
            return None
        if is_socket:
            return (f"nothing listens on the abstract name @{cfg.socket}, but a filesystem socket exists at "
                    f"{cfg.socket}: if the server listens there, add socket-abstract=no to the devargs (DPDK's "
                    f"devargs default to abstract names; in Python keywords, drop the '@')")
    elif _abstract_listening(cfg.socket):
        return (f"nothing listens on the file {cfg.socket}, but an abstract socket @{cfg.socket} does: if that "
                f"is the server, drop socket-abstract=no from the devargs (or write socket=@{cfg.socket})")
    return None


class _LinkWaiter:
    """Opens interfaces and waits for their links, saying what is going on.

    ``on_attempt_failed`` runs on the control thread, so it only queues the reason; the waiting
    thread prints it and decides whether to go on waiting."""

    def __init__(self, out: _Output) -> None:
        self.out = out
        self.reasons: queue.SimpleQueue[str] = queue.SimpleQueue()

    def open(self, devargs: str) -> Interface:
        return Interface.from_devargs(devargs, on_attempt_failed=lambda _intf, why: self.reasons.put(why))

    def wait(self, intf: Interface, wait_s: float) -> None:
        """Until ``intf`` is up: LinkTimeout after ``wait_s`` (0: never), MemifError on a final rejection."""
        cfg = intf.config
        where = f"{intf.socket.display} ({cfg.role}, id {cfg.id})"
        if self.out.tty:
            self.out.note(f"waiting for a peer on {where}...")
        deadline = None if wait_s == 0 else time.monotonic() + wait_s
        attempts = 0
        last: str | None = None
        id_not_found_since: float | None = None
        hinted = False
        while True:
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                raise LinkTimeout(f"memif interface {intf} did not come up within {wait_s:g} s; "
                                  f"last disconnect reason: {intf.last_disconnect_reason or 'none'}")
            try:
                intf.wait_up(0.1 if left is None else min(left, 0.1))
                return
            except LinkTimeout:
                pass
            while not self.reasons.empty():
                reason = self.reasons.get()
                attempts += 1
                if reason != last:
                    self.out.note(f"attempt {attempts} failed: {reason}")
                    last = reason
                else:
                    self.out.progress(f"waiting for a peer on {where}: attempt {attempts} failed: {reason}")
                if cfg.role != "client":
                    continue  # a server's rejection concerns one client; others may come
                low = reason.lower()
                if any(r in low for r in _FINAL_REJECTIONS):
                    raise MemifError(f"the server at {intf.socket.display} rejected id {cfg.id}: {reason} "
                                     "(waiting will not change that)")
                if any(r in low for r in _ID_NOT_FOUND):
                    now = time.monotonic()
                    id_not_found_since = now if id_not_found_since is None else id_not_found_since
                    if now - id_not_found_since >= _ID_NOT_FOUND_GRACE_S:
                        raise MemifError(f"the server at {intf.socket.display} has no interface with id {cfg.id}: "
                                         f"{reason} (for {now - id_not_found_since:.1f} s)")
                else:
                    id_not_found_since = None
                if not hinted and any(r in low for r in _NO_LISTENER):
                    hinted = True
                    hint = socket_kind_hint(cfg)
                    if hint:
                        self.out.note(f"hint: {hint}")


def _open(args: argparse.Namespace, out: _Output, *, ethernet: str | None = None,
          tx_queues: int | None = None) -> Interface:
    """The interface of ``args.devargs``, up. ``ethernet``: what needs Ethernet frames, refused
    (before waiting) in mode=ip or punt/inject, whose packets have no Ethernet header;
    ``tx_queues``: how many TX queues the tool sends on (``--queues``), checked if given."""
    waiter = _LinkWaiter(out)
    intf = waiter.open(args.devargs)
    try:
        cfg = intf.config
        if ethernet is not None and cfg.mode != MODE_ETHERNET:
            raise ArgumentError(f"{ethernet} needs mode=ethernet: the packets of mode={mode_name(cfg.mode)} have no "
                                "Ethernet header")
        if tx_queues is not None and tx_queues > cfg.tx_queues:
            raise ArgumentError(f"--queues {tx_queues} is more than the interface's tx-queues={cfg.tx_queues}")
        waiter.wait(intf, args.wait_up)
        if tx_queues is not None and tx_queues > intf.num_tx_queues:
            raise ArgumentError(f"--queues {tx_queues} is more than the {intf.num_tx_queues} TX queue(s) the link "
                                "was given (the server decides how many a client gets)")
    except BaseException:
        intf.close()
        raise
    return intf


def _traffic_human(name: str, r: tools.TrafficReport, *, sends: bool = True) -> str:
    """One line; check figures only where something was checked, and a stall said as such."""
    words = [f"{name}:"] + ([f"tx {r.tx}"] if sends else []) + [f"rx {r.rx}"]
    if r.verified is not None:
        words += [f"{label} {value}" for label, value in (("lost", r.lost), ("out-of-order", r.out_of_order),
                                                          ("corrupted", r.corrupted)) if value is not None]
        words += [f"{label} {value}" for label, value in (("duplicates", r.duplicates), ("not-ours", r.not_ours))
                  if value]
    words += [f"in {r.seconds:.3f} s: {r.mpps:.3f} Mpps {r.gbps:.3f} Gbit/s"]
    if r.stalled_s:
        words += [f"(link was down for {r.stalled_s:.1f} s of the {r.seconds:.1f} s measured; the rate includes it)"]
    if r.interrupted:
        words += ["(interrupted)"]
    return " ".join(words)


def _traffic_error(r: tools.TrafficReport, count: int | None = None) -> str | None:
    """Why a pktgen / sink / loopback run failed; None when it did not."""
    problems = []
    if count is not None and r.tx < count:
        why = "interrupted" if r.interrupted else "no progress: the link stayed down or the peer stopped reading"
        problems.append(f"sent {r.tx} of {count} frames ({why})")
    failures = r.failures()
    if failures:
        problems.append("verify FAILED: " + ", ".join(failures))
    return "; ".join(problems) or None


# ---- subcommands ---------------------------------------------------------------------------


def cmd_info(args: argparse.Namespace, out: _Output) -> int:
    info = library_info()
    human = "\n".join(f"{k}: {v}" for k, v in info.items())
    out.summary(info, human)
    return 0


def cmd_pktgen(args: argparse.Namespace, out: _Output) -> int:
    if args.verify and args.count > _MOST_FRAMES:
        raise ArgumentError(f"--count {args.count} is out of range with --verify: expected 1..{_MOST_FRAMES} "
                            "(the frames' sequence numbers the check tells apart)")
    with _open(args, out, ethernet="pktgen", tx_queues=args.queues) as intf, args.stop as stop:
        r = tools.run_pktgen(intf, count=args.count, size=args.size, burst=args.burst, queues=args.queues,
                             verify=args.verify, drain_s=args.drain, progress=out.progress, stop=stop)
        error = _traffic_error(r, args.count)
        out.summary(r.as_dict(), _traffic_human("pktgen", r), error)
    return 0 if error is None else 1


def cmd_sink(args: argparse.Namespace, out: _Output) -> int:
    with _open(args, out, ethernet="sink --verify" if args.verify else None) as intf, args.stop as stop:
        r = tools.run_sink(intf, count=args.count, duration_s=args.duration, verify=args.verify,
                           progress=out.progress, stop=stop)
        error = _traffic_error(r)
        out.summary(r.as_dict(), _traffic_human("sink", r, sends=False), error)
    return 0 if error is None else 1


def cmd_echo(args: argparse.Namespace, out: _Output) -> int:
    with _open(args, out, ethernet="echo --macswap" if args.macswap else None) as intf, args.stop as stop:
        r = tools.run_echo(intf, macswap=args.macswap, count=args.count, duration_s=args.duration,
                           progress=out.progress, stop=stop)
        out.summary(r.as_dict(), f"echo: rx {r.directions['rx']} tx {r.directions['tx']} dropped {r.dropped}")
    return 0


def cmd_forward(args: argparse.Namespace, out: _Output) -> int:
    # Both interfaces exist before we wait on either: a peer may come to B first.
    waiter = _LinkWaiter(out)
    with waiter.open(args.devargs_a) as a, waiter.open(args.devargs_b) as b:
        waiter.wait(a, args.wait_up)
        waiter.wait(b, args.wait_up)
        with args.stop as stop:
            r = tools.run_forward(a, b, count=args.count, duration_s=args.duration, progress=out.progress,
                                  stop=stop)
        out.summary(r.as_dict(), f"forward: a->b {r.directions['a_to_b']} b->a {r.directions['b_to_a']} "
                                 f"dropped {r.dropped}")
    return 0


def cmd_ping(args: argparse.Namespace, out: _Output) -> int:
    src_mac = macaddr.str_to_mac(args.src_mac) if args.src_mac else None
    with _open(args, out, ethernet="ping") as intf, args.stop as stop:
        r = tools.run_ping(intf, args.ipv4, count=args.count, interval_s=args.interval, timeout_s=args.timeout,
                           src_ip=args.src_ip, src_mac=src_mac, size=args.size, on_line=out.line, stop=stop)
    loss = 100.0 * (r.transmitted - r.received) / r.transmitted if r.transmitted else 100.0
    human = (f"--- {args.ipv4} ping statistics ---\n{r.transmitted} packets transmitted, {r.received} received, "
             f"{loss:.0f}% packet loss")
    if r.rtt_avg_us is not None:
        human += (f"\nrtt min/avg/max = {r.rtt_min_us / 1000:.3f}/{r.rtt_avg_us / 1000:.3f}/"  # type: ignore[operator]
                  f"{r.rtt_max_us / 1000:.3f} ms")  # type: ignore[operator]
    error = None
    if not r.received:
        error = "no reply" if r.target_mac is not None else f"no ARP reply for {args.ipv4}"
    out.summary(r.as_dict(), human, error)
    return 0 if error is None else 1


def _is_stdout(path: str | None) -> bool:
    """capture -w: ``-``, or a name of our standard output (/dev/stdout, the file it is)."""
    if path is None:
        return False
    if path == "-":
        return True
    try:
        return os.path.samestat(os.stat(path), os.fstat(sys.stdout.fileno()))
    except (OSError, ValueError):  # no such file, or no stdout
        return False


def _check_writable(path: str) -> None:
    """capture -w: fail before waiting for a peer, not after, when the file cannot be written.
    A FIFO, a device or another special file is not opened here: opening a FIFO and closing it
    would give its reader an end of file before the capture begins."""
    existed = os.path.lexists(path)
    try:
        st: os.stat_result | None = os.stat(path)  # (through a symlink: a dangling one is created)
    except OSError:
        st = None
    if st is not None and not stat.S_ISREG(st.st_mode) and not stat.S_ISDIR(st.st_mode):
        if not os.access(path, os.W_OK):
            raise ArgumentError(f"-w {path}: cannot write it: permission denied")
        return
    try:
        with open(path, "ab"):
            pass
    except OSError as exc:
        raise ArgumentError(f"-w {path}: cannot write it: {exc.strerror}") from None
    if not existed:
        os.unlink(path)


def cmd_capture(args: argparse.Namespace, out: _Output) -> int:
    if not args.pcap_to_stdout:
        _check_writable(args.write)
    with _open(args, out) as intf, args.stop as stop:
        target = sys.stdout.buffer if args.pcap_to_stdout else args.write
        r = tools.run_capture(intf, target, count=args.count, duration_s=args.duration, progress=out.progress,
                              stop=stop)
        where = "standard output" if args.pcap_to_stdout else args.write
        out.summary(r.as_dict() | {"file": "-" if args.pcap_to_stdout else args.write},
                    f"capture: {r.captured} packets ({r.bytes} bytes) written to {where}")
    return 0


def cmd_loopback(args: argparse.Namespace, out: _Output) -> int:
    with args.stop as stop:
        r = tools.run_loopback(count=args.count, size=args.size, burst=args.burst, stop=stop,
                               progress=lambda text: out.progress("loopback:" + text.removeprefix("pktgen:")))
    error = _traffic_error(r, args.count)
    out.summary(r.as_dict(), _traffic_human("loopback", r), error)
    return 0 if error is None else 1


# ---- argument parsing ----------------------------------------------------------------------


def _positive_int(text: str) -> int:
    try:
        value = int(text, 0)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{value} must be > 0")
    return value


def _int_in(lo: int, hi: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            value = int(text, 0)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
        if not lo <= value <= hi:
            raise argparse.ArgumentTypeError(f"{value} is out of range: expected {lo}..{hi}")
        return value

    return parse


def _ipv4(text: str) -> str:
    try:
        return str(ipaddress.IPv4Address(text))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an IPv4 address") from None


def _mac(text: str) -> str:
    try:
        macaddr.str_to_mac(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


def _wait_seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 0 <= value <= _MOST_SECONDS:
        raise argparse.ArgumentTypeError(f"{value} is out of range: expected seconds from 0 (wait for ever) "
                                         f"to {_MOST_SECONDS:g}")
    return value


def _positive_float(text: str) -> float:
    """Seconds: > 0 and no more than threading's waits take (inf ran ping's timeout for ever)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 0 < value <= _MOST_SECONDS:
        raise argparse.ArgumentTypeError(f"{value} is out of range: expected seconds > 0, at most {_MOST_SECONDS:g}")
    return value


_MOST_SECONDS: Final = 1e9  # about 31 years: below threading.TIMEOUT_MAX
_MOST_FRAMES: Final = 1 << 32  # the frames' 32-bit sequence numbers: what the checker can tell apart


EXAMPLES: Final = """\
examples:
  memif-ct loopback
  memif-ct echo role=server,id=0,socket=/tmp/memif.sock,socket-abstract=no --wait-up 0
  memif-ct pktgen role=client,id=0,socket=/tmp/memif.sock,socket-abstract=no --count 100000 --verify
  memif-ct capture role=client,socket=@memif.sock -w out.pcap -c 100

Devargs follow DPDK's: socket=/tmp/memif.sock alone is the ABSTRACT name /tmp/memif.sock (DPDK's
default is socket-abstract=yes); add socket-abstract=no for the file, or write socket=@name for an
abstract name. A leading interface name must look like DPDK's: net_memif0,role=server,..."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="memif-ct",
        description="memif packet tools, wire-compatible with DPDK net_memif, VPP and libmemif. Interfaces are "
                    "DPDK-style devargs, e.g. role=server,id=0,socket=/tmp/m.sock,socket-abstract=no",
        epilog=EXAMPLES + "\n\n" + EXIT_STATUS, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version",
                        version=f"memif-ct {__version__}")
    parser.add_argument("-v", "--verbose", action="count", default=0,
                        help="log more: -v info, -vv debug (default: warnings only)")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add(name: str, fn: Callable[[argparse.Namespace, _Output], int], help_text: str,
            devargs: int = 1) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_text, description=help_text, epilog=EXAMPLES + "\n\n" + EXIT_STATUS,
                           formatter_class=argparse.RawDescriptionHelpFormatter)
        p.set_defaults(fn=fn)
        p.add_argument("--json", action="store_true",
                       help='print a one-line JSON summary last, with "error" null or saying what failed '
                            '(default: a human-readable summary)')
        if devargs == 1:
            p.add_argument("devargs", help="interface devargs, e.g. role=client,id=0,socket=/tmp/m.sock")
        elif devargs == 2:
            p.add_argument("devargs_a", help="first interface devargs")
            p.add_argument("devargs_b", help="second interface devargs")
        if devargs:
            p.add_argument("--wait-up", type=_wait_seconds, default=30.0, metavar="S",
                           help="seconds to wait for the link, 0 for ever (default: 30)")
        return p

    add("info", cmd_info, "package and C library versions, library path, cache-line size, build flags", devargs=0)

    p = add("echo", cmd_echo, "reflect every received packet")
    p.add_argument("--macswap", action="store_true", help="swap source and destination MAC (default: off)")
    p.add_argument("--count", type=_positive_int, help="stop after N received packets (default: no limit)")
    p.add_argument("--duration", type=_positive_float, metavar="S", help="stop after S seconds (default: no limit)")

    p = add("pktgen", cmd_pktgen, "transmit sequenced Ethernet/IPv4/UDP frames")
    p.add_argument("--count", type=_positive_int, required=True,
                   help=f"frames to send (required, no default; with --verify 1..{_MOST_FRAMES})")
    p.add_argument("--size", type=_int_in(60, 65535), default=64, help="frame size in bytes, 60..65535 (default: 64)")
    p.add_argument("--burst", type=_int_in(1, 4096), default=256, help="packets per burst, 1..4096 (default: 256)")
    p.add_argument("--queues", type=_int_in(1, 255), default=1, help="spread bursts over Q TX queues (default: 1)")
    p.add_argument("--verify", action="store_true",
                   help="expect the frames back from a reflector and check them: exit 1 on any loss, reordering, "
                        "corruption, duplicate or foreign frame (default: off, and no loss figures are given)")
    p.add_argument("--drain", type=_positive_float, default=1.0, metavar="S",
                   help="with --verify, wait up to S quiet seconds for stragglers (default: 1)")

    p = add("sink", cmd_sink, "count (and verify) received frames")
    p.add_argument("--count", type=_positive_int, help="stop after N received frames (default: no limit)")
    p.add_argument("--duration", type=_positive_float, metavar="S", help="stop after S seconds (default: no limit)")
    p.add_argument("--verify", action="store_true",
                   help="check frames sent by memif-ct pktgen: exit 1 when no pktgen frame came, or on any "
                        "loss, reordering, corruption, duplicate or frame not pktgen's (default: off, and no loss "
                        "figures are given)")

    p = add("ping", cmd_ping, "resolve with ARP and send ICMP echo requests")
    p.add_argument("ipv4", type=_ipv4, help="target IPv4 address")
    p.add_argument("-c", "--count", type=_positive_int, default=4, help="echo requests to send (default: 4)")
    p.add_argument("-i", "--interval", type=_positive_float, default=1.0, metavar="S",
                   help="seconds between requests (default: 1)")
    p.add_argument("-W", "--timeout", type=_positive_float, default=1.0, metavar="S",
                   help="reply timeout in seconds (default: 1)")
    p.add_argument("-s", "--size", type=_int_in(0, 65507), default=56,
                   help="ICMP payload bytes, 0..65507 (default: 56)")
    p.add_argument("--src-ip", type=_ipv4, help="our IPv4 address (default: .1 of the target's /24, or .2)")
    p.add_argument("--src-mac", type=_mac, help="our MAC address (default: the interface's)")

    p = add("capture", cmd_capture, "write received packets to a pcap file")
    p.add_argument("-w", "--write", required=True, metavar="FILE.pcap",
                   help="the pcap file, checked writable before waiting; - for standard output, the summary "
                        "then on stderr (required, no default)")
    p.add_argument("-c", "--count", type=_positive_int, help="stop after N packets (default: no limit)")
    p.add_argument("--duration", type=_positive_float, metavar="S", help="stop after S seconds (default: no limit)")

    p = add("forward", cmd_forward, "cross-connect two interfaces both ways", devargs=2)
    p.add_argument("--count", type=_positive_int, help="stop after N forwarded packets (default: no limit)")
    p.add_argument("--duration", type=_positive_float, metavar="S", help="stop after S seconds (default: no limit)")

    p = add("loopback", cmd_loopback, "server and client of one id on one socket in this process, "
                                       "verified traffic through it (needs no peer)", devargs=0)
    p.add_argument("--count", type=_int_in(1, _MOST_FRAMES), default=100000,
                   help=f"frames to send, 1..{_MOST_FRAMES} (default: 100000)")
    p.add_argument("--size", type=_int_in(60, 65535), default=64, help="frame size in bytes, 60..65535 (default: 64)")
    p.add_argument("--burst", type=_int_in(1, 4096), default=256, help="packets per burst, 1..4096 (default: 256)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=[logging.WARNING, logging.INFO, logging.DEBUG][min(args.verbose, 2)],
        format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr,
    )
    pcap_to_stdout = _is_stdout(getattr(args, "write", None))
    args.pcap_to_stdout = pcap_to_stdout
    # capture -w - (or /dev/stdout): the pcap is stdout, so everything else goes to stderr
    out = _Output(getattr(args, "json", False), out=sys.stderr if pcap_to_stdout else sys.stdout)
    # SIGINT and SIGTERM end a run between bursts, summary first (see _Stop).
    stop = _Stop()
    args.stop = stop
    signal.signal(signal.SIGINT, stop.handler)
    signal.signal(signal.SIGTERM, stop.handler)
    try:
        return int(args.fn(args, out))
    except KeyboardInterrupt:
        # Quiet on a terminal: the user pressed Ctrl-C. After a run, its summary is already out.
        when = "after the run" if stop.started else "before the run started"
        out.failed(args.command, f"interrupted {when}", quiet=True, interrupted=True)
        return 130
    except BrokenPipeError:
        # Output piped into e.g. head: stop quietly, as other command-line tools do.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0
    except (ConfigError, ValueError) as exc:
        out.failed(args.command, str(exc))
        return 2
    except (TimeoutError, MemifError, OSError) as exc:
        out.failed(args.command, str(exc) or type(exc).__name__)
        return 1
    except Exception as exc:  # a bug: the traceback to stderr, and still one JSON object last
        log.exception("memif-ct %s failed", args.command)
        out.failed(args.command, f"{type(exc).__name__}: {exc}")
        return 1


if __name__ == "__main__":
    sys.exit(main())
