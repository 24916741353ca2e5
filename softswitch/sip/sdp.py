"""SDP for a B2BUA that anchors media: RFC 4566 parse/serialise, RFC 3264 offer/answer.

Sections used:

* RFC 4566 §5 (line grammar and order ``v o s i u e p c b t r z k a`` / ``m i c b k a``),
  §6 (``rtpmap``, ``fmtp``, ``ptime``, the direction attributes).
* RFC 3264 §5 (generating an offer), §6 and §6.1 (the answer: same number of ``m=`` lines,
  rejected streams get port 0, codecs in the offerer's order, reciprocal direction),
  §8.4 (RFC 2543 style hold: ``c=0.0.0.0``).
* RFC 3551 §6 (static payload types; G.722 is sampled at 16 kHz but its RTP clock is 8000).
* RFC 4733 §2.5 (``telephone-event``: same clock rate as the audio codec, events ``0-16``).
* RFC 3605 (``a=rtcp``).

Errors::

    SipError (softswitch.sip.errors)
     └── SdpError (also ValueError)   400  the peer sent an SDP body we cannot parse
          └── NoCommonCodec           488  nothing in the offer we can receive

The B2BUA answers each leg itself (:func:`build_answer`), offers to the other leg
(:func:`build_offer`) or forwards the peer's SDP with our media address
(:func:`rewrite`). Only plain RTP is anchored: ICE, SDES/DTLS keying and rtcp-mux are
dropped on rewrite, and SRTP profiles are not answered.

Deliberate simplifications (written down so nobody has to rediscover them):

* The direction of a media stream is stored as its effective value (a session-level
  direction attribute is folded into every stream that has none), and :meth:`serialize`
  always writes it explicitly at media level.
* ``a=rtcp`` keeps only the port (an explicit RTCP address is dropped).
* Only one audio stream is anchored; further audio streams and all other media are
  rejected (port 0) by :func:`build_answer` and disabled by :func:`rewrite`.
"""
from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

from .errors import SipError

logger = logging.getLogger(__name__)

# --- limits on what a peer can make us hold -----------------------------------------------
MAX_SDP_SIZE = 32 * 1024
"""Bytes of one SDP body; far above any real audio/video offer (typically < 2 KiB)."""
MAX_SDP_LINES = 1000
"""Lines of one SDP body."""
MAX_MEDIA_STREAMS = 32
"""``m=`` lines of one SDP body."""
MAX_FORMATS = 128
"""Formats on one ``m=`` line (RTP payload types are 7 bits: 0..127)."""
MAX_PORT = 65535

# --- directions, RFC 4566 §6 / RFC 3264 §6.1 --------------------------------------------------
SENDRECV = "sendrecv"
SENDONLY = "sendonly"
RECVONLY = "recvonly"
INACTIVE = "inactive"
DIRECTIONS = frozenset({SENDRECV, SENDONLY, RECVONLY, INACTIVE})

_SEND = 1
_RECV = 2
_DIRECTION_BITS = {SENDRECV: _SEND | _RECV, SENDONLY: _SEND, RECVONLY: _RECV, INACTIVE: 0}
_BITS_DIRECTION = {bits: name for name, bits in _DIRECTION_BITS.items()}

HOLD_ADDRESSES = frozenset({"0.0.0.0", "::"})
"""RFC 3264 §8.4: RFC 2543 put a stream on hold by setting its connection address to 0.0.0.0."""

