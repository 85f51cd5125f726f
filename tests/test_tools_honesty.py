"""Results that never overstate (issue 8, item 9).

A check that verified nothing, or found loss, reordering, corruption, duplicates or foreign
frames, fails (exit 1) and says why in the human line and in the JSON ``error``; a run without
``--verify`` gives no loss figures (null in JSON, absent from the human line); every failure
with ``--json`` still ends in one JSON object carrying ``error``; pktgen says when the link was
down inside the time it measured. The peers are our own Interfaces in the test process, sending
raw frames with ``tx_burst``; the tools run as ``python -m memif_ct`` subprocesses.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Callable

import pytest

import test_cli as cli_tests
from memif_ct import frames
from peers import send_all
from test_cli import STEP, Child, Peers, devargs, last_json, run_cli, swallow, wait_for

# The subprocess and in-process peer fixtures of the CLI tests.
spawn = cli_tests.spawn
peers = cli_tests.peers

CHECK_KEYS = ("verified", "lost", "out_of_order", "corrupted", "duplicates", "not_ours")
ARP = frames.build_arp_request(bytes.fromhex("020000000001"), "10.0.0.1", "10.0.0.2")


def foreign(n: int) -> list[bytes]:
    """n frames that are not pktgen's: ARP requests and UDP without the magic."""
    udp = bytearray(frames.build_udp_frame(128, 0))
    udp[42:50] = bytes(8)  # magic gone: some other program's UDP
    return [ARP if i % 2 else bytes(udp) for i in range(n)]


def pktgen_frames(seqs: list[int]) -> list[bytes]:
    return [frames.build_udp_frame(100, seq) for seq in seqs]


def feed_sink(sockdir: str, peers: Peers, spawn: Callable[..., Child], pkts: list[bytes], *extra: str) -> Child:
    """``sink --count len(pkts) *extra`` as a server, fed ``pkts`` by an in-process client."""
    path = f"{sockdir}/s.sock"
    child = spawn("sink", devargs("server", path), "--count", str(len(pkts)), *extra, "--wait-up", "10")
    client = peers.open(devargs("client", path))
    client.wait_up(STEP)
    send_all(client, pkts)
    return child


def last_line(out: str) -> str:
    lines = out.strip().splitlines()
    assert lines, "no stdout at all"
    return lines[-1]


# ---- a check that verified nothing, or found something, fails and says so --------------------


@pytest.mark.parametrize("as_json", [True, False], ids=["json", "human"])
def test_sink_verify_of_frames_not_pktgens_fails(sockdir: str, peers: Peers, spawn: Callable[..., Child],
                                                as_json: bool) -> None:
    # The report of issue 8: "lost 0 out-of-order 0 corrupted 0", exit 0, every frame not_ours.
    child = feed_sink(sockdir, peers, spawn, foreign(1000), "--verify", *(["--json"] if as_json else []))
    rc, out, err = child.finish()
    assert rc == 1, f"sink --verify that verified nothing must fail: rc {rc}, stdout {out!r}, stderr {err!r}"
    if as_json:
        s = last_json(out)
        assert (s["rx"], s["verified"], s["not_ours"]) == (1000, 0, 1000), s
        assert s["lost"] is None and s["out_of_order"] is None, f"loss and order cannot be judged from 0 frames: {s}"
        assert s["error"] == "verify FAILED: 0 of 1000 frames were pktgen frames", s
    else:
        line = last_line(out)
        assert "verify FAILED: 0 of 1000 frames were pktgen frames" in line, line
        assert "lost" not in line and "out-of-order" not in line, line


