"""asyncio adapter: a memif Interface whose waits are awaitables.

The same machinery as :class:`memif_ct.Interface` (one control thread per socket, the same
queues); this module only turns its waits into awaitables that never block the event loop's
thread and never busy-poll:

* a receive waits on the queue's eventfd through the loop (``add_reader`` on a private dup of
  it, so a link going down can never leave a stale registration behind);
* a send whose ring is full sleeps in short, growing steps until the peer frees slots (memif
  has no "space available" signal);
* link changes reach the loop through ``call_soon_threadsafe`` from the control thread.

It always runs the interface in interrupt mode (a polling peer would never wake it).
Works on the default loop and on uvloop.

.. code-block:: python

    async with memif_ct.aio.Interface(role="client", socket="/tmp/m.sock", id=0) as intf:
        await intf.wait_up(timeout_s=5)
        n = await intf.send_burst([b"..."], queue=0)
        pkts = await intf.recv_burst(max_packets=256, queue=0)
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Sequence
from types import TracebackType
from typing import Any

from . import interface as _sync
from .config import InterfaceConfig
from .control import Socket
from .errors import ConfigError, LinkTimeout, NotConnectedError
from .queue import Packet, check_burst_size, check_packets, check_timeout

__all__ = ["Interface"]

_SEND_BACKOFF_S = (0.00005, 0.002)  # ring full: first and longest sleep before trying again


class Interface:
    """An asyncio memif interface; takes the same keyword options as :class:`memif_ct.Interface`.

    Create it inside a running event loop (it binds to that loop). ``on_up``/``on_down`` are not
    offered: await :meth:`wait_up`/:meth:`wait_down` instead.
    """

    def __init__(self, config: InterfaceConfig | None = None, *, socket: Socket | str | None = None,
                 **options: Any) -> None:
        self._loop = asyncio.get_running_loop()
        if config is None:
            if options.get("interrupt") in (False, "no", "false", "off", "0"):
                raise ConfigError("interrupt=no: memif_ct.aio waits on eventfds and needs interrupt mode",
                                  key="interrupt", value=options["interrupt"])
            options["interrupt"] = True
        elif not config.interrupt:
            raise ConfigError("interrupt=no: memif_ct.aio waits on eventfds and needs interrupt mode",
                              key="interrupt", value=False)
        # Resolved (and replaced) on every link change: a waiter takes it *before* it looks at the
        # state, so a change after the look always wakes it.
        self._change: asyncio.Future[None] = self._loop.create_future()
        self._closed = False
        self._sync = _sync.Interface(config, socket=socket, on_up=self._from_control_thread,
                                     on_down=self._from_control_thread, **options)

    @classmethod
    def from_devargs(cls, devargs: str, *, socket: Socket | None = None) -> Interface:
        """Build from DPDK-style devargs (``interrupt`` must not be ``no``)."""
        return cls(InterfaceConfig.from_devargs(devargs), socket=socket)

    def _from_control_thread(self, *_args: object) -> None:
        try:
            self._loop.call_soon_threadsafe(self._notify)
        except RuntimeError:
            pass  # the loop is closed: nobody is waiting any more

    def _notify(self) -> None:
        change, self._change = self._change, self._loop.create_future()
        change.set_result(None)

    # ---- state ---------------------------------------------------------------------------

    @property
    def config(self) -> InterfaceConfig:
        return self._sync.config

    @property
    def is_up(self) -> bool:
        """True while the link is connected."""
        return self._sync.is_up

    @property
    def last_disconnect_reason(self) -> str | None:
        return self._sync.last_disconnect_reason

    def stats(self) -> dict[str, Any]:
        """Per-queue counters, as :meth:`memif_ct.Interface.stats` (never blocks)."""
        return self._sync.stats()

    def details(self) -> dict[str, Any]:
        """As :meth:`memif_ct.Interface.details`."""
        return self._sync.details()

    async def _changed_or(self, change: asyncio.Future[None], deadline: float | None) -> bool:
        """Sleep until ``change`` resolves or ``deadline`` (loop time); False at the deadline."""
        timeout = None if deadline is None else deadline - self._loop.time()
        if timeout is not None and timeout <= 0:
            return False
        try:
            await asyncio.wait_for(asyncio.shield(change), timeout)
        except asyncio.TimeoutError:
            return False
        return True

    async def _wait_state(self, up: bool, timeout_s: float | None) -> None:
        timeout_s = check_timeout("timeout_s", timeout_s)
        deadline = None if timeout_s is None else self._loop.time() + timeout_s
        while True:
            change = self._change
            if self._sync.is_up is up:
                return
            if self._closed:
                raise LinkTimeout(f"memif interface {self._sync} is closed")
            if not await self._changed_or(change, deadline) and self._sync.is_up is not up:
                what = "did not come up" if up else "still up"
                raise LinkTimeout(f"memif interface {self._sync} {what} within {timeout_s} s; last disconnect "
                                  f"reason: {self._sync.last_disconnect_reason or 'none'}")

    async def wait_up(self, timeout_s: float | None = 5.0) -> None:
        """Until the link is up; LinkTimeout (a TimeoutError) with the last reason if not."""
        await self._wait_state(True, timeout_s)

    async def wait_down(self, timeout_s: float | None = 5.0) -> None:
        """Until the link is down; LinkTimeout if it stays up."""
        await self._wait_state(False, timeout_s)

    # ---- data path -----------------------------------------------------------------------

    async def send_burst(self, packets: Sequence[Packet], queue: int = 0) -> int:
        """Send every packet, waiting (never spinning) while the ring is full.

        Returns ``len(packets)``, or how many were queued before the link went down."""
        packets = check_packets(packets)  # a generator or None is refused here, not by len()
        sent, total = 0, len(packets)
        delay = _SEND_BACKOFF_S[0]
        while sent < total:
            if not self._sync.is_up:
                return sent
            n = self._sync.tx_burst(packets[sent:] if sent else packets, queue)
            sent += n
            if sent < total:
                delay = _SEND_BACKOFF_S[0] if n else min(delay * 2, _SEND_BACKOFF_S[1])
                await asyncio.sleep(delay)
        return sent

    async def recv_burst(self, max_packets: int = 256, queue: int = 0) -> list[bytes]:
        """Up to ``max_packets`` packets, waiting for at least one.

        Waits on the queue's eventfd through the event loop. While the link is down it waits
        for it to come up; if the link goes down during the wait it returns ``[]`` (never
        raises for it). Cancelling it leaves the interface usable.
        """
        check_burst_size("max_packets", max_packets)
        was_up = self._sync.is_up
        while True:
            change = self._change
            if not self._sync.is_up:
                if was_up or self._closed:
                    return []
                await self._changed_or(change, None)
                was_up = self._sync.is_up
                continue
            try:
                q = self._sync.rx_queue(queue)
            except NotConnectedError:
                continue  # went down since the look above
            pkts = q.rx_burst(max_packets)
            if pkts:
                return pkts
            q.clear_signal()  # before the last look at the ring: a signal after it wakes us
            if q.pending() or not q.alive:
                continue
            await self._readable(q.eventfd, change)

    async def _readable(self, eventfd: int, change: asyncio.Future[None]) -> None:
        """Until ``eventfd`` is readable or ``change`` (a link change) resolves."""
        try:
            fd = os.dup(eventfd)  # ours alone: closing it can never disturb another registration
        except OSError:
            return  # closed by a teardown right now: the caller sees the link down
        woke = self._loop.create_future()

        def wake() -> None:
            if not woke.done():
                woke.set_result(None)

        def on_change(_f: asyncio.Future[None]) -> None:
            wake()

        change.add_done_callback(on_change)
        self._loop.add_reader(fd, wake)
        try:
            await woke
        finally:
            self._loop.remove_reader(fd)
            os.close(fd)
            change.remove_done_callback(on_change)

    # ---- lifetime ------------------------------------------------------------------------

    async def disconnect(self, reason: str = "disconnected by user") -> None:
        """Send DISCONNECT with ``reason`` and drop the link (a client reconnects if configured)."""
        # Handed to the control thread without a worker thread in between: the loop's thread
        # only queues the request (starting an executor thread here could stall the loop).
        await asyncio.wrap_future(self._sync.disconnect_soon(reason), loop=self._loop)

    async def aclose(self) -> None:
        """Disconnect and release everything, without blocking the loop's thread."""
        if self._closed:
            return
        self._closed = True
        self._notify()
        await self._loop.run_in_executor(None, self._sync.close)

    async def __aenter__(self) -> Interface:
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.aclose()

    def __repr__(self) -> str:
        return f"<memif_ct.aio.Interface {self._sync} {'up' if self.is_up else 'down'}>"
