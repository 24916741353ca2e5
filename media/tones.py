"""Call-progress tones as the Dutch network plays them, and DTMF tone generation.

Dutch tones (425 Hz, ETSI ES 201 970 / ETSI TR 101 041-2 listing for the
Netherlands, ITU-T E.180 Supplement 2 "Various tones used in national networks"):

    dial          425 Hz continuous
    ringing       425 Hz 1 s on, 4 s off
    busy          425 Hz 0.5 s on, 0.5 s off
    congestion    425 Hz 0.25 s on, 0.25 s off
    call waiting  425 Hz 0.5 s on, 9.5 s off

The call-waiting cadence is the one listed for the Netherlands in ITU-T E.180 Suppl. 2
(and used for "nl" by common PBXs, e.g. Asterisk's indications.conf); ES 201 970
recommends 425 Hz for it but leaves the cadence to the operator, so this choice is
ours and is easy to change in ``NL_TONES``.

DTMF: ITU-T Q.23 frequency pairs (low group 697/770/852/941 Hz, high group
1209/1336/1477/1633 Hz).

Levels are given in dBm0 relative to G.711's full scale: a sine of peak 32767 is
+3.14 dBm0 (G.711 table 5/6), so 0 dBm0 is a peak of about 22 720.

``ToneGenerator.read()`` returns 160-sample frames with continuous phase (a running
phase per frequency), vectorised per frame; cadences are applied per sample so a
cadence edge can fall inside a frame.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

logger = logging.getLogger(__name__)

SAMPLE_RATE = 8000
FRAME_SAMPLES = 160
FULL_SCALE_DBM0 = 3.14  # G.711: peak 32767 sine = +3.14 dBm0
ZERO_DBM0_PEAK = 32767 / 10 ** (FULL_SCALE_DBM0 / 20)
CALL_PROGRESS_LEVEL_DBM0 = -10.0
DTMF_LEVEL_DBM0 = -7.0  # per tone; ETSI ES 201 235-2 sender range about -11..-3 dBm0

DTMF_LOW = (697.0, 770.0, 852.0, 941.0)
DTMF_HIGH = (1209.0, 1336.0, 1477.0, 1633.0)
DTMF_KEYPAD = ("123A", "456B", "789C", "*0#D")
DTMF_FREQUENCIES: dict[str, tuple[float, float]] = {
    key: (DTMF_LOW[row], DTMF_HIGH[col])
    for row, keys in enumerate(DTMF_KEYPAD)
    for col, key in enumerate(keys)
}
DTMF_DIGITS = "0123456789*#ABCD"


def dbm0_to_amplitude(level_dbm0: float) -> float:
    """Peak amplitude (int16 scale) of a sine at ``level_dbm0``."""
    return ZERO_DBM0_PEAK * 10 ** (level_dbm0 / 20)


@dataclass(frozen=True)
class ToneSpec:
    """A tone: frequencies summed, and a cadence of alternating on/off durations."""

    name: str
    frequencies: tuple[float, ...]
    cadence_ms: tuple[int, ...] = ()
    """(on, off, on, off, ...) in ms, repeated; empty means continuous."""
    level_dbm0: float = CALL_PROGRESS_LEVEL_DBM0
    """Level of each frequency."""

    @property
    def period_ms(self) -> int:
        return sum(self.cadence_ms)


NL_TONES: dict[str, ToneSpec] = {
    "dial": ToneSpec("dial", (425.0,)),
    "ringing": ToneSpec("ringing", (425.0,), (1000, 4000)),
    "busy": ToneSpec("busy", (425.0,), (500, 500)),
    "congestion": ToneSpec("congestion", (425.0,), (250, 250)),
    "call-waiting": ToneSpec("call-waiting", (425.0,), (500, 9500)),
}


def dtmf_spec(digit: str, level_dbm0: float = DTMF_LEVEL_DBM0) -> ToneSpec:
    """A continuous DTMF tone for one of 0-9 * # A-D."""
    key = digit.upper()
    if key not in DTMF_FREQUENCIES:
        raise ValueError(f"not a DTMF digit: {digit!r}")
    return ToneSpec(f"dtmf-{key}", DTMF_FREQUENCIES[key], (), level_dbm0)


class ToneGenerator:
    """A frame source playing one ``ToneSpec`` forever (or until replaced)."""

    def __init__(
        self, spec: ToneSpec, *, sample_rate: int = SAMPLE_RATE, frame_samples: int = FRAME_SAMPLES
    ) -> None:
        self.spec = spec
        self.sample_rate = sample_rate
        self.frame_samples = frame_samples
        self._amplitude = dbm0_to_amplitude(spec.level_dbm0)
        self._step = 2 * np.pi * np.asarray(spec.frequencies, dtype=np.float64) / sample_rate
        self._phase = np.zeros(len(spec.frequencies), dtype=np.float64)
        self._position = 0  # samples since the start of the cadence
        self._ramp = np.arange(frame_samples, dtype=np.float64)
        edges_ms = np.cumsum((0, *spec.cadence_ms))
        self._edges = (edges_ms * sample_rate // 1000).astype(np.int64)
        self._period = int(self._edges[-1])

    def __repr__(self) -> str:
        return f"<ToneGenerator {self.spec.name} position={self._position}>"

    def read(self) -> np.ndarray:
        """The next frame; never ends."""
        phases = self._phase[:, np.newaxis] + self._step[:, np.newaxis] * self._ramp
        signal = np.sin(phases).sum(axis=0) * self._amplitude
        self._phase = (self._phase + self._step * self.frame_samples) % (2 * np.pi)
        if self._period:
            positions = (self._position + np.arange(self.frame_samples)) % self._period
            segment = np.searchsorted(self._edges, positions, side="right") - 1
            signal = np.where(segment % 2 == 0, signal, 0.0)
            self._position = (self._position + self.frame_samples) % self._period
        return np.clip(np.rint(signal), -32768, 32767).astype(np.int16)


def dtmf_samples(
    digit: str,
    duration_ms: int,
    *,
    sample_rate: int = SAMPLE_RATE,
    level_dbm0: float = DTMF_LEVEL_DBM0,
    twist_db: float = 0.0,
) -> np.ndarray:
    """A DTMF burst: ``twist_db`` > 0 makes the high tone weaker (normal twist)."""
    low, high = dtmf_spec(digit).frequencies
    count = sample_rate * duration_ms // 1000
    t = np.arange(count, dtype=np.float64) / sample_rate
    amplitude = dbm0_to_amplitude(level_dbm0)
    signal = amplitude * np.sin(2 * np.pi * low * t)
    signal += amplitude * 10 ** (-twist_db / 20) * np.sin(2 * np.pi * high * t)
    return np.clip(np.rint(signal), -32768, 32767).astype(np.int16)
