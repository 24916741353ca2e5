"""Registrar: REGISTER per VoIP channel (RFC 3261 §10.3), bindings in the store.

A channel is one device (SPEC §21): its bindings are capped (default 1), so a new device
registering with the same credentials replaces the old one. Bindings carry the Contact
(LAN address), the source the REGISTER came from (WAN address, where requests are sent,
so phones behind NAT are reachable) and the User-Agent (device model).

Every outcome is one ``Reply``; the dispatcher turns it into the response.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from config.models import Account, Binding, Channel

from .auth import Authenticator
from .location import Directory, Location
from .sip.errors import SipError
from .sip.message import Request
from .sip.transaction import Peer

log = logging.getLogger(__name__)

DEFAULT_EXPIRES = 3600
MIN_EXPIRES = 60  # below this: 423 Interval Too Brief (§10.3 step 7)
MAX_EXPIRES = 7200  # above this the registrar shortens the expiry (§10.3 step 7)
MAX_CONTACTS_PER_REQUEST = 16


@dataclass(frozen=True)
class Reply:
    status: int
    reason: str | None = None
    headers: tuple[tuple[str, str], ...] = ()


class Registrar:
    """REGISTER processing over the in-memory ``Location`` (persisted write-behind) and
    the cached ``Directory`` of accounts and channels."""

    def __init__(self, directory: Directory, location: Location, auth: Authenticator, *,
                 min_expires: int = MIN_EXPIRES, max_expires: int = MAX_EXPIRES,
                 default_expires: int = DEFAULT_EXPIRES):
        self.directory = directory
        self.location = location
        self.auth = auth
        self.min_expires = min_expires
        self.max_expires = max_expires
        self.default_expires = default_expires

    def register(self, request: Request, peer: Peer, now: float, wall: float | None = None) -> Reply:
        """Process one REGISTER; ``now`` is the digest clock, ``wall`` unix time for expiry."""
        wall = time.time() if wall is None else wall
        to = request.to.uri
        if not to.is_sip:
            return Reply(400, f"Bad Request (To must be a SIP AOR, not {to.scheme}:)")
        # The AOR (To) names the account's domain (§10.2).
        result = self.auth.identify(request, to.host, now)
        if not result.ok:
            return Reply(result.status, result.reason, result.headers)
        channel = result.channel
        assert channel is not None
        if (to.user or "") != channel.username:
            return Reply(403, "Forbidden (To user does not match the authenticated channel)")
        try:
            return self._update_bindings(request, channel, peer, wall)
        except SipError as exc:
            return Reply(exc.status_code, exc.reason_phrase)

    def _update_bindings(self, request: Request, channel: Channel, peer: Peer, wall: float) -> Reply:
        contacts = request.contacts
        header_expires = request.expires
        if any(c.wildcard for c in contacts):
            # §10.3 step 6: "*" only alone and only with Expires: 0
            if len(contacts) != 1 or header_expires != 0:
                return Reply(400, "Bad Request (Contact: * needs Expires: 0 and no other contacts)")
            self.location.remove_all(channel.id)
            log.info("channel %s unregistered all contacts", channel.username)
            return self._ok(channel, wall)
        if len(contacts) > MAX_CONTACTS_PER_REQUEST:
            return Reply(400, "Bad Request (too many contacts)")
        user_agent = (request.headers.get("User-Agent") or "")[:200]
        source = f"{peer[0]}:{peer[1]}:{peer[2]}"
        for contact in contacts:
            raw = contact.params.get("expires")
            if raw is not None:
                if not raw.isdigit():
                    return Reply(400, "Bad Request (bad expires parameter)")
                expires = int(raw)
            elif header_expires is not None:
                expires = header_expires
            else:
                expires = self.default_expires
            uri = str(contact.uri)
            if expires == 0:
                self.location.remove(channel.id, uri)
                continue
            if expires < self.min_expires:
                return Reply(423, None, (("Min-Expires", str(self.min_expires)),))
            expires = min(expires, self.max_expires)
            q_raw = contact.params.get("q")
            try:
                q = float(q_raw) if q_raw else 1.0
            except ValueError:
                return Reply(400, "Bad Request (bad q parameter)")
            self.location.save(Binding(
                channel_id=channel.id, contact=uri, expires_at=wall + expires, source=source,
                user_agent=user_agent, call_id=request.call_id, cseq=request.cseq.seq, q=q,
                instance=(contact.params.get("+sip.instance") or "").strip('"'), registered_at=wall,
            ), channel.max_bindings)
        return self._ok(channel, wall)

    def _ok(self, channel: Channel, wall: float) -> Reply:
        headers = [("Contact", f"<{b.contact}>;expires={max(0, int(b.expires_at - wall))}")
                   for b in self.location.bindings(channel.id, wall)]
        headers.append(("Date", time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime(wall))))
        return Reply(200, "OK", tuple(headers))


def peer_of_binding(binding: Binding) -> Peer:
    """Where to send requests for this binding: the address its REGISTER came from (NAT).

    ``source`` is ``transport:host:port``; an IPv6 host keeps its colons.
    """
    transport, rest = binding.source.split(":", 1)
    host, port = rest.rsplit(":", 1)
    return (transport, host, int(port))
