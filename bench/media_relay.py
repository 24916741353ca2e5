"""Media relay benchmark: our MediaEngine relay against a bare uvloop UDP relay.

Run by `make bench-media`. One run measures, side by side:

  (a) bare    a minimal uvloop DatagramProtocol per socket that forwards every
              datagram to a fixed address from its partner socket: the ceiling for
              a Python relay on one core;
  (b) engine  media.engine.MediaEngine: latching, validation, SSRC/sequence
              rewriting, counters, RTCP sockets — what a call actually goes through.

Each step starts a fresh relay server pinned to CPU 1 (`taskset -c 1`) with N calls
(2 endpoints each, relayed to each other) and a load generator pinned to CPU 0
(`taskset -c 0`). Every call sends 50 packets/s of 172 bytes (RTP header + 20 ms of
G.711) in each direction, paced in 2 ms slices. After a warm-up (latching) packets are
counted for DURATION seconds: forwarded = packets received back by the generator,
loss = 1 - received / sent. The ladder of call counts stops at the first step with
>= 0.1 % loss.

The load generator keeps its own per-packet cost in C: a few sockets shared by all
calls (each endpoint latches to its phone's address; sharing the address does not
change the relay's work), sendmmsg(2)/recvmmsg(2) through ctypes with batches of up
to 1024 datagrams, epoll between 2 ms slices. Its CPU share is reported so that a
generator-bound result can be recognised.

Usage: python bench/media_relay.py [--duration 10] [--calls 500,1000,...]
       (the `serve` and `load` sub-commands are the two halves run in subprocesses)
"""
from __future__ import annotations

import argparse
import asyncio
import ctypes
import datetime
import json
import os
import platform
import resource
import select
import socket
import struct
import subprocess
import sys
import time
from pathlib import Path

HOST = "127.0.0.1"
PORT_RANGE = (20000, 39999)
PACKET_SIZE = 172  # 12-byte RTP header + 160 bytes of G.711 (20 ms)
PPS_PER_DIRECTION = 50
SLICES = 10  # sending slices per 20 ms packet interval
GEN_SOCKETS = 16
BATCH = 1024  # datagrams per sendmmsg/recvmmsg call
SOCKET_BUFFER = 16 * 1024 * 1024  # bytes, generator sockets
WARMUP = 1.5  # seconds before counting (latching, caches)
DRAIN = 1.0  # seconds after the last send still counted
LOSS_LIMIT = 0.001  # 0.1 %
GEN_SHORTFALL = 0.99  # the generator sent less than this share of the offered load
RETRIES = 1  # a step over the loss limit is repeated once (shared, noisy machines)
NICE = -10  # scheduling priority of server and generator when run as root
DEFAULT_LADDER = (200, 400, 500, 600, 800, 1000, 1500, 2000)
REPO = Path(__file__).resolve().parent.parent
CLK_TCK = os.sysconf("SC_CLK_TCK")


# --- relay servers (run pinned to CPU 1) ------------------------------------------

class _BareRelay(asyncio.DatagramProtocol):
    """The ceiling: forward every datagram from the partner socket to a fixed peer."""

    __slots__ = ("out", "dest")

    def __init__(self) -> None:
        self.out: asyncio.DatagramTransport | None = None
        self.dest: tuple[str, int] = ("", 0)

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.out.sendto(data, self.dest)  # type: ignore[union-attr]


async def _serve_bare(calls: int, phones: list[int]) -> list[tuple[int, int]]:
    loop = asyncio.get_running_loop()
    port = PORT_RANGE[0]
    pairs = []
    keep = []
    for i in range(calls):
        ends = []
        for _ in range(2):
            while True:
                sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                try:
                    sock.bind((HOST, port))
                except OSError:
                    sock.close()
                    port += 2
                    continue
                port += 2
                break
            transport, proto = await loop.create_datagram_endpoint(_BareRelay, sock=sock)
            ends.append((transport, proto, sock.getsockname()[1]))
        (ta, pa, porta), (tb, pb, portb) = ends
        phone = (HOST, phones[i % len(phones)])
        pa.out, pa.dest = tb, phone  # what arrives at a leaves b toward the phone
        pb.out, pb.dest = ta, phone
        keep.append(ends)
        pairs.append((porta, portb))
    _serve_bare.keep = keep  # type: ignore[attr-defined]
    return pairs


