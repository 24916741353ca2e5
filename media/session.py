"""Decoded media of one endpoint: receive statistics, jitter buffer, decoder, DTMF
detectors and the encoder/packetiser of the audio the engine generates.

Pure (no asyncio, no sockets, no clock of its own): ``media/engine.py`` feeds it the
RTP packets an endpoint receives (``receive(data, now)``), pulls one 20 ms frame per
tick of its frame clock (``pull(now)``) and asks for the packets to send
(``audio_packet(samples, tick)``, ``event_packet(...)``).

- Receive statistics after RFC 3550 appendix A.1 (extended highest sequence number,
  expected = highest - base + 1, lost = expected - received) and A.8 (interarrival
  jitter J += (|D| - J) / 16, in timestamp units).
- Audio is processed at 8 kHz (``PROCESS_RATE``): wideband codecs (G.722, Opus at
  16 kHz) are decimated by 2 after decoding and repeated by 2 before encoding. That is
  enough for prompts, mixing and DTMF detection; it is not hi-fi resampling.
- The generated stream has its own SSRC (``gen_ssrc``); its timestamp is derived from
  the engine's tick index (``ts_base + tick * increment``), so it follows wall-clock
  time across pauses (RFC 3550 section 5.1: the timestamp reflects the sampling
  instant). The endpoint's rewriter maps it into the one stream the far end sees.
- Transcoding tables for the G.711 relay (``transcode_table``): per-octet
  ``bytes.translate`` tables built from media.codecs.g711.
- Batch path (used by the engine's frame clock for G.711 streams, ``g711_law`` is
  ``LAW_ULAW`` or ``LAW_ALAW``): ``pull_payload(now)`` hands over the undecoded 20 ms
  payload so that the payloads of all legs are decoded with one table gather, and
  ``next_audio_numbers(tick)`` gives the sequence number and timestamp of a packet the
  engine builds itself from a batch-encoded payload. The common received packet (no
  CSRC, extension or padding, same source, next sequence number) takes a short path
  through the RFC 3550 bookkeeping with the same results.
"""
from __future__ import annotations

import logging
import struct
from dataclasses import dataclass

import numpy as np

from media.codecs import Codec, get_codec
from media.codecs.g711 import ALAW_TO_ULAW, ULAW_TO_ALAW
from media.dtmf import DtmfDigit, DtmfReceiver, GoertzelDetector
from media.jitter import JitterBuffer

logger = logging.getLogger(__name__)

PROCESS_RATE = 8000  # Hz: players, mixer, recorder and Goertzel work at this rate
FRAME_SAMPLES = 160  # 20 ms at PROCESS_RATE
SEQ_MOD = 1 << 16
TS_MOD = 1 << 32
MAX_DROPOUT = 3000  # RFC 3550 appendix A.1: larger jumps restart the statistics
# Two frames at least: with one, a packet that arrives just after the tick it was due
# for is an underrun (a concealed frame in the middle of a prompt or a DTMF tone).
JITTER_MIN_DEPTH_MS = 40
_HEADER = struct.Struct("!BBHII")
_SEQ_TS_SSRC = struct.Struct("!HII")
_NO_DIGITS: list[DtmfDigit] = []  # shared empty result of receive(); never mutated
_SILENCE = np.zeros(FRAME_SAMPLES, dtype=np.int16)
_SILENCE.setflags(write=False)
LAW_NONE = -1  # not G.711 at 8 kHz / 20 ms: decoded per stream
LAW_ULAW = 0
LAW_ALAW = 1
_G711_LAWS = {"PCMU": LAW_ULAW, "PCMA": LAW_ALAW}

_TRANSCODE: dict[tuple[str, str], bytes] = {
    ("PCMU", "PCMA"): ULAW_TO_ALAW,
    ("PCMA", "PCMU"): ALAW_TO_ULAW,
}


def transcode_table(source: str, target: str) -> bytes | None:
    """A ``bytes.translate`` table from one G.711 law to the other, or None."""
    return _TRANSCODE.get((source.upper(), target.upper()))


def rtp_payload_offset(data: bytes) -> int:
    """Offset of the payload in an RTP packet (after CSRCs and header extension).

    Raises ValueError for a truncated header; padding is ignored (G.711 has none).
    """
    offset = 12 + 4 * (data[0] & 0x0F)
    if data[0] & 0x10:
        if offset + 4 > len(data):
            raise ValueError("RTP packet has truncated extension header")
        offset += 4 + 4 * int.from_bytes(data[offset + 2:offset + 4], "big")
    if offset > len(data):
        raise ValueError("RTP packet is shorter than its header")
    return offset


@dataclass(slots=True)
class ReceiveStats:
    """Receiver-side figures of the stream arriving at an endpoint (RFC 3550 A.1, A.8)."""

    received: int = 0
    """Packets counted for loss (audio and events of the current source)."""
    expected: int = 0
    lost: int = 0
    """expected - received, never negative (duplicates can make it so)."""
    jitter: float = 0.0
    """Interarrival jitter in timestamp units."""
    unknown_payload_type: int = 0
    undecodable: int = 0
    """Packets that could not be parsed or decoded (dropped)."""

    def jitter_ms(self, clock_rate: int) -> float:
        return self.jitter * 1000.0 / clock_rate


