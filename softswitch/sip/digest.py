"""HTTP Digest authentication for SIP: RFC 3261 §22.4, RFC 7616, RFC 8760.

* RFC 3261 §22.4 / §20.27 / §20.44: Digest in ``WWW-Authenticate``/``Proxy-Authenticate``
  and ``Authorization``/``Proxy-Authorization``; the ``uri`` parameter need not equal the
  Request-URI, and the response is verified with the ``uri`` as received (SIPp and some
  phones sign ``sip:<address they send to>``).
* RFC 7616 §3.4 (the response computation, ``-sess`` variants, ``qop=auth``), §3.3 (the
  challenge, ``stale``), §3.9.1 (the worked example used by the tests).
* RFC 8760 §2.4: a server offering several algorithms sends one challenge per algorithm,
  the preferred (SHA-256) first.

Server side, :class:`DigestChallenger` keeps no per-nonce state: a nonce is
``base64url(timestamp_ms (8) | random (12) | HMAC-SHA256(secret, timestamp|random|realm)[:16])``,
so any node holding the secret can check that it issued the nonce for this realm and how
old it is. Deliberately left out: nonce-count replay tracking (a replayed request within
the nonce lifetime is accepted; REGISTER replays are harmless to the location service
because CSeq/Call-ID ordering is checked there), ``qop=auth-int``, ``userhash``,
``username*`` and SHA-512-256.

Errors::

    ParseError (softswitch.sip.errors, 400)
     └── DigestError (also ValueError)   malformed Authorization/WWW-Authenticate value
    LocalProtocolError                   verify() called without password or ha1
"""
from __future__ import annotations

import base64
import enum
import hashlib
import hmac
import logging
import os
import re
import struct
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import NamedTuple

from .errors import LocalProtocolError, ParseError

logger = logging.getLogger(__name__)

MAX_AUTH_HEADER_LENGTH = 8 * 1024
"""Characters of one credentials/challenge value; real ones are a few hundred."""
MAX_AUTH_PARAMS = 32
"""auth-params in one value (RFC 7616 defines a dozen)."""
MIN_SECRET_BYTES = 16
NONCE_RANDOM_BYTES = 12
NONCE_MAC_BYTES = 16
_NONCE_STAMP = struct.Struct(">q")
_NONCE_BODY_BYTES = _NONCE_STAMP.size + NONCE_RANDOM_BYTES
NONCE_LENGTH = (_NONCE_BODY_BYTES + NONCE_MAC_BYTES) * 4 // 3
"""Characters of one of our nonces (36 bytes -> 48 base64 characters, no padding)."""
NONCE_FUTURE_TOLERANCE = 5.0
"""Seconds a nonce's timestamp may lie ahead of ``now`` (clock steps between nodes)."""
DEFAULT_NONCE_TTL = 300.0


class DigestError(ParseError, ValueError):
    """A Digest header value is malformed (a UAS answers 400)."""


class VerifyResult(enum.Enum):
    OK = "ok"
    BAD_RESPONSE = "bad-response"
    """Wrong password, unsupported algorithm/qop, or not Digest at all: challenge again."""
    STALE = "stale"
    """Our nonce, expired, with a correct response: challenge again with ``stale=true``."""
    BAD_NONCE = "bad-nonce"
    """The nonce was not issued by us (for this realm): challenge again."""


class _Algorithm(NamedTuple):
    name: str
    hash: Callable[..., "hashlib._Hash"]
    sess: bool


_ALGORITHMS: dict[str, _Algorithm] = {
    "md5": _Algorithm("MD5", hashlib.md5, False),
    "md5-sess": _Algorithm("MD5-sess", hashlib.md5, True),
    "sha-256": _Algorithm("SHA-256", hashlib.sha256, False),
    "sha-256-sess": _Algorithm("SHA-256-sess", hashlib.sha256, True),
}
ALGORITHMS = tuple(a.name for a in _ALGORITHMS.values())

