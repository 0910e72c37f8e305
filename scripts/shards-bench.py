#!/usr/bin/env python3
"""N streams at once through `mkcp client` -> `mkcp server --shards K` on 127.0.0.1.

For each K given: starts a TCP sink, `mkcp server --shards K` in front of it and
`mkcp client` in front of that, sends STREAMS uploads of MIB MiB at once into the client,
and waits until the sink has received every byte of every stream (exact counts). Prints
goodput (MiB/s of all streams together, first byte sent to last byte received), the CPU
seconds of client and server (utime + stime from /proc, over the same interval) per GiB
moved, and how the server's shards shared the sessions (its debug log).

    python3 scripts/shards-bench.py --mkcp target/release/mkcp --shards 1,2 --streams 8 --mib 64

Several builds side by side (`--mkcp OLD,NEW`: each repetition runs each build, in turn),
mkcp flags for both ends (`--flags "--seed s"`), a sink that checks the sha256 of every
stream (`--sha256`, issue 13's test application) and the same transfer over plain loopback
TCP for reference (`--tcp`, build "tcp", CPU not counted); the medians per build and shard
count close the table:

    python3 scripts/shards-bench.py --mkcp old/mkcp,new/mkcp --shards 1 --streams 1 \
        --mib 2048 --repeat 3 --flags "--seed s"
"""

import argparse
import hashlib
import os
import re
import shlex
import statistics
import socket
import subprocess
import sys
import threading
import time

CHUNK = 1 << 20


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    # Fields 14 and 15 (utime, stime) are at 11 and 12 after the command name.
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Sink:
    """Counts (and with `sha256`, hashes) the bytes of each accepted connection until end
    of stream."""

    def __init__(self, sha256=False):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.addr = self.sock.getsockname()
        self.sha256 = sha256
        self.counts = []
        self.digests = []
        self.done = threading.Semaphore(0)
        self.lock = threading.Lock()
        threading.Thread(target=self.accept, daemon=True).start()

    def accept(self):
        while True:
            conn, _ = self.sock.accept()
            threading.Thread(target=self.read, args=(conn,), daemon=True).start()

    def read(self, conn):
        buf = bytearray(CHUNK)
        view = memoryview(buf)
        h = hashlib.sha256() if self.sha256 else None
        total = 0
        while True:
            n = conn.recv_into(buf)
            if n == 0:
                break
            if h:
                h.update(view[:n])
            total += n
        conn.close()
        with self.lock:
            self.counts.append(total)
            self.digests.append(h.hexdigest() if h else None)
        self.done.release()


class Proc:
    """A running `mkcp` whose stderr is collected."""

    def __init__(self, args, env=None):
        self.p = subprocess.Popen(args, stderr=subprocess.PIPE, text=True, env=env)
        self.lines = []
        self.cv = threading.Condition()
        threading.Thread(target=self.collect, daemon=True).start()

    def collect(self):
        for line in self.p.stderr:
            with self.cv:
                self.lines.append(line.rstrip("\n"))
                self.cv.notify_all()

    def wait_line(self, pattern, timeout=20):
        deadline = time.monotonic() + timeout
        with self.cv:
            while True:
                for line in self.lines:
                    m = re.search(pattern, line)
                    if m:
                        return m
                left = deadline - time.monotonic()
                if left <= 0:
                    sys.exit(f"no line matching {pattern!r}:\n" + "\n".join(self.lines))
                self.cv.wait(left)

    def stop(self):
        self.p.terminate()
        try:
            self.p.wait(10)
        except subprocess.TimeoutExpired:
            self.p.kill()


def send(addr, total, errors, data):
    try:
        with socket.create_connection(addr) as s:
            left = total
            while left > 0:
                n = min(left, CHUNK)
                s.sendall(data[:n])
                left -= n
            s.shutdown(socket.SHUT_WR)
            # Wait for the tunnel to close its side (after the sink has read everything).
            while s.recv(CHUNK):
                pass
    except OSError as e:
        errors.append(e)


def expected_digest(data, total):
    """sha256 of `total` bytes of `data` repeated (what `send` sends)."""
    h = hashlib.sha256()
    while total > 0:
        n = min(total, CHUNK)
        h.update(data[:n])
        total -= n
    return h.hexdigest()


