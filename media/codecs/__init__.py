"""Audio codecs behind two tiny ABCs and a registry keyed by RTP encoding name.

RFC 3551 section 6 (static payload types: PCMU 0, PCMA 8, G722 9); RFC 7587 (Opus,
dynamic payload type, "opus/48000/2"). Encoding names compare case-insensitively
(RFC 4566 section 6, a=rtpmap).

    get_codec("PCMU") -> Codec     a fresh object: stateful codecs (G.722, Opus) keep
                                   their predictor/decoder state per stream
    available_codecs() -> list[str]   only the codecs that work in this build
    codec_available(name) -> bool

A ``Codec`` encodes ``np.int16`` frames at ``sample_rate`` to payload bytes and decodes
payload bytes back. ``clock_rate`` is the RTP timestamp rate, which differs from the
audio rate for G.722 (RFC 3551 section 4.5.2: 8000 although it samples at 16 kHz).

Errors: ``UnsupportedCodecError`` (a ``LookupError``) for a name this build cannot
serve; codecs raise ``ValueError`` for payloads they cannot decode.
"""
from __future__ import annotations

import abc
import logging
from collections.abc import Callable

import numpy as np

logger = logging.getLogger(__name__)

FRAME_MS = 20  # the packetisation interval used everywhere in the engine


class UnsupportedCodecError(LookupError):
    """The encoding name is unknown or this build cannot encode/decode it."""


class Encoder(abc.ABC):
    """Linear int16 samples in, RTP payload out."""

    @abc.abstractmethod
    def encode(self, samples: np.ndarray) -> bytes:
        """Encode one frame of ``np.int16`` samples at ``sample_rate``."""


class Decoder(abc.ABC):
    """RTP payload in, linear int16 samples out."""

    @abc.abstractmethod
    def decode(self, data: bytes) -> np.ndarray:
        """Decode one payload to ``np.int16`` samples at ``sample_rate``."""


class Codec(Encoder, Decoder):
    """An encoder and a decoder for one stream, with its RTP parameters."""

    name: str = ""
    payload_type: int = -1  # static payload type, or the usual dynamic one
    clock_rate: int = 8000  # RTP timestamp units per second
    sample_rate: int = 8000  # rate of the int16 frames given to encode / got from decode
    channels: int = 1  # as announced in a=rtpmap (Opus says 2, RFC 7587 section 7)

    @property
    def frame_samples(self) -> int:
        """Samples in one 20 ms frame at ``sample_rate``."""
        return self.sample_rate * FRAME_MS // 1000

    @property
    def frame_timestamp_increment(self) -> int:
        """RTP timestamp advance of one 20 ms frame."""
        return self.clock_rate * FRAME_MS // 1000

    def __repr__(self) -> str:
        return (
            f"<{type(self).__name__} {self.name}/{self.clock_rate} pt={self.payload_type} "
            f"rate={self.sample_rate}>"
        )


CodecFactory = Callable[[], Codec]
_REGISTRY: dict[str, CodecFactory] = {}
_AVAILABLE: dict[str, Callable[[], bool]] = {}


def register_codec(
    name: str, factory: CodecFactory, available: Callable[[], bool] | None = None
) -> None:
    """Register a codec factory under an encoding name (case-insensitive)."""
    key = name.upper()
    _REGISTRY[key] = factory
    _AVAILABLE[key] = available if available is not None else (lambda: True)


def codec_available(name: str) -> bool:
    """True when ``get_codec(name)`` will succeed in this build."""
    key = name.upper()
    return key in _REGISTRY and _AVAILABLE[key]()


def available_codecs() -> list[str]:
    """Encoding names this build can encode and decode, in registration order."""
    return [name for name in _REGISTRY if _AVAILABLE[name]()]


def get_codec(name: str) -> Codec:
    """A new codec object for one stream; raises UnsupportedCodecError."""
    key = name.upper()
    if key not in _REGISTRY:
        raise UnsupportedCodecError(f"unknown codec {name!r}")
    if not _AVAILABLE[key]():
        raise UnsupportedCodecError(f"codec {name!r} is not available in this build")
    return _REGISTRY[key]()


# Registration happens on import of the implementation modules.
from media.codecs import g711 as g711  # noqa: E402
from media.codecs import pyav as pyav  # noqa: E402

__all__ = [
    "Codec",
    "Decoder",
    "Encoder",
    "FRAME_MS",
    "UnsupportedCodecError",
    "available_codecs",
    "codec_available",
    "get_codec",
    "register_codec",
]
