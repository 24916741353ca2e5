"""G.722 and Opus through PyAV (FFmpeg's libavcodec), when the installed build has them.

RFC 3551 section 4.5.2 (G722: payload type 9, 16 kHz audio, RTP clock 8000 "for
historical reasons", 20 ms = 160 octets at 64 kbit/s); RFC 7587 (Opus: RTP clock
48000 always, a=rtpmap:<pt> opus/48000/2; the decoder can render at 8/16/48 kHz).

``available()`` tells whether PyAV imports and has both an encoder and a decoder for
a codec; the registry (media.codecs) lists a codec only when it does, so the SDP
layer never offers or accepts something we cannot decode.

Both codecs are stateful (ADPCM predictor, Opus decoder history): every ``get_codec``
call returns an independent object, one per stream and direction pair.
"""
from __future__ import annotations

import fractions
import functools
import logging
from typing import Any

import numpy as np

from media.codecs import Codec, register_codec

logger = logging.getLogger(__name__)

G722_PAYLOAD_TYPE = 9  # RFC 3551 table 4
G722_SAMPLE_RATE = 16000
G722_CLOCK_RATE = 8000
OPUS_PAYLOAD_TYPE = 111  # dynamic; the value most phones and WebRTC stacks use
OPUS_CLOCK_RATE = 48000  # RFC 7587 section 4.1
OPUS_SAMPLE_RATE = 16000  # what we render to: wideband, like G.722
OPUS_BITRATE = 32000  # bit/s, wideband speech
OPUS_ENCODER_RATES = (8000, 12000, 16000, 24000, 48000)

try:  # PyAV is optional (extras "codecs")
    import av
except ImportError:  # pragma: no cover - depends on the installation
    av = None


@functools.cache
def _has_codec(name: str) -> bool:
    if av is None:
        return False
    try:
        av.codec.Codec(name, "r")
        av.codec.Codec(name, "w")
    except Exception:  # PyAV raises UnknownCodecError / ValueError depending on version
        return False
    return True


def _opus_codec_name() -> str | None:
    for name in ("libopus", "opus"):
        if _has_codec(name):
            return name
    return None


def g722_available() -> bool:
    """True when PyAV can encode and decode G.722."""
    return _has_codec("g722")


def opus_available() -> bool:
    """True when PyAV can encode and decode Opus."""
    return _opus_codec_name() is not None


def available() -> bool:
    """True when PyAV provides at least one of the codecs of this module."""
    return g722_available() or opus_available()


class _PyAvCodec(Codec):
    """Common plumbing: one encoder context, one decoder context, a resampler."""

    _av_name: str = ""
    _encode_rate: int = 8000

    def __init__(self) -> None:
        if av is None:
            raise RuntimeError("PyAV is not installed")
        self._encoder: Any = av.CodecContext.create(self._av_name, "w")
        self._encoder.sample_rate = self._encode_rate
        self._encoder.layout = "mono"
        self._encoder.format = "s16"
        self._configure_encoder(self._encoder)
        self._encoder.open()
        self._decoder: Any = av.CodecContext.create(self._av_name, "r")
        self._decoder.sample_rate = self._encode_rate
        self._decoder.layout = "mono"
        self._resampler: Any = av.AudioResampler(
            format="s16", layout="mono", rate=self.sample_rate
        )
        self._pts = 0

    def _configure_encoder(self, context: Any) -> None:
        """Hook for codec options (bit rate...)."""

    def _to_encoder_rate(self, samples: np.ndarray) -> np.ndarray:
        return samples

    def encode(self, samples: np.ndarray) -> bytes:
        samples = np.ascontiguousarray(samples, dtype=np.int16)
        samples = self._to_encoder_rate(samples)
        frame = av.AudioFrame.from_ndarray(samples.reshape(1, -1), format="s16", layout="mono")
        frame.sample_rate = self._encode_rate
        frame.time_base = fractions.Fraction(1, self._encode_rate)
        frame.pts = self._pts
        self._pts += samples.size
        return b"".join(bytes(packet) for packet in self._encoder.encode(frame))

    def decode(self, data: bytes) -> np.ndarray:
        if not data:
            raise ValueError(f"{self.name} payload is empty")
        try:
            frames = self._decoder.decode(av.Packet(data))
        except av.error.FFmpegError as exc:
            raise ValueError(f"{self.name} payload cannot be decoded: {exc}") from exc
        chunks = []
        for frame in frames:
            for out in self._resampler.resample(frame):
                chunks.append(out.to_ndarray().reshape(-1))
        if not chunks:
            return np.zeros(0, dtype=np.int16)
        return np.concatenate(chunks).astype(np.int16, copy=False)


class G722Codec(_PyAvCodec):
    """G.722 64 kbit/s; int16 frames at 16 kHz (320 samples per 20 ms)."""

    name = "G722"
    payload_type = G722_PAYLOAD_TYPE
    clock_rate = G722_CLOCK_RATE
    sample_rate = G722_SAMPLE_RATE
    _av_name = "g722"
    _encode_rate = G722_SAMPLE_RATE


class OpusCodec(_PyAvCodec):
    """Opus mono speech; int16 frames at 16 kHz in and out, RTP clock 48 kHz."""

    name = "OPUS"
    payload_type = OPUS_PAYLOAD_TYPE
    clock_rate = OPUS_CLOCK_RATE
    sample_rate = OPUS_SAMPLE_RATE
    channels = 2  # a=rtpmap says 2 (RFC 7587 section 7); we send and render mono
    _encode_rate = OPUS_SAMPLE_RATE

    def __init__(self) -> None:
        self._av_name = _opus_codec_name() or "libopus"
        super().__init__()

    def _configure_encoder(self, context: Any) -> None:
        context.bit_rate = OPUS_BITRATE


register_codec("G722", G722Codec, g722_available)
register_codec("OPUS", OpusCodec, opus_available)
