"""Fast paths of the decoded-media pipeline against their general counterparts.

Jitter buffer in-order fast path vs the general path, ``pop_payload`` vs ``pop``,
batch mix-minus vs ``Mixer``, batch G.711 vs per-stream G.711, the assembled RTP
header vs ``audio_packet``, and the receive short path's RFC 3550 figures.
"""
from __future__ import annotations

import dataclasses
import struct

import numpy as np

from media.codecs.g711 import (alaw_decode, alaw_encode, decode_rows, encode_rows, ulaw_decode,
                               ulaw_encode)
from media.jitter import JitterBuffer
from media.mixer import FRAME_SAMPLES, Mixer, mix_minus_groups
from media.session import MediaStream

FRAME = 0.020


class GeneralPathBuffer(JitterBuffer):
    """Every packet through the general (checked) path: the reference."""

    def push(self, seq, timestamp, payload, now):  # type: ignore[override]
        self.stats.received += 1
        transit = now - (timestamp & 0xFFFFFFFF) / self.clock_rate
        if self._transit is not None:
            delta = abs(transit - self._transit)
            if delta < 1.0:
                self._jitter += (delta - self._jitter) / 16.0
        self._transit = transit
        return self._push_general(self._extend(seq & 0xFFFF), payload, now)


def _schedule() -> list[tuple[float, int]]:
    """Deterministic loss, reordering, duplicates, a late packet, wraparound, a jump."""
    rng = np.random.default_rng(11)
    base = 65500
    out = []
    for i in range(400):
        if i % 17 == 5 or i % 29 == 0:  # lost
            continue
        arrival = i * FRAME + float(rng.uniform(0, 0.03))
        out.append((arrival, base + i))
        if i % 23 == 0:
            out.append((arrival + 0.001, base + i))  # duplicate
    out.append((2.5, base + 10))  # far too late
    out += [(8.1 + k * FRAME, base + 900 + k) for k in range(20)]  # resync jump
    return sorted(out)


def _drive(jb: JitterBuffer, raw: bool) -> list[tuple[int, bool, bytes]]:
    pending = _schedule()
    played = []
    for tick in range(450):
        now = tick * FRAME
        while pending and pending[0][0] <= now:
            arrival, seq = pending.pop(0)
            jb.push(seq & 0xFFFF, (seq * 160) & 0xFFFFFFFF, bytes([seq % 251]) * 160, arrival)
        if raw:
            item = jb.pop_payload(now)
            if item is None:
                continue
            samples = item if isinstance(item, np.ndarray) else ulaw_decode(item)
            played.append((jb.last_slot, jb.last_concealed, samples.tobytes()))
        else:
            frame = jb.pop(now)
            if frame is not None:
                played.append((frame.seq, frame.concealed, frame.samples.tobytes()))
    return played


def test_jitter_fast_path_equals_general_path() -> None:
    fast = JitterBuffer(decoder=ulaw_decode, min_depth_ms=40)
    general = GeneralPathBuffer(decoder=ulaw_decode, min_depth_ms=40)
    out_fast, out_general = _drive(fast, raw=False), _drive(general, raw=False)
    assert out_fast == out_general
    assert dataclasses.asdict(fast.stats) == dataclasses.asdict(general.stats)
    assert fast.depth_ms == general.depth_ms
    s = fast.stats
    assert s.concealed > 0 and s.duplicates > 0 and s.late > 0 and s.resyncs == 1


def test_pop_payload_with_lazy_concealment_equals_pop() -> None:
    decoded = JitterBuffer(decoder=ulaw_decode, min_depth_ms=40)
    raw = JitterBuffer(decoder=ulaw_decode, min_depth_ms=40)
    out_decoded, out_raw = _drive(decoded, raw=False), _drive(raw, raw=True)
    assert out_raw == out_decoded
    assert any(concealed for _, concealed, _ in out_raw)
    assert dataclasses.asdict(raw.stats) == dataclasses.asdict(decoded.stats)