# --- payload types -------------------------------------------------------------------------
STATIC_PAYLOAD_TYPES: dict[int, tuple[str, int, str | None]] = {
    # RFC 3551 §6, table 4. G722's RTP clock is 8000 although it samples at 16 kHz.
    0: ("PCMU", 8000, None),
    3: ("GSM", 8000, None),
    4: ("G723", 8000, None),
    8: ("PCMA", 8000, None),
    9: ("G722", 8000, None),
    13: ("CN", 8000, None),
    18: ("G729", 8000, None),
}
TELEPHONE_EVENT = "telephone-event"
TELEPHONE_EVENT_FMTP = "0-16"
"""RFC 4733 §3.2: DTMF 0-9 * # A-D and flash."""
DEFAULT_SUPPORTED: tuple[str, ...] = ("PCMU", "PCMA", TELEPHONE_EVENT)
DEFAULT_PTIME = 20
SESSION_NAME = "softswitch"
ORIGIN_USERNAME = "softswitch"

ANSWERABLE_PROTOS = frozenset({"RTP/AVP", "RTP/AVPF"})
"""Profiles we anchor: plain RTP (we cannot terminate SRTP)."""
_PLAIN_PROTO = {
    "RTP/SAVP": "RTP/AVP",
    "RTP/SAVPF": "RTP/AVPF",
    "UDP/TLS/RTP/SAVP": "RTP/AVP",
    "UDP/TLS/RTP/SAVPF": "RTP/AVPF",
}
DROPPED_ATTRIBUTES = frozenset({
    # ICE (RFC 8839): candidates point at the peer, not at our relay.
    "candidate", "remote-candidates", "end-of-candidates", "ice-ufrag", "ice-pwd",
    "ice-options", "ice-lite", "ice-mismatch", "ice-pacing",
    # Keying (RFC 4568 SDES, RFC 8122/5763 DTLS-SRTP, RFC 4567): we relay plain RTP.
    "crypto", "fingerprint", "setup", "tls-id", "key-mgmt",
    # RTCP placement is ours to decide: port+1 on our socket pair.
    "rtcp", "rtcp-mux", "rtcp-mux-only",
})

# RFC 4566 §5 line order; ranks for the non-attribute lines we keep verbatim.
_SESSION_RANK_BEFORE_C = "iuep"
_SESSION_RANK_AFTER_C = "b"
_SESSION_RANK_AFTER_T = "zk"
_MEDIA_RANK_BEFORE_C = "i"
_MEDIA_RANK_AFTER_C = "bk"


class SdpError(SipError, ValueError):
    """The SDP body is malformed; a UAS answers 400."""

    status_code = 400
    reason = "Bad Request"


class NoCommonCodec(SdpError):
    """The offer has no audio stream with a codec we support (RFC 3261 §13.3.1.1: 488)."""

    status_code = 488
    reason = "Not Acceptable Here"


@dataclass(frozen=True)
class Origin:
    """The ``o=`` line (RFC 4566 §5.2)."""

    username: str = "-"
    sess_id: int = 0
    sess_version: int = 0
    nettype: str = "IN"
    addrtype: str = "IP4"
    address: str = "0.0.0.0"

    def __str__(self) -> str:
        return (f"{self.username} {self.sess_id} {self.sess_version} "
                f"{self.nettype} {self.addrtype} {self.address}")


