"""DTMF: RFC 4733 telephone-events, SIP INFO dtmf-relay bodies, in-band detection.

Pure (no asyncio, no clock of its own). Three sources end up as the same event type,
``DtmfDigit(digit, duration_ms, source)``, which media/engine.py hands to call control:

- RFC 4733 section 2.3 telephone-event payloads (``parse_event``/``build_event``).
  ``DtmfReceiver`` turns the packet stream of one RTP source into one digit per event:
  all packets of an event share the RTP timestamp (section 2.5.1.1), the end packet is
  sent three times (section 2.5.1.4) and only the first copy counts; an event whose end
  packets were all lost is reported when the next event starts or after
  ``EVENT_END_TIMEOUT_S``. ``DtmfSender`` produces the packets for one digit: the first
  with the marker bit (section 2.5.1.2), an update every packet interval, three end
  packets with the final duration, all with the start timestamp.
- SIP INFO bodies: ``application/dtmf-relay`` ("Signal=5\\r\\nDuration=160") and
  ``application/dtmf`` ("5"), see ``parse_dtmf_info``.
- ``GoertzelDetector``: in-band detection on 8 kHz int16 audio after ITU-T Q.24
  (receiver characteristics; Q.23 frequencies). Details in its docstring.

Malformed telephone-event payloads raise ``ValueError`` naming the problem; the
caller drops and counts them.
"""
from __future__ import annotations

import logging
import math
import struct
from collections import deque
from dataclasses import dataclass, field

import numpy as np

from media.tones import DTMF_FREQUENCIES, DTMF_HIGH, DTMF_LOW, dbm0_to_amplitude

logger = logging.getLogger(__name__)

# RFC 4733 section 3.2: event codes 0-9, 10 = *, 11 = #, 12-15 = A-D (16 = flash)
EVENT_DIGITS = "0123456789*#ABCD"
DIGIT_EVENTS = {digit: code for code, digit in enumerate(EVENT_DIGITS)}
EVENT_PAYLOAD_SIZE = 4
MAX_EVENT_DURATION = 0xFFFF  # 16-bit duration field in timestamp units
MAX_VOLUME = 63  # 6-bit field, -dBm0
DEFAULT_VOLUME = 10  # -10 dBm0
END_PACKET_COPIES = 3  # RFC 4733 section 2.5.1.4
EVENT_END_TIMEOUT_S = 0.5  # no packet of an unfinished event for this long: report it
RECENT_EVENTS_KEPT = 16  # finished events remembered to drop their retransmissions
MAX_INFO_BODY = 1024  # bytes of a SIP INFO body we look at


@dataclass(frozen=True)
class DtmfDigit:
    """One key press, whatever its transport."""

    digit: str
    """One of 0-9 * # A-D."""
    duration_ms: int
    """How long the key was held, as far as the source tells."""
    source: str = "rfc4733"
    """"rfc4733", "info" or "inband"."""


@dataclass(frozen=True)
class TelephoneEvent:
    """An RFC 4733 section 2.3 payload."""

    event: int
    end: bool
    volume: int
    duration: int
    """In RTP timestamp units since the event's timestamp."""

    @property
    def digit(self) -> str | None:
        return EVENT_DIGITS[self.event] if self.event < len(EVENT_DIGITS) else None


def parse_event(payload: bytes) -> TelephoneEvent:
    """Parse a telephone-event payload (the first 4 octets; RFC 4733 section 2.3)."""
    if len(payload) < EVENT_PAYLOAD_SIZE:
        raise ValueError(f"telephone-event payload is truncated ({len(payload)} octets)")
    event, flags, duration = struct.unpack_from("!BBH", payload)
    return TelephoneEvent(
        event=event, end=bool(flags & 0x80), volume=flags & 0x3F, duration=duration
    )


def build_event(event: int, *, end: bool, volume: int, duration: int) -> bytes:
    """Serialise a telephone-event payload; the R bit is always 0 (section 2.3.3)."""
    if not 0 <= event <= 255:
        raise ValueError(f"event code out of range: {event}")
    if not 0 <= volume <= MAX_VOLUME:
        raise ValueError(f"volume out of range: {volume}")
    duration = min(max(duration, 0), MAX_EVENT_DURATION)
    return struct.pack("!BBH", event, (0x80 if end else 0) | volume, duration)


