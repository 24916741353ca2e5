"""SIP messages: parse, validate and serialise (RFC 3261 §7, §8.2, §18.3, §25).

Parsing is in two steps so that a server can still answer a broken request:

1. ``parse_message(data)`` — lexical: start line, header lines (with folding), body framed
   by Content-Length. Raises ``ParseError`` only when nothing sensible can be answered
   (no start line, no header section), ``VersionNotSupported`` for another SIP version.
2. ``Request.check()`` / ``Response.check()`` — semantic: the mandatory headers (§8.1.1),
   at most one of the single-valued ones (RFC 4475 §3.3.8), CSeq method = request method
   (§8.2.? / RFC 4475 §3.1.2.17), numeric ranges, well-formed From/To/Via. The request is
   then answered with the error's status (400, 416, 483, 505 …) by the endpoint.

Structured values (Via, From/To, CSeq, Contact) are parsed on first access and cached; the
hot path of a REGISTER touches only the headers it needs.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Iterable, Iterator

from .errors import FramingError, MessageTooLarge, ParseError, UnsupportedUriScheme, VersionNotSupported
from .headers import (
    LIST_HEADERS, SINGLE_HEADERS, CSeq, Via, canonical_name, parse_uint, split_list,
)
from .uri import NameAddr, Uri, is_token

SIP_VERSION = "SIP/2.0"
# Bounds on what a peer can make us hold (STYLE.md habit 5).
MAX_MESSAGE_BYTES = 65_535  # a UDP datagram cannot carry more; TCP messages are capped the same
MAX_HEADER_LINES = 256
MAX_BODY_BYTES = 60_000
MAX_FORWARDS_LIMIT = 255
_SINGLE = frozenset(canonical_name(n) for n in SINGLE_HEADERS)  # RFC 3261 §20.22: 0-255 in practice (token is 1*DIGIT)

REASON_PHRASES = {
    100: "Trying", 180: "Ringing", 181: "Call Is Being Forwarded", 182: "Queued", 183: "Session Progress",
    200: "OK", 202: "Accepted", 204: "No Notification",
    301: "Moved Permanently", 302: "Moved Temporarily",
    400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found",
    405: "Method Not Allowed", 406: "Not Acceptable", 407: "Proxy Authentication Required",
    408: "Request Timeout", 410: "Gone", 413: "Request Entity Too Large", 415: "Unsupported Media Type",
    416: "Unsupported URI Scheme", 420: "Bad Extension", 421: "Extension Required",
    423: "Interval Too Brief", 480: "Temporarily Unavailable", 481: "Call/Transaction Does Not Exist",
    482: "Loop Detected", 483: "Too Many Hops", 484: "Address Incomplete", 486: "Busy Here",
    487: "Request Terminated", 488: "Not Acceptable Here", 489: "Bad Event", 491: "Request Pending",
    500: "Server Internal Error", 501: "Not Implemented", 502: "Bad Gateway", 503: "Service Unavailable",
    504: "Server Time-out", 505: "Version Not Supported", 513: "Message Too Large",
    600: "Busy Everywhere", 603: "Decline", 604: "Does Not Exist Anywhere", 606: "Not Acceptable",
}


class Headers:
    """Ordered header fields; names canonicalised, lookups case-insensitive.

    Lookups go through an index built on first use (a request is read a dozen times and
    written rarely); every mutation drops it. Code that edits ``_items`` directly must
    call ``touched()``.
    """

    __slots__ = ("_items", "_index")

    def __init__(self, items: Iterable[tuple[str, str]] = ()):
        self._items: list[tuple[str, str]] = [(canonical_name(n), v) for n, v in items]
        self._index: dict[str, list[str]] | None = None

    def touched(self) -> None:
        self._index = None

    def _idx(self) -> dict[str, list[str]]:
        index = self._index
        if index is None:
            index = {}
            for n, v in self._items:
                try:
                    index[n].append(v)
                except KeyError:
                    index[n] = [v]
            self._index = index
        return index

    def __iter__(self) -> Iterator[tuple[str, str]]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def __contains__(self, name: str) -> bool:
        return canonical_name(name) in self._idx()

    def get(self, name: str, default: str | None = None) -> str | None:
        """The first field's raw value."""
        values = self._idx().get(canonical_name(name))
        return values[0] if values else default

    def fields(self, name: str) -> list[str]:
        """Raw values of every field with this name, in order, not split on commas."""
        return list(self._idx().get(canonical_name(name), ()))

    def values(self, name: str) -> list[str]:
        """Every value, list headers split on commas (§7.3.1)."""
        key = canonical_name(name)
        raw = self._idx().get(key, ())
        if key.lower() in LIST_HEADERS:
            return [item for field in raw for item in split_list(field)]
        return list(raw)

    def add(self, name: str, value: str) -> None:
        self._items.append((canonical_name(name), value))
        self._index = None

    def prepend(self, name: str, value: str) -> None:
        """Insert before the first field of that name (a new top Via), or at the top."""
        name = canonical_name(name)
        self._index = None
        for i, (n, _) in enumerate(self._items):
            if n == name:
                self._items.insert(i, (name, value))
                return
        self._items.insert(0, (name, value))

    def set(self, name: str, value: str | None) -> None:
        """Replace every field of that name with one (or remove them when value is None)."""
        name = canonical_name(name)
        out: list[tuple[str, str]] = []
        placed = value is None
        for n, v in self._items:
            if n == name:
                if not placed:
                    out.append((name, value))  # type: ignore[arg-type]
                    placed = True
                continue
            out.append((n, v))
        if not placed:
            out.append((name, value))  # type: ignore[arg-type]
        self._items = out
        self._index = None

    def remove(self, name: str) -> None:
        self.set(name, None)

    def copy(self) -> "Headers":
        h = Headers()
        h._items = list(self._items)
        return h