@dataclass(frozen=True)
class MediaDescription:
    """One ``m=`` section (RFC 4566 §5.14) with the attributes offer/answer needs parsed."""

    media: str = "audio"
    """``audio``, ``video``, ``image``, ``application`` ..."""
    port: int = 0
    """Transport port; 0 means the stream is rejected/disabled (RFC 3264 §6)."""
    proto: str = "RTP/AVP"
    formats: list[int] = field(default_factory=list)
    """RTP payload types in preference order (empty for non-RTP protocols)."""
    connection: str | None = None
    """Media-level ``c=`` address (as written, may carry ``/ttl``); None: session-level applies."""
    rtpmap: dict[int, tuple[str, int, str | None]] = field(default_factory=dict)
    """pt -> (encoding name, clock rate, channels) from ``a=rtpmap``."""
    fmtp: dict[int, str] = field(default_factory=dict)
    direction: str = SENDRECV
    """Effective direction attribute (media level, else session level, else sendrecv)."""
    rtcp_port: int | None = None
    """``a=rtcp`` port (RFC 3605); None: RTP port + 1."""
    ptime: int | None = None
    other_attributes: list[str] = field(default_factory=list)
    """Every other ``a=`` line, without the ``a=`` prefix, in order."""
    other_lines: list[tuple[str, str]] = field(default_factory=list)
    """Media-level ``i=``, ``b=``, ``k=`` (and unknown types) as (type, value)."""
    port_count: int = 1
    """The ``/<number of ports>`` suffix of the ``m=`` port (RFC 4566 §5.14)."""
    format_tokens: list[str] = field(default_factory=list)
    """The format list of a non-RTP ``m=`` line (``t38``, ``*``...)."""

    @property
    def is_rtp(self) -> bool:
        return "RTP/" in self.proto

    def codec(self, pt: int) -> tuple[str, int, str | None] | None:
        """The (encoding, clock, channels) of payload type ``pt``: rtpmap, else RFC 3551 table."""
        return self.rtpmap.get(pt) or STATIC_PAYLOAD_TYPES.get(pt)

    def codec_names(self) -> list[str]:
        names = []
        for pt in self.formats:
            desc = self.codec(pt)
            names.append(f"{desc[0]}/{desc[1]}" if desc else str(pt))
        return names


@dataclass(frozen=True)
class SessionDescription:
    """A whole SDP body (RFC 4566 §5)."""

    version: int = 0
    origin: Origin = field(default_factory=Origin)
    session_name: str = SESSION_NAME
    connection: str | None = None
    """Session-level ``c=`` address."""
    times: list[tuple[str, str]] = field(default_factory=lambda: [("t", "0 0")])
    """The ``t=`` and ``r=`` lines in order, as (type, value)."""
    media: list[MediaDescription] = field(default_factory=list)
    attributes: list[str] = field(default_factory=list)
    """Session-level ``a=`` lines without the prefix (direction attributes are folded into media)."""
    other_lines: list[tuple[str, str]] = field(default_factory=list)
    """Session-level ``i= u= e= p= b= z= k=`` (and unknown types) as (type, value)."""

    # --- parsing ---------------------------------------------------------------------------
    @classmethod
    def parse(cls, text: str | bytes) -> SessionDescription:
        """Parse an SDP body; raise :class:`SdpError` naming the offending line."""
        if len(text) > MAX_SDP_SIZE:
            raise SdpError(f"SDP body of {len(text)} bytes exceeds {MAX_SDP_SIZE}")
        if isinstance(text, (bytes, bytearray, memoryview)):
            try:
                text = bytes(text).decode("utf-8")
            except UnicodeDecodeError as exc:
                raise SdpError(f"SDP is not UTF-8 (byte {exc.start})") from None
        return _Parser().run(text)

    # --- serialising -----------------------------------------------------------------------
    def serialize(self) -> bytes:
        """The SDP body with CRLF line endings in RFC 4566 §5 order."""
        out = [f"v={self.version}", f"o={self.origin}", f"s={self.session_name or ' '}"]
        out += _ranked(self.other_lines, _SESSION_RANK_BEFORE_C)
        if self.connection is not None:
            out.append(_c_line(self.connection))
        out += _ranked(self.other_lines, _SESSION_RANK_AFTER_C)
        out += [f"{kind}={value}" for kind, value in self.times]
        out += _ranked(self.other_lines, _SESSION_RANK_AFTER_T)
        out += _unranked(self.other_lines, _SESSION_RANK_BEFORE_C + _SESSION_RANK_AFTER_C
                         + _SESSION_RANK_AFTER_T)
        out += [f"a={attr}" for attr in self.attributes]
        for m in self.media:
            out += _media_lines(m)
        return ("\r\n".join(out) + "\r\n").encode("utf-8")

    # --- queries ---------------------------------------------------------------------------
    def audio(self) -> MediaDescription | None:
        """The audio stream we anchor: the first active audio ``m=``, else the first audio one."""
        first = None
        for m in self.media:
            if m.media == "audio":
                if m.port != 0:
                    return m
                first = first or m
        return first

    def media_address(self, m: MediaDescription) -> str | None:
        """Where to send ``m``'s media: media-level ``c=``, else session-level (without /ttl)."""
        address = m.connection if m.connection is not None else self.connection
        return None if address is None else address.split("/", 1)[0]


