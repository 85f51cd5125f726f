#!/usr/bin/env python3
"""Reflect every packet a memif peer sends, from asyncio: memif_ct.aio in a dozen lines.

    python examples/async_echo.py role=server,id=0,socket=/tmp/memif.sock,socket-abstract=no

The receive waits on the queue's eventfd through the event loop, so other tasks keep running.
Try it with
``memif-ct pktgen role=client,id=0,socket=/tmp/memif.sock,socket-abstract=no --count 100000 --verify``.
"""

import asyncio
import sys

import memif_ct.aio


async def echo(devargs: str) -> None:
    async with memif_ct.aio.Interface.from_devargs(devargs) as intf:
        print(f"waiting for a peer on {intf.details()['socket']} ...", flush=True)
        await intf.wait_up(timeout_s=None)
        print("link up", flush=True)
        while True:
            packets = await intf.recv_burst(max_packets=256)  # [] when the link drops
            await intf.send_burst([p[6:12] + p[0:6] + p[12:] for p in packets])


if __name__ == "__main__":
    try:
        asyncio.run(echo(sys.argv[1] if len(sys.argv) > 1 else
                         "role=server,id=0,socket=/tmp/memif.sock,socket-abstract=no"))
    except KeyboardInterrupt:
        sys.exit(130)