class Message(ABC):
    """Common part of Request and Response."""

    __slots__ = ("headers", "body", "_cache")

    def __init__(self, headers: Headers | Iterable[tuple[str, str]] | None = None, body: bytes = b""):
        self.headers = headers if isinstance(headers, Headers) else Headers(headers or ())
        self.body = body
        self._cache: dict[str, object] = {}

    # --- structured views, parsed lazily (raise ParseError when malformed) ---
    def invalidate(self) -> None:
        self._cache.clear()

    @property
    def call_id(self) -> str:
        return self.headers.get("Call-ID") or ""

    # Each view looks in the cache first and builds only on a miss: the hot path reads
    # top_via, cseq, from_ and to several times per request.
    @property
    def cseq(self) -> CSeq:
        value = self._cache.get("cseq")
        if value is None:
            raw = self.headers.get("CSeq")
            if raw is None:
                raise ParseError("missing CSeq")
            value = self._cache["cseq"] = CSeq.parse(raw)
        return value  # type: ignore[return-value]

    @property
    def from_(self) -> NameAddr:
        value = self._cache.get("from")
        if value is None:
            value = self._cache["from"] = self._name_addr("From")
        return value  # type: ignore[return-value]

    @property
    def to(self) -> NameAddr:
        value = self._cache.get("to")
        if value is None:
            value = self._cache["to"] = self._name_addr("To")
        return value  # type: ignore[return-value]

    def _name_addr(self, name: str) -> NameAddr:
        raw = self.headers.get(name)
        if raw is None:
            raise ParseError(f"missing {name}")
        return NameAddr.parse(raw)

    @property
    def vias(self) -> list[Via]:
        value = self._cache.get("vias")
        if value is None:
            value = self._cache["vias"] = [Via.parse(v) for v in self.headers.values("Via")]
        return value  # type: ignore[return-value]

    @property
    def top_via(self) -> Via:
        vias = self.vias
        if not vias:
            raise ParseError("missing Via")
        return vias[0]

    @property
    def contacts(self) -> list[NameAddr]:
        value = self._cache.get("contacts")
        if value is None:
            value = self._cache["contacts"] = [NameAddr.parse(v) for v in self.headers.values("Contact")]
        return value  # type: ignore[return-value]

    @property
    def content_type(self) -> str:
        return (self.headers.get("Content-Type") or "").split(";")[0].strip().lower()

    @property
    def expires(self) -> int | None:
        raw = self.headers.get("Expires")
        if raw is None:
            return None
        # RFC 4475 §3.1.2.4: an overlarge Expires may be tolerated; it is clamped
        return min(parse_uint(raw, "Expires"), 2**32 - 1)

    # --- serialisation ---
    @abstractmethod
    def start_line(self) -> str:
        """The Request-Line or Status-Line (§7.1, §7.2)."""

    def serialize(self) -> bytes:
        lines = [self.start_line()]
        lines += [f"{n}: {v}" for n, v in self.headers if n != "Content-Length"]
        lines.append(f"Content-Length: {len(self.body)}")
        head = "\r\n".join(lines) + "\r\n\r\n"
        return head.encode("utf-8", "surrogateescape") + self.body

    __bytes__ = serialize

    def _check_common(self) -> None:
        """§8.1.1 mandatory header fields, single-valued headers, parsable values."""
        seen: set[str] = set()
        for name, _ in self.headers:
            if name in _SINGLE:
                if name in seen:
                    raise ParseError(f"multiple {name} header fields")
                seen.add(name)
        for name in ("Call-ID", "CSeq", "From", "To", "Via"):
            if self.headers.get(name) is None:
                raise ParseError(f"missing {name} header")
        if not self.call_id.strip():
            raise ParseError("empty Call-ID")
        self.cseq  # noqa: B018 — parse to validate
        self.from_  # noqa: B018
        self.to  # noqa: B018
        self.vias  # noqa: B018
        self.contacts  # noqa: B018
        for raw in self.headers.fields("Content-Length"):
            _content_length(raw)