# --- parser --------------------------------------------------------------------------------
class _Parser:
    """One pass over the lines of an SDP body; keeps the state of the section being read."""

    def __init__(self) -> None:
        self.version: int | None = None
        self.origin: Origin | None = None
        self.session_name = ""
        self.connection: str | None = None
        self.times: list[tuple[str, str]] = []
        self.attributes: list[str] = []
        self.other_lines: list[tuple[str, str]] = []
        self.session_direction: str | None = None
        self.media: list[dict] = []
        self.number = 0

    def error(self, message: str) -> SdpError:
        return SdpError(f"line {self.number}: {message}")

    def run(self, text: str) -> SessionDescription:
        lines = text.split("\n")
        if len(lines) > MAX_SDP_LINES:
            raise SdpError(f"SDP has {len(lines)} lines, more than {MAX_SDP_LINES}")
        seen_any = False
        for self.number, raw in enumerate(lines, 1):
            line = raw.rstrip("\r")
            if not line.strip():
                continue
            kind = line[0]
            if len(line) < 2 or line[1] != "=" or not ("a" <= kind <= "z"):
                raise self.error(f"expected '<type>=<value>', got {line[:40]!r}")
            value = line[2:]
            if not seen_any and kind != "v":
                raise self.error(f"SDP must start with v=, got {kind}=")
            seen_any = True
            self.line(kind, value)
        return self.finish()

    def line(self, kind: str, value: str) -> None:
        in_media = bool(self.media)
        if kind == "v":
            if self.version is not None or in_media:
                raise self.error("duplicate v= line")
            if value.strip() != "0":
                raise self.error(f"unsupported SDP version {value!r}")
            self.version = 0
        elif kind == "o":
            self.origin = self.parse_origin(value)
        elif kind == "s":
            self.session_name = value
        elif kind == "c":
            address = self.parse_connection(value)
            if in_media:
                self.media[-1]["connection"] = address
            else:
                self.connection = address
        elif kind == "m":
            if len(self.media) >= MAX_MEDIA_STREAMS:
                raise self.error(f"more than {MAX_MEDIA_STREAMS} m= lines")
            self.media.append(self.parse_m(value))
        elif kind == "a":
            if in_media:
                self.media_attribute(self.media[-1], value)
            elif value.strip() in DIRECTIONS:
                self.session_direction = value.strip()
            else:
                self.attributes.append(value)
        elif kind in "tr" and not in_media:
            self.times.append((kind, value))
        elif in_media:
            self.media[-1]["other_lines"].append((kind, value))
        else:
            self.other_lines.append((kind, value))

    def parse_origin(self, value: str) -> Origin:
        parts = value.split()
        if len(parts) != 6:
            raise self.error(f"o= needs 6 fields, got {len(parts)}")
        username, sess_id, sess_version, nettype, addrtype, address = parts
        if not (sess_id.isdigit() and sess_version.isdigit()):
            raise self.error(f"o= sess-id/sess-version must be numeric: {sess_id!r} {sess_version!r}")
        return Origin(username, int(sess_id), int(sess_version), nettype, addrtype, address)

    def parse_connection(self, value: str) -> str:
        parts = value.split()
        if len(parts) != 3:
            raise self.error(f"c= needs '<nettype> <addrtype> <address>', got {value!r}")
        return parts[2]

    def parse_m(self, value: str) -> dict:
        parts = value.split()
        if len(parts) < 3:
            raise self.error(f"m= needs '<media> <port> <proto> <fmt> ...', got {value!r}")
        media, port_text, proto, *fmts = parts
        port_text, slash, count_text = port_text.partition("/")
        if not port_text.isdigit() or int(port_text) > MAX_PORT:
            raise self.error(f"bad port {parts[1]!r} in m= line")
        if slash and not (count_text.isdigit() and int(count_text) >= 1):
            raise self.error(f"bad port count {parts[1]!r} in m= line")
        if len(fmts) > MAX_FORMATS:
            raise self.error(f"more than {MAX_FORMATS} formats in m= line")
        entry: dict = {
            "media": media, "port": int(port_text), "proto": proto,
            "port_count": int(count_text) if slash else 1,
            "formats": [], "format_tokens": [], "rtpmap": {}, "fmtp": {},
            "other_attributes": [], "other_lines": [],
        }
        if "RTP/" in proto:
            entry["formats"] = [self.payload_type(fmt, "m= line") for fmt in fmts]
        else:
            entry["format_tokens"] = fmts
        return entry

    def payload_type(self, text: str, where: str) -> int:
        if not text.isdigit() or int(text) > 127:
            raise self.error(f"bad RTP payload type {text!r} in {where}")
        return int(text)

    def media_attribute(self, entry: dict, value: str) -> None:
        name, colon, rest = value.partition(":")
        if name == "rtpmap" and colon:
            pt_text, _, encoding = rest.strip().partition(" ")
            pt = self.payload_type(pt_text, "a=rtpmap")
            parts = encoding.strip().split("/")
            if len(parts) not in (2, 3) or not parts[0] or not parts[1].isdigit():
                raise self.error(f"a=rtpmap needs '<pt> <encoding>/<clock>[/<channels>]', got {value!r}")
            entry["rtpmap"][pt] = (parts[0], int(parts[1]), parts[2] if len(parts) == 3 else None)
        elif name == "fmtp" and colon and "RTP/" in entry["proto"] and rest.split(" ", 1)[0].isdigit():
            pt_text, _, params = rest.partition(" ")
            entry["fmtp"][self.payload_type(pt_text, "a=fmtp")] = params.strip()
        elif name == "ptime" and colon:
            try:
                entry["ptime"] = int(float(rest.strip()))
            except ValueError:
                raise self.error(f"bad a=ptime value {rest!r}") from None
        elif name == "rtcp" and colon:
            port_text = rest.split(None, 1)[0] if rest.strip() else ""
            if not port_text.isdigit() or int(port_text) > MAX_PORT:
                raise self.error(f"bad a=rtcp port {rest!r}")
            entry["rtcp_port"] = int(port_text)
        elif value.strip() in DIRECTIONS:
            entry["direction"] = value.strip()
        else:
            entry["other_attributes"].append(value)

    def finish(self) -> SessionDescription:
        if self.version is None:
            raise SdpError("SDP has no v= line")
        if self.origin is None:
            raise SdpError("SDP has no o= line")
        if not self.media:
            raise SdpError("SDP has no m= line")
        default_direction = self.session_direction or SENDRECV
        media = []
        for entry in self.media:
            entry.setdefault("direction", default_direction)
            media.append(MediaDescription(**entry))
        return SessionDescription(
            version=self.version, origin=self.origin, session_name=self.session_name,
            connection=self.connection, times=self.times or [("t", "0 0")], media=media,
            attributes=self.attributes, other_lines=self.other_lines,
        )