async def _serve_engine(calls: int, phones: list[int]):  # type: ignore[no-untyped-def]
    from media.engine import MediaEngine
    engine = MediaEngine(HOST, PORT_RANGE, rtp_timeout=3600.0)
    await engine.start()
    pairs = []
    for i in range(calls):
        a = await engine.create_endpoint(f"c{i}a")
        b = await engine.create_endpoint(f"c{i}b")
        phone = phones[i % len(phones)]
        a.set_remote(HOST, phone)
        b.set_remote(HOST, phone)
        engine.relay(a, b)
        pairs.append((a.rtp_port, b.rtp_port))
    return engine, pairs


async def _serve(mode: str, calls: int, phones: list[int]) -> None:
    engine = None
    if mode == "bare":
        pairs = await _serve_bare(calls, phones)
    else:
        engine, pairs = await _serve_engine(calls, phones)
    print(json.dumps({"pairs": pairs}), flush=True)
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    while line := (await reader.readline()).strip():
        if line == b"stats":
            print(json.dumps(engine.stats() if engine else {}), flush=True)
        elif line == b"quit":
            break
    if engine is not None:
        await engine.close()


def serve_main(args: argparse.Namespace) -> None:
    import uvloop
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    sys.path.insert(0, str(REPO))
    uvloop.run(_serve(args.mode, args.calls, [int(p) for p in args.phones.split(",")]))


# --- load generator (run pinned to CPU 0) ------------------------------------------

class _Iovec(ctypes.Structure):
    _fields_ = [("iov_base", ctypes.c_void_p), ("iov_len", ctypes.c_size_t)]


class _Msghdr(ctypes.Structure):
    _fields_ = [("msg_name", ctypes.c_void_p), ("msg_namelen", ctypes.c_uint32),
                ("msg_iov", ctypes.POINTER(_Iovec)), ("msg_iovlen", ctypes.c_size_t),
                ("msg_control", ctypes.c_void_p), ("msg_controllen", ctypes.c_size_t),
                ("msg_flags", ctypes.c_int)]


class _Mmsghdr(ctypes.Structure):
    _fields_ = [("msg_hdr", _Msghdr), ("msg_len", ctypes.c_uint)]


class _SockaddrIn(ctypes.Structure):
    _fields_ = [("sin_family", ctypes.c_ushort), ("sin_port", ctypes.c_ubyte * 2),
                ("sin_addr", ctypes.c_ubyte * 4), ("sin_zero", ctypes.c_ubyte * 8)]


_libc = ctypes.CDLL(None, use_errno=True)
_libc.sendmmsg.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_uint, ctypes.c_int]
_libc.recvmmsg.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_uint, ctypes.c_int,
                           ctypes.c_void_p]
MSG_DONTWAIT = 0x40


class _Batch:
    """A prepared sendmmsg vector: one packet buffer, many destinations."""

    def __init__(self, packet: ctypes.Array, ports: list[int]) -> None:  # type: ignore[type-arg]
        self.count = len(ports)
        self.addrs = (_SockaddrIn * max(1, self.count))()
        self.iov = _Iovec(ctypes.addressof(packet), PACKET_SIZE)
        self.msgs = (_Mmsghdr * max(1, self.count))()
        ip = socket.inet_aton(HOST)
        for i, port in enumerate(ports):
            a = self.addrs[i]
            a.sin_family = socket.AF_INET
            a.sin_port[:] = list(struct.pack("!H", port))
            a.sin_addr[:] = list(ip)
            h = self.msgs[i].msg_hdr
            h.msg_name = ctypes.addressof(a)
            h.msg_namelen = ctypes.sizeof(_SockaddrIn)
            h.msg_iov = ctypes.pointer(self.iov)
            h.msg_iovlen = 1

    def send(self, fd: int) -> int:
        """Send the whole batch; return the number of datagrams the kernel took."""
        sent = 0
        base = ctypes.addressof(self.msgs)
        size = ctypes.sizeof(_Mmsghdr)
        while sent < self.count:
            n = _libc.sendmmsg(fd, base + sent * size, min(BATCH, self.count - sent), 0)
            if n <= 0:
                break
            sent += n
        return sent