class Request(Message):
    __slots__ = ("method", "uri_text", "version")

    def __init__(self, method: str, uri: str | Uri, headers: Headers | Iterable[tuple[str, str]] | None = None,
                 body: bytes = b"", version: str = SIP_VERSION):
        super().__init__(headers, body)
        self.method = method
        self.uri_text = str(uri)
        self.version = version
        if isinstance(uri, Uri):
            self._cache["uri"] = uri

    def __repr__(self) -> str:
        return f"<Request {self.method} {self.uri_text} call-id={self.call_id!r}>"

    @property
    def uri(self) -> Uri:
        value = self._cache.get("uri")
        if value is None:
            value = self._cache["uri"] = Uri.parse(self.uri_text)
        return value  # type: ignore[return-value]

    @uri.setter
    def uri(self, value: Uri) -> None:
        self.uri_text = str(value)
        self._cache["uri"] = value

    @property
    def max_forwards(self) -> int | None:
        raw = self.headers.get("Max-Forwards")
        if raw is None:
            return None
        return parse_uint(raw, "Max-Forwards", MAX_FORWARDS_LIMIT)

    def start_line(self) -> str:
        return f"{self.method} {self.uri_text} {self.version}"

    def check(self) -> None:
        """Validate for processing; raises the SipError the request is to be answered with."""
        self._check_common()
        if self.cseq.method != self.method:
            raise ParseError(f"CSeq method {self.cseq.method} does not match {self.method}")
        self.max_forwards  # noqa: B018
        uri = self.uri
        if not uri.is_sip:
            raise UnsupportedUriScheme(uri.scheme)
        if uri.headers:
            # RFC 3261 §19.1.5: headers are not allowed in a Request-URI (RFC 4475 §3.1.2.11)
            raise ParseError("escaped headers in Request-URI")


class Response(Message):
    __slots__ = ("status", "reason", "version")

    def __init__(self, status: int, reason: str | None = None,
                 headers: Headers | Iterable[tuple[str, str]] | None = None, body: bytes = b"",
                 version: str = SIP_VERSION):
        super().__init__(headers, body)
        self.status = status
        self.reason = REASON_PHRASES.get(status, "") if reason is None else reason
        self.version = version

    def __repr__(self) -> str:
        return f"<Response {self.status} {self.reason} call-id={self.call_id!r}>"

    def start_line(self) -> str:
        return f"{self.version} {self.status} {self.reason}"

    def check(self) -> None:
        self._check_common()


# --------------------------------------------------------------------------------------
# Parsing
# --------------------------------------------------------------------------------------

def _content_length(raw: str) -> int:
    try:
        return parse_uint(raw, "Content-Length")
    except ParseError as exc:
        raise FramingError(str(exc)) from None


def split_head(data: bytes) -> tuple[bytes, bytes] | None:
    """Split at the empty line ending the header section, or None when there is none yet."""
    end = data.find(b"\r\n\r\n")
    if end >= 0:
        return data[:end], data[end + 4 :]
    end = data.find(b"\n\n")  # bare-LF tolerance (§7.5 says CRLF, but some stacks send LF)
    if end >= 0:
        return data[:end], data[end + 2 :]
    return None