# --- serialising helpers -------------------------------------------------------------------
def _addrtype(address: str) -> str:
    return "IP6" if ":" in address else "IP4"


def _c_line(address: str) -> str:
    return f"c=IN {_addrtype(address)} {address}"


def _ranked(lines: list[tuple[str, str]], kinds: str) -> list[str]:
    """The lines whose type is in ``kinds``, ordered as ``kinds`` lists them (stable)."""
    return [f"{kind}={value}" for wanted in kinds for kind, value in lines if kind == wanted]


def _unranked(lines: list[tuple[str, str]], known: str) -> list[str]:
    return [f"{kind}={value}" for kind, value in lines if kind not in known]


def _media_lines(m: MediaDescription) -> list[str]:
    port = f"{m.port}/{m.port_count}" if m.port_count != 1 else str(m.port)
    fmts = [str(pt) for pt in m.formats] if m.formats else m.format_tokens
    out = [" ".join([f"m={m.media}", port, m.proto, *fmts])]
    out += _ranked(m.other_lines, _MEDIA_RANK_BEFORE_C)
    if m.connection is not None:
        out.append(_c_line(m.connection))
    out += _ranked(m.other_lines, _MEDIA_RANK_AFTER_C)
    out += _unranked(m.other_lines, _MEDIA_RANK_BEFORE_C + _MEDIA_RANK_AFTER_C)
    if m.rtcp_port is not None:
        out.append(f"a=rtcp:{m.rtcp_port}")
    listed = set(m.formats)
    for pt in [*m.formats, *(pt for pt in m.rtpmap if pt not in listed)]:
        if pt in m.rtpmap:
            name, clock, channels = m.rtpmap[pt]
            out.append(f"a=rtpmap:{pt} {name}/{clock}" + (f"/{channels}" if channels else ""))
        if pt in m.fmtp:
            out.append(f"a=fmtp:{pt} {m.fmtp[pt]}")
    if m.ptime is not None:
        out.append(f"a=ptime:{m.ptime}")
    out += [f"a={attr}" for attr in m.other_attributes]
    out.append(f"a={m.direction}")
    return out


