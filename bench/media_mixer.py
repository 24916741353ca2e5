"""Media mixer and DTMF benchmark: what one core decodes, mixes and scans in real time.

Run by `make bench-media` after bench/media_relay.py. Two ladders, each step a fresh
MediaEngine on uvloop in this process, pinned to CPU 1 when the machine has one:

  conferences  N three-party conferences (3 N endpoints, PCMU): every 20 ms each
               participant's packet goes through the endpoint's receive path (latching,
               counters, tap, jitter buffer, G.711 decode), the engine's one frame clock
               mixes everyone-minus-self, encodes and sends 3 N packets over UDP.
  dtmf         N endpoints with in-band detection (Goertzel bank, ITU-T Q.24 checks)
               fed speech-like audio with DTMF bursts.

Input packets are handed to the endpoints' real datagram_received() by a feeder task
on the same loop (what the kernel would deliver; the recv syscall is not included, the
sendto of every output packet is). A step passes when, over DURATION seconds, the frame
clock never overran 20 ms, never skipped a tick and the jitter buffers concealed no
frame. The ladder stops at the first failing step; the figure is the last passing one.
Each step also reports the process CPU time (time.process_time: feeder, receive path,
tick, sendto) per 20 ms tick, which is less noisy on a shared machine than pass/fail.

Usage: python bench/media_mixer.py [--duration 4] [--conferences 50,100,...] [--dtmf ...]
       (an empty list, e.g. --dtmf "", skips that ladder)
"""
from __future__ import annotations

import argparse
import asyncio
import os
import socket
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from media.codecs.g711 import ulaw_encode  # noqa: E402
from media.engine import Endpoint, MediaEngine  # noqa: E402
from media.tones import dtmf_samples  # noqa: E402

HOST = "127.0.0.1"
PORT_RANGE = (20000, 39999)
RATE = 8000
FRAME = 160
WARMUP = 1.0  # seconds before counting
DEFAULT_CONFERENCES = (25, 50, 60, 70, 80, 100, 125, 150, 200, 250, 300)
DEFAULT_DTMF = (25, 50, 75, 100, 125, 150, 200, 300, 400, 600)
SIGNAL_SECONDS = 4