class _SequenceTracker:
    """RFC 3550 appendix A.1 sequence bookkeeping, A.8 jitter."""

    def __init__(self, stats: ReceiveStats, clock_rate: int) -> None:
        self.stats = stats
        self.clock_rate = clock_rate
        self.ssrc: int | None = None
        self.base = 0
        self.highest = 0  # extended
        self.transit: float | None = None

    def update(self, ssrc: int, seq: int, ts: int, now: float) -> None:
        st = self.stats
        highest = self.highest
        if ssrc == self.ssrc and seq == (highest + 1) & 0xFFFF:
            # the next packet of the current source: expected and received both grow
            # by one, so lost (expected - received, clamped) does not change
            self.highest = highest + 1
            st.received += 1
            st.expected = self.highest - self.base + 1
            transit = now * self.clock_rate - ts
            if self.transit is not None:
                d = abs(transit - self.transit)
                if d < self.clock_rate:
                    st.jitter += (d - st.jitter) / 16.0
            self.transit = transit
            return
        if ssrc != self.ssrc:  # a new source: start over (RFC 3550 section 8.2)
            self.ssrc = ssrc
            self.base = self.highest = seq
            self.transit = None
            self._received_before = st.received
            self._lost_before = st.lost
        else:
            delta = (seq - self.highest) % SEQ_MOD
            if delta < MAX_DROPOUT:
                self.highest += delta
            elif delta <= SEQ_MOD - MAX_DROPOUT:
                self.base = self.highest = seq  # a big jump: restart
                self._received_before = st.received
                self._lost_before = st.lost
        st.received += 1
        expected = self.highest - self.base + 1
        received = st.received - self._received_before
        st.expected = expected
        st.lost = self._lost_before + max(0, expected - received)
        transit = now * self.clock_rate - ts
        if self.transit is not None:
            d = abs(transit - self.transit)
            if d < self.clock_rate:  # ignore timestamp jumps (new talk spurt of a relay)
                st.jitter += (d - st.jitter) / 16.0
        self.transit = transit