# --- directions ----------------------------------------------------------------------------
def direction_of(m: MediaDescription, sdp: SessionDescription | None = None) -> str:
    """The effective direction of ``m``, counting port 0 as inactive and RFC 2543 hold.

    RFC 3264 §8.4: a connection address of 0.0.0.0 (pass ``sdp`` so a session-level ``c=``
    is seen) means "do not send to me", so it removes the receive half of the attribute.
    """
    if m.port == 0:
        return INACTIVE
    try:
        bits = _DIRECTION_BITS[m.direction]
    except KeyError:
        raise SdpError(f"unknown direction {m.direction!r}") from None
    address = m.connection if m.connection is not None else (sdp.connection if sdp else None)
    if address is not None and address.split("/", 1)[0] in HOLD_ADDRESSES:
        bits &= ~_RECV
    return _BITS_DIRECTION[bits]


def reverse_direction(direction: str) -> str:
    """The reciprocal direction an answer takes (RFC 3264 §6.1): send <-> recv swapped."""
    try:
        bits = _DIRECTION_BITS[direction]
    except KeyError:
        raise SdpError(f"unknown direction {direction!r}") from None
    swapped = (_SEND if bits & _RECV else 0) | (_RECV if bits & _SEND else 0)
    return _BITS_DIRECTION[swapped]


def _intersect(a: str, b: str) -> str:
    return _BITS_DIRECTION[_DIRECTION_BITS[a] & _DIRECTION_BITS[b]]


# --- offer/answer --------------------------------------------------------------------------
def _supported_table(supported: Sequence[str]) -> dict[str, tuple[str, int | None]]:
    """``["PCMU", "opus/48000"]`` -> {lowercase name: (our spelling, clock or None)}."""
    table: dict[str, tuple[str, int | None]] = {}
    for entry in supported:
        name, _, clock = entry.partition("/")
        table.setdefault(name.lower(), (name, int(clock) if clock else None))
    return table


