"""Dialogs (RFC 3261 §12): the state two UAs share between INVITE and BYE.

A dialog is identified by Call-ID, local tag and remote tag (§12). It remembers the
remote target (the peer's Contact), the route set (Record-Route, §12.1.1/§12.1.2) and both
CSeq counters, and builds requests inside the dialog (§12.2.1.1). Pure data and functions.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable

from .errors import ParseError
from .message import Headers, Request, Response


@dataclass
class Dialog:
    call_id: str
    local_tag: str
    remote_tag: str
    local_uri: str  # our From/To value without tag, e.g. '"Alice" <sip:201@acme.test>'
    remote_uri: str
    remote_target: str  # the peer's Contact URI
    route_set: list[str] = field(default_factory=list)
    local_seq: int = 1
    remote_seq: int | None = None
    local_contact: str = ""

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.call_id, self.local_tag, self.remote_tag)

    @classmethod
    def for_uas(cls, request: Request, local_tag: str, local_contact: str) -> "Dialog":
        """§12.1.1: the UAS side, from the INVITE we answer."""
        contacts = request.contacts
        if not contacts:
            raise ParseError("INVITE without Contact")
        return cls(
            call_id=request.call_id, local_tag=local_tag, remote_tag=request.from_.tag or "",
            local_uri=_without_tag(request.headers.get("To") or ""),
            remote_uri=_without_tag(request.headers.get("From") or ""),
            remote_target=str(contacts[0].uri),
            route_set=list(request.headers.values("Record-Route")),
            local_seq=0, remote_seq=request.cseq.seq, local_contact=local_contact,
        )

    @classmethod
    def for_uac(cls, request: Request, response: Response) -> "Dialog":
        """§12.1.2: the UAC side, from our INVITE and the 1xx/2xx that created the dialog."""
        contacts = response.contacts
        target = str(contacts[0].uri) if contacts else request.uri_text
        return cls(
            call_id=request.call_id, local_tag=request.from_.tag or "", remote_tag=response.to.tag or "",
            local_uri=_without_tag(request.headers.get("From") or ""),
            remote_uri=_without_tag(request.headers.get("To") or ""),
            remote_target=target,
            route_set=list(reversed(response.headers.values("Record-Route"))),
            local_seq=request.cseq.seq, remote_seq=None,
            local_contact=request.headers.get("Contact") or "",
        )

    def update_target(self, message: Request | Response) -> None:
        """§12.2: a target refresh (re-INVITE, UPDATE, or its 2xx) may change the remote target."""
        contacts = message.contacts
        if contacts:
            self.remote_target = str(contacts[0].uri)

    def check_remote_cseq(self, request: Request) -> bool:
        """§12.2.2: a lower CSeq than the last one is out of order (answer 500)."""
        seq = request.cseq.seq
        if request.method in ("ACK", "CANCEL"):
            return True
        if self.remote_seq is not None and seq <= self.remote_seq:
            return False
        self.remote_seq = seq
        return True

    def create_request(self, method: str, *, body: bytes = b"", content_type: str | None = None,
                       headers: Iterable[tuple[str, str]] = (), cseq: int | None = None) -> Request:
        """§12.2.1.1: a request within the dialog (ACK reuses the INVITE's CSeq number)."""
        if cseq is None:
            self.local_seq += 1
            cseq = self.local_seq
        h = Headers()
        for route in self.route_set:
            h.add("Route", route)
        h.add("Max-Forwards", "70")
        h.add("From", f"{self.local_uri};tag={self.local_tag}")
        h.add("To", f"{self.remote_uri};tag={self.remote_tag}" if self.remote_tag else self.remote_uri)
        h.add("Call-ID", self.call_id)
        h.add("CSeq", f"{cseq} {method}")
        if self.local_contact and method in ("INVITE", "UPDATE", "SUBSCRIBE", "NOTIFY", "REFER"):
            h.add("Contact", self.local_contact)
        for n, v in headers:
            h.add(n, v)
        if body:
            h.add("Content-Type", content_type or "application/sdp")
        return Request(method, self.remote_target, h, body)


def _without_tag(value: str) -> str:
    """Strip the tag parameter from a From/To value (outside <>)."""
    gt = value.rfind(">")
    head, tail = (value[: gt + 1], value[gt + 1 :]) if gt >= 0 else ("", value)
    params = [p for p in tail.split(";") if p.strip() and not p.strip().lower().startswith("tag=")]
    if gt < 0:
        return ";".join(params)
    return head + "".join(f";{p.strip()}" for p in params)
