"""memif_ct.aio: the asyncio adapter, on the default loop and on uvloop.

Every test runs its coroutine on a fresh loop in asyncio debug mode with a slow-callback
threshold, and fails if any callback held the loop's thread longer than that: the adapter must
never block the loop.
"""

from __future__ import annotations

import asyncio
import logging
import os
import subprocess
import sys
import textwrap
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

import memif_ct
import memif_ct.aio
from memif_ct import ConfigError, LinkTimeout

SLOW_CALLBACK_S = 0.05  # a blocking wait in the adapter would take a 50 ms poll slice or more; a burst
# of work takes a few ms, up to ~20 ms on a 2-core machine busy with other processes (seen)

LOOPS = ["asyncio"]
try:
    import uvloop  # noqa: F401

    LOOPS.append("uvloop")
except ImportError:  # pragma: no cover - uvloop is in the test extra; .ci/run installs it
    pass


@pytest.fixture(params=LOOPS)
def run(request: pytest.FixtureRequest, caplog: pytest.LogCaptureFixture) -> Callable[[Awaitable[Any]], Any]:
    """Run a coroutine on the parametrised loop; fail on any slow callback."""

    def factory() -> asyncio.AbstractEventLoop:
        if request.param == "uvloop":
            import uvloop

            return uvloop.new_event_loop()
        return asyncio.new_event_loop()

    def runner(coro: Awaitable[Any]) -> Any:
        caplog.set_level(logging.WARNING, logger="asyncio")
        with asyncio.Runner(loop_factory=factory, debug=True) as r:
            r.get_loop().slow_callback_duration = SLOW_CALLBACK_S
            result = r.run(coro)  # type: ignore[arg-type]
        slow = [rec.getMessage() for rec in caplog.records if rec.name == "asyncio" and "took" in rec.getMessage()]
        assert slow == [], f"the event loop's thread was blocked: {slow}"
        return result

    return runner


def frames(n: int, size: int = 64, tag: int = 0) -> list[bytes]:
    return [(tag.to_bytes(2, "big") + i.to_bytes(4, "big")).ljust(size, b"\xa5") for i in range(n)]


async def recv_n(intf: memif_ct.aio.Interface, n: int, timeout_s: float = 10.0) -> list[bytes]:
    got: list[bytes] = []

    async def loop() -> None:
        while len(got) < n:
            got.extend(await intf.recv_burst(256))

    await asyncio.wait_for(loop(), timeout_s)
    return got


def test_two_interfaces_in_one_loop_exchange_packets_both_ways(run, sockdir):
    path = os.path.join(sockdir, "a.sock")

    async def main() -> None:
        async with memif_ct.aio.Interface(role="server", socket=path, id=3) as server, \
                memif_ct.aio.Interface(role="client", socket=path, id=3) as client:
            await client.wait_up(5)
            await server.wait_up(5)
            out = frames(5000, 64, tag=1)
            sender = asyncio.ensure_future(client.send_burst(out))
            got = await recv_n(server, len(out))
            assert await sender == len(out)
            assert got == out
            back = frames(300, 9000, tag=2)  # chained over 2,048-byte buffers
            sender = asyncio.ensure_future(server.send_burst(back))
            assert await recv_n(client, len(back)) == back
            assert await sender == len(back)
            assert client.stats()["tx"][0]["packets"] == len(out)
            assert server.stats()["rx"][0]["packets"] == len(out)
            assert client.stats()["rx"][0]["chains"] == len(back)

    run(main())


def test_async_client_against_a_sync_echo_in_another_process(run, sockdir):
    path = os.path.join(sockdir, "e.sock")
    script = textwrap.dedent(f"""
        import memif_ct
        with memif_ct.Interface(role="server", socket={path!r}, id=0) as intf:
            print("ready", flush=True)
            intf.wait_up(timeout_s=20)
            while intf.is_up or intf.stats()["link_ups"] == 0:
                if intf.wait_rx(timeout_s=0.2):
                    pkts = intf.rx_burst(256)
                    while pkts:
                        pkts = pkts[intf.tx_burst(pkts):]
    """)
    child = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout is not None and child.stdout.readline().strip() == "ready"

        async def main() -> None:
            async with memif_ct.aio.Interface(role="client", socket=path, id=0) as intf:
                await intf.wait_up(10)
                out = frames(2000, 128)
                sender = asyncio.ensure_future(intf.send_burst(out))
                assert await recv_n(intf, len(out)) == out
                assert await sender == len(out)

        run(main())
        assert child.wait(10) == 0
    finally:
        child.kill()
        child.wait()


