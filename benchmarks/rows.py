"""What the suite measures: the baselines, and each row as a figure against one of them.

A row's baseline is measured anew right before the row, in every run (suite.run), so a ratio
compares two figures taken seconds apart on the same machine (these small shared machines vary
by 2-3x from one run to the next, and within a run, far more than any change we want to see).

Issue 10's rows first (64-byte frames, one queue), then the frame sizes, the CPU cost and
zero-copy. A row is either measured, or derived from another row's figure (CPU cost: the same
window, counted per CPU-second instead of per second).
"""

from __future__ import annotations

import array
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass

import memif_ct
from memif_ct import frames

from . import bench_zero_copy
from .lab import WARMUP_S, Bench, Figure, check, cpu_seconds, settle, tool, tool_report, window

BURST = 256
RING = 1024  # memif-ct's default ring: what one side may have in flight that the other has not counted


@dataclass
class Settings:
    seconds: float
    guesses: dict[str, float]  # Mpps seen so far per count-driven measurement, to size the next

    def count(self, key: str, floor: int = 2000) -> int:
        """Frames for a measurement that runs to a count, sized to last about ``seconds``."""
        return max(floor, int(self.guesses.get(key, 0.03) * 1e6 * self.seconds))

    def seen(self, key: str, fig: Figure) -> Figure:
        self.guesses[key] = max(fig.mpps, 0.001)
        return fig

    def to_count(self, key: str, run: Callable[[int], Figure]) -> Figure:
        """``run(count)`` with a count sized from the rate seen so far. A run that ended in less
        than half of ``seconds`` (the first guess is deliberately low) only calibrates: it is run
        again with the count its rate gives, up to three times, and only the last one counts."""
        for _ in range(3):
            fig = self.seen(key, run(self.count(key)))
            if fig.seconds >= self.seconds / 2:
                break
        return fig


Measure = Callable[[Bench, Settings], Figure]


# ---- baselines: testpmd against testpmd, or the copy path -------------------------------

def pmd_to_pmd(size: int) -> Measure:
    """testpmd client txonly -> testpmd server rxonly; CPU is the receiver's (tx_cpu_s the sender's)."""
    def measure(bench: Bench, s: Settings) -> Figure:
        server = bench.configure("rxonly", size)
        with bench.testpmd_client("txonly", size) as client:
            server.start_forwarding()
            client.start_forwarding()
            assert client.pid is not None
            fig = window(server, s.seconds, also=client.pid)
            fig.extra["tx_cpu_s"] = fig.extra.pop("also_cpu_s")
        bench.quiesce()
        return fig
    return measure


def pmd_reflector(bench: Bench, s: Settings) -> Figure:
    """testpmd io as the reflector of our generator (the one the echo row uses)."""
    server = bench.configure("io")
    assert server.pid is not None
    with bench.memif_client() as intf:
        server.start_forwarding()
        fig = reflected(intf, s.seconds, pid=server.pid)
    bench.quiesce()
    return fig


def copy_path(direction: str, size: int) -> Measure:
    """A copy-mode memif-ct client with the copy API, both ends in this thread."""
    return zero_copy_path(direction, size, zero_copy=False, api="copy")


# ---- memif-ct in this process against testpmd ------------------------------------------

def python_tx(api: str, size: int = 64) -> Measure:
    """memif-ct client -> testpmd server rxonly, with the ``api`` TX call, prebuilt frames."""
    def measure(bench: Bench, s: Settings) -> Figure:
        server = bench.configure("rxonly", size)
        data, lengths = frames.build_frames_batch(BURST, size, 0)
        lens = array.array("I", lengths)
        packets = [bytes(data[i * size:(i + 1) * size]) for i in range(BURST)]
        with bench.memif_client() as intf:
            send: Callable[[], int]
            if api == "packed":
                def send() -> int:
                    return intf.tx_burst_packed(data, lens)
            elif api == "list":
                def send() -> int:
                    return intf.tx_burst(packets)
            elif api == "buffer":  # the whole burst written in one call (TxBuffers.write)
                def send() -> int:
                    bufs = intf.alloc_buffers(BURST, size=size)
                    if not bufs:
                        return 0
                    k = len(bufs)
                    bufs.write(data, lens if k == BURST else lens[:k])
                    n = intf.tx_buffers(bufs)
                    if n < k:
                        intf.free_buffers(bufs[n:])
                    return n
            else:  # "views": each frame written through its own view, as a per-packet writer does
                def send() -> int:
                    bufs = intf.alloc_buffers(BURST, size=size)
                    for buf, pkt in zip(bufs, packets, strict=False):
                        buf[:] = pkt
                    n = intf.tx_buffers(bufs) if bufs else 0
                    if n < len(bufs):
                        intf.free_buffers(bufs[n:])
                    return n
            server.start_forwarding()
            _run_for(send, WARMUP_S)
            base = server.stats()["rx_packets"]
            sent, elapsed, cpu = _run_for(send, s.seconds)
            peer = settle(server, "rx_packets", base + sent) - base
        bench.quiesce()
        check(f"{api} TX", sent, peer, slack=RING)
        return Figure(sent, elapsed, sent * size, cpu)
    return measure