def test_batch_mix_equals_mixer_bit_exactly() -> None:
    rng = np.random.default_rng(3)
    sizes = [3, 3, 2, 5, 3, 1, 4, 4, 3]
    for trial in range(20):
        loud = trial % 2 == 0  # half the trials clip
        scale = 32768 if loud else 4000
        frames = rng.integers(-scale, scale, (sum(sizes), FRAME_SAMPLES)).astype(np.int16)
        muted = rng.random(sum(sizes)) < 0.2
        starts = np.cumsum([0] + sizes[:-1])
        batch = mix_minus_groups(frames, starts, muted)
        for start, size in zip(starts, sizes):
            mixer = Mixer()
            for k in range(size):
                mixer.add(k, muted=bool(muted[start + k]))
                mixer.put(k, frames[start + k])
            expected = mixer.mix()
            for k in range(size):
                assert np.array_equal(batch[start + k], expected[k]), (trial, start, k)
    assert batch.dtype == np.int16


def test_batch_g711_equals_per_stream_codec() -> None:
    rng = np.random.default_rng(5)
    codes = rng.integers(0, 256, (6, FRAME_SAMPLES), dtype=np.uint8)
    alaw_rows = [1, 4]
    decoded = decode_rows(codes, alaw_rows)
    samples = rng.integers(-32768, 32768, (6, FRAME_SAMPLES)).astype(np.int16)
    encoded = encode_rows(samples, alaw_rows)
    for row in range(6):
        dec, enc = (alaw_decode, alaw_encode) if row in alaw_rows else (ulaw_decode, ulaw_encode)
        assert np.array_equal(decoded[row], dec(codes[row].tobytes()))
        assert encoded[row].tobytes() == enc(samples[row])


def test_audio_header_continues_the_audio_packet_numbering() -> None:
    a = MediaStream(8, "PCMA", gen_ssrc=0x1234, ts_base=0xFFFFFF00, seq_base=0xFFFF)
    b = MediaStream(8, "PCMA", gen_ssrc=0x1234, ts_base=0xFFFFFF00, seq_base=0xFFFF)
    frame = np.arange(FRAME_SAMPLES, dtype=np.int16)
    for tick in (0, 1, 5):
        packet = a.audio_packet(frame, tick)
        assert b.audio_header(tick) + alaw_encode(frame) == packet
    header = a.audio_header(7, seq_offset=10, ts_offset=1000, ssrc=0xABCD)
    seq, ts, ssrc = struct.unpack("!HII", header[2:])
    assert (header[1], seq, ssrc) == (8, (0xFFFF + 3 + 10) & 0xFFFF, 0xABCD)
    assert ts == (0xFFFFFF00 + 7 * 160 + 1000) % (1 << 32)


def _packet(seq: int, csrc: bool, ssrc: int = 7) -> bytes:
    first = 0x81 if csrc else 0x80
    extra = b"\0\0\0\1" if csrc else b""
    return struct.pack("!BBHII", first, 0, seq & 0xFFFF, seq * 160, ssrc) + extra + bytes(160)


def test_receive_short_path_gives_the_rfc3550_figures_of_the_general_path() -> None:
    lost = {3, 4, 20, 21, 22, 60}
    short, general = MediaStream(0, "PCMU"), MediaStream(0, "PCMU")
    short.want_audio = general.want_audio = True
    seqs = [s for s in range(65500, 65600) if s - 65500 not in lost]
    seqs.insert(10, seqs[9])  # a duplicate
    seqs += [s for s in range(900, 920)]  # new talk spurt far away (restart)
    for i, seq in enumerate(seqs):
        now = i * FRAME + (0.004 if i % 3 else 0.0)
        short.receive(_packet(seq, csrc=False), now)
        general.receive(_packet(seq, csrc=True), now)
    assert dataclasses.asdict(short.stats) == dataclasses.asdict(general.stats)
    assert short.stats.lost > 0
    assert dataclasses.asdict(short.jitter.stats) == dataclasses.asdict(general.jitter.stats)
