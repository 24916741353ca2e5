"""G.711: bit-exact against audioop for all inputs, round-trip error bounds, transcoding."""
from __future__ import annotations

import warnings

import numpy as np
import pytest

from media.codecs import UnsupportedCodecError, available_codecs, get_codec
from media.codecs import g711

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    import audioop

ALL_SAMPLES = np.arange(-32768, 32768, dtype=np.int16)
ALL_CODES = bytes(range(256))


def test_ulaw_encode_bit_exact_for_all_65536_inputs() -> None:
    assert g711.ulaw_encode(ALL_SAMPLES) == audioop.lin2ulaw(ALL_SAMPLES.tobytes(), 2)


def test_alaw_encode_bit_exact_for_all_65536_inputs() -> None:
    assert g711.alaw_encode(ALL_SAMPLES) == audioop.lin2alaw(ALL_SAMPLES.tobytes(), 2)


def test_decode_bit_exact_for_all_256_codes() -> None:
    assert g711.ulaw_decode(ALL_CODES).tobytes() == audioop.ulaw2lin(ALL_CODES, 2)
    assert g711.alaw_decode(ALL_CODES).tobytes() == audioop.alaw2lin(ALL_CODES, 2)


def test_silence_codes() -> None:
    zero = np.zeros(4, dtype=np.int16)
    assert g711.ulaw_encode(zero) == bytes([g711.ULAW_SILENCE]) * 4
    assert g711.alaw_encode(zero) == bytes([g711.ALAW_SILENCE]) * 4


@pytest.mark.parametrize(("encode", "decode"), [
    (g711.ulaw_encode, g711.ulaw_decode), (g711.alaw_encode, g711.alaw_decode)])
def test_round_trip_error_is_within_half_a_quantisation_step(encode, decode) -> None:
    decoded = decode(encode(ALL_SAMPLES)).astype(np.int32)
    error = np.abs(decoded - ALL_SAMPLES.astype(np.int32))
    magnitude = np.abs(ALL_SAMPLES.astype(np.int32))
    # logarithmic quantisation: the step doubles per segment, so the error stays
    # within 1/32 of the magnitude plus the finest step (16 bits -> 13/14 bits)
    assert error[magnitude < 256].max() <= 12
    assert np.all(error <= magnitude / 32 + 8)
    # decoded values are fixed points of the codec
    again = decode(encode(decoded.astype(np.int16)))
    assert np.array_equal(again, decoded.astype(np.int16))


def test_round_trip_snr_of_a_sine_is_above_35_db() -> None:
    t = np.arange(8000) / 8000
    x = (10000 * np.sin(2 * np.pi * 1004 * t)).astype(np.int16)
    for codec in ("PCMU", "PCMA"):
        c = get_codec(codec)
        y = c.decode(c.encode(x)).astype(np.float64)
        snr = 10 * np.log10(np.sum(x.astype(np.float64) ** 2) / np.sum((y - x) ** 2))
        assert snr > 35, codec


def test_transcoding_tables_match_linear_path() -> None:
    ulaw_via_linear = audioop.lin2alaw(audioop.ulaw2lin(ALL_CODES, 2), 2)
    alaw_via_linear = audioop.lin2ulaw(audioop.alaw2lin(ALL_CODES, 2), 2)
    assert g711.ulaw_to_alaw(ALL_CODES) == ulaw_via_linear
    assert g711.alaw_to_ulaw(ALL_CODES) == alaw_via_linear


def test_registry() -> None:
    pcmu, pcma = get_codec("pcmu"), get_codec("PCMA")
    assert (pcmu.payload_type, pcmu.clock_rate, pcmu.name) == (0, 8000, "PCMU")
    assert (pcma.payload_type, pcma.clock_rate, pcma.name) == (8, 8000, "PCMA")
    assert pcmu.frame_samples == 160 and pcmu.frame_timestamp_increment == 160
    assert {"PCMU", "PCMA"} <= set(available_codecs())
    with pytest.raises(UnsupportedCodecError):
        get_codec("GSM")
    with pytest.raises(ValueError):
        pcmu.encode(np.zeros(160, dtype=np.float32))


def _dominant(samples: np.ndarray, rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(samples * np.hanning(samples.size)))
    return float(np.argmax(spectrum) * rate / samples.size)


@pytest.mark.parametrize("name", ["G722", "OPUS"])
def test_wideband_codecs_round_trip_a_tone(name: str) -> None:
    assert name in available_codecs()  # this build of PyAV has both
    codec = get_codec(name)
    n = codec.frame_samples
    t = np.arange(n * 50) / codec.sample_rate
    x = (8000 * np.sin(2 * np.pi * 1000 * t)).astype(np.int16)
    out = np.concatenate([codec.decode(codec.encode(x[i:i + n])) for i in range(0, x.size, n)])
    assert out.size >= x.size - n
    tail = out[-codec.sample_rate // 2:]
    assert abs(_dominant(tail, codec.sample_rate) - 1000) < 10
    assert np.sqrt(np.mean(tail.astype(np.float64) ** 2)) > 8000 / np.sqrt(2) * 0.7
    if name == "G722":
        assert codec.clock_rate == 8000 and codec.sample_rate == 16000 and codec.payload_type == 9
        assert len(codec.encode(x[:n])) == 160  # 64 kbit/s * 20 ms


def test_wideband_decoder_rejects_garbage_with_value_error() -> None:
    codec = get_codec("OPUS")
    with pytest.raises(ValueError):
        codec.decode(b"")
