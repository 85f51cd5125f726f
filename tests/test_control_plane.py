"""The control plane on its own terms: the event loop, link callbacks, a dial that never blocks."""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import weakref

import pytest

import memif_ct
from memif_ct.eventloop import EventLoop, Timer


# ---- the event loop ------------------------------------------------------------------------


def test_event_loop_runs_calls_and_timers_in_order_on_its_thread():
    loop = EventLoop("test")
    seen: list[tuple[str, str]] = []
    try:
        assert loop.call(lambda: threading.current_thread().name).startswith("memif-ct control")
        done = threading.Event()

        def arm() -> None:
            loop.call_later(0.05, lambda: seen.append(("late", threading.current_thread().name)))
            loop.call_later(0.0, lambda: seen.append(("soon", threading.current_thread().name)))
            loop.call_later(0.1, done.set)

        loop.call(arm)
        assert done.wait(5)
        assert [s[0] for s in seen] == ["soon", "late"]
        assert all(s[1].startswith("memif-ct control") for s in seen)
    finally:
        assert loop.stop()


def test_a_cancelled_timer_lets_go_of_its_callback_at_once():
    """A server's handshake deadline is a timer holding its connection: cancelled when the
    connection closes, the connection goes then, not seconds later when the time comes (a
    peer that connects and leaves 3,000 times a second grew the heap by 5 MB)."""
    loop = EventLoop("test")
    try:
        class Held:
            ran = False

        def arm() -> Timer:
            held = Held()
            refs.append(weakref.ref(held))
            return loop.call_later(0.05, lambda: setattr(held, "ran", True))

        refs: list[weakref.ref[Held]] = []
        timer = loop.call(arm)
        assert refs[0]() is not None  # the timer holds it
        loop.call(timer.cancel)
        assert refs[0]() is None
        time.sleep(0.1)
        assert loop.call(lambda: 42) == 42  # the loop went past the timer's time
    finally:
        assert loop.stop()


def test_a_failing_callback_is_logged_and_the_loop_goes_on(caplog):
    loop = EventLoop("test")
    try:
        with caplog.at_level(logging.ERROR, logger="memif_ct.eventloop"):
            loop.call_soon(lambda: 1 / 0)  # type: ignore[func-returns-value]
            timer_ran = threading.Event()
            loop.call(lambda: loop.call_later(0, lambda: (_ for _ in ()).throw(RuntimeError("boom"))))
            loop.call(lambda: loop.call_later(0.01, timer_ran.set))
            assert timer_ran.wait(5)
        assert loop.call(lambda: 42) == 42
        assert "ZeroDivisionError" in caplog.text and "boom" in caplog.text
    finally:
        loop.stop()


def test_call_re_raises_the_callee_exception():
    loop = EventLoop("test")
    try:
        with pytest.raises(KeyError):
            loop.call(lambda: {}["missing"])
    finally:
        loop.stop()


def test_a_cancelled_timer_never_runs():
    loop = EventLoop("test")
    ran = threading.Event()
    try:
        timer = loop.call(lambda: loop.call_later(0.05, ran.set))
        timer.cancel()
        time.sleep(0.2)
        assert not ran.is_set()
    finally:
        loop.stop()


def test_a_socket_starts_no_thread_until_an_interface_uses_it(sockdir):
    before = {t.name for t in threading.enumerate()}
    sock = memif_ct.Socket(os.path.join(sockdir, "idle.sock"))
    try:
        assert {t.name for t in threading.enumerate()} == before
    finally:
        sock.close()


# ---- link callbacks ------------------------------------------------------------------------


def test_on_up_and_on_down_are_called_once_per_transition_on_the_control_thread(sockdir):
    events: list[tuple[str, str, str | None]] = []

    def on_up(intf: memif_ct.Interface) -> None:
        events.append(("up", threading.current_thread().name, None))

    def on_down(intf: memif_ct.Interface, reason: str) -> None:
        events.append(("down", threading.current_thread().name, reason))

    path = os.path.join(sockdir, "cb.sock")
    server = memif_ct.Interface(role="server", socket=path, id=0)
    client = memif_ct.Interface(role="client", socket=path, id=0, reconnect_interval_s=0.02,
                                on_up=on_up, on_down=on_down)
    try:
        client.wait_up(5)
        for i in range(3):
            server.disconnect(f"drop {i}")
            client.wait_down(5)
            client.wait_up(5)
        client.close()
        assert [e[0] for e in events] == ["up", "down"] * 4
        assert all(e[1].startswith("memif-ct control") for e in events)
        assert [e[2] for e in events if e[0] == "down"] == ["drop 0", "drop 1", "drop 2", "interface closed"]
    finally:
        client.close()
        server.close()


def test_an_exception_in_a_callback_is_logged_and_the_link_still_works(sockdir, caplog):
    def bad(*_args: object) -> None:
        raise RuntimeError("callback exploded")

    path = os.path.join(sockdir, "bad.sock")
    with caplog.at_level(logging.ERROR):
        server = memif_ct.Interface(role="server", socket=path, id=0, on_up=bad, on_down=bad)
        client = memif_ct.Interface(role="client", socket=path, id=0, reconnect_interval_s=0.02)
        try:
            client.wait_up(5)
            server.wait_up(5)
            assert client.tx_burst([b"still works"]) == 1
            assert server.wait_rx(timeout_s=5)
            assert server.rx_burst() == [b"still works"]
            client.disconnect("again")
            server.wait_down(5)
            client.wait_up(5)
            server.wait_up(5)  # the control plane survived both exceptions
        finally:
            client.close()
            server.close()
    assert caplog.text.count("callback exploded") >= 3


