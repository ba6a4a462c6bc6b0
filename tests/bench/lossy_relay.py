#!/usr/bin/env python3
"""A lossy UDP relay for the diode benchmark (Python 3 stdlib only).

Listens on --listen HOST:PORT and forwards every datagram to --to HOST:PORT,
mistreating them with a fixed seed, like the relay in tests/tests/diode.rs:

  --drop P          drop each packet with probability P (random loss)
  --burst-loss F    drop in bursts, F of all packets on average: each packet
                    outside a burst starts one with probability
                    F / (L * (1 - F)); a burst drops L packets in a row
  --burst-prob P    ... or give that per-packet probability directly
  --burst-len L     packets lost per burst (default 100)
  --reorder P       hold a packet back with probability P; held packets go
                    out later, after others (at random once more than
                    --hold are held, and all of them when the link is idle)
  --duplicate P     send a packet twice with probability P
  --seed N          seed of the random decisions (default 1)

Prints `listening on HOST:PORT` on stderr once bound (or writes it to
--ready FILE). On SIGTERM/SIGINT (or after --idle-exit seconds without a
packet, once one arrived) it flushes what it holds and prints its counters as
one JSON object to --stats FILE (default: stdout):

  received, forwarded (unique packets sent on), duplicated (extra copies),
  dropped_random, dropped_burst, bursts, reordered, send_errors,
  kernel_drops (datagrams the kernel dropped on the relay's own socket
  because the relay did not keep up: the `drops` column of /proc/net/udp),
  rcvbuf (the receive buffer the kernel granted), secs (first to last packet),
  cpu_secs (the relay's own user+system CPU time)

The loop is kept lean (one recv_into and one send per packet, one random()
per active impairment). Measured on a 2-core VM next to ferry-out and
ferry-in (tests/bench/diode.sh): 3.5-7.5 us of CPU per 1.5 KB datagram; it
relayed 1 Gbit/s (~83k datagrams/s) with no drops at its socket and tops out
around 130-140k datagrams/s (~1.6 Gbit/s). As root its receive buffer is
forced to 64 MiB (SO_RCVBUFFORCE, past net.core.rmem_max), so it absorbs the
sender's bursts and forwards them at its own pace: it smooths the traffic
ferry-in sees. kernel_drops tells when it did not keep up.
"""

import argparse
import json
import os
import random
import resource
import select
import signal
import socket
import sys
import time

SO_RCVBUFFORCE = getattr(socket, "SO_RCVBUFFORCE", 33)  # Linux; root only
SO_SNDBUFFORCE = getattr(socket, "SO_SNDBUFFORCE", 32)


class Stop(Exception):
    pass


def addr(s):
    host, _, port = s.rpartition(":")
    if not host or not port.isdigit():
        raise argparse.ArgumentTypeError("expected HOST:PORT, got %r" % s)
    return host.strip("[]"), int(port)


def prob(s):
    v = float(s)
    if not 0.0 <= v <= 1.0:
        raise argparse.ArgumentTypeError("expected a probability in [0, 1], got %r" % s)
    return v


def big_buffer(sock, opt, force, size):
    """Asks for `size` bytes of socket buffer; as root past net.core.*mem_max."""
    try:
        sock.setsockopt(socket.SOL_SOCKET, force, size)
    except OSError:
        sock.setsockopt(socket.SOL_SOCKET, opt, size)
    return sock.getsockopt(socket.SOL_SOCKET, opt)