def _common_codecs(m: MediaDescription, supported: Sequence[str]) -> list[tuple[int, str, int]]:
    table = _supported_table(supported)
    common: list[tuple[int, str, int]] = []
    for pt in m.formats:
        desc = m.codec(pt)
        if desc is None:
            continue  # dynamic payload type without rtpmap: nothing we can decode
        ours = table.get(desc[0].lower())
        if ours is None or (ours[1] is not None and ours[1] != desc[1]):
            continue
        common.append((pt, ours[0], desc[1]))
    audio = [c for c in common if c[1].lower() != TELEPHONE_EVENT]
    if not audio:
        return []  # telephone-event alone carries no audio
    # RFC 4733 §2.5.1.2: events use the clock of the audio codec; one event pt suffices.
    clock = audio[0][2]
    chosen_event = next((c for c in common if c[1].lower() == TELEPHONE_EVENT and c[2] == clock), None)
    return [c for c in common if c in audio or c is chosen_event]


def _answerable(m: MediaDescription) -> bool:
    return m.media == "audio" and m.port != 0 and m.proto in ANSWERABLE_PROTOS


def negotiate(offer: SessionDescription,
              supported: Sequence[str] = DEFAULT_SUPPORTED) -> list[tuple[int, str, int]]:
    """The offered codecs we support, in the offerer's order (RFC 3264 §6.1), as (pt, name, clock).

    Looks at the first answerable audio stream (plain RTP, port not 0) that has a common
    codec. ``supported`` holds encoding names, optionally with a clock (``"opus/48000"``);
    names come back spelled as in ``supported``. ``telephone-event`` is included once, only
    at the clock of the first audio codec, and only when an audio codec matched.
    """
    for m in offer.media:
        if _answerable(m):
            common = _common_codecs(m, supported)
            if common:
                return common
    return []


def _rejected(m: MediaDescription) -> MediaDescription:
    """RFC 3264 §6: a rejected stream keeps its m= line, with port 0 and the offered formats."""
    return MediaDescription(media=m.media, port=0, proto=m.proto, formats=list(m.formats),
                            format_tokens=list(m.format_tokens), direction=INACTIVE)


def build_answer(offer: SessionDescription, *, address: str, port: int,
                 supported: Sequence[str] = DEFAULT_SUPPORTED, session_id: int,
                 session_version: int, direction: str | None = None) -> SessionDescription:
    """Our answer to ``offer``: we receive at ``address``:``port`` (RFC 3264 §6).

    The first answerable audio stream with a common codec is accepted with the common
    codecs in the offerer's order (telephone-event under the offerer's payload type); every
    other stream is rejected with port 0, so the answer has as many m= lines as the offer.
    The direction is the reciprocal of the offer's (RFC 3264 §6.1), further limited by
    ``direction`` when given (e.g. ``sendonly`` when we hold). Raises :class:`NoCommonCodec`.
    """
    if direction is not None and direction not in DIRECTIONS:
        raise SdpError(f"unknown direction {direction!r}")
    media: list[MediaDescription] = []
    accepted = False
    for m in offer.media:
        codecs = _common_codecs(m, supported) if not accepted and _answerable(m) else []
        if not codecs:
            media.append(_rejected(m))
            continue
        accepted = True
        answer_direction = reverse_direction(direction_of(m, offer))
        if direction is not None:
            answer_direction = _intersect(answer_direction, direction)
        rtpmap = {pt: (name, clock, m.codec(pt)[2]) for pt, name, clock in codecs}  # type: ignore[index]
        fmtp = {pt: (TELEPHONE_EVENT_FMTP if name.lower() == TELEPHONE_EVENT else m.fmtp[pt])
                for pt, name, _ in codecs
                if name.lower() == TELEPHONE_EVENT or pt in m.fmtp}
        media.append(MediaDescription(
            media="audio", port=port, proto=m.proto, formats=[pt for pt, _, _ in codecs],
            rtpmap=rtpmap, fmtp=fmtp, direction=answer_direction, ptime=m.ptime,
        ))
    if not accepted:
        offered = "; ".join(f"{m.media} {m.port} {m.proto} {' '.join(m.codec_names())}"
                            for m in offer.media)
        raise NoCommonCodec(f"no common audio codec; offered: {offered}"[:200])
    return SessionDescription(
        origin=Origin(ORIGIN_USERNAME, session_id, session_version, "IN", _addrtype(address), address),
        session_name=SESSION_NAME, connection=address, media=media,
    )