class _Receiver:
    """recvmmsg into one scratch buffer: we only count datagrams."""

    def __init__(self) -> None:
        self.buf = ctypes.create_string_buffer(2048)
        self.iov = _Iovec(ctypes.addressof(self.buf), 2048)
        self.msgs = (_Mmsghdr * BATCH)()
        for m in self.msgs:
            m.msg_hdr.msg_iov = ctypes.pointer(self.iov)
            m.msg_hdr.msg_iovlen = 1

    def drain(self, fd: int) -> int:
        total = 0
        while True:
            n = _libc.recvmmsg(fd, self.msgs, BATCH, MSG_DONTWAIT, None)
            if n <= 0:
                return total
            total += n
            if n < BATCH:
                return total


def load_main(args: argparse.Namespace) -> None:
    socks = []
    for _ in range(GEN_SOCKETS):
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        for opt, force in ((socket.SO_RCVBUF, 33), (socket.SO_SNDBUF, 32)):  # *BUFFORCE
            try:
                s.setsockopt(socket.SOL_SOCKET, force, SOCKET_BUFFER)
            except OSError:
                s.setsockopt(socket.SOL_SOCKET, opt, SOCKET_BUFFER)
        s.bind((HOST, 0))
        s.setblocking(False)
        socks.append(s)
    print(json.dumps({"phones": [s.getsockname()[1] for s in socks]}), flush=True)
    pairs = json.loads(sys.stdin.readline())["pairs"]

    # socket k serves calls k, k+K, ...; its destinations are split into SLICES chunks
    packets = []
    batches: list[list[_Batch]] = []
    for k, s in enumerate(socks):
        pkt = ctypes.create_string_buffer(PACKET_SIZE)
        struct.pack_into("!BBHII", pkt, 0, 0x80, 0, 0, 0, 0x10000 + k)
        packets.append(pkt)
        ports = [p for i, pair in enumerate(pairs) if i % GEN_SOCKETS == k for p in pair]
        batches.append([_Batch(pkt, ports[j::SLICES]) for j in range(SLICES)])
    receiver = _Receiver()
    poller = select.epoll()
    for s in socks:
        poller.register(s.fileno(), select.EPOLLIN)
    fds = [s.fileno() for s in socks]

    period = 1.0 / PPS_PER_DIRECTION / SLICES
    start = time.monotonic()
    window_start = start + WARMUP
    window_end = window_start + args.duration
    stop_at = window_end + DRAIN
    next_t = start
    slot = 0
    seq = 0
    sent = received = 0
    counting = False
    max_lag = 0.0
    cpu0 = 0.0
    while True:
        now = time.monotonic()
        if not counting and now >= window_start:
            counting = True
            sent = received = 0
            max_lag = 0.0
            cpu0 = time.process_time()
            print("window", flush=True)
        if now >= next_t and next_t < window_end:  # late slices are still sent
            max_lag = max(max_lag, now - next_t)
            if slot == 0:
                seq = (seq + 1) & 0xFFFF
                for pkt in packets:
                    struct.pack_into("!HI", pkt, 2, seq, seq * 160 & 0xFFFFFFFF)
            for fd, chunks in zip(fds, batches):
                sent += chunks[slot].send(fd)
            slot = (slot + 1) % SLICES
            next_t += period
            if now - next_t > 1.0:  # hopelessly behind: resynchronise, lag is reported
                next_t = now
        for fd, _ in poller.poll(0):
            received += receiver.drain(fd)
        if now >= stop_at:
            break
        wait = (next_t if now < window_end else stop_at) - time.monotonic()
        if wait > 0:
            for fd, _ in poller.poll(wait):
                received += receiver.drain(fd)
    cpu = time.process_time() - cpu0
    wall = stop_at - window_start
    print(json.dumps({"sent": sent, "received": received, "duration": args.duration,
                      "cpu": cpu / wall, "max_lag": max_lag}), flush=True)