def _signal(seed: int, with_dtmf: bool) -> list[bytes]:
    """A few seconds of speech-like noise (+ DTMF bursts), as PCMU payloads."""
    rng = np.random.default_rng(seed)
    n = SIGNAL_SECONDS * RATE
    t = np.arange(n) / RATE
    f0 = 110 + 40 * rng.random()
    audio = sum(np.sin(2 * np.pi * h * f0 * t) / h for h in range(1, 12)) * 3000
    audio *= 0.5 + 0.5 * np.sin(2 * np.pi * 3 * t)  # syllables
    audio += rng.normal(0, 300, n)
    if with_dtmf:
        for k, start in enumerate(range(RATE // 2, n - RATE, RATE)):
            burst = dtmf_samples("0123456789*#"[(seed + k) % 12], 100).astype(np.float64)
            audio[start:start + burst.size] = burst
    pcm = np.clip(audio, -32768, 32767).astype(np.int16)
    return [ulaw_encode(pcm[i:i + FRAME]) for i in range(0, n, FRAME)]


async def _step(kind: str, count: int, duration: float) -> tuple[bool, dict[str, float]]:
    engine = MediaEngine(HOST, PORT_RANGE, rtp_timeout=3600)
    sink = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sink.bind((HOST, 0))
    sink.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # outputs are dropped there
    sink_port = sink.getsockname()[1]
    await engine.start()
    eps: list[Endpoint] = []
    try:
        per = 3 if kind == "conferences" else 1
        for i in range(count * per):
            ep = await engine.create_endpoint(f"b{i}")
            ep.set_codec(0, "PCMU", telephone_event_pt=101)
            ep.set_remote(HOST, sink_port)
            eps.append(ep)
        if kind == "conferences":
            for i in range(count):
                engine.conference(eps[3 * i:3 * i + 3])
        else:
            for ep in eps:
                ep.dtmf_events(detect_inband=True)
        signals = [_signal(s, kind == "dtmf") for s in range(8)]
        protocols = [ep._rtp_transport.get_protocol() for ep in eps]  # type: ignore[union-attr]
        addr = (HOST, sink_port)
        headers = [bytes((0x80, 0)) for _ in eps]
        loop = asyncio.get_running_loop()
        stop = loop.time() + WARMUP + duration
        counted_at = loop.time() + WARMUP
        base: dict[str, float] = {}
        cpu0 = 0.0
        start = loop.time()
        index = 0
        while loop.time() < stop:
            if not base and loop.time() >= counted_at:
                s = engine.stats()
                base = dict(overruns=s["clock_overruns"], skipped=s["clock_skipped"],
                            ticks=s["clock_ticks"],
                            concealed=sum(ep.stream.jitter.stats.concealed for ep in eps))  # type: ignore[union-attr]
                cpu0 = time.process_time()
                wall0 = time.monotonic()
            for n, proto in enumerate(protocols):
                sig = signals[n % len(signals)]
                payload = sig[(index + 13 * n) % len(sig)]  # staggered talkers
                head = headers[n] + (index & 0xFFFF).to_bytes(2, "big") + \
                    (index * FRAME & 0xFFFFFFFF).to_bytes(4, "big") + (n + 1).to_bytes(4, "big")
                proto.datagram_received(head + payload, addr)
            index += 1
            await asyncio.sleep(max(0.0, start + index * 0.02 - loop.time()))
        s = engine.stats()
        concealed = sum(ep.stream.jitter.stats.concealed for ep in eps)  # type: ignore[union-attr]
        figures = dict(overruns=s["clock_overruns"] - base["overruns"],
                       skipped=s["clock_skipped"] - base["skipped"],
                       concealed=concealed - base["concealed"],
                       cpu=(time.process_time() - cpu0) / (time.monotonic() - wall0),
                       cpu_ms_per_tick=(time.process_time() - cpu0) * 1000.0
                       / max(1, s["clock_ticks"] - base["ticks"]),
                       digits=sum(ep.stats.dtmf_inband for ep in eps))
        ok = figures["overruns"] == 0 and figures["skipped"] == 0 and figures["concealed"] == 0
        return ok, figures
    finally:
        await engine.close()
        sink.close()


def _ladder(kind: str, steps: list[int], duration: float) -> int:
    best = 0
    if not steps:
        return best
    for count in steps:
        ok, fig = asyncio.run(_step(kind, count, duration))
        print(f"#   {kind:11s} {count:5d}: {'ok  ' if ok else 'FAIL'} cpu {fig['cpu']:.0%} "
              f"{fig['cpu_ms_per_tick']:.2f} ms/tick "
              f"overruns {fig['overruns']:.0f} skipped {fig['skipped']:.0f} "
              f"concealed {fig['concealed']:.0f}", flush=True)
        if not ok:
            break
        best = count
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--duration", type=float, default=4.0)
    parser.add_argument("--conferences", default=",".join(map(str, DEFAULT_CONFERENCES)))
    parser.add_argument("--dtmf", default=",".join(map(str, DEFAULT_DTMF)))
    args = parser.parse_args()
    try:
        import uvloop
        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
        loop_name = "uvloop"
    except ImportError:
        loop_name = "asyncio"
    if hasattr(os, "sched_setaffinity") and (os.cpu_count() or 1) > 1:
        os.sched_setaffinity(0, {1})
    print(f"# media mixer/DTMF benchmark — {loop_name}, one core, {args.duration:g} s per step, "
          "pass = no 20 ms overrun, no skipped tick, no concealed frame")
    conferences = _ladder("conferences", [int(x) for x in args.conferences.split(",") if x],
                          args.duration)
    print(f"three-party conferences mixed in real time per core: {conferences} "
          f"({3 * conferences} decoded legs)", flush=True)
    streams = _ladder("dtmf", [int(x) for x in args.dtmf.split(",") if x], args.duration)
    print(f"in-band DTMF streams scanned in real time per core: {streams}", flush=True)


if __name__ == "__main__":
    main()
