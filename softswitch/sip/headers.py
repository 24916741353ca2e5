"""Header names and the structured header values the core interprets (RFC 3261 §7.3, §20).

Header names compare case-insensitively and have compact forms (§7.3.3); both map to one
canonical spelling here. Only the headers in ``LIST_HEADERS`` may be combined with commas
(§7.3.1); Authorization-like headers contain commas inside one value and are never split.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

from .errors import ParseError
from .uri import format_params, is_token, parse_params, split_unquoted

# RFC 3261 §7.3.3 and the RFCs that added compact forms (3265, 3515, 3892, 4028, 3841, 4474).
COMPACT_FORMS = {
    "i": "Call-ID", "m": "Contact", "e": "Content-Encoding", "l": "Content-Length",
    "c": "Content-Type", "f": "From", "s": "Subject", "k": "Supported", "t": "To", "v": "Via",
    "o": "Event", "r": "Refer-To", "b": "Referred-By", "u": "Allow-Events", "x": "Session-Expires",
    "a": "Accept-Contact", "j": "Reject-Contact", "d": "Request-Disposition", "y": "Identity",
    "n": "Identity-Info",
}
_CANONICAL = {name.lower(): name for name in (
    "Accept", "Accept-Encoding", "Accept-Language", "Alert-Info", "Allow", "Allow-Events",
    "Authentication-Info", "Authorization", "Call-ID", "Call-Info", "Contact", "Content-Disposition",
    "Content-Encoding", "Content-Language", "Content-Length", "Content-Type", "CSeq", "Date",
    "Error-Info", "Event", "Expires", "From", "In-Reply-To", "Max-Forwards", "Min-Expires",
    "MIME-Version", "Organization", "P-Asserted-Identity", "Priority", "Privacy", "Proxy-Authenticate",
    "Proxy-Authorization", "Proxy-Require", "Reason", "Record-Route", "Refer-To", "Referred-By",
    "Replaces", "Reply-To", "Require", "Retry-After", "Route", "RSeq", "RAck", "Server",
    "Session-Expires", "Min-SE", "Subject", "Subscription-State", "Supported", "Timestamp", "To",
    "Unsupported", "User-Agent", "Via", "Warning", "WWW-Authenticate", "Path",
)}
for _short, _full in COMPACT_FORMS.items():
    _CANONICAL[_short] = _full

# Headers whose values are comma-separated lists (RFC 3261 §7.3.1 "#" rules).
LIST_HEADERS = frozenset(name.lower() for name in (
    "Via", "Contact", "Route", "Record-Route", "Allow", "Supported", "Require", "Proxy-Require",
    "Unsupported", "Accept", "Accept-Encoding", "Accept-Language", "Allow-Events", "Content-Encoding",
    "Content-Language", "In-Reply-To", "Path", "Reason", "Warning", "Alert-Info", "Call-Info", "Error-Info",
))
# Headers that may appear at most once (RFC 3261 §7.3; RFC 4475 §3.3.8).
SINGLE_HEADERS = frozenset(name.lower() for name in (
    "Call-ID", "CSeq", "From", "To", "Max-Forwards", "Content-Length", "Content-Type", "Expires",
))


# Longest run of digits (after leading zeros) a scalar field may carry before it is "too big";
# keeps int() away from Python's 4300-digit conversion limit (a ValueError, not a ParseError).
MAX_SCALAR_DIGITS = 20


def parse_uint(text: str, what: str, maximum: int | None = None) -> int:
    """A header scalar (``1*DIGIT``, §25.1) as int; ASCII digits only (``str.isdigit`` also
    accepts '²' and other Unicode digits that ``int()`` rejects). Values above ``maximum``
    (or longer than ``MAX_SCALAR_DIGITS``) raise ParseError; with ``maximum=None`` an overlong
    value is clamped to ``10**MAX_SCALAR_DIGITS`` so the caller can tolerate it.
    """
    text = text.strip()
    if not text or not text.isascii() or not text.isdigit():
        raise ParseError(f"bad {what} {text[:20]!r}")
    digits = text.lstrip("0") or "0"
    if len(digits) > MAX_SCALAR_DIGITS:
        if maximum is not None:
            raise ParseError(f"{what} {text[:20]}... out of range")
        return 10**MAX_SCALAR_DIGITS
    value = int(digits)
    if maximum is not None and value > maximum:
        raise ParseError(f"{what} {text[:20]} out of range")
    return value


_CANON_CACHE: dict[str, str] = {}
_CANON_CACHE_MAX = 4096  # bounded: header names are peer-controlled


def canonical_name(name: str) -> str:
    """``v`` → ``Via``, ``call-id`` → ``Call-ID``; unknown names are capitalised per word
    (``x-foo`` → ``X-Foo``). Names compare case-insensitively (§7.3.1), so every stored name
    has one spelling and lookups compare strings exactly."""
    try:
        return _CANON_CACHE[name]
    except KeyError:
        pass
    lower = name.lower()
    canon = _CANONICAL.get(lower) or "-".join(p[:1].upper() + p[1:] for p in lower.split("-"))
    if len(_CANON_CACHE) < _CANON_CACHE_MAX:
        _CANON_CACHE[name] = canon
    return canon


@dataclass(frozen=True)
class Via:
    """One Via value: ``SIP/2.0/UDP host:port;branch=z9hG4bK...;rport;received=...`` (§20.42)."""

    transport: str
    host: str
    port: int | None = None
    params: dict[str, str | None] = field(default_factory=dict)
    protocol: str = "SIP/2.0"

    MAGIC_COOKIE = "z9hG4bK"  # RFC 3261 §8.1.1.7

    @property
    def branch(self) -> str | None:
        return self.params.get("branch")

    @property
    def sent_by(self) -> tuple[str, int | None]:
        return self.host, self.port

    def __str__(self) -> str:
        hp = self.host if self.port is None else f"{self.host}:{self.port}"
        return f"{self.protocol}/{self.transport} {hp}{format_params(self.params)}"

    @classmethod
    def parse(cls, text: str) -> "Via":
        # sent-protocol = protocol-name SLASH protocol-version SLASH transport, where
        # SLASH = SWS "/" SWS (§25.1): LWS around the slashes is legal (RFC 4475 §3.1.1.1).
        fast = _VIA_FAST.fullmatch(text)
        if fast is not None:  # the everyday shape: "SIP/2.0/UDP host:port;params"
            transport, host, port, params_text = fast.groups()
            if port is not None and int(port) > 65535:
                raise ParseError(f"bad sent-by port {port}")
            return cls(transport=transport.upper(), host=host, port=int(port) if port else None,
                       params=parse_params(params_text[1:]) if params_text else {})
        m = _VIA_RE.match(text)
        if not m:
            raise ParseError(f"bad Via {text[:80]!r}")
        name, version, transport, rest = m.groups()
        sent_by, _, params_text = rest.partition(";")
        host, port = _hostport(sent_by.strip())
        return cls(transport=transport.upper(), host=host, port=port, params=parse_params(params_text),
                   protocol=f"{name}/{version}")


_VIA_FAST = re.compile(r"SIP/2\.0/([A-Za-z]+) ([A-Za-z0-9][A-Za-z0-9.\-]*|\[[0-9A-Fa-f:.]+\])(?::([0-9]{1,5}))?"
                       r"((?:;[A-Za-z0-9\-.!%*_+`'~]+(?:=[A-Za-z0-9\-.!%*_+`'~:\[\]]+)?)*)")
_VIA_RE = re.compile(r"^\s*([!-~]+?)\s*/\s*([!-~]+?)\s*/\s*([A-Za-z0-9\-.!%*_+`'~]+)\s+(\S.*)$", re.S)


def _hostport(text: str) -> tuple[str, int | None]:
    if not text:
        raise ParseError("empty sent-by")
    if text.startswith("["):
        end = text.find("]")
        if end < 0:
            raise ParseError(f"bad IPv6 sent-by {text!r}")
        host, rest = text[: end + 1], text[end + 1 :]
        port = rest[1:] if rest.startswith(":") else ""
    else:
        host, _, port = text.partition(":")
    host, port = host.strip(), port.strip()
    if not host or any(c in host for c in " \t,;"):
        raise ParseError(f"bad sent-by host {text!r}")
    if port:
        return host, parse_uint(port, "sent-by port", 65535)
    return host, None


@dataclass(frozen=True)
class CSeq:
    seq: int
    method: str

    MAX = 2**31 - 1  # RFC 3261 §8.1.1.5: "MUST be less than 2**31"

    def __str__(self) -> str:
        return f"{self.seq} {self.method}"

    @classmethod
    def parse(cls, text: str) -> "CSeq":
        # CSeq = "CSeq" HCOLON 1*DIGIT LWS Method (§20.16): LWS may be tabs or several SP
        num, method = (text.split(None, 1) + ["", ""])[:2]
        method = method.strip()
        if not is_token(method):
            raise ParseError(f"bad CSeq {text[:40]!r}")
        return cls(parse_uint(num, "CSeq", cls.MAX), method)


def split_list(value: str) -> list[str]:
    """Split a list header value on commas outside quotes and <> (§7.3.1)."""
    return [v.strip() for v in split_unquoted(value, ",") if v.strip()]
