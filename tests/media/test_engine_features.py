"""The call-control interface of media/engine.py over real UDP sockets on 127.0.0.1.

Plain UDP sockets play the phones: they send paced G.711 / RFC 4733 packets and
decode what they receive. Audio is checked by FFT and correlation; every wait is
bounded; no assertion depends on timing.
"""
from __future__ import annotations

import asyncio
import wave
from pathlib import Path

import numpy as np
import pytest

from media.codecs.g711 import alaw_decode, ulaw_decode, ulaw_encode
from media.dtmf import DtmfSender, parse_event
from media.engine import MediaEngine, MediaError
from media.player import MusicOnHold, load_audio
from media.prompts import prompt_path
from media.rtp import RtpPacket
from media.tones import NL_TONES, ToneGenerator, dtmf_samples

HOST = "127.0.0.1"
RANGE = (31200, 31300)
WAIT = 5.0  # seconds: bound of every wait
TE_PT = 101
RATE = 8000


class Phone(asyncio.DatagramProtocol):
    """A UDP socket that queues what it receives, parsed as RTP."""

    def __init__(self) -> None:
        self.packets: asyncio.Queue[RtpPacket] = asyncio.Queue()
        self.transport: asyncio.DatagramTransport | None = None
        self.port = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.port = transport.get_extra_info("sockname")[1]

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.packets.put_nowait(RtpPacket.parse(data))

    async def take(self, count: int) -> list[RtpPacket]:
        return [await asyncio.wait_for(self.packets.get(), WAIT) for _ in range(count)]

    def drain(self) -> list[RtpPacket]:
        out = []
        while not self.packets.empty():
            out.append(self.packets.get_nowait())
        return out

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()


@pytest.fixture
async def engine():
    eng = MediaEngine(HOST, RANGE)
    await eng.start()
    yield eng
    await eng.close()


@pytest.fixture
async def phones():
    made: list[Phone] = []

    async def make() -> Phone:
        loop = asyncio.get_running_loop()
        _, phone = await loop.create_datagram_endpoint(Phone, local_addr=(HOST, 0))
        made.append(phone)
        return phone
    yield make
    for p in made:
        p.close()


async def connected(engine: MediaEngine, phone: Phone, codec: str = "PCMU", pt: int = 0):
    ep = await engine.create_endpoint(f"ep-{phone.port}")
    ep.set_codec(pt, codec, telephone_event_pt=TE_PT)
    ep.set_remote(HOST, phone.port)
    return ep


def tone(freq: float, seconds: float, amplitude: float = 8000.0) -> np.ndarray:
    t = np.arange(int(seconds * RATE)) / RATE
    return np.round(amplitude * np.sin(2 * np.pi * freq * t)).astype(np.int16)