def parse_dtmf_info(content_type: str, body: bytes | str) -> DtmfDigit | None:
    """A digit from a SIP INFO body (application/dtmf-relay or application/dtmf)."""
    text = body.decode("utf-8", "replace") if isinstance(body, bytes) else body
    text = text[:MAX_INFO_BODY]
    kind = content_type.split(";", 1)[0].strip().lower()
    signal = ""
    duration = 0
    if kind == "application/dtmf-relay":
        for line in text.splitlines():
            name, _, value = line.partition("=")
            name, value = name.strip().lower(), value.strip()
            if name == "signal":
                signal = value
            elif name == "duration" and value.isdigit():
                duration = int(value)
    elif kind == "application/dtmf":
        signal = text.strip()
    else:
        return None
    if signal.isdigit() and int(signal) < len(EVENT_DIGITS):
        signal = EVENT_DIGITS[int(signal)]  # some phones send the event code (10 = *)
    signal = signal.upper()
    if len(signal) != 1 or signal not in DIGIT_EVENTS:
        return None
    return DtmfDigit(signal, duration, "info")


@dataclass
class DtmfReceiverStats:
    packets: int = 0
    events: int = 0
    retransmissions: int = 0
    """End packets (and late updates) of an event already reported."""
    missing_end: int = 0
    """Events reported without having seen an end packet."""
    unsupported: int = 0
    """Events that are not digits (e.g. 16, flash)."""


@dataclass
class _OpenEvent:
    timestamp: int
    event: int
    duration: int
    last_seen: float | None


class DtmfReceiver:
    """One RFC 4733 telephone-event stream -> one ``DtmfDigit`` per key press."""

    def __init__(self, clock_rate: int = 8000) -> None:
        self.clock_rate = clock_rate
        self._open: _OpenEvent | None = None
        self._finished: deque[int] = deque(maxlen=RECENT_EVENTS_KEPT)
        self.stats = DtmfReceiverStats()

    def __repr__(self) -> str:
        return f"<DtmfReceiver events={self.stats.events} open={self._open is not None}>"

    def _report(self, opened: _OpenEvent, ended: bool) -> DtmfDigit:
        self._finished.append(opened.timestamp)
        self.stats.events += 1
        if not ended:
            self.stats.missing_end += 1
        duration_ms = round(opened.duration * 1000 / self.clock_rate)
        return DtmfDigit(EVENT_DIGITS[opened.event], duration_ms, "rfc4733")

    def feed(
        self, timestamp: int, payload: bytes, marker: bool = False, now: float | None = None
    ) -> list[DtmfDigit]:
        """Process one telephone-event packet; returns the digits it completes."""
        parsed = parse_event(payload)
        self.stats.packets += 1
        timestamp &= 0xFFFFFFFF
        if timestamp in self._finished:
            self.stats.retransmissions += 1
            return []
        out: list[DtmfDigit] = []
        current = self._open
        if current is not None and current.timestamp != timestamp:
            # RFC 4733 section 2.5.2.2: a new timestamp means a new event; the old one
            # lost its end packets.
            out.append(self._report(current, ended=False))
            self._open = current = None
        if parsed.digit is None:
            self.stats.unsupported += 1
            return out
        if current is None:
            current = self._open = _OpenEvent(timestamp, parsed.event, parsed.duration, now)
        else:
            current.duration = max(current.duration, parsed.duration)
            current.last_seen = now
        if parsed.end:
            out.append(self._report(current, ended=True))
            self._open = None
        return out

    def poll(self, now: float) -> list[DtmfDigit]:
        """Report an event whose end never came, once it has been quiet long enough."""
        current = self._open
        if current is None or current.last_seen is None:
            return []
        if now - current.last_seen < EVENT_END_TIMEOUT_S:
            return []
        self._open = None
        return [self._report(current, ended=False)]


@dataclass(frozen=True)
class DtmfPacket:
    """One telephone-event packet to send ``offset_ms`` after the key press started."""

    offset_ms: int
    timestamp: int
    payload: bytes
    marker: bool