def parse_message(data: bytes, *, datagram: bool = True) -> Request | Response:
    """Parse one complete message (a UDP datagram, or one framed message from a stream)."""
    if len(data) > MAX_MESSAGE_BYTES:
        raise MessageTooLarge(f"{len(data)} bytes")
    data = data.lstrip(b"\r\n")
    parts = split_head(data)
    if parts is None:
        # RFC 4475 §3.1.2.15 (baddn) ends without the empty line; accept a header section
        # that runs to the end of a datagram as having an empty body.
        if not datagram or b"\n" not in data:
            raise ParseError("no end of header section")
        parts = (data.rstrip(b"\r\n"), b"")
    head_bytes, rest = parts
    head = head_bytes.decode("utf-8", "surrogateescape")
    lines = head.replace("\r\n", "\n").split("\n")
    start, header_lines = lines[0], lines[1:]
    if len(header_lines) > MAX_HEADER_LINES:
        raise MessageTooLarge(f"more than {MAX_HEADER_LINES} header lines")
    headers = Headers()
    items = headers._items
    for line in header_lines:
        if line[:1] in (" ", "\t"):
            # §7.3.1 header folding: continuation lines join the previous value with one SP
            if not items:
                raise ParseError("continuation line before first header")
            n, v = items[-1]
            items[-1] = (n, f"{v} {line.strip()}")
            continue
        name, colon, value = line.partition(":")
        name = name.rstrip(" \t")
        if not colon or not is_token(name):
            raise ParseError(f"malformed header line {line[:60]!r}")
        items.append((canonical_name(name), value.strip(" \t")))

    cl_fields = headers.fields("Content-Length")
    if len(cl_fields) > 1:
        # RFC 4475 §3.3.9 (mcl01): the framing is ambiguous; answer and discard.
        msg_for_error = _start(start, headers, b"")
        raise _with_message(FramingError("multiple Content-Length values"), msg_for_error)
    if cl_fields:
        try:
            length = _content_length(cl_fields[0])
        except FramingError as exc:
            raise _with_message(exc, _start(start, headers, b""))
        if length > len(rest):
            # §18.3: over UDP a Content-Length larger than the datagram is answered with 400
            # (checked first: the claim is false, the message is not actually large)
            raise _with_message(FramingError(f"Content-Length {length} larger than body ({len(rest)})"),
                                _start(start, headers, b""))
        if length > MAX_BODY_BYTES:
            raise _with_message(MessageTooLarge(f"Content-Length {length}"), _start(start, headers, b""))
        body = rest[:length]  # §18.3: octets after Content-Length in a datagram are discarded
    else:
        body = rest if datagram else b""
    return _start(start, headers, body)


def _with_message(exc: ParseError, msg: "Request | Response") -> ParseError:
    exc.message = msg  # type: ignore[attr-defined]
    return exc


def _start(start: str, headers: Headers, body: bytes) -> Request | Response:
    if start.startswith("SIP/"):
        version, sp, rest = start.partition(" ")
        code, sp2, reason = rest.partition(" ")
        if version.upper() != SIP_VERSION:
            raise ParseError(f"unsupported version in response {version[:20]!r}")
        if not (len(code) == 3 and code.isascii() and code.isdigit()) or not 100 <= int(code) <= 699:
            raise ParseError(f"bad status code {code[:10]!r}")
        return Response(int(code), reason, headers, body)
    parts = start.split(" ")
    if len(parts) != 3 or not all(parts):
        # §7.1: Request-Line = Method SP Request-URI SP SIP-Version CRLF, single SP only
        # (RFC 4475 §3.1.2.8-10: embedded LWS, extra SP, trailing SP).
        # Keep the method when it is readable so that a malformed ACK is never answered (§17).
        words = start.split()
        guess = words[0] if words and is_token(words[0]) else "UNKNOWN"
        raise _with_message(ParseError(f"malformed request line {start[:80]!r}"),
                            Request(guess, "sip:invalid", headers, body))
    method, uri_text, version = parts
    if not is_token(method):
        raise ParseError(f"bad method {method[:30]!r}")
    request = Request(method, uri_text, headers, body, version=version)
    if version.upper() != SIP_VERSION:
        if version.upper().startswith("SIP/"):
            raise _with_message(VersionNotSupported(version), request)
        raise _with_message(ParseError(f"bad SIP version {version[:20]!r}"), request)
    if uri_text.startswith("<"):
        raise _with_message(ParseError("Request-URI enclosed in <>"), request)
    return request


# --------------------------------------------------------------------------------------
# Building responses (§8.2.6)
# --------------------------------------------------------------------------------------

def make_response(request: Request, status: int, reason: str | None = None, *, to_tag: str | None = None,
                  headers: Iterable[tuple[str, str]] = (), body: bytes = b"") -> Response:
    """A response copying Via, From, To (+tag), Call-ID and CSeq from the request (§8.2.6.2)."""
    h = Headers()
    for name in ("Via", "From", "To", "Call-ID", "CSeq"):
        for value in request.headers.fields(name):
            if name == "To" and to_tag and status != 100 and ";tag=" not in value.replace(" ", "").lower():
                value = f"{value};tag={to_tag}"
            h._items.append((name, value))
    for n, v in headers:
        h.add(n, v)
    return Response(status, reason, h, body)