def run(mkcp, shards, streams, mib, flags=(), sha256=False):
    """One measurement; `mkcp` None sends straight to the sink over TCP (no tunnel)."""
    sink = Sink(sha256)
    data = os.urandom(CHUNK)
    per_stream = mib * CHUNK
    digest = expected_digest(data, per_stream) if sha256 else None
    if mkcp is None:
        return measure([], sink.addr, sink, streams, per_stream, data, digest, shards)
    env = dict(os.environ, RUST_LOG="info,mkcp::listener=debug")
    server = Proc(
        [mkcp, "server", "--listen", "127.0.0.1:0", "--target",
         f"{sink.addr[0]}:{sink.addr[1]}", "--shards", str(shards), *flags],
        env=env,
    )
    udp = server.wait_line(r"listening on udp (\S+?),").group(1)
    client = Proc([mkcp, "client", "--listen", "127.0.0.1:0", "--server", udp, *flags])
    host, port = client.wait_line(r"listening on tcp (\S+?),").group(1).rsplit(":", 1)
    try:
        res = measure([server, client], (host, int(port)), sink, streams, per_stream, data,
                      digest, shards)
    finally:
        client.stop()
        server.stop()
    spread = {}
    for line in server.lines:
        m = re.search(r"shard=(\d+)", line)
        if m and "session accepted" in line:
            spread[int(m.group(1))] = spread.get(int(m.group(1)), 0) + 1
    res["spread"] = [spread.get(i, 0) for i in range(shards)] if shards > 1 else [streams]
    return res


def measure(procs, entry, sink, streams, per_stream, data, digest, shards):
    """`streams` uploads of `per_stream` bytes into `entry`, until the sink has them all;
    the CPU of `procs` (server first) over the same interval."""
    cpu0 = [cpu_seconds(p.p.pid) for p in procs]
    t0 = time.monotonic()
    errors = []
    senders = [threading.Thread(target=send, args=(entry, per_stream, errors, data))
               for _ in range(streams)]
    for t in senders:
        t.start()
    for _ in range(streams):
        if not sink.done.acquire(timeout=600):
            sys.exit("a stream did not finish within 600 s")
    t1 = time.monotonic()
    cpu = [cpu_seconds(p.p.pid) - c for p, c in zip(procs, cpu0)]
    for t in senders:
        t.join(60)
    if errors:
        sys.exit(f"sender errors: {errors}")
    if sorted(sink.counts) != [per_stream] * streams:
        sys.exit(f"byte counts differ: {sink.counts}")
    if digest and sink.digests != [digest] * streams:
        sys.exit("sha256 differs")
    moved = streams * per_stream
    secs = t1 - t0
    return {
        "shards": shards,
        "mib_s": moved / CHUNK / secs,
        "cpu_s_per_gib": sum(cpu) / (moved / (1 << 30)),
        "cpu_s": sum(cpu),
        # Server CPU over the interval, in cores (above 1: more than one core at once).
        "server_cores": cpu[0] / secs if cpu else 0.0,
        "secs": secs,
        "spread": [],
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--mkcp", default="target/release/mkcp",
                    help="mkcp binary, or several separated by commas (run in turn)")
    ap.add_argument("--shards", default="1,2")
    ap.add_argument("--streams", type=int, default=8)
    ap.add_argument("--mib", type=int, default=64, help="MiB per stream")
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--flags", default="", help="mkcp flags for both ends, e.g. \"--seed s\"")
    ap.add_argument("--sha256", action="store_true",
                    help="the sink checks the sha256 of every stream (as issue 13's application)")
    ap.add_argument("--tcp", action="store_true",
                    help="also run the same transfer over plain loopback TCP (build \"tcp\")")
    args = ap.parse_args()
    builds = args.mkcp.split(",") + (["tcp"] if args.tcp else [])
    flags = shlex.split(args.flags)
    print("| build | shards | run | streams x MiB | MiB/s | CPU s (client+server) | CPU s per GiB "
          "| server cores busy | sessions per shard |")
    print("|---|---:|---:|---|---:|---:|---:|---:|---|")
    results = {}
    for r in range(args.repeat):
        for k in [int(s) for s in args.shards.split(",")]:
            for b in builds:
                res = run(None if b == "tcp" else b, k, args.streams, args.mib, flags,
                          args.sha256)
                results.setdefault((b, k), []).append(res)
                print(f"| {b} | {k} | {r + 1} | {args.streams} x {args.mib} | "
                      f"{res['mib_s']:.0f} | {res['cpu_s']:.1f} | {res['cpu_s_per_gib']:.2f} | "
                      f"{res['server_cores']:.2f} | {res['spread']} |",
                      flush=True)
    print()
    print("| build | shards | runs | MiB/s, median | CPU s per GiB, median |")
    print("|---|---:|---:|---:|---:|")
    for (b, k), rs in results.items():
        print(f"| {b} | {k} | {len(rs)} | {statistics.median(x['mib_s'] for x in rs):.0f} | "
              f"{statistics.median(x['cpu_s_per_gib'] for x in rs):.2f} |")

if __name__ == "__main__":
    main()