def python_rx(api: str, size: int = 64) -> Measure:
    """testpmd server txonly -> memif-ct client, with the ``api`` RX call."""
    def measure(bench: Bench, s: Settings) -> Figure:
        server = bench.configure("txonly", size)
        out = bytearray(BURST * 2048)
        lens = array.array("I", bytes(4 * BURST))
        with bench.memif_client() as intf:
            receive: Callable[[], int]
            if api == "into":
                def receive() -> int:
                    return intf.rx_burst_into(out, lens)
            elif api == "list":
                def receive() -> int:
                    return len(intf.rx_burst(BURST))
            elif api == "buffer":  # what a burst-level (numpy) reader takes: every packet's size
                def receive() -> int:
                    with intf.rx_buffers(BURST) as burst:
                        return len(burst.lengths)
            else:  # "views": a memoryview made for every packet, as a per-packet reader needs
                def receive() -> int:
                    with intf.rx_buffers(BURST) as burst:
                        return len(list(burst))
            server.start_forwarding()
            _run_for(receive, WARMUP_S)
            base = server.stats()["tx_packets"]
            got, elapsed, cpu = _run_for(receive, s.seconds)
            peer = server.stats()["tx_packets"] - base
            bench.quiesce()
            errors = intf.stats()["rx"][0]["errors"]
        if errors:
            raise RuntimeError(f"{api} RX: {errors} ring errors counted")
        check(f"{api} RX", got - RING, peer, slack=2 * RING)  # a ring's worth may sit at either end
        return Figure(got, elapsed, got * size, cpu)
    return measure


def _run_for(step: Callable[[], int], seconds: float) -> tuple[int, float, float]:
    """Call ``step`` (100 at a time) for ``seconds``: its total, the wall time and our CPU time."""
    total = 0
    c0, t0 = time.process_time(), time.monotonic()
    while time.monotonic() - t0 < seconds:
        for _ in range(100):
            total += step()
    return total, time.monotonic() - t0, time.process_time() - c0


def reflected(intf: memif_ct.Interface, seconds: float, pid: int, size: int = 64) -> Figure:
    """Our generator: packed bursts out, packed bursts back, at most a ring in flight; the
    figure is what came back per second, its CPU that of the reflector ``pid``."""
    data, lengths = frames.build_frames_batch(BURST, size, 0)
    lens = array.array("I", lengths)
    out = bytearray(BURST * 2048)
    out_lens = array.array("I", bytes(4 * BURST))
    state = {"in_flight": 0, "idle": 0}

    def step() -> int:
        if state["in_flight"] <= RING - BURST:
            state["in_flight"] += intf.tx_burst_packed(data, lens)
        n = intf.rx_burst_into(out, out_lens)
        state["in_flight"] -= n
        state["idle"] = 0 if n else state["idle"] + 1
        if state["idle"] > 1000:  # a reflector drops what finds no room: stop waiting for it
            state["in_flight"] = state["idle"] = 0
        return n

    _run_for(step, WARMUP_S)
    c0 = cpu_seconds(pid)
    got, elapsed, ours = _run_for(step, seconds)
    fig = Figure(got, elapsed, got * size, cpu_seconds(pid) - c0)
    fig.extra["generator_cpu_s"] = ours
    return fig