# RFC 3261 §25.1: token, LWS, quoted-string (with quoted-pair), auth-param = name "=" value.
_TOKEN = r"[A-Za-z0-9\-.!%*_+`'~]+"
_PARAM_RE = re.compile(
    rf'[ \t]*({_TOKEN})[ \t]*=[ \t]*(?:"([^"\\]*(?:\\.[^"\\]*)*)"|([^\s",]+))[ \t]*(?:,|$)', re.S)
_SEPARATORS_RE = re.compile(r"[\s,]*")
_NAME_EQ_RE = re.compile(rf"[ \t]*({_TOKEN})[ \t]*=[ \t]*")
_QUOTED_PAIR_RE = re.compile(r"\\(.)", re.S)
_SCHEME_RE = re.compile(rf"[ \t]*({_TOKEN})(?:[ \t]+|$)")
_QUOTED_STRING_RE = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"', re.S)


def _bytes(text: str) -> bytes:
    try:
        return text.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:
        return text.encode("utf-8", "surrogatepass")


def _algorithm(name: str) -> _Algorithm:
    try:
        return _ALGORITHMS[name.lower()]
    except KeyError:
        raise DigestError(f"unsupported digest algorithm {name!r}") from None


def _quote(value: str) -> str:
    """A quoted-string (RFC 3261 §25.1): backslash and double quote escaped."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


# --- parsing -------------------------------------------------------------------------------
def _parse_params(text: str, pos: int) -> dict[str, str]:
    params: dict[str, str] = {}
    end = len(text)
    pos = _SEPARATORS_RE.match(text, pos).end()  # type: ignore[union-attr]
    while pos < end:
        match = _PARAM_RE.match(text, pos)
        if match is None:
            raise _param_error(text, pos)
        name = match.group(1).lower()
        value = match.group(2)
        if value is None:
            value = match.group(3)
        elif "\\" in value:
            value = _QUOTED_PAIR_RE.sub(r"\1", value)
        if name in params:
            raise DigestError(f"duplicate parameter {name!r}")  # RFC 7616 §3.4: at most once
        if len(params) >= MAX_AUTH_PARAMS:
            raise DigestError(f"more than {MAX_AUTH_PARAMS} parameters")
        params[name] = value
        pos = _SEPARATORS_RE.match(text, match.end()).end()  # type: ignore[union-attr]
    return params


def _param_error(text: str, pos: int) -> DigestError:
    """Say precisely why the auth-param at ``pos`` does not parse."""
    near = text[pos:pos + 30]
    name_eq = _NAME_EQ_RE.match(text, pos)
    if name_eq is None:
        return DigestError(f"expected name=value at {near!r}")
    name, after = name_eq.group(1), name_eq.end()
    if text.startswith('"', after):
        if _QUOTED_STRING_RE.match(text, after) is None:
            return DigestError(f"unterminated quoted string in parameter {name!r}")
        return DigestError(f"text after the quoted value of parameter {name!r}: {near!r}")
    if after >= len(text) or text[after] in ",":
        return DigestError(f"empty value for parameter {name!r}")
    return DigestError(f"malformed value of parameter {name!r}: {near!r}")


def _split_scheme(header_value: str) -> tuple[str, int]:
    if len(header_value) > MAX_AUTH_HEADER_LENGTH:
        raise DigestError(f"header value longer than {MAX_AUTH_HEADER_LENGTH} characters")
    match = _SCHEME_RE.match(header_value)
    if match is None:
        raise DigestError(f"expected an auth scheme, got {header_value[:30]!r}")
    return match.group(1), match.end()


def _require(params: dict[str, str], names: tuple[str, ...], what: str) -> None:
    missing = [name for name in names if name not in params]
    if missing:
        raise DigestError(f"{what} lacks required parameter(s) {', '.join(missing)}")


@dataclass(frozen=True)
class Credentials:
    """An ``Authorization``/``Proxy-Authorization`` value (RFC 7616 §3.4)."""

    scheme: str
    username: str = ""
    realm: str = ""
    nonce: str = ""
    uri: str = ""
    response: str = ""
    algorithm: str = "MD5"
    """Canonical spelling when known (``MD5``, ``SHA-256``, ``...-sess``), else as received."""
    qop: str | None = None
    nc: str | None = None
    """The nonce-count exactly as received (it is hashed as text)."""
    cnonce: str | None = None
    opaque: str | None = None
    params: dict[str, str] = field(default_factory=dict, repr=False)
    """Every parameter, lower-cased names, unquoted values."""

    @property
    def is_digest(self) -> bool:
        return self.scheme.lower() == "digest"


@dataclass(frozen=True)
class Challenge:
    """A ``WWW-Authenticate``/``Proxy-Authenticate`` value (RFC 7616 §3.3)."""

    scheme: str
    realm: str = ""
    nonce: str = ""
    algorithm: str = "MD5"
    qop: tuple[str, ...] = ()
    """The qop options offered (empty: RFC 2069 compatibility, no qop)."""
    opaque: str | None = None
    stale: bool = False
    domain: str | None = None
    params: dict[str, str] = field(default_factory=dict, repr=False)

    @property
    def is_digest(self) -> bool:
        return self.scheme.lower() == "digest"


def _canonical_algorithm(params: dict[str, str]) -> str:
    name = params.get("algorithm", "MD5")
    known = _ALGORITHMS.get(name.lower())
    return known.name if known else name


def parse_credentials(header_value: str) -> Credentials:
    """Parse an ``Authorization``/``Proxy-Authorization`` value; raise :class:`DigestError`.

    Another scheme than Digest (``NoOp``, ``Basic``...) parses with only ``scheme`` set, so
    the caller can see ``is_digest`` is false and challenge again.
    """
    scheme, pos = _split_scheme(header_value)
    if scheme.lower() != "digest":
        return Credentials(scheme=scheme)
    params = _parse_params(header_value, pos)
    _require(params, ("username", "realm", "nonce", "uri", "response"), "Digest credentials")
    qop = params.get("qop")
    if qop is not None:
        # RFC 7616 §3.4: cnonce and nc MUST be sent when qop is.
        _require(params, ("cnonce", "nc"), "Digest credentials with qop")
    return Credentials(
        scheme=scheme, username=params["username"], realm=params["realm"],
        nonce=params["nonce"], uri=params["uri"], response=params["response"],
        algorithm=_canonical_algorithm(params), qop=qop, nc=params.get("nc"),
        cnonce=params.get("cnonce"), opaque=params.get("opaque"), params=params,
    )


def parse_challenge(header_value: str) -> Challenge:
    """Parse a ``WWW-Authenticate``/``Proxy-Authenticate`` value; raise :class:`DigestError`."""
    scheme, pos = _split_scheme(header_value)
    if scheme.lower() != "digest":
        return Challenge(scheme=scheme)
    params = _parse_params(header_value, pos)
    _require(params, ("realm", "nonce"), "Digest challenge")
    qop = tuple(q.strip().lower() for q in params["qop"].split(",") if q.strip()) if "qop" in params else ()
    return Challenge(
        scheme=scheme, realm=params["realm"], nonce=params["nonce"],
        algorithm=_canonical_algorithm(params), qop=qop, opaque=params.get("opaque"),
        stale=params.get("stale", "").lower() == "true", domain=params.get("domain"),
        params=params,
    )


# --- computing -----------------------------------------------------------------------------
def compute_ha1(algorithm: str, username: str, realm: str, password: str) -> str:
    """H(username:realm:password), what a user store may keep instead of the password.

    For a ``-sess`` algorithm this is the hash before the nonce/cnonce are mixed in, so one
    stored value serves both ``X`` and ``X-sess``.
    """
    return _algorithm(algorithm).hash(_bytes(f"{username}:{realm}:{password}")).hexdigest()


def _response(spec: _Algorithm, ha1: str, *, method: str, uri: str, nonce: str,
              qop: str | None, nc: str | None, cnonce: str | None) -> str:
    """RFC 7616 §3.4.1-3.4.3 (RFC 2617 §3.2.2 when qop is absent)."""
    h = spec.hash
    if spec.sess:
        if cnonce is None:
            raise DigestError(f"{spec.name} needs a cnonce")
        ha1 = h(_bytes(f"{ha1}:{nonce}:{cnonce}")).hexdigest()
    ha2 = h(_bytes(f"{method}:{uri}")).hexdigest()
    if qop is None:
        return h(_bytes(f"{ha1}:{nonce}:{ha2}")).hexdigest()
    if qop.lower() != "auth":
        raise DigestError(f"unsupported qop {qop!r}")
    if nc is None or cnonce is None:
        raise DigestError("qop=auth needs nc and cnonce")
    return h(_bytes(f"{ha1}:{nonce}:{nc}:{cnonce}:{qop}:{ha2}")).hexdigest()


def compute_response(*, algorithm: str, username: str, realm: str, password: str, method: str,
                     uri: str, nonce: str, qop: str | None = None, nc: str | None = None,
                     cnonce: str | None = None) -> str:
    """The ``response`` parameter (hex) for these inputs; ``nc`` is the 8-hex-digit text."""
    spec = _algorithm(algorithm)
    ha1 = spec.hash(_bytes(f"{username}:{realm}:{password}")).hexdigest()
    return _response(spec, ha1, method=method, uri=uri, nonce=nonce, qop=qop, nc=nc, cnonce=cnonce)


def build_authorization(challenge: Challenge, *, username: str, password: str, method: str,
                        uri: str, cnonce: str, nc: int = 1) -> str:
    """The ``Authorization``/``Proxy-Authorization`` value answering ``challenge`` (client side)."""
    if not challenge.is_digest:
        raise DigestError(f"cannot answer a {challenge.scheme!r} challenge")
    spec = _algorithm(challenge.algorithm)
    qop: str | None = None
    if challenge.qop:
        if "auth" not in challenge.qop:
            raise DigestError(f"no supported qop in {challenge.qop!r}")
        qop = "auth"
    nc_text = f"{nc:08x}"
    response = compute_response(
        algorithm=spec.name, username=username, realm=challenge.realm, password=password,
        method=method, uri=uri, nonce=challenge.nonce, qop=qop,
        nc=nc_text if qop else None, cnonce=cnonce if (qop or spec.sess) else None)
    parts = [f"username={_quote(username)}", f"realm={_quote(challenge.realm)}",
             f"nonce={_quote(challenge.nonce)}", f"uri={_quote(uri)}",
             f"response={_quote(response)}", f"algorithm={spec.name}"]
    if qop or spec.sess:
        parts.append(f"cnonce={_quote(cnonce)}")
    if challenge.opaque is not None:
        parts.append(f"opaque={_quote(challenge.opaque)}")
    if qop:
        parts += [f"qop={qop}", f"nc={nc_text}"]
    return "Digest " + ", ".join(parts)


# --- server side ---------------------------------------------------------------------------
class DigestChallenger:
    """Issues challenges and verifies credentials without per-client state (RFC 7616 §5.4/§5.5).

    ``now`` is any clock in seconds, the same one for :meth:`challenge` and :meth:`verify`
    (wall-clock time if the secret outlives the process or is shared between nodes).
    """

    def __init__(self, secret: bytes, *, nonce_ttl: float = DEFAULT_NONCE_TTL,
                 algorithms: tuple[str, ...] = ("SHA-256", "MD5"), opaque: str | None = None,
                 random_bytes: Callable[[int], bytes] = os.urandom) -> None:
        if len(secret) < MIN_SECRET_BYTES:
            raise ValueError(f"digest secret must have at least {MIN_SECRET_BYTES} bytes")
        if not algorithms:
            raise ValueError("at least one digest algorithm is needed")
        self._secret = bytes(secret)
        self._ttl = nonce_ttl
        self._algorithms = tuple(_algorithm(name).name for name in algorithms)
        self._accepted = frozenset(self._algorithms)
        self._opaque = opaque
        self._random = random_bytes

    def __repr__(self) -> str:
        return f"DigestChallenger(algorithms={self._algorithms!r}, nonce_ttl={self._ttl!r})"

    @property
    def algorithms(self) -> tuple[str, ...]:
        return self._algorithms

    def make_nonce(self, realm: str, now: float) -> str:
        body = _NONCE_STAMP.pack(int(now * 1000)) + self._random(NONCE_RANDOM_BYTES)
        mac = hmac.digest(self._secret, body + _bytes(realm), "sha256")[:NONCE_MAC_BYTES]
        return base64.urlsafe_b64encode(body + mac).decode("ascii")

    def challenge(self, realm: str, now: float, *, stale: bool = False) -> list[str]:
        """One ``WWW-Authenticate``/``Proxy-Authenticate`` value per algorithm, in preference
        order (RFC 8760 §2.4), all carrying the same fresh nonce."""
        nonce = self.make_nonce(realm, now)
        common = f"Digest realm={_quote(realm)}, nonce=\"{nonce}\""
        if self._opaque is not None:
            common += f", opaque={_quote(self._opaque)}"
        tail = ', qop="auth"' + (", stale=true" if stale else "")
        return [f"{common}, algorithm={name}{tail}" for name in self._algorithms]

    def check_nonce(self, nonce: str, realm: str, now: float) -> VerifyResult:
        """OK, STALE (ours but older than the TTL) or BAD_NONCE (not ours for this realm)."""
        if len(nonce) != NONCE_LENGTH:
            return VerifyResult.BAD_NONCE
        try:
            raw = base64.urlsafe_b64decode(nonce)
        except ValueError:  # binascii.Error, or non-ASCII text
            return VerifyResult.BAD_NONCE
        body, mac = raw[:_NONCE_BODY_BYTES], raw[_NONCE_BODY_BYTES:]
        expected = hmac.digest(self._secret, body + _bytes(realm), "sha256")[:NONCE_MAC_BYTES]
        if not hmac.compare_digest(mac, expected):
            return VerifyResult.BAD_NONCE
        age = now - _NONCE_STAMP.unpack_from(body)[0] / 1000
        if age < -NONCE_FUTURE_TOLERANCE:
            return VerifyResult.BAD_NONCE
        return VerifyResult.STALE if age > self._ttl else VerifyResult.OK

    def verify(self, credentials: Credentials, *, method: str, password: str | None = None,
               ha1: str | None = None, now: float) -> VerifyResult:
        """Check ``credentials`` for a request with ``method``.

        Pass the user's ``password``, or ``ha1`` = :func:`compute_ha1` for the credentials'
        algorithm. The response is recomputed with the ``uri`` parameter as received
        (RFC 3261 §22.4). STALE is only returned when the response is right, as RFC 7616
        §3.3 asks ("stale ... with a valid digest for that nonce"); a wrong response with an
        expired nonce is BAD_RESPONSE.
        """
        if (password is None) == (ha1 is None):
            raise LocalProtocolError("verify() needs exactly one of password and ha1")
        if not credentials.is_digest:
            return VerifyResult.BAD_RESPONSE
        spec = _ALGORITHMS.get(credentials.algorithm.lower())
        if spec is None or spec.name not in self._accepted:
            return VerifyResult.BAD_RESPONSE
        nonce_state = self.check_nonce(credentials.nonce, credentials.realm, now)
        if nonce_state is VerifyResult.BAD_NONCE:
            logger.debug("digest: nonce not issued by us for realm %r (user %r)",
                         credentials.realm, credentials.username)
            return nonce_state
        if self._opaque is not None and credentials.opaque != self._opaque:
            return VerifyResult.BAD_NONCE
        if ha1 is None:
            ha1 = spec.hash(_bytes(f"{credentials.username}:{credentials.realm}:{password}")).hexdigest()
        try:
            expected = _response(spec, ha1, method=method, uri=credentials.uri,
                                 nonce=credentials.nonce, qop=credentials.qop,
                                 nc=credentials.nc, cnonce=credentials.cnonce)
        except DigestError:  # qop=auth-int, -sess without cnonce
            return VerifyResult.BAD_RESPONSE
        if not hmac.compare_digest(expected.encode("ascii"), _bytes(credentials.response.lower())):
            return VerifyResult.BAD_RESPONSE
        return nonce_state


__all__ = [
    "ALGORITHMS", "Challenge", "Credentials", "DigestChallenger", "DigestError",
    "VerifyResult", "build_authorization", "compute_ha1", "compute_response",
    "parse_challenge", "parse_credentials",
]
