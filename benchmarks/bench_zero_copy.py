"""Zero-copy vs copy mode, and the buffer API vs the copy API, in one process, same run.

For each frame size (64, 1,500 and 9,000 bytes; buffers of 10,240 bytes so that every frame
fits one buffer) two links are set up on abstract sockets: a memif-ct server with a copy-mode
client, and one with a ``zero-copy=yes`` client. Over each, ``--packets`` frames are moved:

* TX (client -> server): ``alloc_buffers`` + write the frame in place + ``tx_buffers`` on the
  client (the buffer API), or ``tx_burst`` of a list (the copy API); the server drains with
  ``rx_buffers`` either way;
* RX (server -> client): the server sends with ``tx_burst``; the client receives with
  ``rx_buffers`` (views, no copy) or ``rx_burst`` (bytes, one copy).

Each figure is frames per second of the whole loop (both ends run in this thread), the median
of ``--repeat`` runs, printed with its ratio to the copy-mode client using the copy API in the
same run (the baseline). Every frame's count is checked. Run on demand:
``python benchmarks/bench_zero_copy.py [--json FILE]``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time

import memif_ct

BURST = 64
BSIZE = 10240


def _pair(zero_copy: bool) -> tuple[memif_ct.Socket, memif_ct.Interface, memif_ct.Interface]:
    sock = memif_ct.Socket(f"@memif-ct-bench-zc-{os.getpid()}-{time.monotonic_ns()}")
    common = dict(id=0, interrupt=False, buffer_size=BSIZE, log2_ring_size=10)
    server = memif_ct.Interface(role="server", socket=sock, **common)
    client = memif_ct.Interface(role="client", socket=sock, zero_copy=zero_copy, **common)
    client.wait_up(5)
    server.wait_up(5)
    return sock, server, client


def _drain_views(intf: memif_ct.Interface) -> int:
    with intf.rx_buffers(256) as burst:
        return len(burst)


def run_tx(client: memif_ct.Interface, server: memif_ct.Interface, size: int, packets: int, api: str) -> float:
    frame = bytes(range(256)) * (size // 256) + bytes(size % 256)
    frames = [frame] * BURST
    sent = got = 0
    start = time.perf_counter()
    while got < packets:
        if sent < packets:
            if api == "buffer":
                bufs = client.alloc_buffers(min(BURST, packets - sent), size=size)
                for buf in bufs:
                    buf[:] = frame
                n = client.tx_buffers(bufs) if bufs else 0
                if n < len(bufs):
                    client.free_buffers(bufs[n:])
            else:
                n = client.tx_burst(frames[:min(BURST, packets - sent)])
            sent += n
        got += _drain_views(server)
    elapsed = time.perf_counter() - start
    if got != packets:
        raise SystemExit(f"TX {api} {size} B: {got} of {packets} arrived")
    return packets / elapsed


def run_rx(client: memif_ct.Interface, server: memif_ct.Interface, size: int, packets: int, api: str) -> float:
    frames = [bytes(size)] * BURST
    sent = got = 0
    start = time.perf_counter()
    while got < packets:
        if sent < packets:
            sent += server.tx_burst(frames[:min(BURST, packets - sent)])
        if api == "buffer":
            with client.rx_buffers(256) as burst:
                got += sum(1 for view in burst if view[0] == 0)  # touch each packet once
        else:
            got += sum(1 for pkt in client.rx_burst(256) if pkt[0] == 0)
    elapsed = time.perf_counter() - start
    if got != packets:
        raise SystemExit(f"RX {api} {size} B: {got} of {packets} arrived")
    return packets / elapsed


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--packets", type=int, default=200_000, help="frames per measurement (default 200000)")
    ap.add_argument("--repeat", type=int, default=5, help="runs per figure; the median is printed (default 5)")
    ap.add_argument("--sizes", default="64,1500,9000", help="frame sizes in bytes (default 64,1500,9000)")
    ap.add_argument("--json", metavar="FILE", help="also write the figures as JSON")
    args = ap.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",")]
    pairs = {zc: _pair(zc) for zc in (False, True)}
    rows = []
    try:
        for direction, fn in (("TX", run_tx), ("RX", run_rx)):
            for size in sizes:
                figures: dict[tuple[bool, str], float] = {}
                for zc in (False, True):
                    _sock, server, client = pairs[zc]
                    for api in ("copy", "buffer"):
                        runs = [fn(client, server, size, args.packets, api) for _ in range(args.repeat)]
                        figures[(zc, api)] = statistics.median(runs)
                base = figures[(False, "copy")]
                for (zc, api), pps in figures.items():
                    rows.append({"direction": direction, "size": size, "zero_copy": zc, "api": api,
                                 "mpps": round(pps / 1e6, 4), "ratio": round(pps / base, 3)})
    finally:
        for sock, server, client in pairs.values():
            client.close()
            server.close()
            sock.close()
    print(f"{'dir':3} {'size':>5} {'client':10} {'api':7} {'Mpps':>8} {'vs copy/copy':>12}")
    for r in rows:
        mode = "zero-copy" if r["zero_copy"] else "copy"
        print(f"{r['direction']:3} {r['size']:5} {mode:10} {r['api']:7} {r['mpps']:8.3f} {r['ratio']:11.2f}x")
    print(f"(median of {args.repeat} runs of {args.packets} frames; baseline: copy-mode client, copy API, "
          f"same run; both ends in one thread; python {sys.version.split()[0]})")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump({"rows": rows, "packets": args.packets, "repeat": args.repeat}, f, indent=2)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