CASES: dict[str, tuple[list[bytes], dict[str, int], str]] = {
    # name: (what the sink gets, figures it must report, what its error must say)
    "loss": (pktgen_frames([s for s in range(100) if not 10 <= s < 22]),
             {"verified": 88, "lost": 12, "out_of_order": 0}, "verify FAILED: lost 12"),
    "reorder": (pktgen_frames([*range(49), 50, 49, *range(51, 100)]),
                {"verified": 100, "lost": 0, "out_of_order": 1}, "verify FAILED: out-of-order 1"),
    "duplicate": (pktgen_frames([*range(100), 5]),
                  {"verified": 100, "lost": 0, "duplicates": 1}, "verify FAILED: duplicates 1"),
    "not-ours-mixed-in": (pktgen_frames(list(range(100))) + foreign(3),
                          {"verified": 100, "lost": 0, "not_ours": 3}, "verify FAILED: not-ours 3"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_sink_verify_fails_on_what_it_finds(sockdir: str, peers: Peers, spawn: Callable[..., Child],
                                           case: str) -> None:
    pkts, figures, error = CASES[case]
    child = feed_sink(sockdir, peers, spawn, pkts, "--verify", "--json")
    rc, out, err = child.finish()
    s = last_json(out)
    assert rc == 1, f"{case}: sink --verify must fail; rc {rc}, summary {s}, stderr {err!r}"
    assert s["rx"] == len(pkts) and s["corrupted"] == 0
    assert {k: s[k] for k in figures} == figures, s
    assert s["error"] == error, s


def test_sink_verify_human_line_names_loss_and_reordering(sockdir: str, peers: Peers,
                                                         spawn: Callable[..., Child]) -> None:
    seqs = [s for s in range(100) if not 10 <= s < 22]
    i = seqs.index(50)
    seqs[i - 1], seqs[i] = seqs[i], seqs[i - 1]
    child = feed_sink(sockdir, peers, spawn, pktgen_frames(seqs), "--verify")
    rc, out, _err = child.finish()
    line = last_line(out)
    assert rc == 1, line
    assert line.startswith("sink: rx 88 lost 12 out-of-order 1 corrupted 0 in "), line
    assert line.endswith("; verify FAILED: lost 12, out-of-order 1"), line


def test_sink_verify_judges_order_per_queue(sockdir: str, peers: Peers, spawn: Callable[..., Child]) -> None:
    # A ring keeps order; two queues do not between them. pktgen --queues 2 spreads its bursts so,
    # and a sink that read queue 1's later frames first must not call that reordering (now a failure).
    path, qargs = f"{sockdir}/q.sock", "rx-queues=2,tx-queues=2"
    child = spawn("sink", devargs("server", path, qargs), "--count", "100", "--verify", "--json", "--wait-up", "10")
    client = peers.open(devargs("client", path, qargs))
    client.wait_up(STEP)
    assert client.num_tx_queues == 2
    assert client.tx_burst(pktgen_frames(list(range(50, 100))), 1) == 50
    assert client.wait_tx_drained(STEP), "the sink did not read queue 1"
    assert client.tx_burst(pktgen_frames(list(range(50))), 0) == 50
    rc, out, err = child.finish()
    s = last_json(out)
    assert (rc, s["verified"], s["lost"], s["out_of_order"], s["error"]) == (0, 100, 0, 0, None), (s, err)


def test_sink_verify_clean_run_passes(sockdir: str, peers: Peers, spawn: Callable[..., Child]) -> None:
    # The positive control: pktgen's frames, all there, in order.
    child = feed_sink(sockdir, peers, spawn, pktgen_frames(list(range(100))), "--verify", "--json")
    rc, out, err = child.finish()
    assert rc == 0, err
    s = last_json(out)
    assert {k: s[k] for k in CHECK_KEYS} == {"verified": 100, "lost": 0, "out_of_order": 0, "corrupted": 0,
                                             "duplicates": 0, "not_ours": 0}, s
    assert s["error"] is None


# ---- without --verify, no loss figures -------------------------------------------------------


@pytest.mark.parametrize("as_json", [True, False], ids=["json", "human"])
def test_sink_without_verify_gives_no_loss_figures(sockdir: str, peers: Peers, spawn: Callable[..., Child],
                                                   as_json: bool) -> None:
    child = feed_sink(sockdir, peers, spawn, foreign(10), *(["--json"] if as_json else []))
    rc, out, err = child.finish()
    assert rc == 0, err
    if as_json:
        s = last_json(out)
        assert s["rx"] == 10
        assert {k: s[k] for k in CHECK_KEYS} == dict.fromkeys(CHECK_KEYS), f"nothing was checked: {s}"
        assert s["error"] is None
    else:
        line = last_line(out)
        assert line.startswith("sink: rx 10 in "), line
        for word in ("lost", "out-of-order", "corrupted", "verif"):
            assert word not in line, line


@pytest.mark.parametrize("as_json", [True, False], ids=["json", "human"])
def test_pktgen_without_verify_gives_no_loss_figures(sockdir: str, peers: Peers, as_json: bool) -> None:
    path = f"{sockdir}/p.sock"
    server = peers.open(devargs("server", path))
    peers.serve(server, swallow([]))
    r = run_cli("pktgen", devargs("client", path), "--count", "500", *(["--json"] if as_json else []),
                "--wait-up", "10")
    assert r.returncode == 0, r.stderr
    if as_json:
        s = last_json(r.stdout)
        assert s["tx"] == 500
        assert {k: s[k] for k in CHECK_KEYS} == dict.fromkeys(CHECK_KEYS), f"nothing was checked: {s}"
        assert s["error"] is None
    else:
        line = last_line(r.stdout)
        assert line.startswith("pktgen: tx 500 rx 0 in "), line
        for word in ("lost", "out-of-order", "corrupted"):
            assert word not in line, line


# ---- every failure with --json ends in one JSON object with "error" ---------------------------


def test_json_error_when_the_link_never_comes_up(sockdir: str) -> None:
    r = run_cli("sink", devargs("client", f"{sockdir}/nobody.sock"), "--json", "--wait-up", "0.5")
    assert r.returncode == 1, r.stderr
    s = last_json(r.stdout)
    assert "did not come up within 0.5 s" in s["error"], s
    assert s["command"] == "sink"
    assert "did not come up" in r.stderr


def test_json_error_for_a_bad_devargs_key(sockdir: str) -> None:
    r = run_cli("sink", f"role=server,id=0,socket={sockdir}/x.sock,socket-abstract=no,colour=blue", "--json")
    assert r.returncode == 2
    s = last_json(r.stdout)
    assert "colour" in s["error"] and "unknown key" in s["error"], s
    assert "colour" in r.stderr


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_json_error_when_interrupted_before_the_run(sockdir: str, spawn: Callable[..., Child],
                                                    sig: signal.Signals) -> None:
    rc, out, err = cli_tests.signal_while_waiting_for_link(sockdir, spawn, sig)
    assert rc == 130, err
    s = last_json(out)
    assert s["error"] == "interrupted before the run started" and s["interrupted"] is True, s


def test_json_error_when_pktgen_is_interrupted(sockdir: str, peers: Peers, spawn: Callable[..., Child]) -> None:
    rc, out, err = cli_tests.interrupt_pktgen(sockdir, peers, spawn)
    assert rc == 1, err
    s = last_json(out)
    assert s["error"] == f"sent {s['tx']} of 100000000 frames (interrupted)", s


@pytest.mark.parametrize("case", ["no-arp", "no-icmp"])
def test_json_error_when_ping_gets_no_reply(sockdir: str, peers: Peers, case: str) -> None:
    target = "10.1.2.99" if case == "no-arp" else cli_tests.TARGET
    r = cli_tests.ping_unanswered(sockdir, peers, target)
    assert r.returncode == 1, r.stderr
    assert last_json(r.stdout)["error"] == ("no ARP reply for 10.1.2.99" if case == "no-arp" else "no reply")


# ---- pktgen: a link stall inside the measured time is said ------------------------------------


@pytest.mark.parametrize("as_json", [True, False], ids=["json", "human"])
def test_pktgen_says_the_link_was_down_inside_its_measured_time(sockdir: str, peers: Peers,
                                                                spawn: Callable[..., Child], as_json: bool) -> None:
    path = f"{sockdir}/k.sock"
    # A 64-slot ring: pktgen is still sending when the server goes away after 1000 frames.
    child = spawn("pktgen", devargs("client", path, "rsize=6"), "--count", "3000",
                  *(["--json"] if as_json else []), "--wait-up", "10")
    first = peers.open(devargs("server", path))
    got = 0

    def read_1000() -> bool:
        nonlocal got
        child.assert_running()
        if first.wait_rx(timeout_s=0.05):
            got += len(first.rx_burst(256))
        return got >= 1000

    wait_for(read_1000, what="1000 frames at the first server")
    first.close()
    down_from = time.monotonic()
    time.sleep(1.2)
    second = peers.open(devargs("server", path))
    second.wait_up(STEP)
    down_s = time.monotonic() - down_from
    peers.serve(second, swallow([]))
    rc, out, err = child.finish()
    assert rc == 0, err
    if as_json:
        s = last_json(out)
        assert s["tx"] == 3000 and s["error"] is None
        assert 1.0 <= s["stalled_s"] <= min(down_s + 0.2, s["seconds"]), s
    else:
        line = last_line(out)
        assert "(link was down for 1." in line and " s measured; the rate includes it)" in line, line