class DtmfSender:
    """Builds the RFC 4733 packet sequence of one key press."""

    def __init__(
        self, clock_rate: int = 8000, packet_ms: int = 20, volume: int = DEFAULT_VOLUME
    ) -> None:
        self.clock_rate = clock_rate
        self.packet_ms = packet_ms
        self.volume = volume

    def __repr__(self) -> str:
        return f"<DtmfSender clock={self.clock_rate} every={self.packet_ms}ms>"

    def _units(self, ms: int) -> int:
        return ms * self.clock_rate // 1000

    def packets(self, digit: str, timestamp: int, duration_ms: int = 100) -> list[DtmfPacket]:
        """Packets for ``digit``: start (marker), updates, three end packets.

        Every packet carries ``timestamp`` (the event start, section 2.5.1.1) and the
        duration so far; the first is sent one packet interval after the start, the
        end packets carry the full duration and are spaced one interval apart.
        Events longer than the 16-bit duration field allows are cut to its maximum.
        """
        key = digit.upper()
        if key not in DIGIT_EVENTS:
            raise ValueError(f"not a DTMF digit: {digit!r}")
        if duration_ms <= 0:
            raise ValueError("duration_ms must be positive")
        event = DIGIT_EVENTS[key]
        total = min(self._units(duration_ms), MAX_EVENT_DURATION)
        duration_ms = total * 1000 // self.clock_rate
        timestamp &= 0xFFFFFFFF
        out: list[DtmfPacket] = []
        offset = self.packet_ms
        while offset < duration_ms:
            payload = build_event(event, end=False, volume=self.volume, duration=self._units(offset))
            out.append(DtmfPacket(offset, timestamp, payload, marker=not out))
            offset += self.packet_ms
        final = build_event(event, end=True, volume=self.volume, duration=total)
        for copy in range(END_PACKET_COPIES):
            out.append(
                DtmfPacket(duration_ms + copy * self.packet_ms, timestamp, final, marker=not out)
            )
        return out


# --------------------------------------------------------------------------------------
# In-band detection (ITU-T Q.24)

SAMPLE_RATE = 8000
WINDOW = 160  # 20 ms analysis window (Hann): 50 Hz bins
HOP = 20  # 2.5 ms between windows: the time resolution of durations
HOPS_PER_FRAME = 8  # for 160-sample frames
FREQS = np.array(DTMF_LOW + DTMF_HIGH)
# Q.24: operate within +-1.5 %, do not operate beyond +-3.5 %; decide in the middle.
FREQ_TOLERANCE = 0.025
# Twist. Normal twist: high-group tone weaker than the low-group one (lines attenuate
# high frequencies); reverse: high-group stronger. Q.24 limits 8 dB / 4 dB must be
# accepted; we decide 0.5 dB beyond to absorb estimation error.
MAX_NORMAL_TWIST_DB = 8.5
MAX_REVERSE_TWIST_DB = 4.5
MIN_TONE_LEVEL_DBM0 = -30.0  # each tone
# Signal-to-other-energy: the two tones must carry this share of the window's energy
# (other energy at least 7 dB below them). Speech and music fail this.
MIN_TONE_ENERGY_RATIO = 0.8
# The frequency of each tone may move by at most this fraction during the tone.
MAX_FREQ_SPREAD = 0.005
# A 40 ms tone fully covers 9 windows; ask for 6, and for half of the windows of a
# longer tone (a voice that briefly looks like a tone has only a few valid windows).
MIN_VALID_WINDOWS = 6
VALID_SHARE = 0.5
MIN_VALID_RUN = 3  # consecutive valid windows before a tone counts as present
# Q.24: operate for tones of 40 ms, reject tones much shorter; durations are measured
# to +-2.5 ms, so the decision is at 35 ms: 40 ms accepted, 30 ms rejected.
MIN_DURATION_MS = 40
DURATION_DECISION_MS = 35.0
# A pause must last this long to separate two presses (Q.24: interruptions of 10 ms
# are bridged; pauses of 40 ms separate).
MIN_PAUSE_MS = 20
PAUSE_HOPS = MIN_PAUSE_MS * SAMPLE_RATE // 1000 // HOP
BACKLOG_HOPS = 12  # hops kept before a tone is confirmed, to find its true start
MAX_TONE_MS = 60_000  # a tone held longer than this is reported and restarted
HALF_LEVEL = 0.5  # a window centre is inside the tone when both tones reach half peak

