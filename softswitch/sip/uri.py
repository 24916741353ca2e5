"""SIP and SIPS URIs (RFC 3261 §19.1, §25.1) and name-addr / addr-spec values (§20.10, §25.1).

    SIP-URI  = "sip:" [ userinfo ] hostport uri-parameters [ headers ]
    userinfo = ( user / telephone-subscriber ) [ ":" password ] "@"
    name-addr = [ display-name ] LAQUOT addr-spec RAQUOT

Escapes are kept as received (``%40`` stays ``%40``): RFC 4475 §3.1.1.3 warns that
unescaping the wrong component, or twice, changes meaning. ``unescape()`` is applied only by
code that compares users (RFC 3261 §19.1.4).
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from urllib.parse import unquote_to_bytes

from .errors import ParseError, UnsupportedUriScheme

# RFC 3261 §25.1 token: the characters allowed in method names, header names, parameter names.
TOKEN_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-.!%*_+`'~")
_HOST_RE = re.compile(r"^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9]([A-Za-z0-9\-.]*[A-Za-z0-9])?\.?)$")
_PORT_RE = re.compile(r"^[0-9]{1,5}$")
SIP_SCHEMES = ("sip", "sips")
# Parsed values are immutable, so equal texts can share one object. Bounded: a peer
# controls the texts; the cache is simply emptied when full.
PARSE_CACHE_SIZE = 4096
_URI_CACHE: dict[str, "Uri"] = {}
_NAME_ADDR_CACHE: dict[str, "NameAddr"] = {}


def _cached_parse(cache: dict, text: str, parse):  # type: ignore[no-untyped-def]
    try:
        return cache[text]
    except KeyError:
        pass
    value = parse(text)  # raises ParseError: nothing is cached for bad input
    if len(cache) >= PARSE_CACHE_SIZE:
        cache.clear()
    cache[text] = value
    return value
# sip:user:pw@host:port;params?headers where every part is made of plain characters
_FAST_SIP_URI = re.compile(
    r"(?i:(sips?)):(?:([A-Za-z0-9\-_.!~*'()&=+$,;?/:%]+)@)?"
    r"([A-Za-z0-9][A-Za-z0-9\-.]*|\[[0-9A-Fa-f:.]+\])(?::([0-9]{1,5}))?"
    r"((?:;[A-Za-z0-9\-_.!~*'()%\[\]/:&+$=]+)*)(?:\?([A-Za-z0-9\-_.!~*'()%\[\]/?:+$=&]*))?")


_TOKEN_RE = re.compile(r"[A-Za-z0-9\-.!%*_+`'~]+")


def is_token(text: str) -> bool:
    return _TOKEN_RE.fullmatch(text) is not None


def unescape(text: str) -> str:
    """%HH-decode a URI component once (RFC 3261 §19.1.4 comparison rules)."""
    if "%" not in text:
        return text
    return unquote_to_bytes(text).decode("utf-8", "surrogateescape")


def parse_params(text: str) -> dict[str, str | None]:
    """``;a=b;c`` → {"a": "b", "c": None}; names are lower-cased (they compare case-insensitively)."""
    params: dict[str, str | None] = {}
    if not text:
        return params
    for part in (text.split(";") if '"' not in text else _split_unquoted(text, ";")):
        part = part.strip()
        if not part:
            continue
        name, eq, value = part.partition("=")
        name = name.strip().lower()
        if not is_token(name):
            raise ParseError(f"bad parameter name {name!r}")
        params[name] = value.strip() if eq else None
    return params


def format_params(params: dict[str, str | None]) -> str:
    return "".join(f";{k}" if v is None else f";{k}={v}" for k, v in params.items())


def _split_unquoted(text: str, sep: str) -> list[str]:
    """Split on ``sep`` outside double quotes (with backslash escapes) and outside <...>."""
    if '"' not in text and ("<" not in text or sep not in text):
        return text.split(sep)
    parts, start, quoted, angle, i = [], 0, False, 0, 0
    n = len(text)
    while i < n:
        ch = text[i]
        if quoted:
            if ch == "\\":
                i += 1
            elif ch == '"':
                quoted = False
        elif ch == '"':
            quoted = True
        elif ch == "<":
            angle += 1
        elif ch == ">":
            angle = max(0, angle - 1)
        elif ch == sep and not angle:
            parts.append(text[start:i])
            start = i + 1
        i += 1
    if quoted:
        raise ParseError("unterminated quoted string")
    parts.append(text[start:])
    return parts


split_unquoted = _split_unquoted


@dataclass(frozen=True)
class Uri:
    """A parsed SIP/SIPS URI, or an opaque absolute URI of another scheme (tel:, im:, …)."""

    scheme: str
    user: str | None = None
    password: str | None = None
    host: str = ""
    port: int | None = None
    params: dict[str, str | None] = field(default_factory=dict)
    headers: str = ""  # the raw "?a=b&c=d" part, without "?"
    opaque: str = ""  # everything after "scheme:" for non-SIP schemes

    @property
    def is_sip(self) -> bool:
        return self.scheme in SIP_SCHEMES

    @property
    def host_port(self) -> str:
        return self.host if self.port is None else f"{self.host}:{self.port}"

    @property
    def transport(self) -> str:
        value = self.params.get("transport")
        return (value or ("tls" if self.scheme == "sips" else "udp")).lower()

    def with_(self, **changes: object) -> "Uri":
        return replace(self, **changes)  # type: ignore[arg-type]

    def __str__(self) -> str:
        if not self.is_sip:
            return f"{self.scheme}:{self.opaque}"
        out = [self.scheme, ":"]
        if self.user is not None:
            out.append(self.user)
            if self.password is not None:
                out += [":", self.password]
            out.append("@")
        out.append(self.host_port)
        out.append(format_params(self.params))
        if self.headers:
            out += ["?", self.headers]
        return "".join(out)

    @classmethod
    def parse(cls, text: str) -> "Uri":
        """Parse an absolute URI; SIP/SIPS fully, others opaquely. Raises ParseError.

        Results are cached by text (bounded): Uri is immutable and a registering phone
        sends the same Request-URI, To and Contact again and again."""
        return _cached_parse(_URI_CACHE, text, cls._parse)

    @classmethod
    def _parse(cls, text: str) -> "Uri":
        m = _FAST_SIP_URI.fullmatch(text)
        if m is not None:
            # Fast path for the common shape; anything unusual takes the detailed parser,
            # which also produces the precise error message.
            scheme, userinfo, host, port, params, headers = m.groups()
            user = password = None
            if userinfo is not None:
                user, colon2, pw = userinfo.partition(":")
                password = pw if colon2 else None
            if port is not None and int(port) > 65535:
                raise ParseError(f"bad port {port}")
            return cls(scheme=scheme.lower(), user=user, password=password, host=host.lower(),
                       port=int(port) if port is not None else None,
                       params=parse_params(params[1:]) if params else {}, headers=headers or "")
        return cls._parse_slow(text)

    @classmethod
    def _parse_slow(cls, text: str) -> "Uri":
        scheme, colon, rest = text.partition(":")
        if not colon or not scheme or not (scheme[0].isalpha() and all(c.isalnum() or c in "+-." for c in scheme)):
            raise ParseError(f"not an absolute URI: {text[:80]!r}")
        scheme = scheme.lower()
        if any(c in text for c in " \t\r\n<>\""):
            raise ParseError(f"illegal character in URI {text[:80]!r}")
        if scheme not in SIP_SCHEMES:
            if not rest:
                raise ParseError(f"empty URI {text!r}")
            return cls(scheme=scheme, opaque=rest)
        user = password = None
        # The user part may hold '?', ';' and '/' (user-unreserved, §25.1) but never an
        # unescaped '@', and URI headers may not hold one either: split at the last '@'.
        at = rest.rfind("@")
        if at >= 0:
            userinfo, rest = rest[:at], rest[at + 1 :]
            user, colon2, pw = userinfo.partition(":")
            password = pw if colon2 else None
            if not user:
                raise ParseError(f"empty user part in {text[:80]!r}")
        rest, _, headers = rest.partition("?")
        hostport, _, params_text = rest.partition(";")
        host, port = _split_hostport(hostport, text)
        return cls(scheme=scheme, user=user, password=password, host=host.lower(), port=port,
                   params=parse_params(params_text), headers=headers)


def _split_hostport(hostport: str, context: str) -> tuple[str, int | None]:
    if hostport.startswith("["):
        end = hostport.find("]")
        if end < 0:
            raise ParseError(f"bad IPv6 reference in {context[:80]!r}")
        host, after = hostport[: end + 1], hostport[end + 1 :]
        port_text = after[1:] if after.startswith(":") else None
        if after and port_text is None:
            raise ParseError(f"bad host in {context[:80]!r}")
    else:
        host, colon, port_text_ = hostport.partition(":")
        port_text = port_text_ if colon else None
    if not _HOST_RE.match(host):
        raise ParseError(f"bad host {host[:60]!r}")
    port = None
    if port_text is not None:
        if not _PORT_RE.match(port_text) or int(port_text) > 65535:
            raise ParseError(f"bad port {port_text[:10]!r}")
        port = int(port_text)
    return host, port


@dataclass(frozen=True)
class NameAddr:
    """``"Display" <uri>;params`` — the value of From, To, Contact, Route, Refer-To …"""

    uri: Uri
    display: str | None = None  # without quotes, escapes kept as received
    params: dict[str, str | None] = field(default_factory=dict)
    wildcard: bool = False  # "Contact: *"

    @property
    def tag(self) -> str | None:
        return self.params.get("tag")

    def with_params(self, **params: str | None) -> "NameAddr":
        merged = dict(self.params)
        merged.update(params)
        return replace(self, params=merged)

    def __str__(self) -> str:
        if self.wildcard:
            return "*"
        disp = f'"{self.display}" ' if self.display is not None else ""
        return f"{disp}<{self.uri}>{format_params(self.params)}"

    @classmethod
    def parse(cls, text: str) -> "NameAddr":
        """Parse a name-addr/addr-spec with parameters; cached by text like ``Uri.parse``."""
        return _cached_parse(_NAME_ADDR_CACHE, text, cls._parse)

    @classmethod
    def _parse(cls, text: str) -> "NameAddr":
        text = text.strip()
        if text == "*":
            return cls(uri=Uri(scheme="*"), wildcard=True)
        lt = _find_unquoted(text, "<")
        if lt >= 0:
            display_text = text[:lt].strip()
            gt = text.find(">", lt)
            if gt < 0:
                raise ParseError(f"missing '>' in {text[:80]!r}")
            inner = text[lt + 1 : gt]
            if inner != inner.strip():
                # RFC 3261 §25.1: LAQUOT = SWS "<", RAQUOT = ">" SWS — no LWS inside the brackets
                raise ParseError(f"whitespace inside <> in {text[:80]!r}")
            uri = Uri.parse(inner)
            params = parse_params(text[gt + 1 :].strip())
            display = _parse_display(display_text) if display_text else None
            return cls(uri=uri, display=display, params=params)
        # addr-spec form: parameters after ';' are header parameters, and RFC 3261 §20
        # forbids ',', '?' and ';' inside such a URI (so it must be enclosed in <>).
        addr, _, params_text = text.partition(";")
        addr = addr.strip()
        if "?" in addr or "," in addr:
            raise ParseError(f"URI with '?' or ',' must be enclosed in <>: {text[:80]!r}")
        if any(ch in addr for ch in ' \t"'):
            raise ParseError(f"display name without <>: {text[:80]!r}")
        return cls(uri=Uri.parse(addr), params=parse_params(params_text))


def _find_unquoted(text: str, ch: str) -> int:
    if '"' not in text:
        return text.find(ch)
    quoted = False
    i = 0
    while i < len(text):
        c = text[i]
        if quoted:
            if c == "\\":
                i += 1
            elif c == '"':
                quoted = False
        elif c == '"':
            quoted = True
        elif c == ch:
            return i
        i += 1
    if quoted:
        raise ParseError(f"unterminated quoted string in {text[:80]!r}")
    return -1


def _parse_display(text: str) -> str:
    if text.startswith('"'):
        if len(text) < 2 or not text.endswith('"') or text.endswith('\\"') and not text.endswith('\\\\"'):
            raise ParseError(f"unterminated quoted display name {text[:80]!r}")
        return text[1:-1]
    # display-name = *(token LWS) / quoted-string
    words = text.split()
    if not all(is_token(w) for w in words):
        raise ParseError(f"display name must be quoted: {text[:80]!r}")
    return " ".join(words)
