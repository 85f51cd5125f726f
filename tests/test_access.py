"""Issue 8 item 7: access control of the control socket.

Socket file mode 0600 by default (from the moment the file exists), DPDK's owner-uid/owner-gid,
an allow-list of peer uids checked with SO_PEERCRED in both roles, back-off on wrong secrets, a
half-open handshake that keeps a good client out for at most about a second, and a keyword
default socket outside world-writable directories.
"""

from __future__ import annotations

import contextlib
import os
import stat
import time

import pytest
from peers import RawMemory, RawPeer, init, raw_client_handshake, wait_for
from peers import ACK, HELLO

import memif_ct
from memif_ct.config import InterfaceConfig, default_socket_path


@pytest.fixture
def umask_zero():
    old = os.umask(0)  # the worst case: nothing masked
    try:
        yield
    finally:
        os.umask(old)


def mode_of(path: str) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_socket_file_is_owner_only_by_default_even_with_umask_0(sockdir, umask_zero):
    path = os.path.join(sockdir, "m.sock")
    with memif_ct.Interface(role="server", socket=path, id=0):
        assert mode_of(path) == 0o600


def test_socket_mode_and_owner_gid_from_devargs(sockdir, umask_zero):
    path = os.path.join(sockdir, "g.sock")
    gid = os.getgid()
    owner = 65534 if os.getuid() == 0 else os.getuid()  # root may give the file away
    with memif_ct.Interface.from_devargs(
            f"role=server,socket={path},socket-abstract=no,socket-mode=0660,owner-uid={owner},owner-gid={gid}"):
        st = os.stat(path)
        assert (stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid) == (0o660, owner, gid)


def test_the_keyword_default_socket_is_not_in_a_world_writable_directory(monkeypatch):
    monkeypatch.delenv("XDG_RUNTIME_DIR", raising=False)
    path = InterfaceConfig().socket
    assert path == default_socket_path()
    assert not path.startswith("/tmp/")
    assert path == ("/run/memif.sock" if os.getuid() == 0 else f"/run/user/{os.getuid()}/memif.sock")
    monkeypatch.setenv("XDG_RUNTIME_DIR", "/run/user/4242")
    assert InterfaceConfig().socket == "/run/user/4242/memif.sock"


def test_a_server_refuses_a_peer_uid_outside_allowed_uids_also_on_an_abstract_socket():
    me = os.getuid()
    name = f"@memif-ct-acl-{os.getpid()}"
    sock = memif_ct.Socket(name)
    try:
        strict = memif_ct.Interface(role="server", socket=sock, id=0, allowed_uids=[me + 1])
        friendly = memif_ct.Interface(role="server", socket=sock, id=1, allowed_uids=f"{me + 1}:{me}")
        refused = memif_ct.Interface(role="client", socket=sock, id=0, reconnect=False)
        welcome = memif_ct.Interface(role="client", socket=sock, id=1)
        welcome.wait_up(5)
        wait_for(lambda: refused.last_disconnect_reason is not None, 5, "refusal")
        assert refused.last_disconnect_reason == f"Permission denied: uid {me} is not allowed"
        assert not strict.is_up and friendly.is_up
    finally:
        sock.close()


def test_a_client_refuses_a_server_whose_uid_is_not_allowed(sockdir):
    path = os.path.join(sockdir, "c.sock")
    me = os.getuid()
    with memif_ct.Interface(role="server", socket=path, id=0) as server, \
            memif_ct.Interface(role="client", socket=path, id=0, allowed_uids=[me + 1], reconnect=False) as client:
        wait_for(lambda: client.last_disconnect_reason is not None, 5, "refusal")
        assert client.last_disconnect_reason == f"server uid {me} is not in allowed-uids"
        assert not server.is_up


def test_wrong_secrets_are_slowed_down_and_the_right_one_still_gets_in(sockdir):
    """About 7,000 guesses a second before; now each wrong secret doubles the spacing of the
    next checks (50 ms up to 2 s)."""
    path = os.path.join(sockdir, "s.sock")
    with memif_ct.Interface(role="server", socket=path, id=0, secret="opensesame") as server:
        t0 = time.monotonic()
        for guess in range(6):
            peer = RawPeer.connect(path)
            try:
                peer.expect(HELLO)
                peer.send(init(secret=f"guess{guess}"))
                assert peer.expect_disconnect(timeout_s=10) == "Incorrect secret"
            finally:
                peer.close()
        elapsed = time.monotonic() - t0
        assert elapsed >= 1.4, f"6 wrong secrets answered in {elapsed:.2f} s"  # 0.05+0.1+0.2+0.4+0.8
        with memif_ct.Interface(role="client", socket=path, id=0, secret="opensesame") as client:
            client.wait_up(5)
        assert server.stats()["link_ups"] == 1


def test_a_client_silent_after_init_keeps_a_good_client_out_for_about_a_second_only(sockdir):
    path = os.path.join(sockdir, "h.sock")
    with memif_ct.Interface(role="server", socket=path, id=0, handshake_timeout_s=30) as server:
        squatter = RawPeer.connect(path)
        try:
            squatter.expect(HELLO)
            squatter.send(init())
            squatter.expect(ACK)  # INIT accepted: the interface is taken, then silence
            t0 = time.monotonic()
            with memif_ct.Interface(role="client", socket=path, id=0, reconnect_interval_s=0.1) as good:
                good.wait_up(5)
                waited = time.monotonic() - t0
            assert waited < 2.0, f"the good client waited {waited:.2f} s"
            assert squatter.expect_disconnect() == "handshake superseded by a newer client"
        finally:
            squatter.close()
        assert server.stats()["link_ups"] == 1


def test_a_raw_peer_can_still_complete_a_handshake(sockdir):
    """The access checks leave an ordinary client of our own uid alone."""
    path = os.path.join(sockdir, "ok.sock")
    with memif_ct.Interface(role="server", socket=path, id=0, allowed_uids=[os.getuid()]) as server:
        mem = RawMemory()
        peer = RawPeer.connect(path)
        try:
            raw_client_handshake(peer, mem)
            server.wait_up(5)
        finally:
            peer.close()
            mem.close()


def test_fds_a_peer_sends_are_close_on_exec(sockdir):
    """The client's region memfd and ring eventfds, as the server holds them, do not pass into a
    process the application starts (recvmsg with MSG_CMSG_CLOEXEC): such a child would keep the
    peer's shared memory after the link went down."""
    path = os.path.join(sockdir, "x.sock")
    with memif_ct.Interface(role="server", socket=path, id=0) as server:
        before = set(os.listdir("/proc/self/fd"))
        mem = RawMemory()
        peer = RawPeer.connect(path)
        try:
            raw_client_handshake(peer, mem)
            server.wait_up(5)
            ours = {peer.sock.fileno(), mem.fd, *mem.eventfds}
            new = {int(fd) for fd in set(os.listdir("/proc/self/fd")) - before} - ours
            received = {}
            for fd in new:
                with contextlib.suppress(FileNotFoundError):  # (listdir's own fd, gone by now)
                    target = os.readlink(f"/proc/self/fd/{fd}")
                    if target.startswith("/memfd:raw-peer") or target == "anon_inode:[eventfd]":
                        received[fd] = target
            assert any(t.startswith("/memfd:") for t in received.values()), received
            assert any(t == "anon_inode:[eventfd]" for t in received.values()), received
            for fd, target in received.items():
                assert os.get_inheritable(fd) is False, f"fd {fd} ({target}) is inherited by children"
        finally:
            peer.close()
            mem.close()