_WINDOW = np.hanning(WINDOW)
_WINDOW_SUM = float(_WINDOW.sum())
_WINDOW_SQ_SUM = float((_WINDOW**2).sum())
_N = np.arange(WINDOW)
_BASIS = _WINDOW[:, None] * np.exp(-2j * np.pi * FREQS[None, :] * _N[:, None] / SAMPLE_RATE)
_HOP_ROTATION = np.exp(-2j * np.pi * FREQS * HOP / SAMPLE_RATE)
# Amplitude loss of the windowed DFT for a tone Delta-f off the bin (scalloping).
_GAIN_GRID = np.arange(-200.0, 200.5, 0.5)
_GAIN = (
    np.abs(np.exp(2j * np.pi * _GAIN_GRID[:, None] * _N[None, :] / SAMPLE_RATE) @ _WINDOW)
    / _WINDOW_SUM
)
_WINDOW_SQ = _WINDOW**2
_WINDOW_INDEX = np.arange(HOPS_PER_FRAME * 4)[:, None] * HOP + _N[None, :]
# |X|^2 of a tone -> its windowed energy: a = 2|X|/sum(w), energy = a^2/2 * sum(w^2)
_POWER_TO_ENERGY = 2 * _WINDOW_SQ_SUM / _WINDOW_SUM**2
_GATE_RATIO = MIN_TONE_ENERGY_RATIO * float(
    np.interp(FREQ_TOLERANCE * DTMF_HIGH[-1], _GAIN_GRID, _GAIN)
) ** 2 * 0.9
_MIN_AMPLITUDE = dbm0_to_amplitude(MIN_TONE_LEVEL_DBM0)
_DIGIT_BY_PAIR = {
    (DTMF_LOW.index(lo), DTMF_HIGH.index(hi)): digit
    for digit, (lo, hi) in DTMF_FREQUENCIES.items()
}


@dataclass
class _Tone:
    digit: str
    low: int  # frequency index 0..3
    high: int  # frequency index 4..7
    levels: list[tuple[float, float]] = field(default_factory=list)
    confirm_at: int = 0  # index in levels of the hop that confirmed the tone
    below: int = 0
    low_peak: float = 0.0
    high_peak: float = 0.0
    offsets: list[tuple[float, float]] = field(default_factory=list)
    """Relative frequency offsets (low, high) of the valid windows."""