# --- driver ------------------------------------------------------------------------

def _core_busy() -> list[tuple[int, int]]:
    """(busy, total) jiffies per CPU from /proc/stat."""
    rows = []
    for line in Path("/proc/stat").read_text().splitlines():
        if line.startswith("cpu") and line[3].isdigit():
            v = [int(x) for x in line.split()[1:]]
            idle = v[3] + v[4]
            rows.append((sum(v[:8]) - idle, sum(v[:8])))
    return rows


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime + stime


def _spawn(cpu: int, *argv: str) -> subprocess.Popen[str]:
    # nice -n -10 (root only) gives both halves the larger share of their CPU when the
    # machine runs other work; it does not change what either process does.
    nice = ["nice", "-n", str(NICE)] if os.geteuid() == 0 else []
    cmd = [*nice, "taskset", "-c", str(cpu), sys.executable, __file__, *argv]
    return subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                            cwd=REPO)


def run_step(mode: str, calls: int, duration: float) -> dict[str, float]:
    load = _spawn(0, "load", "--duration", str(duration))
    server = None
    try:
        phones = json.loads(load.stdout.readline())["phones"]  # type: ignore[union-attr]
        t0 = time.monotonic()
        server = _spawn(1, "serve", "--mode", mode, "--calls", str(calls),
                        "--phones", ",".join(map(str, phones)))
        ready = server.stdout.readline()  # type: ignore[union-attr]
        setup = time.monotonic() - t0
        load.stdin.write(ready)  # type: ignore[union-attr]
        load.stdin.flush()  # type: ignore[union-attr]
        assert load.stdout.readline().strip() == "window"  # type: ignore[union-attr]
        c0, w0, k0 = _cpu_seconds(server.pid), time.monotonic(), _core_busy()
        result = json.loads(load.stdout.readline())  # type: ignore[union-attr]
        c1, w1, k1 = _cpu_seconds(server.pid), time.monotonic(), _core_busy()
        server_stats: dict[str, int] = {}
        if mode == "engine":
            server.stdin.write("stats\n")  # type: ignore[union-attr]
            server.stdin.flush()  # type: ignore[union-attr]
            server_stats = json.loads(server.stdout.readline())  # type: ignore[union-attr]
        server.stdin.write("quit\n")  # type: ignore[union-attr]
        server.stdin.flush()  # type: ignore[union-attr]
        server.wait(30)
    finally:
        for proc in (load, server):
            if proc is not None and proc.poll() is None:
                proc.kill()
                proc.wait()
    sent, received = result["sent"], result["received"]
    offered = calls * 2 * PPS_PER_DIRECTION
    core1 = (k1[1][0] - k0[1][0]) / max(1, k1[1][1] - k0[1][1])
    return {
        "core1_busy": core1,
        "cpu_us_per_packet": (c1 - c0) / max(1, received) * 1e6,
        "calls": calls, "offered_pps": offered,
        "gen_short": sent < GEN_SHORTFALL * offered * duration,
        "sent": sent, "received": received,
        "forwarded_pps": received / duration,
        "loss": max(0.0, 1 - received / sent) if sent else 1.0,
        "server_cpu": (c1 - c0) / (w1 - w0), "gen_cpu": result["cpu"],
        "gen_max_lag_ms": result["max_lag"] * 1000, "setup_s": setup,
        "engine_dropped": server_stats.get("dropped_foreign", 0)
        + server_stats.get("dropped_garbage", 0),
    }


