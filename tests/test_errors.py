"""Issue 7 item 6: everything memif-ct raises derives from MemifError, typed by kind."""

from __future__ import annotations

import ast
import builtins
import errno
import os
import socket
import time
from pathlib import Path

import pytest

import memif_ct
from memif_ct import errors

PACKAGE = Path(memif_ct.__file__).parent
BUILTIN_EXCEPTIONS = {name for name in dir(builtins) if isinstance(getattr(builtins, name), type)
                      and issubclass(getattr(builtins, name), BaseException)}


def test_no_module_raises_a_bare_builtin_exception():
    """``raise ValueError(...)`` etc. anywhere in the package is a defect: use a MemifError subclass
    (they also derive from the builtin a caller would catch). argparse's own ArgumentTypeError in
    cli.py is argparse's business (it turns it into a usage error) and ``raise`` alone re-raises."""
    offenders = []
    for path in sorted(PACKAGE.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Raise) and node.exc is not None:
                exc = node.exc.func if isinstance(node.exc, ast.Call) else node.exc
                if isinstance(exc, ast.Name) and exc.id in BUILTIN_EXCEPTIONS and exc.id not in (
                        "SystemExit", "KeyboardInterrupt", "NotImplementedError"):
                    offenders.append(f"{path.name}:{node.lineno}: raise {exc.id}")
    assert offenders == []


@pytest.mark.parametrize("cls, builtin", [
    (errors.ConfigError, ValueError), (errors.ArgumentError, ValueError), (errors.ArgumentTypeError, TypeError),
    (errors.NativeArgumentError, ValueError), (errors.NativeLibraryError, ImportError),
    (errors.SocketError, OSError), (errors.LinkTimeout, TimeoutError),
])
def test_every_error_is_a_memif_error_and_the_builtin_a_caller_would_catch(cls, builtin):
    assert issubclass(cls, errors.MemifError) and issubclass(cls, builtin)


def test_every_public_error_class_is_exported():
    for name in errors.__all__:
        assert getattr(memif_ct, name) is getattr(errors, name)


def test_wait_up_timeout_is_a_link_timeout_naming_the_reason(sockdir):
    with memif_ct.Interface(role="client", socket=os.path.join(sockdir, "nobody.sock"), id=0) as intf:
        t0 = time.monotonic()
        with pytest.raises(memif_ct.LinkTimeout) as info:
            intf.wait_up(0.3)
        assert time.monotonic() - t0 < 2
    assert isinstance(info.value, TimeoutError) and isinstance(info.value, memif_ct.MemifError)
    assert "did not come up within 0.3 s" in str(info.value)
    assert "No such file or directory" in str(info.value)


def test_a_socket_failure_is_an_oserror_and_a_memif_error(sockdir):
    """Binding where a live non-socket file sits is a ConfigError (the user's socket= is wrong);
    closing a Socket from its own control thread is a SocketError with an errno."""
    closed: list[BaseException] = []
    path = os.path.join(sockdir, "s.sock")
    sock = memif_ct.Socket(path)

    def on_up(intf: memif_ct.Interface) -> None:
        try:
            sock.close()
        except BaseException as exc:
            closed.append(exc)

    server = memif_ct.Interface(role="server", socket=sock, id=0, on_up=on_up)
    client = memif_ct.Interface(role="client", socket=sock, id=0)
    try:
        client.wait_up(5)
        deadline = time.monotonic() + 5
        while not closed and time.monotonic() < deadline:
            time.sleep(0.01)
        assert len(closed) == 1
        exc = closed[0]
        assert isinstance(exc, memif_ct.SocketError) and isinstance(exc, OSError)
        assert exc.errno == errno.EDEADLK and "own control thread" in str(exc)
    finally:
        client.close()
        server.close()
        sock.close()


def test_a_non_memif_socket_file_in_the_way_is_a_config_error_naming_socket(sockdir):
    path = os.path.join(sockdir, "taken.sock")
    squatter = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    squatter.bind(path)
    squatter.listen(1)
    try:
        with pytest.raises(memif_ct.ConfigError, match="socket=") as info:
            memif_ct.Interface(role="server", socket=path, id=0)
        assert info.value.key == "socket"
    finally:
        squatter.close()


@pytest.mark.parametrize("timeout, error, words", [
    (float("nan"), errors.ArgumentError, "timeout_s=nan is not a number of seconds"),
    ("1", errors.ArgumentTypeError, "timeout_s must be a number of seconds or None, not str"),
    (True, errors.ArgumentTypeError, "timeout_s must be a number of seconds or None, not bool"),
])
def test_every_wait_refuses_a_timeout_that_is_no_number_of_seconds(sockdir, timeout, error, words):
    """NaN made the waits' deadline never come (wait_up(nan) hung for ever); a str reached the
    arithmetic and raised a bare TypeError. Each wait names ``timeout_s`` at once, up or down."""
    path = os.path.join(sockdir, "t.sock")
    with memif_ct.Interface(role="server", socket=path, id=0) as server:
        waits = [server.wait_up, server.wait_down, server.wait_tx_drained,
                 lambda t: server.wait_rx(0, timeout_s=t)]
        for wait in waits:
            t0 = time.monotonic()
            with pytest.raises(error, match=words):
                wait(timeout)
            assert time.monotonic() - t0 < 1
        with memif_ct.Interface(role="client", socket=path, id=0) as client:
            client.wait_up(float("inf"))  # infinity: no limit, as None
            for wait in [*waits, client.rx_queue(0).wait]:
                with pytest.raises(error, match=words):
                    wait(timeout)


@pytest.mark.parametrize("reason, error, words", [
    (123, errors.ArgumentTypeError, "reason must be a str, not int"),
    (b"bytes", errors.ArgumentTypeError, "reason must be a str, not bytes"),
    ("\ud800 lone surrogate", errors.ArgumentError, "cannot be encoded as UTF-8"),
])
def test_disconnect_refuses_a_reason_that_is_no_text(sockdir, reason, error, words):
    """It returned, the peer got no DISCONNECT (it saw the channel close) and the reason on
    record was the int or bytes given. Now it raises in the caller's thread, up or down, and
    the link stays up."""
    path = os.path.join(sockdir, "r.sock")
    with memif_ct.Interface(role="server", socket=path, id=0) as server:
        with pytest.raises(error, match=words):
            server.disconnect(reason)
        with memif_ct.Interface(role="client", socket=path, id=0) as client:
            client.wait_up(5)
            for call in (client.disconnect, client.disconnect_soon, server.disconnect):
                with pytest.raises(error, match=words):
                    call(reason)
            assert client.is_up and server.is_up
            client.disconnect("x" * 200)  # a str too long is cut, as DPDK cuts it
            server.wait_down(5)
            assert server.last_disconnect_reason == "x" * 95


def test_socket_abstract_takes_yes_and_no_not_the_truth_of_a_str(sockdir):
    """``Socket(path, abstract="no")`` made an abstract socket (bool("no") is True), which no
    file mode protects."""
    path = os.path.join(sockdir, "a.sock")
    assert memif_ct.Socket(path, abstract="no").abstract is False
    assert memif_ct.Socket(path).abstract is False
    assert memif_ct.Socket(path, abstract="yes").abstract is True
    assert memif_ct.Socket(path, abstract=True).abstract is True
    assert memif_ct.Socket(path, abstract=1).abstract is True  # type: ignore[arg-type]  # as bool(1) was
    assert memif_ct.Socket(path, abstract=0).abstract is False  # type: ignore[arg-type]
    with pytest.raises(errors.ConfigError, match="abstract"):
        memif_ct.Socket(path, abstract="maybe")