def round_trip(interrupt: bool) -> Measure:
    """One frame in flight through testpmd io: the median round trip, polling or interrupt."""
    def measure(bench: Bench, s: Settings) -> Figure:
        server = bench.configure("io")
        data, lengths = frames.build_frames_batch(1, 64, 0)
        lens = array.array("I", lengths)
        out = bytearray(2048)
        out_lens = array.array("I", [0])
        samples: list[int] = []
        waited = 0  # round trips whose reply was not there yet when the wait began
        with bench.memif_client(interrupt=interrupt) as intf:
            server.start_forwarding()
            c0, t0 = time.process_time(), time.monotonic()
            while time.monotonic() - t0 < s.seconds + WARMUP_S and len(samples) < 200_000:
                start = time.perf_counter_ns()
                if intf.tx_burst_packed(data, lens) != 1:
                    continue
                # Interrupt mode waits on the eventfd before every receive, as an application
                # that sleeps does; it sleeps when the reply has not arrived by then.
                if interrupt:
                    waited += intf.rx_queue(0).pending() == 0
                    if not intf.wait_rx(timeout_s=1.0):
                        raise RuntimeError("round trip: no reply within 1 s")
                while intf.rx_burst_into(out, out_lens) == 0:
                    if interrupt and not intf.wait_rx(timeout_s=1.0):
                        raise RuntimeError("round trip: no reply within 1 s")
                samples.append(time.perf_counter_ns() - start)
            elapsed, cpu = time.monotonic() - t0, time.process_time() - c0
        bench.quiesce()
        total = len(samples)
        samples = samples[len(samples) // 10:]  # the first tenth is the warm-up
        fig = Figure(len(samples), elapsed, 0, cpu)
        fig.extra["median_us"] = statistics.median(samples) / 1e3
        fig.extra["p99_us"] = sorted(samples)[int(len(samples) * 0.99)] / 1e3
        fig.extra["waited_share"] = waited / max(1, total)  # of all round trips, warm-up included
        return fig
    return measure


# ---- the memif-ct tools, as child processes ----------------------------------------------

def sink_from_testpmd(bench: Bench, s: Settings) -> Figure:
    """testpmd server txonly -> ``memif-ct sink``; counted by testpmd, CPU the sink's."""
    server = bench.configure("txonly")
    with tool("sink", bench.devargs()) as proc:
        server.wait_link_up(30)
        server.start_forwarding()
        fig = window(server, s.seconds, pid=proc.pid, key="tx")
        bench.quiesce()
    report = tool_report(proc)
    server.wait_link_down(10)
    fig.extra["sink_rx"] = report["rx"]
    return fig


def pktgen_into_testpmd(bench: Bench, s: Settings) -> Figure:
    """``memif-ct pktgen`` -> testpmd server rxonly; counted by testpmd, CPU pktgen's."""
    server = bench.configure("rxonly")
    server.start_forwarding()
    with tool("pktgen", bench.devargs(), "--count", str(1 << 40), "--burst", str(BURST)) as proc:
        server.wait_link_up(30)
        fig = window(server, s.seconds, pid=proc.pid, key="rx")
        bench.quiesce()
    proc.communicate()
    server.wait_link_down(10)
    return fig


def sink_verify(bench: Bench, s: Settings) -> Figure:
    """``memif-ct pktgen`` -> ``memif-ct sink --verify`` (testpmd sends no pktgen frames);
    the sink's own figure, so it is bounded by pktgen's rate too."""
    sock = bench.socket("sinkv")

    def run(count: int) -> Figure:
        with tool("sink", bench.devargs(role="server", socket=sock), "--verify", "--count", str(count)) as sink:
            with tool("pktgen", bench.devargs(socket=sock), "--count", str(count), "--burst", str(BURST)) as gen:
                report = tool_report(sink)
                tool_report(gen)  # before the with-block ends: it would interrupt a pktgen still closing
        return _from_report(report, "verified")

    return s.to_count("sink-verify", run)


def pktgen_verify(bench: Bench, s: Settings) -> Figure:
    """``memif-ct pktgen --verify`` through testpmd io and back; pktgen's own figure."""

    def run(count: int) -> Figure:
        server = bench.configure("io")
        server.start_forwarding()
        with tool("pktgen", bench.devargs(), "--verify", "--count", str(count), "--burst", str(BURST)) as proc:
            report = tool_report(proc)
        bench.quiesce()
        server.wait_link_down(10)
        return _from_report(report, "verified")

    return s.to_count("pktgen-verify", run)


def loopback(bench: Bench, s: Settings) -> Figure:
    """``memif-ct loopback``: server and client in one process, every frame verified."""

    def run(count: int) -> Figure:
        with tool("loopback", "--count", str(count), "--burst", str(BURST)) as proc:
            return _from_report(tool_report(proc), "verified")

    return s.to_count("loopback", run)


def echo(bench: Bench, s: Settings) -> Figure:
    """``memif-ct echo`` as the reflector of our generator (the pmd-io baseline's)."""
    sock = bench.socket("echo")
    with tool("echo", bench.devargs(role="server", socket=sock)) as proc:
        with memif_ct.Interface.from_devargs(bench.devargs(socket=sock)) as intf:
            intf.wait_up(30)
            fig = reflected(intf, s.seconds, pid=proc.pid)
    tool_report(proc)
    return fig


def _from_report(report: dict[str, object], key: str) -> Figure:
    packets = int(report[key] or 0)  # type: ignore[call-overload]
    seconds = float(report["seconds"])  # type: ignore[arg-type]
    return Figure(packets, seconds, int(report.get("rx_bytes") or 0))  # type: ignore[call-overload]


# ---- zero-copy, in this process ----------------------------------------------------------

def zero_copy_path(direction: str, size: int, *, zero_copy: bool = True, api: str = "buffer") -> Measure:
    """bench_zero_copy's loop: a memif-ct server and a (zero-copy) client in this thread."""
    fn = bench_zero_copy.run_tx if direction == "tx" else bench_zero_copy.run_rx
    key = f"{'zc' if zero_copy else 'copy'}-{api}-{direction}-{size}"

    def measure(bench: Bench, s: Settings) -> Figure:
        sock, server, client = bench_zero_copy._pair(zero_copy)

        def run(count: int) -> Figure:
            c0 = time.process_time()
            pps = fn(client, server, size, count, api)
            return Figure(count, count / pps, count * size, time.process_time() - c0)

        try:
            return s.to_count(key, run)
        finally:
            client.close()
            server.close()
            sock.close()
    return measure


# ---- the table -------------------------------------------------------------------------

@dataclass(frozen=True)
class Baseline:
    key: str
    label: str
    measure: Measure


@dataclass(frozen=True)
class Row:
    key: str
    label: str
    unit: str  # "Mpps", "Gbit/s", "us" (lower is better), "Mpkt/CPU-s"
    baseline: str | None  # a Baseline key, None for an absolute figure
    target: str  # "" when the issue sets none: ">= 0.5x", ">= 5 Mpps", "< 10 us"
    measure: Measure | None = None
    derived_from: str | None = None  # a CPU row: the row whose window it counts per CPU-second
    baseline_cpu: str = "cpu_s"  # which CPU of the baseline figure: cpu_s (receiver) or tx_cpu_s


BASELINES = [
    Baseline("pmd-64", "testpmd txonly -> testpmd rxonly, 64 B", pmd_to_pmd(64)),
    Baseline("pmd-512", "testpmd txonly -> testpmd rxonly, 512 B", pmd_to_pmd(512)),
    Baseline("pmd-1500", "testpmd txonly -> testpmd rxonly, 1,500 B", pmd_to_pmd(1500)),
    # DPDK 22.11 chains overrun the ring (TESTPMD_NOTES.md, D1/D3): testpmd's 9,000 B figure counts
    # what its RX made of them, and there is no RX row at 9,000 B (our RX rightly counts errors).
    Baseline("pmd-9000", "testpmd txonly -> testpmd rxonly, 9,000 B in 5 slots (DPDK 22.11 D1)", pmd_to_pmd(9000)),
    Baseline("pmd-io", "our generator <-> testpmd io reflector, 64 B", pmd_reflector),
    Baseline("copy-tx", "copy-mode client, tx_burst -> server, 1,500 B, one thread", copy_path("tx", 1500)),
    Baseline("copy-rx", "server -> copy-mode client, rx_burst, 1,500 B, one thread", copy_path("rx", 1500)),
]

ROWS = [
    Row("list-rx", "testpmd txonly -> rx_burst (list of bytes)", "Mpps", "pmd-64", ">= 0.5x", python_rx("list")),
    Row("list-tx", "tx_burst (list of bytes) -> testpmd rxonly", "Mpps", "pmd-64", ">= 0.5x", python_tx("list")),
    Row("packed-tx", "tx_burst_packed -> testpmd rxonly", "Mpps", "pmd-64", ">= 1.0x", python_tx("packed")),
    Row("packed-rx", "testpmd txonly -> rx_burst_into", "Mpps", "pmd-64", ">= 1.0x", python_rx("into")),
    Row("buffer-tx", "alloc_buffers + TxBuffers.write + tx_buffers -> testpmd rxonly", "Mpps", "pmd-64",
        ">= 1.0x", python_tx("buffer")),
    Row("buffer-tx-views", "alloc_buffers, a frame written per view, tx_buffers -> testpmd rxonly", "Mpps",
        "pmd-64", "", python_tx("views")),
    Row("buffer-rx", "testpmd txonly -> rx_buffers + lengths", "Mpps", "pmd-64", ">= 1.0x", python_rx("buffer")),
    Row("buffer-rx-views", "testpmd txonly -> rx_buffers, a view per packet", "Mpps", "pmd-64", "",
        python_rx("views")),
    Row("sink", "testpmd txonly -> memif-ct sink", "Mpps", "pmd-64", ">= 0.8x", sink_from_testpmd),
    Row("sink-verify", "memif-ct pktgen -> memif-ct sink --verify", "Mpps", "pmd-64", ">= 0.5x", sink_verify),
    Row("pktgen", "memif-ct pktgen -> testpmd rxonly", "Mpps", "pmd-64", ">= 0.8x", pktgen_into_testpmd),
    Row("echo", "our generator <-> memif-ct echo", "Mpps", "pmd-io", ">= 0.5x", echo),
    Row("pktgen-verify", "memif-ct pktgen --verify <-> testpmd io", "Mpps", None, ">= 5 Mpps", pktgen_verify),
    Row("loopback", "memif-ct loopback (verified)", "Mpps", None, ">= 5 Mpps", loopback),
    Row("tx-1500", "tx_burst_packed -> testpmd rxonly, 1,500 B", "Gbit/s", "pmd-1500", ">= 0.8x",
        python_tx("packed", 1500)),
    Row("rtt-poll", "one frame in flight via testpmd io, polling", "us", None, "< 10 us", round_trip(False)),
    Row("rtt-irq", "one frame in flight via testpmd io, interrupt", "us", None, "< 50 us", round_trip(True)),
    Row("tx-512", "tx_burst_packed -> testpmd rxonly, 512 B", "Mpps", "pmd-512", "", python_tx("packed", 512)),
    Row("tx-9000", "tx_burst_packed -> testpmd rxonly, 9,000 B chained", "Mpps", "pmd-9000", "",
        python_tx("packed", 9000)),
    Row("cpu-packed-rx", "packed-rx per CPU-second (testpmd rxonly's)", "Mpkt/CPU-s", "pmd-64", "",
        derived_from="packed-rx"),
    Row("cpu-packed-tx", "packed-tx per CPU-second (testpmd txonly's)", "Mpkt/CPU-s", "pmd-64", "",
        derived_from="packed-tx", baseline_cpu="tx_cpu_s"),
    Row("cpu-sink", "memif-ct sink per CPU-second (testpmd rxonly's)", "Mpkt/CPU-s", "pmd-64", "",
        derived_from="sink"),
    Row("cpu-pktgen", "memif-ct pktgen per CPU-second (testpmd txonly's)", "Mpkt/CPU-s", "pmd-64", "",
        derived_from="pktgen", baseline_cpu="tx_cpu_s"),
    Row("cpu-echo", "memif-ct echo per CPU-second (testpmd io's)", "Mpkt/CPU-s", "pmd-io", "",
        derived_from="echo"),
    Row("zc-tx", "zero-copy client, tx_buffers -> server, 1,500 B", "Mpps", "copy-tx", "",
        zero_copy_path("tx", 1500)),
    Row("zc-rx", "server -> zero-copy client, rx_buffers, 1,500 B", "Mpps", "copy-rx", "",
        zero_copy_path("rx", 1500)),
]