async def send_audio(phone: Phone, port: int, samples: np.ndarray, *, ssrc: int = 0x1234,
                     pt: int = 0, encode=ulaw_encode, seq: int = 100, ts: int = 5000) -> None:
    """Send samples as paced 20 ms packets from `phone` to the engine port."""
    assert phone.transport is not None
    loop = asyncio.get_running_loop()
    start = loop.time()
    for i in range(samples.size // 160):
        frame = samples[i * 160:(i + 1) * 160]
        packet = RtpPacket(pt, (seq + i) & 0xFFFF, ts + 160 * i, ssrc, encode(frame))
        phone.transport.sendto(packet.serialize(), (HOST, port))
        await asyncio.sleep(max(0.0, start + 0.02 * (i + 1) - loop.time()))  # like a phone


def peak(samples: np.ndarray) -> float:
    spectrum = np.abs(np.fft.rfft(samples * np.hanning(samples.size)))
    spectrum[0] = 0
    return float(np.argmax(spectrum)) * RATE / samples.size


def band_power(samples: np.ndarray, freq: float) -> float:
    spectrum = np.abs(np.fft.rfft(samples * np.hanning(samples.size))) ** 2
    k = int(round(freq * samples.size / RATE))
    return float(spectrum[k - 3:k + 4].sum())


def decode_all(packets: list[RtpPacket], decode=ulaw_decode) -> np.ndarray:
    return np.concatenate([decode(p.payload) for p in packets]).astype(np.float64)


def assert_continuous(packets: list[RtpPacket]) -> None:
    assert len({p.ssrc for p in packets}) == 1, "the far end must see one SSRC"
    for a, b in zip(packets, packets[1:]):
        assert b.sequence_number == (a.sequence_number + 1) & 0xFFFF
        assert 0 < (b.timestamp - a.timestamp) % (1 << 32) < RATE * 60


async def test_play_prompt_arrives_as_the_prompt(engine, phones) -> None:
    phone = await phones()
    ep = await connected(engine, phone)
    handle = engine.play(ep, ["goodbye"], lang="en")
    assert await asyncio.wait_for(handle.done, WAIT * 2) == "finished"
    reference = load_audio(prompt_path("en", "goodbye")).astype(np.float64)
    packets = await phone.take(-(-reference.size // 160))
    assert_continuous(packets)
    assert all(p.payload_type == 0 for p in packets)
    received = decode_all(packets)
    n = min(received.size, reference.size)
    a, b = received[:n], reference[:n]
    correlation = float(np.dot(a, b) / np.sqrt(np.dot(a, a) * np.dot(b, b)))
    assert correlation > 0.95  # the same audio, G.711-quantised
    assert ep.stats.frames_sent == len(packets)


async def test_tone_then_stop(engine, phones) -> None:
    phone = await phones()
    ep = await connected(engine, phone)
    handle = engine.play(ep, ToneGenerator(NL_TONES["dial"]))
    packets = await phone.take(25)
    handle.stop()
    assert await asyncio.wait_for(handle.done, WAIT) == "stopped"
    assert abs(peak(decode_all(packets)) - 425.0) < 10
    assert_continuous(packets)


async def test_music_on_hold_listener(engine, phones, tmp_path: Path) -> None:
    path = tmp_path / "moh.wav"
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1), w.setsampwidth(2), w.setframerate(RATE)
        w.writeframes(tone(700.0, 1.0).tobytes())
    moh = MusicOnHold([str(path)])
    p1, p2 = await phones(), await phones()
    ep1, ep2 = await connected(engine, p1), await connected(engine, p2)
    h1, h2 = engine.play(ep1, moh), engine.play(ep2, moh)
    assert moh.listeners == 2
    for phone in (p1, p2):
        assert abs(peak(decode_all(await phone.take(25))) - 700.0) < 10
    h1.stop()
    await ep2.close()
    assert await asyncio.wait_for(h2.done, WAIT) == "closed"
    assert moh.listeners == 0


async def test_play_into_relay_keeps_one_stream_and_resumes(engine, phones) -> None:
    pa, pb = await phones(), await phones()
    a, b = await connected(engine, pa), await connected(engine, pb)
    engine.relay(a, b)
    await send_audio(pa, a.rtp_port, tone(1000.0, 0.2))
    before = await pb.take(10)
    handle = engine.play(b, ToneGenerator(NL_TONES["dial"]))
    sender = asyncio.ensure_future(send_audio(pa, a.rtp_port, tone(1000.0, 0.6), seq=110,
                                              ts=5000 + 1600))
    during = await pb.take(15)
    handle.stop()
    await sender
    await send_audio(pa, a.rtp_port, tone(1000.0, 0.2), seq=140, ts=5000 + 40 * 160)
    after = await pb.take(10)
    # the packets pa sent while the tone played were not forwarded
    received = before + during + [p for p in pb.drain()] + after
    tone_packets = [p for p in during if abs(peak(ulaw_decode(p.payload).astype(float)) - 425) < 60]
    assert len(tone_packets) >= 10
    assert abs(peak(decode_all(after)) - 1000.0) < 25
    assert_continuous(sorted(received, key=lambda p: p.sequence_number))


async def test_conference_each_hears_the_others(engine, phones) -> None:
    freqs = (500.0, 1000.0, 1500.0)
    ph = [await phones() for _ in freqs]
    eps = [await connected(engine, p) for p in ph]
    conf = engine.conference(eps)
    await asyncio.gather(*(send_audio(p, ep.rtp_port, tone(f, 1.2), ssrc=0x100 + i)
                           for i, (p, ep, f) in enumerate(zip(ph, eps, freqs))))
    for i, phone in enumerate(ph):
        packets = phone.drain()
        assert len(packets) >= 30
        audio = decode_all(packets[-30:])
        own = band_power(audio, freqs[i])
        others = [band_power(audio, f) for j, f in enumerate(freqs) if j != i]
        assert min(others) > 100 * own, (i, own, others)
    conf.mute(eps[0])
    conf.remove(eps[2])
    assert conf.participants == eps[:2]
    conf.close()
    assert engine.stats()["conferences"] == 0


async def test_rfc4733_digits_reported_once(engine, phones) -> None:
    phone = await phones()
    ep = await connected(engine, phone)
    events = ep.dtmf_events()
    sender = DtmfSender()
    seq = 1
    assert phone.transport is not None
    for n, digit in enumerate("12#"):
        packets = sender.packets(digit, 10_000 + 8000 * n, 100)
        packets.append(packets[-1])  # one more retransmitted end packet
        for p in packets:
            raw = RtpPacket(TE_PT, seq, p.timestamp, 0x777, p.payload, marker=p.marker)
            phone.transport.sendto(raw.serialize(), (HOST, ep.rtp_port))
            seq += 1
        await asyncio.sleep(0.01)
    got = [await asyncio.wait_for(events.__anext__(), WAIT) for _ in range(3)]
    assert [d for d, _ in got] == ["1", "2", "#"]
    assert all(duration == 100 for _, duration in got)
    assert ep.feed_info_dtmf("application/dtmf-relay", "Signal=5\r\nDuration=160\r\n")
    assert await asyncio.wait_for(events.__anext__(), WAIT) == ("5", 160)  # no duplicate before
    assert ep.stats.dtmf_rfc4733 == 3 and ep.stats.dtmf_info == 1
    await ep.close()
    assert [d async for d in events] == []


async def test_inband_dtmf_detected(engine, phones) -> None:
    phone = await phones()
    ep = await connected(engine, phone)
    events = ep.dtmf_events(detect_inband=True)
    silence = np.zeros(1600, dtype=np.int16)
    audio = np.concatenate([silence, dtmf_samples("7", 120), silence,
                            dtmf_samples("0", 120), silence])
    await send_audio(phone, ep.rtp_port, audio)
    got = [await asyncio.wait_for(events.__anext__(), WAIT) for _ in range(2)]
    assert [d for d, _ in got] == ["7", "0"]
    assert all(80 <= ms <= 160 for _, ms in got)


async def test_send_dtmf_packets(engine, phones) -> None:
    phone = await phones()
    ep = await connected(engine, phone)
    await asyncio.wait_for(ep.send_dtmf("9", 100), WAIT)
    packets = phone.drain()
    assert all(p.payload_type == TE_PT for p in packets)
    assert len({p.timestamp for p in packets}) == 1
    events = [parse_event(p.payload) for p in packets]
    assert {e.event for e in events} == {9}
    assert packets[0].marker and not any(p.marker for p in packets[1:])
    assert [e.end for e in events[-3:]] == [True] * 3 and not any(e.end for e in events[:-3])
    assert events[-1].duration == 800
    durations = [e.duration for e in events]
    assert durations == sorted(durations)
    assert len({p.ssrc for p in packets}) == 1
    assert [p.sequence_number for p in packets] == [
        (packets[0].sequence_number + i) & 0xFFFF for i in range(len(packets))]
    with pytest.raises(ValueError):
        await ep.send_dtmf("x")


async def test_pcmu_to_pcma_transcoding_relay(engine, phones) -> None:
    pa, pb = await phones(), await phones()
    a = await connected(engine, pa, "PCMU", 0)
    b = await connected(engine, pb, "PCMA", 8)
    engine.relay(a, b)
    await send_audio(pa, a.rtp_port, tone(1200.0, 0.5))
    packets = await pb.take(25)
    assert all(p.payload_type == 8 for p in packets)
    assert abs(peak(decode_all(packets, alaw_decode)) - 1200.0) < 10
    assert b.stats.packets_out == 25 and a.stats.transcoded == 25


async def test_record_writes_the_tone(engine, phones, tmp_path: Path) -> None:
    phone = await phones()
    ep = await connected(engine, phone)
    path = tmp_path / "rec.wav"
    rec = engine.record(ep, path)
    await send_audio(phone, ep.rtp_port, tone(600.0, 1.0))
    assert await rec.stop() == str(path)
    with wave.open(str(path), "rb") as w:
        assert (w.getnchannels(), w.getframerate()) == (1, RATE)
        data = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").astype(float)
    assert data.size >= 0.5 * RATE
    sound = np.flatnonzero(data)
    assert abs(peak(data[sound[0]:sound[-1]]) - 600.0) < 10
    assert engine.stats()["recordings"] == 0


async def test_close_stops_everything_and_frees_ports(engine, phones, tmp_path: Path) -> None:
    free = engine.stats()["port_pairs_free"]
    ph = [await phones() for _ in range(3)]
    eps = [await connected(engine, p) for p in ph]
    handle = engine.play(eps[0], ToneGenerator(NL_TONES["busy"]))
    rec = engine.record((eps[1], eps[2]), tmp_path / "pair.wav", stereo=True)
    conf = engine.conference(eps[1:])
    events = eps[2].dtmf_events()
    await ph[0].take(3)
    for ep in eps:
        await ep.close()
    assert await asyncio.wait_for(handle.done, WAIT) == "closed"
    assert [d async for d in events] == []
    assert conf.participants == []
    assert rec.recorder.closed
    with wave.open(str(tmp_path / "pair.wav"), "rb") as w:
        assert w.getnchannels() == 2
    stats = engine.stats()
    assert stats["port_pairs_free"] == free
    assert stats["endpoints"] == stats["playbacks"] == stats["recordings"] == 0
    with pytest.raises(MediaError):
        engine.play(eps[0], ["goodbye"])


async def test_stats_report_loss_and_jitter(engine, phones, tmp_path: Path) -> None:
    phone = await phones()
    ep = await connected(engine, phone)
    rec = engine.record(ep, tmp_path / "loss.wav")
    samples = tone(500.0, 0.4)
    assert phone.transport is not None
    for i in range(20):
        if i in (5, 6, 11):
            continue  # lost
        packet = RtpPacket(0, 1000 + i, 160 * i, 0x99, ulaw_encode(samples[160 * i:160 * i + 160]))
        phone.transport.sendto(packet.serialize(), (HOST, ep.rtp_port))
    for _ in range(int(WAIT / 0.01)):
        if ep.stats.packets_in == 17:
            break
        await asyncio.sleep(0.01)
    detail = engine.stats(detail=True)["per_endpoint"][ep.label]
    assert detail["packets_in"] == 17
    assert detail["packets_lost"] == 3
    assert detail["jitter_ms"] is not None and detail["jitter_ms"] >= 0
    await rec.stop()


def test_unknown_codec_is_a_media_error() -> None:
    async def scenario() -> None:
        engine = MediaEngine(HOST, RANGE)
        ep = await engine.create_endpoint("x")
        try:
            with pytest.raises(MediaError):
                ep.set_codec(96, "AMR-WB")
        finally:
            await engine.close()
    asyncio.run(scenario())
