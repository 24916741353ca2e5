"""G.711 µ-law (PCMU) and A-law (PCMA) with numpy lookup tables.

ITU-T G.711 (11/88) tables 1a/1b (µ-law) and 2a/2b (A-law); RFC 3551 section 4.5.14
(PCMU payload type 0, PCMA payload type 8, 8000 Hz clock, one octet per sample).

The encode tables are computed once at import for all 65536 signed 16-bit inputs with
the segment algorithm of G.711 (µ-law works on the 14 most significant bits, A-law on
the 13 most significant bits, exactly as the reference C implementation and Python's
``audioop`` do), so encoding a frame is one ``table[samples.view(uint16)]`` gather.
Decoding is a 256-entry gather. Transcoding PCMU <-> PCMA between two legs that
negotiated different laws is a 256-entry byte table (``bytes.translate``) that goes
through the linear value, which is what G.711 Appendix-style tandem conversion does.

    ulaw_encode(samples) -> bytes        alaw_encode(samples) -> bytes
    ulaw_decode(data) -> np.int16 array  alaw_decode(data) -> np.int16 array
    ulaw_to_alaw(data) -> bytes          alaw_to_ulaw(data) -> bytes
    decode_rows(codes, alaw_rows) -> (rows, n) int16   many streams in one gather
    encode_rows(samples, alaw_rows) -> (rows, n) uint8
"""
from __future__ import annotations

import logging

import numpy as np

from media.codecs import Codec, register_codec

logger = logging.getLogger(__name__)

# G.711 µ-law: bias added to the magnitude (0x84 = 132 on the 16-bit scale, 33 on the
# 14-bit scale) and the clip value of the 14-bit magnitude.
ULAW_BIAS_14 = 0x84 >> 2
ULAW_CLIP_14 = 8159
# Upper ends of the eight segments (14-bit µ-law, 13-bit A-law).
_ULAW_SEG_END = np.array([0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF, 0x1FFF], dtype=np.int32)
_ALAW_SEG_END = np.array([0x1F, 0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF], dtype=np.int32)
# Even-bit inversion of A-law (G.711 section 3: "alternate digit inversion").
ALAW_XOR = 0x55
ULAW_SILENCE = 0xFF
ALAW_SILENCE = 0xD5

PCMU_PAYLOAD_TYPE = 0  # RFC 3551 table 4
PCMA_PAYLOAD_TYPE = 8
G711_CLOCK_RATE = 8000


def _build_ulaw_encode_table() -> np.ndarray:
    linear = np.arange(-32768, 32768, dtype=np.int32) >> 2  # 14-bit input
    negative = linear < 0
    magnitude = np.where(negative, -linear, linear)
    mask = np.where(negative, 0x7F, 0xFF)
    magnitude = np.minimum(magnitude, ULAW_CLIP_14) + ULAW_BIAS_14
    segment = np.searchsorted(_ULAW_SEG_END, magnitude, side="left")
    mantissa = (magnitude >> (np.minimum(segment, 7) + 1)) & 0x0F
    code = np.where(segment >= 8, 0x7F, (segment << 4) | mantissa)
    table = (code ^ mask).astype(np.uint8)
    # index by the uint16 view of the int16 sample: rotate so that index 0 is sample 0
    return np.roll(table, -32768)


def _build_alaw_encode_table() -> np.ndarray:
    linear = np.arange(-32768, 32768, dtype=np.int32) >> 3  # 13-bit input
    negative = linear < 0
    mask = np.where(negative, 0x55, 0xD5)
    magnitude = np.where(negative, -linear - 1, linear)
    segment = np.searchsorted(_ALAW_SEG_END, magnitude, side="left")
    shift = np.where(segment < 2, 1, np.minimum(segment, 7))
    code = np.where(segment >= 8, 0x7F, (segment << 4) | ((magnitude >> shift) & 0x0F))
    table = (code ^ mask).astype(np.uint8)
    return np.roll(table, -32768)


def _build_ulaw_decode_table() -> np.ndarray:
    code = ~np.arange(256, dtype=np.int32) & 0xFF
    magnitude = (((code & 0x0F) << 3) + ULAW_BIAS_14 * 4) << ((code & 0x70) >> 4)
    return np.where(code & 0x80, 0x84 - magnitude, magnitude - 0x84).astype(np.int16)


def _build_alaw_decode_table() -> np.ndarray:
    code = np.arange(256, dtype=np.int32) ^ ALAW_XOR
    segment = (code & 0x70) >> 4
    magnitude = (code & 0x0F) << 4
    magnitude = np.where(segment == 0, magnitude + 8, magnitude + 0x108)
    magnitude = np.where(segment > 1, magnitude << np.maximum(segment - 1, 0), magnitude)
    return np.where(code & 0x80, magnitude, -magnitude).astype(np.int16)