class MediaStream:
    """The decoded side of one endpoint: what it receives and what we generate for it."""

    def __init__(self, payload_type: int, codec_name: str, clock_rate: int = 8000,
                 telephone_event_pt: int | None = None, *, gen_ssrc: int = 0,
                 ts_base: int = 0, seq_base: int = 0) -> None:
        self.codec: Codec = get_codec(codec_name)  # UnsupportedCodecError
        self.name = self.codec.name.upper()
        self.payload_type = payload_type
        self._audio_pt = payload_type if payload_type != telephone_event_pt else -1
        self.clock_rate = self.codec.clock_rate or clock_rate
        self.telephone_event_pt = telephone_event_pt
        self.event_clock_rate = clock_rate if telephone_event_pt is not None else 8000
        self._ratio = max(1, self.codec.sample_rate // PROCESS_RATE)
        self.ts_increment = self.codec.frame_timestamp_increment
        self.g711_law = _G711_LAWS.get(self.name, LAW_NONE) if self._ratio == 1 else LAW_NONE
        """LAW_ULAW / LAW_ALAW when the engine may batch-decode/encode this stream."""
        self.jitter = JitterBuffer(clock_rate=self.clock_rate, decoder=self._decode,
                                   frame_samples=FRAME_SAMPLES,
                                   min_depth_ms=JITTER_MIN_DEPTH_MS)
        self.dtmf = DtmfReceiver(clock_rate=self.event_clock_rate)
        self.goertzel: GoertzelDetector | None = None
        self.stats = ReceiveStats()
        self._tracker = _SequenceTracker(self.stats, self.clock_rate)
        self.want_audio = False
        """Push audio into the jitter buffer (mixing, recording, in-band detection)."""
        self.gen_ssrc = gen_ssrc
        self.gen_ssrc_b = gen_ssrc.to_bytes(4, "big")
        self._ts_base = ts_base
        self._seq = seq_base & 0xFFFF
        self.last_frame: np.ndarray = _SILENCE
        """The frame pulled at the last tick (silence when nothing was there)."""

    def __repr__(self) -> str:
        return (f"<MediaStream {self.name} pt={self.payload_type} "
                f"te={self.telephone_event_pt} audio={self.want_audio}>")

    # --- receive -----------------------------------------------------------------

    def _decode(self, payload: bytes) -> np.ndarray:
        try:
            samples = self.codec.decode(payload)
        except ValueError:
            self.stats.undecodable += 1
            return _SILENCE
        if self._ratio > 1:
            usable = samples.size - samples.size % self._ratio
            samples = samples[:usable].reshape(-1, self._ratio).mean(axis=1).astype(np.int16)
        if samples.size != FRAME_SAMPLES:  # other packet times: fit to 20 ms
            samples = np.resize(samples, FRAME_SAMPLES) if samples.size else _SILENCE
        return samples

    def receive(self, data: bytes, now: float) -> list[DtmfDigit]:
        """One valid RTP packet that arrived at the endpoint; returns finished digits."""
        pt = data[1] & 0x7F
        if pt == self._audio_pt and data[0] == 0x80 and self.want_audio and len(data) > 12:
            # common case: audio, no CSRC/extension/padding, payload at offset 12
            seq, ts, ssrc = _SEQ_TS_SSRC.unpack_from(data, 2)
            self._tracker.update(ssrc, seq, ts, now)
            self.jitter.push(seq, ts, data[12:], now)
            return _NO_DIGITS
        seq, ts, ssrc = struct.unpack_from("!HII", data, 2)
        if pt == self.telephone_event_pt:
            self._tracker.update(ssrc, seq, ts, now)
            try:
                payload = data[rtp_payload_offset(data):]
                return self.dtmf.feed(ts, payload, bool(data[1] & 0x80), now)
            except ValueError:
                self.stats.undecodable += 1
                return []
        if pt != self.payload_type:
            self.stats.unknown_payload_type += 1
            return []
        self._tracker.update(ssrc, seq, ts, now)
        if self.want_audio:
            try:
                offset = rtp_payload_offset(data)
            except ValueError:
                self.stats.undecodable += 1
                return []
            end = len(data) - data[-1] if data[0] & 0x20 else len(data)  # RFC 3550 5.1 P bit
            if end <= offset:
                self.stats.undecodable += 1
                return []
            self.jitter.push(seq, ts, data[offset:end], now)
        return []

    def pull(self, now: float) -> np.ndarray:
        """This tick's decoded input frame (silence before playout or when empty)."""
        frame = self.jitter.pop(now)
        self.last_frame = _SILENCE if frame is None else frame.samples
        return self.last_frame

    def pull_payload(self, now: float) -> bytes | np.ndarray:
        """This tick's input for the engine's batch decoder.

        A ``FRAME_SAMPLES``-octet G.711 payload (bytes, still to be decoded with the
        table of ``g711_law``), or decoded samples: a concealed frame, silence before
        playout, a payload of another size, or any frame of a non-G.711 stream. The
        caller sets ``last_frame`` once it has decoded the bytes.
        """
        if self.g711_law == LAW_NONE:
            return self.pull(now)
        item = self.jitter.pop_payload(now)
        if item is None:
            self.last_frame = _SILENCE
            return _SILENCE
        if isinstance(item, np.ndarray):
            self.last_frame = item
            return item
        if len(item) != FRAME_SAMPLES:
            self.last_frame = self._decode(item)
            return self.last_frame
        return item

    def detect_inband(self, frame: np.ndarray) -> list[DtmfDigit]:
        if self.goertzel is None:
            return []
        return self.goertzel.process(frame)

    def poll_dtmf(self, now: float) -> list[DtmfDigit]:
        return self.dtmf.poll(now)

    # --- send --------------------------------------------------------------------

    def timestamp(self, tick: int) -> int:
        return (self._ts_base + tick * self.ts_increment) % TS_MOD

    def _next_seq(self) -> int:
        seq = self._seq
        self._seq = (seq + 1) & 0xFFFF
        return seq

    def audio_header(self, tick: int, seq_offset: int = 0, ts_offset: int = 0,
                     ssrc: int | None = None) -> bytes:
        """The RTP header of the next generated audio packet, for a payload the engine
        encoded itself (same numbering as ``audio_packet``, no marker). The offsets
        and ``ssrc`` map it straight into an endpoint's outgoing numbering (what its
        rewriter would do); the defaults give the generated stream's own header."""
        seq = self._seq
        self._seq = (seq + 1) & 0xFFFF
        return _HEADER.pack(0x80, self.payload_type, (seq + seq_offset) & 0xFFFF,
                            (self._ts_base + tick * self.ts_increment + ts_offset) % TS_MOD,
                            self.gen_ssrc if ssrc is None else ssrc)

    def audio_packet(self, samples: np.ndarray, tick: int, marker: bool = False) -> bytes:
        """Encode one 8 kHz frame into an RTP packet of the generated stream."""
        if self._ratio > 1:
            samples = np.repeat(samples, self._ratio)
        payload = self.codec.encode(samples)
        header = _HEADER.pack(0x80, self.payload_type | (0x80 if marker else 0),
                              self._next_seq(), self.timestamp(tick), self.gen_ssrc)
        return header + payload

    def event_packet(self, payload: bytes, timestamp: int, marker: bool) -> bytes:
        """A telephone-event packet of the generated stream (RFC 4733 section 2.3)."""
        if self.telephone_event_pt is None:
            raise ValueError("no telephone-event payload type negotiated")
        header = _HEADER.pack(0x80, self.telephone_event_pt | (0x80 if marker else 0),
                              self._next_seq(), timestamp, self.gen_ssrc)
        return header + payload