def kernel_drops(port):
    """Drop counter of the local UDP socket on `port` (IPv4, /proc/net/udp)."""
    try:
        with open("/proc/net/udp") as f:
            next(f)
            for line in f:
                fields = line.split()
                if int(fields[1].split(":")[1], 16) == port:
                    return int(fields[-1])
    except (OSError, ValueError, IndexError, StopIteration):
        pass
    return None


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--listen", type=addr, required=True, help="HOST:PORT to receive on (port 0: any)")
    ap.add_argument("--to", type=addr, required=True, help="HOST:PORT to forward to")
    ap.add_argument("--drop", type=prob, default=0.0)
    ap.add_argument("--burst-loss", type=prob, default=0.0)
    ap.add_argument("--burst-prob", type=prob, default=None)
    ap.add_argument("--burst-len", type=int, default=100)
    ap.add_argument("--reorder", type=prob, default=0.0)
    ap.add_argument("--hold", type=int, default=20, help="most packets held back for reordering")
    ap.add_argument("--duplicate", type=prob, default=0.0)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--rcvbuf", type=int, default=32 << 20, help="receive buffer to ask for (bytes)")
    ap.add_argument("--stats", help="write the counters (JSON) here on exit instead of stdout")
    ap.add_argument("--ready", help="write 'HOST:PORT' here once listening")
    ap.add_argument("--idle-exit", type=float, default=0.0,
                    help="exit after this many seconds without a packet, once one arrived (0: never)")
    a = ap.parse_args()

    burst_p = a.burst_prob
    if burst_p is None:
        f = a.burst_loss
        burst_p = 0.0 if f <= 0 or a.burst_len <= 0 else min(1.0, f / (a.burst_len * (1.0 - f)))
    burst_len = max(0, a.burst_len)

    rng = random.Random(a.seed)
    rnd = rng.random

    insock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    rcvbuf = big_buffer(insock, socket.SO_RCVBUF, SO_RCVBUFFORCE, a.rcvbuf)
    insock.bind(a.listen)
    insock.setblocking(False)
    port = insock.getsockname()[1]
    out = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    big_buffer(out, socket.SO_SNDBUF, SO_SNDBUFFORCE, 8 << 20)
    out.connect(a.to)
    here = "%s:%d" % insock.getsockname()

    c = dict(received=0, forwarded=0, duplicated=0, dropped_random=0, dropped_burst=0,
             bursts=0, reordered=0, send_errors=0)

    def on_signal(signum, frame):
        raise Stop()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    if a.ready:
        tmp = a.ready + ".tmp"
        with open(tmp, "w") as f:
            f.write(here + "\n")
        os.replace(tmp, a.ready)
    print("lossy_relay: listening on %s, forwarding to %s:%d (drop %g, burst %g x %d, "
          "reorder %g, duplicate %g, seed %d, rcvbuf %d)"
          % (here, a.to[0], a.to[1], a.drop, burst_p, burst_len, a.reorder, a.duplicate,
             a.seed, rcvbuf), file=sys.stderr, flush=True)

    buf = bytearray(65536)
    mv = memoryview(buf)
    recv_into = insock.recv_into
    send = out.send
    poller = select.poll()
    poller.register(insock, select.POLLIN)
    held = []
    drop, reorder, dup, hold = a.drop, a.reorder, a.duplicate, max(1, a.hold)
    # Local counters (dict updates in the hot loop cost too much).
    received = forwarded = duplicated = dropped_random = dropped_burst = bursts = 0
    reordered = send_errors = 0
    burst_left = 0
    first = last = None

    def flush_held():
        nonlocal forwarded, send_errors
        for p in held:
            try:
                send(p)
                forwarded += 1
            except OSError:
                send_errors += 1
        held.clear()

    try:
        while True:
            try:
                n = recv_into(buf)
            except BlockingIOError:
                if held:
                    flush_held()
                if last is not None and a.idle_exit > 0 and time.monotonic() - last > a.idle_exit:
                    break
                poller.poll(50)
                continue
            received += 1
            if first is None:
                first = time.time()
            last = time.monotonic()
            if burst_p:
                if burst_left:
                    burst_left -= 1
                    dropped_burst += 1
                    continue
                if rnd() < burst_p:
                    bursts += 1
                    burst_left = burst_len - 1
                    dropped_burst += 1
                    continue
            if drop and rnd() < drop:
                dropped_random += 1
                continue
            if reorder and rnd() < reorder:
                held.append(bytes(mv[:n]))
                reordered += 1
                continue
            try:
                send(mv[:n])
                forwarded += 1
                if dup and rnd() < dup:
                    send(mv[:n])
                    duplicated += 1
            except OSError:
                # ECONNREFUSED (receiver not there yet / gone), ENOBUFS: a
                # diode loses the packet, and so does the relay.
                send_errors += 1
            if len(held) > hold:
                i = int(rnd() * len(held)) % len(held)
                held[i], held[-1] = held[-1], held[i]
                try:
                    send(held.pop())
                    forwarded += 1
                except OSError:
                    send_errors += 1
    except Stop:
        pass
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        try:
            flush_held()
        except Exception:
            pass
        kd = kernel_drops(port)
        ru = resource.getrusage(resource.RUSAGE_SELF)
        c.update(received=received, forwarded=forwarded, duplicated=duplicated,
                 dropped_random=dropped_random, dropped_burst=dropped_burst, bursts=bursts,
                 reordered=reordered, send_errors=send_errors, kernel_drops=kd, rcvbuf=rcvbuf,
                 burst_prob=burst_p, burst_len=burst_len,
                 cpu_secs=round(ru.ru_utime + ru.ru_stime, 3))
        # Wall clock of the first and last packet, and the time between them.
        c["first_packet_unix"] = first
        c["last_packet_unix"] = None if last is None else time.time() - (time.monotonic() - last)
        c["secs"] = None if first is None else round(c["last_packet_unix"] - first, 3)
        text = json.dumps(c, sort_keys=True)
        if a.stats:
            tmp = a.stats + ".tmp"
            with open(tmp, "w") as f:
                f.write(text + "\n")
            os.replace(tmp, a.stats)
        else:
            print(text, flush=True)


if __name__ == "__main__":
    main()
