#!/usr/bin/env python3
"""Cross-connect two memif interfaces: whatever arrives on one leaves on the other.

    python examples/forward.py role=server,id=0,socket=/tmp/a.sock,socket-abstract=no \
                               role=server,id=0,socket=/tmp/b.sock,socket-abstract=no

Both links are polled in one thread; a packet the other side has no room for is dropped and
counted, as a switch would. Ctrl-C stops it.
"""

import sys

import memif_ct


def main(devargs_a: str, devargs_b: str) -> None:
    with memif_ct.Interface.from_devargs(devargs_a) as a, memif_ct.Interface.from_devargs(devargs_b) as b:
        try:
            a.wait_up(timeout_s=None)
            b.wait_up(timeout_s=None)
            print("both links up; forwarding", flush=True)
            while True:
                idle = True
                for src, dst in ((a, b), (b, a)):
                    packets = src.rx_burst(256)
                    if packets:
                        idle = False
                        dst.tx_burst(packets)  # what does not fit is dropped, as a switch would
                if idle:
                    a.wait_rx(timeout_s=0.001)
        except KeyboardInterrupt:
            # Sent counts from the interfaces themselves: exact even if Ctrl-C lands mid-burst.
            a_rx, a_tx = a.stats()["rx"][0]["packets"], a.stats()["tx"][0]["packets"]
            b_rx, b_tx = b.stats()["rx"][0]["packets"], b.stats()["tx"][0]["packets"]
            print(f"\nforwarded a->b {b_tx}, b->a {a_tx}, dropped {a_rx + b_rx - a_tx - b_tx}", flush=True)


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    try:
        main(sys.argv[1], sys.argv[2])
    except KeyboardInterrupt:  # Ctrl-C while the interfaces were still being set up
        sys.exit(130)