def test_recv_burst_returns_empty_when_the_link_drops_and_works_after_the_reconnect(run, sockdir):
    path = os.path.join(sockdir, "r.sock")

    async def main() -> None:
        async with memif_ct.aio.Interface(role="server", socket=path, id=0) as server, \
                memif_ct.aio.Interface(role="client", socket=path, id=0, reconnect_interval_s=0.05) as client:
            await client.wait_up(5)
            pending = asyncio.ensure_future(client.recv_burst())
            await asyncio.sleep(0.05)
            assert not pending.done()
            await server.disconnect("test drop")
            assert await asyncio.wait_for(pending, 5) == []
            await client.wait_up(5)  # reconnected, with new eventfds
            await server.wait_up(5)
            waiting = asyncio.ensure_future(client.recv_burst())
            await asyncio.sleep(0.05)
            assert await server.send_burst([b"after reconnect" * 5]) == 1
            assert await asyncio.wait_for(waiting, 5) == [b"after reconnect" * 5]
            assert client.stats()["link_ups"] == 2

    run(main())


def test_cancelling_a_pending_recv_burst_leaves_the_interface_usable(run, sockdir):
    path = os.path.join(sockdir, "c.sock")

    async def main() -> None:
        async with memif_ct.aio.Interface(role="server", socket=path, id=0) as server, \
                memif_ct.aio.Interface(role="client", socket=path, id=0) as client:
            await client.wait_up(5)
            await server.wait_up(5)
            for _ in range(20):
                task = asyncio.ensure_future(server.recv_burst())
                await asyncio.sleep(0.005)
                task.cancel()
                with pytest.raises(asyncio.CancelledError):
                    await task
            assert await client.send_burst([b"x" * 60, b"y" * 70]) == 2
            assert await recv_n(server, 2, 5) == [b"x" * 60, b"y" * 70]

    run(main())


def test_wait_up_times_out_with_a_memif_error_that_is_a_timeout_error(run, sockdir):
    async def main() -> None:
        async with memif_ct.aio.Interface(role="client", socket=os.path.join(sockdir, "none.sock"), id=0) as c:
            with pytest.raises(LinkTimeout, match="did not come up") as info:
                await c.wait_up(0.3)
            assert isinstance(info.value, TimeoutError)
            assert isinstance(info.value, memif_ct.MemifError)
            assert "connect to" in str(info.value)  # the last attempt's reason

    run(main())


def test_polling_mode_is_refused_with_a_reason(run, sockdir):
    async def main() -> None:
        with pytest.raises(ConfigError, match="interrupt"):
            memif_ct.aio.Interface(role="server", socket=os.path.join(sockdir, "p.sock"), interrupt=False)

    run(main())


def test_send_burst_waits_for_a_full_ring_instead_of_spinning(run, sockdir):
    """A ring of 16 slots and a receiver that starts late: send_burst sleeps, then finishes."""
    path = os.path.join(sockdir, "f.sock")

    async def main() -> None:
        async with memif_ct.aio.Interface(role="server", socket=path, id=0, log2_ring_size=4) as server, \
                memif_ct.aio.Interface(role="client", socket=path, id=0, log2_ring_size=4) as client:
            await client.wait_up(5)
            await server.wait_up(5)
            out = frames(200)
            cpu0 = os.times()
            sender = asyncio.ensure_future(client.send_burst(out))
            await asyncio.sleep(0.3)
            assert not sender.done()
            cpu = os.times()
            assert (cpu.user + cpu.system) - (cpu0.user + cpu0.system) < 0.2  # slept, did not spin
            assert await recv_n(server, len(out)) == out
            assert await sender == len(out)

    run(main())