def build_offer(*, address: str, port: int, codecs: Sequence[tuple[int, str, int]],
                direction: str = SENDRECV, session_id: int, session_version: int,
                ptime: int | None = DEFAULT_PTIME) -> SessionDescription:
    """An offer with one audio stream at ``address``:``port`` (RFC 3264 §5).

    Every codec gets an ``a=rtpmap`` (also the static ones, which RFC 3264 §5.1 allows and
    many phones expect); ``telephone-event`` gets ``fmtp 0-16``.
    """
    if direction not in DIRECTIONS:
        raise SdpError(f"unknown direction {direction!r}")
    rtpmap = {pt: (name, clock, None) for pt, name, clock in codecs}
    fmtp = {pt: TELEPHONE_EVENT_FMTP for pt, name, _ in codecs if name.lower() == TELEPHONE_EVENT}
    audio = MediaDescription(media="audio", port=port, proto="RTP/AVP",
                             formats=[pt for pt, _, _ in codecs], rtpmap=rtpmap, fmtp=fmtp,
                             direction=direction, ptime=ptime)
    return SessionDescription(
        origin=Origin(ORIGIN_USERNAME, session_id, session_version, "IN", _addrtype(address), address),
        session_name=SESSION_NAME, connection=address, media=[audio],
    )


def _strip_attributes(attributes: list[str]) -> list[str]:
    return [a for a in attributes if a.partition(":")[0].strip() not in DROPPED_ATTRIBUTES]


def rewrite(sdp: SessionDescription, *, address: str, port: int, session_id: int,
            session_version: int) -> SessionDescription:
    """A copy of ``sdp`` with the media anchored on us (what a B2BUA forwards to the other leg).

    * every ``c=`` becomes ``address``; the origin becomes ours;
    * the anchored audio stream (:meth:`SessionDescription.audio`) gets ``port``; streams
      already at port 0 stay at 0, and every other stream is disabled (port 0) since we
      cannot relay it;
    * ``a=rtcp`` is removed (our RTCP is on port + 1), and so are ICE, SDES/DTLS keying
      and rtcp-mux; an SRTP profile becomes its plain RTP counterpart;
    * codecs and directions are kept, except that an RFC 2543 hold (``c=0.0.0.0``) is
      made explicit (``sendonly``/``inactive``), because the 0.0.0.0 is replaced.
    """
    anchored = sdp.audio()
    media: list[MediaDescription] = []
    for m in sdp.media:
        keep = m is anchored and m.port != 0
        media.append(replace(
            m,
            port=port if keep else 0,
            port_count=1 if keep else m.port_count,
            proto=_PLAIN_PROTO.get(m.proto, m.proto) if keep else m.proto,
            connection=address if m.connection is not None else None,
            direction=direction_of(m, sdp) if keep else m.direction,
            rtcp_port=None,
            other_attributes=_strip_attributes(m.other_attributes),
        ))
    return replace(
        sdp,
        origin=Origin(ORIGIN_USERNAME, session_id, session_version, "IN", _addrtype(address), address),
        connection=address if sdp.connection is not None or any(m.connection is None for m in media)
        else None,
        media=media,
        attributes=_strip_attributes(sdp.attributes),
    )


__all__ = [
    "DEFAULT_SUPPORTED", "DIRECTIONS", "INACTIVE", "MediaDescription", "NoCommonCodec",
    "Origin", "RECVONLY", "SENDONLY", "SENDRECV", "STATIC_PAYLOAD_TYPES", "SdpError",
    "SessionDescription", "TELEPHONE_EVENT", "build_answer", "build_offer", "direction_of",
    "negotiate", "reverse_direction", "rewrite",
]
