#!/usr/bin/env python3
"""Reflect every packet a memif peer sends, swapping MAC addresses, a whole burst at a time in numpy.

    python examples/numpy_burst.py role=server,id=0,socket=/tmp/memif.sock,socket-abstract=no

The same network function as echo.py, with no Python code per packet: a burst lands back to back
in one numpy buffer (``rx_burst_into``), numpy swaps the MAC addresses of all its packets at once,
and the buffer goes back out as it is (``tx_burst_packed``). memif-ct does not depend on numpy:
both calls take any buffer, and numpy ``uint32`` arrays as lengths. Needs ``pip install numpy``.
Ctrl-C stops it.
"""

import sys
import time

try:
    import numpy as np
except ImportError:
    sys.exit("this example needs numpy: pip install numpy")

import memif_ct

BURST = 256
BUFFER_BYTES = BURST * 2048  # a packet that does not fit waits for the next call; one larger than all of it raises

# Byte k of a frame's first 12 comes from byte SWAP[k]: destination and source MAC exchanged.
SWAP = np.r_[6:12, 0:6]


def macswap(buf: np.ndarray, lengths: np.ndarray) -> None:
    """Swap the MAC addresses of every packet in ``buf`` (packed back to back, ``lengths``)."""
    starts = np.zeros(len(lengths), np.int64)
    np.cumsum(lengths[:-1], out=starts[1:])
    starts = starts[lengths >= 12]  # shorter than an Ethernet header: sent back as it came
    rows = starts[:, None] + np.arange(12)  # one row of byte positions per packet
    buf[rows] = buf[starts[:, None] + SWAP]


def send_all(intf: memif_ct.Interface, buf: np.ndarray, lengths: np.ndarray) -> None:
    """Send every packet: the ring may take a prefix now and the rest once the peer reads."""
    sent, offset = 0, 0
    while sent < len(lengths) and intf.is_up:
        k = intf.tx_burst_packed(buf[offset:], lengths[sent:])
        if k == 0:
            time.sleep(0.0001)
            continue
        offset += int(lengths[sent:sent + k].sum())
        sent += k


def main(devargs: str) -> None:
    buf = np.empty(BUFFER_BYTES, np.uint8)
    lengths = np.empty(BURST, np.uint32)
    with memif_ct.Interface.from_devargs(devargs) as intf:
        try:
            print(f"waiting for a peer on {intf.socket.display} ...", flush=True)
            intf.wait_up(timeout_s=None)
            print(f"link up with {intf.details()['peer_name']!r}", flush=True)
            while True:
                if not intf.wait_rx(timeout_s=0.5):
                    continue
                n = intf.rx_burst_into(buf, lengths)
                if n:
                    used = int(lengths[:n].sum())
                    macswap(buf[:used], lengths[:n])
                    send_all(intf, buf[:used], lengths[:n])
        except KeyboardInterrupt:
            # The interface's own counters: exact even if Ctrl-C lands mid-burst.
            print(f"\nechoed {intf.stats()['tx'][0]['packets']} packets", flush=True)


if __name__ == "__main__":
    try:
        main(sys.argv[1] if len(sys.argv) > 1 else "role=server,id=0,socket=/tmp/memif.sock,socket-abstract=no")
    except KeyboardInterrupt:  # Ctrl-C while the interface was still being set up
        sys.exit(130)