ULAW_ENCODE_TABLE = _build_ulaw_encode_table()
ALAW_ENCODE_TABLE = _build_alaw_encode_table()
ULAW_DECODE_TABLE = _build_ulaw_decode_table()
ALAW_DECODE_TABLE = _build_alaw_decode_table()
ULAW_TO_ALAW = bytes(ALAW_ENCODE_TABLE[ULAW_DECODE_TABLE.view(np.uint16)])
ALAW_TO_ULAW = bytes(ULAW_ENCODE_TABLE[ALAW_DECODE_TABLE.view(np.uint16)])
for _table in (ULAW_ENCODE_TABLE, ALAW_ENCODE_TABLE, ULAW_DECODE_TABLE, ALAW_DECODE_TABLE):
    _table.flags.writeable = False


def _as_uint16(samples: np.ndarray) -> np.ndarray:
    samples = np.asarray(samples)
    if samples.dtype != np.int16:
        raise ValueError(f"G.711 encodes int16 samples, got {samples.dtype}")
    return samples.view(np.uint16)


def ulaw_encode(samples: np.ndarray) -> bytes:
    """Encode signed 16-bit linear samples to µ-law octets."""
    return ULAW_ENCODE_TABLE[_as_uint16(samples)].tobytes()


def alaw_encode(samples: np.ndarray) -> bytes:
    """Encode signed 16-bit linear samples to A-law octets."""
    return ALAW_ENCODE_TABLE[_as_uint16(samples)].tobytes()


def ulaw_decode(data: bytes) -> np.ndarray:
    """Decode µ-law octets to signed 16-bit linear samples."""
    return ULAW_DECODE_TABLE[np.frombuffer(data, dtype=np.uint8)]


def alaw_decode(data: bytes) -> np.ndarray:
    """Decode A-law octets to signed 16-bit linear samples."""
    return ALAW_DECODE_TABLE[np.frombuffer(data, dtype=np.uint8)]


def ulaw_to_alaw(data: bytes) -> bytes:
    """Transcode a PCMU payload to PCMA without a linear intermediate buffer."""
    return data.translate(ULAW_TO_ALAW)


def alaw_to_ulaw(data: bytes) -> bytes:
    """Transcode a PCMA payload to PCMU."""
    return data.translate(ALAW_TO_ULAW)


def decode_rows(codes: np.ndarray, alaw_rows: list[int] | np.ndarray | None = None) -> np.ndarray:
    """Decode a (rows, n) uint8 array of G.711 octets, one stream per row.

    Rows are µ-law except those listed in ``alaw_rows``. One table gather per law,
    whatever the number of streams.
    """
    out = np.take(ULAW_DECODE_TABLE, codes)  # np.take: faster than [] for a gather
    if alaw_rows is not None and len(alaw_rows):
        out[alaw_rows] = np.take(ALAW_DECODE_TABLE, codes[alaw_rows])
    return out


def encode_rows(samples: np.ndarray, alaw_rows: list[int] | np.ndarray | None = None) -> np.ndarray:
    """Encode a (rows, n) int16 array to G.711 octets (µ-law except ``alaw_rows``)."""
    index = _as_uint16(samples)
    out = np.take(ULAW_ENCODE_TABLE, index)
    if alaw_rows is not None and len(alaw_rows):
        out[alaw_rows] = np.take(ALAW_ENCODE_TABLE, index[alaw_rows])
    return out


class PcmuCodec(Codec):
    """G.711 µ-law; stateless, so one instance may serve any number of streams."""

    name = "PCMU"
    payload_type = PCMU_PAYLOAD_TYPE
    clock_rate = G711_CLOCK_RATE
    sample_rate = G711_CLOCK_RATE

    def encode(self, samples: np.ndarray) -> bytes:
        return ulaw_encode(samples)

    def decode(self, data: bytes) -> np.ndarray:
        return ulaw_decode(data)


class PcmaCodec(Codec):
    """G.711 A-law; stateless."""

    name = "PCMA"
    payload_type = PCMA_PAYLOAD_TYPE
    clock_rate = G711_CLOCK_RATE
    sample_rate = G711_CLOCK_RATE

    def encode(self, samples: np.ndarray) -> bytes:
        return alaw_encode(samples)

    def decode(self, data: bytes) -> np.ndarray:
        return alaw_decode(data)


register_codec("PCMU", PcmuCodec)
register_codec("PCMA", PcmaCodec)