class GoertzelDetector:
    """In-band DTMF detector for 8 kHz int16 audio, fed frame by frame.

    Every 2.5 ms a Hann-windowed 20 ms DFT is evaluated at the eight Q.23 frequencies
    (the Goertzel filter bank, computed as one matrix product per frame). A window is
    *valid* for a digit when, for the strongest tone of each group:

    - the frequency, measured from the phase advance between consecutive windows, is
      within ``FREQ_TOLERANCE`` of nominal (Q.24: accept +-1.5 %, reject +-3.5 %);
    - each tone reaches ``MIN_TONE_LEVEL_DBM0``;
    - twist is within ``MAX_NORMAL_TWIST_DB`` / ``MAX_REVERSE_TWIST_DB``;
    - the two tones carry ``MIN_TONE_ENERGY_RATIO`` of the window's energy.

    Over the valid windows of a tone, each frequency must stay within
    ``MAX_FREQ_SPREAD`` (real generators are stable; the harmonics of a voice glide).

    ``MIN_VALID_RUN`` consecutive valid windows start a tone. Its duration is the
    number of window centres at which both of its tones are at least half their peak
    amplitude (which is where a window centre lies inside the tone), times 2.5 ms.
    The tone ends after ``MIN_PAUSE_MS`` below half level, and is reported as a
    ``DtmfDigit(source="inband")`` when it lasted at least ``DURATION_DECISION_MS``.
    """

    def __init__(self) -> None:
        self._history = np.zeros(WINDOW - HOP, dtype=np.float64)
        self._prev_x: np.ndarray | None = None
        self._backlog = np.zeros((0, len(FREQS)), dtype=np.float64)
        self._run_digit: str | None = None
        self._run_length = 0
        self._tone: _Tone | None = None
        self.rejected_short = 0
        self.rejected_unstable = 0

    def __repr__(self) -> str:
        current = self._tone.digit if self._tone else None
        return f"<GoertzelDetector tone={current!r}>"

    def process(self, frame: np.ndarray) -> list[DtmfDigit]:
        """Feed one frame (any multiple of 20 samples); returns completed digits."""
        samples = np.asarray(frame)
        if samples.size % HOP:
            raise ValueError(f"frame length must be a multiple of {HOP} samples")
        if samples.size > len(_WINDOW_INDEX) * HOP:
            step = len(_WINDOW_INDEX) * HOP
            chunks = (samples[i:i + step] for i in range(0, samples.size, step))
            return [digit for chunk in chunks for digit in self.process(chunk)]
        buffer = np.concatenate((self._history, samples.astype(np.float64)))
        self._history = buffer[-(WINDOW - HOP):]
        hops = samples.size // HOP
        windows = buffer[_WINDOW_INDEX[:hops]]  # (hops, WINDOW), one every HOP samples
        spectrum = windows @ _BASIS  # (hops, 8) complex: the Goertzel filter bank
        power = spectrum.real**2 + spectrum.imag**2
        energy = (windows * windows) @ _WINDOW_SQ  # windowed energy per hop
        # Cheap gate: even with the worst scalloping inside the tolerance, the two
        # strongest bins must explain a good part of the energy; speech rarely does.
        best = power[:, :4].max(axis=1) + power[:, 4:].max(axis=1)
        candidate = best * _POWER_TO_ENERGY >= _GATE_RATIO * energy
        previous = self._prev_x
        self._prev_x = spectrum[-1]
        magnitude = np.sqrt(power)
        if self._tone is None and not candidate.any():
            self._run_digit, self._run_length = None, 0
            self._backlog = np.concatenate((self._backlog, magnitude))[-BACKLOG_HOPS:]
            return []
        valid, off_low, off_high = self._validate(previous, spectrum, magnitude, energy)
        out: list[DtmfDigit] = []
        for hop, digit in enumerate(valid):
            if digit is not None and self._tone is not None and digit == self._tone.digit:
                self._tone.offsets.append((float(off_low[hop]), float(off_high[hop])))
            self._step(hop, digit, magnitude, out)
        self._backlog = np.concatenate((self._backlog, magnitude))[-BACKLOG_HOPS:]
        return out

    def _validate(
        self,
        previous_x: np.ndarray | None,
        spectrum: np.ndarray,
        magnitude: np.ndarray,
        energy: np.ndarray,
    ) -> tuple[list[str | None], np.ndarray, np.ndarray]:
        """Digit per hop (or None) and the relative frequency offsets of its tones."""
        first = previous_x if previous_x is not None else np.zeros_like(spectrum[0])
        previous = np.vstack((first, spectrum[:-1]))
        advance = spectrum * np.conj(previous) * _HOP_ROTATION
        offset_hz = np.angle(advance) * SAMPLE_RATE / (2 * np.pi * HOP)
        rows = np.arange(len(spectrum))
        low = np.argmax(magnitude[:, :4], axis=1)
        high = np.argmax(magnitude[:, 4:], axis=1) + 4
        off_low, off_high = offset_hz[rows, low], offset_hz[rows, high]
        amp_low = 2 * magnitude[rows, low] / (_WINDOW_SUM * np.interp(off_low, _GAIN_GRID, _GAIN))
        amp_high = (
            2 * magnitude[rows, high] / (_WINDOW_SUM * np.interp(off_high, _GAIN_GRID, _GAIN))
        )
        tone_energy = (amp_low**2 + amp_high**2) / 2 * _WINDOW_SQ_SUM
        with np.errstate(divide="ignore", invalid="ignore"):
            twist_db = 20 * np.log10(amp_low / amp_high)
            ratio = tone_energy / energy
        ok = (
            (np.abs(off_low) <= FREQ_TOLERANCE * FREQS[low])
            & (np.abs(off_high) <= FREQ_TOLERANCE * FREQS[high])
            & (amp_low >= _MIN_AMPLITUDE)
            & (amp_high >= _MIN_AMPLITUDE)
            & (twist_db <= MAX_NORMAL_TWIST_DB)
            & (twist_db >= -MAX_REVERSE_TWIST_DB)
            & (ratio >= MIN_TONE_ENERGY_RATIO)
            & (np.abs(advance[rows, low]) > 0)
            & (np.abs(advance[rows, high]) > 0)
        )
        digits = [
            _DIGIT_BY_PAIR[(int(lo), int(hi) - 4)] if good else None
            for lo, hi, good in zip(low, high, ok)
        ]
        return digits, off_low / FREQS[low], off_high / FREQS[high]

    def _step(self, hop: int, digit: str | None, magnitude: np.ndarray, out: list[DtmfDigit]) -> None:
        if digit is not None and digit == self._run_digit:
            self._run_length += 1
        else:
            self._run_digit, self._run_length = digit, (1 if digit else 0)
        tone = self._tone
        if tone is not None:
            low_level = float(magnitude[hop, tone.low])
            high_level = float(magnitude[hop, tone.high])
            tone.levels.append((low_level, high_level))
            tone.low_peak = max(tone.low_peak, low_level)
            tone.high_peak = max(tone.high_peak, high_level)
            inside = (
                low_level >= HALF_LEVEL * tone.low_peak
                and high_level >= HALF_LEVEL * tone.high_peak
            )
            tone.below = 0 if inside else tone.below + 1
            too_long = len(tone.levels) * HOP * 1000 >= MAX_TONE_MS * SAMPLE_RATE
            other = digit is not None and digit != tone.digit and self._run_length >= MIN_VALID_RUN
            if tone.below >= PAUSE_HOPS or too_long or other:
                self._finish(out)
                tone = None
        if tone is None and self._run_length >= MIN_VALID_RUN and self._run_digit is not None:
            self._start(self._run_digit, hop, magnitude)

    def _start(self, digit: str, hop: int, magnitude: np.ndarray) -> None:
        lo_freq, hi_freq = DTMF_FREQUENCIES[digit]
        low, high = DTMF_LOW.index(lo_freq), DTMF_HIGH.index(hi_freq) + 4
        recent = np.concatenate((self._backlog, magnitude[: hop + 1]))[-BACKLOG_HOPS:]
        levels = [(float(row[low]), float(row[high])) for row in recent]
        low_peak, high_peak = levels[-1]
        self._tone = _Tone(digit, low, high, levels, len(levels) - 1, 0, low_peak, high_peak)

    def _finish(self, out: list[DtmfDigit]) -> None:
        tone = self._tone
        self._tone = None
        if tone is None:
            return
        levels = np.array(tone.levels)
        peaks = levels[tone.confirm_at:].max(axis=0)
        inside = np.all(levels >= HALF_LEVEL * peaks, axis=1)
        start = tone.confirm_at
        while start > 0 and inside[start - 1]:
            start -= 1
        duration_ms = float(np.count_nonzero(inside[start:])) * HOP * 1000 / SAMPLE_RATE
        if duration_ms < DURATION_DECISION_MS:
            self.rejected_short += 1
            logger.debug("in-band %s rejected: %.1f ms", tone.digit, duration_ms)
            return
        valid_windows = MIN_VALID_RUN + len(tone.offsets)
        inside_hops = duration_ms * SAMPLE_RATE / 1000 / HOP
        if valid_windows < max(MIN_VALID_WINDOWS, VALID_SHARE * inside_hops):
            self.rejected_unstable += 1
            logger.debug("in-band %s rejected: %d valid windows", tone.digit, valid_windows)
            return
        if tone.offsets:
            spread = np.ptp(np.array(tone.offsets), axis=0).max()
            if spread > MAX_FREQ_SPREAD:
                # a DTMF generator is crystal-stable; voiced speech glides
                self.rejected_unstable += 1
                logger.debug("in-band %s rejected: frequency spread %.4f", tone.digit, spread)
                return
        out.append(DtmfDigit(tone.digit, int(math.floor(duration_ms + 0.5)), "inband"))
