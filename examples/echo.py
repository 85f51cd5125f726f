#!/usr/bin/env python3
"""Reflect every packet a memif peer sends, swapping MAC addresses: a minimal network function.

    python examples/echo.py role=server,id=0,socket=/tmp/memif.sock,socket-abstract=no

Try it with DPDK: dpdk-testpmd as the client in txonly mode sends to us, or run
``memif-ct pktgen role=client,... --count 100000 --verify`` against it. Ctrl-C stops it.
"""

import sys

import memif_ct


def macswap(frame: bytes) -> bytes:
    return frame[6:12] + frame[0:6] + frame[12:]


def main(devargs: str) -> None:
    with memif_ct.Interface.from_devargs(devargs) as intf:
        try:
            print(f"waiting for a peer on {intf.socket.display} ...", flush=True)
            intf.wait_up(timeout_s=None)
            print(f"link up with {intf.details()['peer_name']!r}", flush=True)
            while True:
                if not intf.wait_rx(timeout_s=0.5):
                    continue
                packets = [macswap(p) for p in intf.rx_burst(256)]
                intf.tx_burst(packets)
        except KeyboardInterrupt:
            # The interface's own counters: exact even if Ctrl-C lands mid-burst.
            print(f"\nechoed {intf.stats()['tx'][0]['packets']} packets", flush=True)


if __name__ == "__main__":
    try:
        main(sys.argv[1] if len(sys.argv) > 1 else "role=server,id=0,socket=/tmp/memif.sock,socket-abstract=no")
    except KeyboardInterrupt:  # Ctrl-C while the interface was still being set up
        sys.exit(130)
