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
        a.wait_up(timeout_s=None)
        b.wait_up(timeout_s=None)
        print("both links up; forwarding")
        moved = {"a->b": 0, "b->a": 0}
        dropped = 0
        try:
            while True:
                idle = True
                for src, dst, key in ((a, b, "a->b"), (b, a, "b->a")):
                    packets = src.rx_burst(256)
                    if packets:
                        idle = False
                        sent = dst.tx_burst(packets)
                        moved[key] += sent
                        dropped += len(packets) - sent
                if idle:
                    a.wait_rx(timeout_s=0.001)
        except KeyboardInterrupt:
            print(f"\nforwarded {moved}, dropped {dropped}")


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    main(sys.argv[1], sys.argv[2])