def test_callbacks_must_be_callable():
    with pytest.raises(memif_ct.ArgumentTypeError, match="on_up must be callable"):
        memif_ct.Interface(role="client", socket="@memif-ct-never", on_up=42)  # type: ignore[arg-type]


# ---- a dial never blocks ------------------------------------------------------------------


def test_a_server_that_never_accepts_stalls_neither_the_client_nor_close(sockdir):
    """A listener with a full backlog: connect() would block a blocking socket. Interface
    creation, a second interface on the socket and close() all return at once, and wait_up
    reports why."""
    path = os.path.join(sockdir, "deaf.sock")
    deaf = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    deaf.bind(path)
    deaf.listen(0)
    fillers = []
    for _ in range(8):  # fill the backlog; the rest would block
        s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        s.setblocking(False)
        try:
            s.connect(path)
        except BlockingIOError:
            s.close()
            break
        fillers.append(s)
    try:
        sock = memif_ct.Socket(path)
        t0 = time.monotonic()
        a = memif_ct.Interface(role="client", socket=sock, id=0, handshake_timeout_s=0.5)
        b = memif_ct.Interface(role="client", socket=sock, id=1, handshake_timeout_s=0.5)
        assert time.monotonic() - t0 < 0.5
        with pytest.raises(memif_ct.LinkTimeout, match="does not accept"):
            a.wait_up(2.0)
        t0 = time.monotonic()
        a.close()
        b.close()
        sock.close()
        assert time.monotonic() - t0 < 1.0
    finally:
        for s in fillers:
            s.close()
        deaf.close()


def test_a_server_that_accepts_nothing_times_out_the_handshake(sockdir):
    """The kernel queues the connection, nobody answers with HELLO: handshake timeout."""
    path = os.path.join(sockdir, "mute.sock")
    mute = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    mute.bind(path)
    mute.listen(16)
    try:
        with memif_ct.Interface(role="client", socket=path, id=0, handshake_timeout_s=0.3) as c:
            with pytest.raises(memif_ct.LinkTimeout, match="handshake timeout"):
                c.wait_up(2.0)
    finally:
        mute.close()


def test_out_of_fds_the_listener_backs_off_logs_sparingly_and_recovers(sockdir):
    """Issue 8 item 4: accept() failing with EMFILE spun the control thread at 100% CPU, logging
    a traceback per turn. A server process out of fds now pauses accepting with back-off, logs a
    line per pause (not per turn) and serves the waiting client once fds are free again."""
    import subprocess
    import sys
    import textwrap

    path = os.path.join(sockdir, "emfile.sock")
    script = textwrap.dedent(f"""
        import os, resource, sys, time
        import memif_ct
        with memif_ct.Interface(role="server", socket={path!r}, id=0, handshake_timeout_s=30) as intf:
            soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
            highest = max(int(n) for n in os.listdir("/proc/self/fd"))
            resource.setrlimit(resource.RLIMIT_NOFILE, (highest + 1, hard))
            hoard = []
            try:
                while True:  # fill the gaps below the limit too: no new fd can open now
                    hoard.append(os.dup(0))
            except OSError:
                pass
            print("ready", flush=True)
            sys.stdin.readline()
            t = os.times()
            print(f"cpu {{t.user + t.system}}", flush=True)
            for fd in hoard:
                os.close(fd)
            resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
            intf.wait_up(10)
            print("up", flush=True)
            sys.stdin.readline()  # stay up until the client has seen the link up too
    """)
    child = subprocess.Popen([sys.executable, "-c", script], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
    try:
        assert child.stdout is not None and child.stdin is not None
        assert child.stdout.readline().strip() == "ready"
        t0 = os.times()
        client = memif_ct.Interface(role="client", socket=path, id=0, handshake_timeout_s=30)
        try:
            time.sleep(2.0)  # the child's accept fails with EMFILE all this time
            child.stdin.write("go\n")
            child.stdin.flush()
            cpu = float(child.stdout.readline().split()[1])
            try:
                client.wait_up(10)
            except memif_ct.LinkTimeout as exc:
                child.kill()
                said = child.stderr.read()[-3000:] if child.stderr else ""
                raise AssertionError(f"{exc}; the server said:\n{said}") from exc
            assert child.stdout.readline().strip() == "up"
            child.stdin.write("done\n")
            child.stdin.flush()
        finally:
            client.close()
        assert child.wait(10) == 0
        stderr = child.stderr.read() if child.stderr else ""
    finally:
        child.kill()
        child.wait()
    del t0
    assert cpu < 1.0, f"the server used {cpu:.2f} CPU-s (setup included) while out of fds"
    pauses = stderr.count("pausing accepts")
    assert 1 <= pauses <= 10, stderr[-2000:]
    assert "Traceback" not in stderr


def test_a_second_server_on_a_live_socket_is_refused_and_the_live_one_logs_no_warning(sockdir, caplog):
    """Issue 8 item 10: the refusal does not claim the listener is memif (it may be anything),
    and the stale-socket probe, which connects and hangs up, is no reason for the live server to
    warn."""
    path = os.path.join(sockdir, "live.sock")
    with caplog.at_level(logging.WARNING, logger="memif_ct"):
        with memif_ct.Interface(role="server", socket=path, id=0) as live:
            for _ in range(5):
                with pytest.raises(memif_ct.ConfigError, match="another process already listens there, "
                                                               "a memif server or not"):
                    memif_ct.Interface(role="server", socket=path, id=1)
            time.sleep(0.3)
            with memif_ct.Interface(role="client", socket=path, id=0) as client:
                client.wait_up(5)  # and it still serves
            assert live.stats()["link_ups"] == 1
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert warnings == []
