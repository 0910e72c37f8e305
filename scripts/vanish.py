#!/usr/bin/env python3
"""What does `mkcp server` send to a downloading client that vanishes (issue 11 item 1)?

A TCP source that never stops sending sits behind `mkcp server --connect-on-open`; a
`mkcp client` downloads through `mkcp netem` (30 ms each way, 100 Mbit/s, 256 KiB queue,
optional loss); after 24 MiB the client is killed with SIGKILL (a phone losing its network).
The server's wire bytes sent come from its /metrics.json (the tunnel refreshes them every
250 ms: the kill follows right after a refresh, so what the snapshot misses counts against
us) read at the kill and again WAIT seconds later, once the session has timed out.

    python3 scripts/vanish.py [--mkcp target/release/mkcp] [--loss 2%] [--seed 1] [--wait 40]

Loopback only (ports 48001-48010); every process is killed on exit.
"""
import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request

SOURCE, SERVER, RELAY, CLIENT, METRICS = 48001, 48002, 48003, 48004, 48010


def source():
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("127.0.0.1", SOURCE))
    s.listen(4)
    buf = os.urandom(65536)

    def feed(c):
        try:
            while True:
                c.sendall(buf)
        except OSError:
            pass

    while True:
        c, _ = s.accept()
        threading.Thread(target=feed, args=(c,), daemon=True).start()


def wait_for_tcp(port):
    deadline = time.time() + 10
    while True:
        try:
            return socket.create_connection(("127.0.0.1", port))
        except OSError:
            if time.time() > deadline:
                raise
            time.sleep(0.05)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--mkcp", default="target/release/mkcp")
    p.add_argument("--loss", default="0%")
    p.add_argument("--seed", default="1")
    p.add_argument("--wait", type=float, default=40.0)
    a = p.parse_args()
    quiet = subprocess.DEVNULL
    loc = lambda port: f"127.0.0.1:{port}"
    procs = [subprocess.Popen([sys.executable, __file__, "--source-only"])]
    try:
        wait_for_tcp(SOURCE).close()
        procs.append(subprocess.Popen([a.mkcp, "server", "--listen", loc(SERVER), "--target", loc(SOURCE),
                                       "--connect-on-open", "--metrics", loc(METRICS)], stdout=quiet, stderr=quiet))
        procs.append(subprocess.Popen([a.mkcp, "netem", "--listen", loc(RELAY), "--to", loc(SERVER), "--delay", "30ms",
                                       "--loss", a.loss, "--rate", "100mbit", "--queue", "256kb", "--seed", a.seed],
                                      stdout=quiet, stderr=quiet))
        client = subprocess.Popen([a.mkcp, "client", "--listen", loc(CLIENT), "--server", loc(RELAY)],
                                  stdout=quiet, stderr=quiet)
        procs.append(client)

        def sent():
            with urllib.request.urlopen(f"http://{loc(METRICS)}/metrics.json") as r:
                return json.load(r)["wire_bytes"]["sent"]

        s = wait_for_tcp(CLIENT)
        got = 0
        while got < 24 << 20:
            d = s.recv(65536)
            if not d:
                sys.exit("the download ended early")
            got += len(d)
        first = sent()
        while sent() == first:
            time.sleep(0.002)
        client.send_signal(signal.SIGKILL)
        at_kill = sent()
        time.sleep(a.wait)
        print(f"loss {a.loss} seed {a.seed}: {sent() - at_kill} bytes sent in the {a.wait:.0f} s after the client vanished")
    finally:
        for proc in procs:
            proc.kill()


if __name__ == "__main__":
    if sys.argv[1:] == ["--source-only"]:
        source()
    else:
        main()