def _machine() -> str:
    model = "unknown"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            model = line.split(":", 1)[1].strip()
            break
    return (f"nproc {os.cpu_count()}, CPU {model}, Python {platform.python_version()}, "
            f"{platform.system()} {platform.release()}, "
            f"{datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC")


def driver_main(args: argparse.Namespace) -> None:
    ladder = [int(c) for c in args.calls.split(",")]
    print(f"# media relay benchmark — {_machine()}")
    print(f"# {PACKET_SIZE}-byte packets, {PPS_PER_DIRECTION} pps per direction per "
          f"call, {args.duration:g} s per step, server on CPU 1, generator on CPU 0")
    best: dict[str, dict[str, float] | None] = {}
    generator_bound: set[str] = set()
    for mode in ("bare", "engine"):
        best[mode] = None
        for calls in ladder:
            for attempt in range(1 + RETRIES):
                r = run_step(mode, calls, args.duration)
                ok = r["loss"] < LOSS_LIMIT
                print(f"{mode:6} calls={calls:5} offered={r['offered_pps']:6.0f} pps "
                      f"forwarded={r['forwarded_pps']:6.0f} pps "
                      f"loss={r['loss'] * 100:6.3f} % "
                      f"server_cpu={r['server_cpu'] * 100:3.0f} % "
                      f"({r['cpu_us_per_packet']:4.1f} us/pkt) "
                      f"cpu1_busy={r['core1_busy'] * 100:3.0f} % "
                      f"gen_cpu={r['gen_cpu'] * 100:3.0f} % "
                      f"gen_lag={r['gen_max_lag_ms']:4.0f} ms"
                      f"{'' if ok else '  <- over the loss limit'}"
                      f"{'  <- generator could not offer the load' if r['gen_short'] else ''}",
                      flush=True)
                if ok:
                    break
            if not ok:
                break
            if r["gen_short"]:
                generator_bound.add(mode)
                break
            best[mode] = r
    print()
    ceiling = best["bare"]
    for mode, label in (("bare", "bare uvloop relay (ceiling)"),
                        ("engine", "MediaEngine relay")):
        r = best[mode]
        if r is None:
            print(f"{label}: below the first step ({ladder[0]} calls)")
            continue
        last = ladder[-1] == r["calls"] or mode in generator_bound
        bound = ">= " if last else ""
        print(f"{label}: {bound}{r['forwarded_pps']:.0f} packets/s forwarded at < 0.1 % loss")
        print(f"{label}: {bound}{r['calls']:.0f} concurrent calls (G.711, 20 ms)")
        print(f"{label}: {r['cpu_us_per_packet']:.1f} us of server CPU per forwarded "
              f"packet -> {1e6 / r['cpu_us_per_packet']:.0f} packets/s at 100 % of one core")
    if ceiling and best["engine"]:
        e = best["engine"]
        print(f"MediaEngine / ceiling (packets/s at < 0.1 % loss): "
              f"{e['forwarded_pps'] / ceiling['forwarded_pps']:.2f}")
        print(f"MediaEngine / ceiling (CPU cost per packet, inverted): "
              f"{ceiling['cpu_us_per_packet'] / e['cpu_us_per_packet']:.2f}")
    for mode in sorted(generator_bound):
        print(f"NOTE: {mode}: the load generator on CPU 0 could not offer the next step: "
              "the figure is a lower bound set by the generator, not by the relay")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="cmd")
    s = sub.add_parser("serve")
    s.add_argument("--mode", choices=("bare", "engine"), required=True)
    s.add_argument("--calls", type=int, required=True)
    s.add_argument("--phones", required=True)
    g = sub.add_parser("load")
    g.add_argument("--duration", type=float, required=True)
    parser.add_argument("--duration", type=float, default=8.0)
    parser.add_argument("--calls", default=",".join(map(str, DEFAULT_LADDER)),
                        help="comma-separated ladder of concurrent calls")
    args = parser.parse_args()
    if args.cmd == "serve":
        serve_main(args)
    elif args.cmd == "load":
        load_main(args)
    else:
        driver_main(args)


if __name__ == "__main__":
    main()
