"""Trunk registration and keep-alive (softswitch.trunks): the sans-IO link with explicit
times, and the manager over an in-memory store with a fake SIP core (no network)."""
from __future__ import annotations

import asyncio
import hashlib
import itertools
import logging
from collections.abc import Iterator
from typing import Any

import pytest

from config.routing import Trunk
from config.store import Store
from softswitch.sip.digest import parse_credentials
from softswitch.sip.message import Request, Response, make_response
from softswitch.sip.transaction import ResponseReceived, TransactionTimedOut
from softswitch.trunks import (
    KEEPALIVE_ENV, KEEPALIVE_INTERVAL, LinkStatus, TrunkLink, TrunkManager, TrunkState, keepalive_from_env,
    retry_delay,
)

CONTACT = "<sip:softswitch@192.0.2.1:5060>"
CARRIER = "192.0.2.10"
REGISTERING = Trunk(1, 1, "carrier", CARRIER, 5060, "udp", "acme01", "Xk3pQ9z", register=True)
PLAIN = Trunk(2, 1, "backup", CARRIER, 5080)
CHALLENGE = 'Digest realm="carrier.example", nonce="n0nce-1", qop="auth", algorithm=MD5'


def tokens() -> Iterator[str]:
    return (f"t{n}" for n in itertools.count(1))


def link_of(trunk: Trunk, keepalive: float = KEEPALIVE_INTERVAL) -> TrunkLink:
    counter = tokens()
    return TrunkLink(trunk, CONTACT, keepalive=keepalive, token=lambda: next(counter))


def sent(link: TrunkLink, method: str) -> Request:
    [request] = [r for r in link.requests_to_send() if r.method == method]
    return request


def answer(request: Request, status: int, *headers: tuple[str, str]) -> Response:
    return make_response(request, status, to_tag="carrier", headers=headers)


def states(link: TrunkLink) -> list[tuple[str, str]]:
    return [(c.new.state.value, c.new.detail) for c in link.status_changes()]


def md5(text: str) -> str:
    return hashlib.md5(text.encode()).hexdigest()


def registered(link: TrunkLink, now: float = 0.0, granted: int = 300) -> None:
    """Start the link and complete its first registration (challenge, then 200)."""
    link.start(now)
    first = sent(link, "REGISTER")
    link.response_received(first, answer(first, 401, ("WWW-Authenticate", CHALLENGE)), now)
    second = sent(link, "REGISTER")
    link.response_received(second, answer(second, 200, ("Contact", f"{CONTACT};expires={granted}")), now)
    link.status_changes()


# -- registration ------------------------------------------------------------------------------


def test_register_answers_the_challenge_with_rfc7616_digest() -> None:
    link = link_of(REGISTERING)
    link.start(0.0)
    first = sent(link, "REGISTER")
    assert first.uri_text == "sip:192.0.2.10"
    assert first.headers.get("To") == "<sip:acme01@192.0.2.10>"
    assert first.headers.get("From").startswith("<sip:acme01@192.0.2.10>;tag=")
    assert (first.headers.get("Contact"), first.headers.get("Expires")) == (CONTACT, "300")
    assert "Authorization" not in first.headers
    assert states(link) == [("registering", "registering at sip:192.0.2.10")]

    link.response_received(first, answer(first, 401, ("WWW-Authenticate", CHALLENGE)), 0.1)
    second = sent(link, "REGISTER")
    assert second.call_id == first.call_id and second.cseq.seq == first.cseq.seq + 1
    creds = parse_credentials(second.headers.get("Authorization"))
    assert (creds.username, creds.realm, creds.nonce, creds.uri, creds.qop, creds.nc) == (
        "acme01", "carrier.example", "n0nce-1", "sip:192.0.2.10", "auth", "00000001")
    ha1, ha2 = md5("acme01:carrier.example:Xk3pQ9z"), md5("REGISTER:sip:192.0.2.10")
    assert creds.response == md5(f"{ha1}:n0nce-1:00000001:{creds.cnonce}:auth:{ha2}")
    assert states(link) == []  # still registering

    link.response_received(second, answer(second, 200, ("Contact", f"{CONTACT};expires=120")), 0.2)
    assert states(link) == [("up", "registered for 120 s")]
    assert link.status == LinkStatus(TrunkState.UP, "registered for 120 s", 0.2)


def test_refresh_at_80_percent_of_the_granted_expiry_reuses_the_nonce() -> None:
    link = link_of(REGISTERING, keepalive=1000.0)
    registered(link, 0.0, granted=120)
    assert link.next_deadline() == pytest.approx(96.0)
    link.handle_timer(95.9)
    assert link.requests_to_send() == []
    link.handle_timer(96.0)
    refresh = sent(link, "REGISTER")
    creds = parse_credentials(refresh.headers.get("Authorization"))
    assert (creds.nonce, creds.nc, refresh.cseq.seq) == ("n0nce-1", "00000002", 3)
    link.response_received(refresh, answer(refresh, 200, ("Expires", "120")), 96.1)
    assert states(link) == []  # still up, same detail: nothing to log
    assert link.next_deadline() == pytest.approx(96.1 + 96.0)


def test_a_stale_preemptive_nonce_is_answered_with_the_new_one() -> None:
    link = link_of(REGISTERING, keepalive=1000.0)
    registered(link, 0.0, granted=100)
    link.handle_timer(80.0)
    refresh = sent(link, "REGISTER")
    fresh = 'Digest realm="carrier.example", nonce="n0nce-2", qop="auth"'
    link.response_received(refresh, answer(refresh, 401, ("WWW-Authenticate", fresh)), 80.1)
    retry = sent(link, "REGISTER")
    assert parse_credentials(retry.headers.get("Authorization")).nonce == "n0nce-2"
    link.response_received(retry, answer(retry, 200, ("Expires", "100")), 80.2)
    assert link.status.state is TrunkState.UP


def test_a_refused_password_is_auth_failed_and_retried_with_back_off() -> None:
    link = link_of(REGISTERING, keepalive=10_000.0)
    link.start(0.0)
    link.status_changes()
    now = 0.0
    for failures in (1, 2, 3):
        request = sent(link, "REGISTER")
        link.response_received(request, answer(request, 401, ("WWW-Authenticate", CHALLENGE)), now)
        retry = sent(link, "REGISTER")
        assert "Authorization" in retry.headers
        link.response_received(retry, answer(retry, 401, ("WWW-Authenticate", CHALLENGE)), now)
        assert link.requests_to_send() == []
        assert link.next_deadline() == now + retry_delay(failures)
        now += retry_delay(failures)
        link.handle_timer(now)
    # logged once: later failures with the same reason are no change
    assert states(link) == [("auth failed", "401 Unauthorized: the carrier refused username 'acme01'")]


def test_403_is_auth_failed() -> None:
    link = link_of(REGISTERING)
    link.start(0.0)
    request = sent(link, "REGISTER")
    link.response_received(request, answer(request, 403), 0.0)
    assert link.status.state is TrunkState.AUTH_FAILED and link.status.detail == "403 Forbidden"
    assert link.next_deadline() == 30.0


def test_a_challenge_we_cannot_answer_is_auth_failed() -> None:
    link = link_of(REGISTERING)
    link.start(0.0)
    request = sent(link, "REGISTER")
    link.response_received(request, answer(request, 407, (
        "Proxy-Authenticate", 'Digest realm="x", nonce="y", algorithm=SHA-512-256')), 0.0)
    assert link.status.state is TrunkState.AUTH_FAILED
    assert "unsupported digest algorithm 'SHA-512-256'" in link.status.detail


def test_proxy_challenge_is_answered_in_proxy_authorization() -> None:
    link = link_of(REGISTERING)
    link.start(0.0)
    request = sent(link, "REGISTER")
    link.response_received(request, answer(request, 407, ("Proxy-Authenticate", CHALLENGE)), 0.0)
    retry = sent(link, "REGISTER")
    assert "Authorization" not in retry.headers
    assert parse_credentials(retry.headers.get("Proxy-Authorization")).nonce == "n0nce-1"


def test_granted_expiry_from_expires_when_the_contact_is_unreadable() -> None:
    link = link_of(REGISTERING, keepalive=1000.0)
    link.start(0.0)
    request = sent(link, "REGISTER")
    link.response_received(request, answer(request, 200, ("Contact", "<sip:broken"), ("Expires", "60")), 0.0)
    assert link.status.detail == "registered for 60 s" and link.next_deadline() == 48.0


def test_interval_too_brief_asks_again_with_min_expires() -> None:
    link = link_of(REGISTERING)
    link.start(0.0)
    request = sent(link, "REGISTER")
    link.response_received(request, answer(request, 423, ("Min-Expires", "900")), 0.0)
    retry = sent(link, "REGISTER")
    assert retry.headers.get("Expires") == "900"
    link.response_received(retry, answer(retry, 200), 0.1)
    assert link.status.detail == "registered for 900 s"


def test_register_failures_back_off_up_to_ten_minutes() -> None:
    assert [retry_delay(n) for n in range(1, 8)] == [30, 60, 120, 240, 480, 600, 600]
    link = link_of(REGISTERING, keepalive=10_000.0)
    link.start(0.0)
    request = sent(link, "REGISTER")
    link.response_received(request, answer(request, 503), 0.0)
    assert link.status == LinkStatus(TrunkState.DOWN, "REGISTER answered 503 Service Unavailable", 0.0)
    assert link.next_deadline() == 30.0


def test_register_timeout_is_down_and_a_carrier_back_is_registered_at_once() -> None:
    link = link_of(REGISTERING, keepalive=30.0)
    link.start(0.0)
    requests = {r.method: r for r in link.requests_to_send()}
    link.response_received(requests["OPTIONS"], answer(requests["OPTIONS"], 200), 0.1)
    link.handle_timer(30.0)
    unanswered = sent(link, "OPTIONS")
    link.request_timed_out(requests["REGISTER"], 32.0)
    assert (link.status.state, link.status.detail) == (TrunkState.DOWN, "REGISTER timed out")
    assert link.next_deadline() == 60.0  # the next probe; the REGISTER retry is due at 62
    link.handle_timer(60.0)
    assert link.status.detail == "OPTIONS timed out" and unanswered is not None
    probe = sent(link, "OPTIONS")
    link.response_received(probe, answer(probe, 200), 60.5)  # the carrier is back
    assert link.next_deadline() == 60.5  # no need to wait out the back-off
    link.handle_timer(60.5)
    retry = sent(link, "REGISTER")
    assert (link.status.state, link.status.detail) == (TrunkState.DOWN, "REGISTER timed out")  # up once registered
    link.response_received(retry, answer(retry, 200), 60.6)
    assert link.status.state is TrunkState.UP


def test_registration_that_lapses_without_refresh_is_down() -> None:
    link = link_of(REGISTERING, keepalive=10_000.0)
    registered(link, 0.0, granted=100)
    link.handle_timer(80.0)  # refresh sent, never answered (its timeout is still to come)
    link.requests_to_send()
    link.handle_timer(100.0)
    assert link.status.state is TrunkState.DOWN
    assert link.status.detail == "registration expired without a refresh"


def test_close_unregisters_with_expires_zero() -> None:
    link = link_of(REGISTERING, keepalive=10_000.0)
    registered(link, 0.0)
    link.close(10.0)
    bye = sent(link, "REGISTER")
    assert bye.headers.get("Expires") == "0" and bye.headers.get("Contact") == CONTACT
    assert parse_credentials(bye.headers.get("Authorization")).nc == "00000002"
    assert not link.done and link.next_deadline() is None
    link.response_received(bye, answer(bye, 200), 10.1)
    assert link.done
    assert link.status_changes() == []  # the daemon is stopping: nothing more to report


def test_a_plain_trunk_closes_without_requests() -> None:
    link = link_of(PLAIN)
    link.start(0.0)
    link.requests_to_send()
    link.close(1.0)
    assert link.requests_to_send() == [] and link.done


# -- keep-alive --------------------------------------------------------------------------------


def test_options_keepalive_up_down_up() -> None:
    link = link_of(PLAIN, keepalive=30.0)
    link.start(0.0)
    probe = sent(link, "OPTIONS")
    assert probe.uri_text == "sip:192.0.2.10:5080"
    assert probe.headers.get("To") == "<sip:192.0.2.10:5080>"
    assert states(link) == [("unknown", "waiting for the first answer to OPTIONS")]
    link.response_received(probe, answer(probe, 200), 0.05)
    assert states(link) == [("up", "answers OPTIONS")]

    assert link.next_deadline() == 30.0
    link.handle_timer(30.0)
    unanswered = sent(link, "OPTIONS")
    link.handle_timer(60.0)  # a whole interval without an answer
    assert states(link) == [("down", "OPTIONS timed out")]
    assert link.status.since == 60.0
    next_probe = sent(link, "OPTIONS")
    assert next_probe is not unanswered
    link.request_timed_out(unanswered, 62.0)  # the old transaction gives up later: no news
    assert states(link) == []
    link.response_received(next_probe, answer(next_probe, 405), 60.1)  # any answer = reachable
    assert states(link) == [("up", "answers OPTIONS")]


def test_options_transaction_timeout_is_down() -> None:
    link = link_of(PLAIN, keepalive=60.0)
    link.start(0.0)
    probe = sent(link, "OPTIONS")
    link.request_timed_out(probe, 32.0)
    assert link.status == LinkStatus(TrunkState.DOWN, "OPTIONS timed out", 32.0)


def test_a_registering_trunk_is_up_only_while_registered_and_reachable() -> None:
    link = link_of(REGISTERING, keepalive=30.0)
    link.start(0.0)
    requests = {r.method: r for r in link.requests_to_send()}
    link.response_received(requests["OPTIONS"], answer(requests["OPTIONS"], 200), 0.0)
    assert link.status.state is TrunkState.REGISTERING  # reachable, not registered yet
    link.response_received(requests["REGISTER"], answer(requests["REGISTER"], 200, ("Expires", "300")), 0.1)
    link.requests_to_send()
    assert link.status.state is TrunkState.UP
    link.handle_timer(30.0)
    link.handle_timer(60.0)
    assert (link.status.state, link.status.detail) == (TrunkState.DOWN, "OPTIONS timed out")


def test_keepalive_from_environment() -> None:
    assert keepalive_from_env({}) == KEEPALIVE_INTERVAL
    assert keepalive_from_env({KEEPALIVE_ENV: "1.5"}) == 1.5
    for bad in ("0", "-3", "soon", "nan", "inf"):
        assert keepalive_from_env({KEEPALIVE_ENV: bad}) == KEEPALIVE_INTERVAL


# -- the manager ---------------------------------------------------------------------------------


class FakeTransaction:
    def __init__(self, request: Request) -> None:
        self.request = request


class FakeCore:
    """SipCore as the manager sees it: requests are recorded, writes happen at once."""

    def __init__(self, store: Store) -> None:
        self.store = self.writer = store
        self.sent: list[tuple[Request, Any, Any]] = []
        self.tasks: set[asyncio.Task[Any]] = set()

    def send_request(self, request: Request, peer: Any, owner: Any) -> FakeTransaction:
        self.sent.append((request, peer, owner))
        return FakeTransaction(request)

    def local_contact(self, peer: Any) -> str:
        return CONTACT

    def write_behind(self, fn: Any, *args: Any) -> None:
        fn(*args)

    def spawn(self, coro: Any) -> asyncio.Task[Any]:
        task = asyncio.get_running_loop().create_task(coro)
        self.tasks.add(task)
        return task

    def now(self) -> float:
        return asyncio.get_running_loop().time()

    def take(self, method: str) -> list[tuple[Request, Any, Any]]:
        found = [entry for entry in self.sent if entry[0].method == method]
        self.sent = [entry for entry in self.sent if entry[0].method != method]
        return found

    def respond(self, entry: tuple[Request, Any, Any], status: int, *headers: tuple[str, str]) -> None:
        request, _, owner = entry
        owner.on_transaction_event(ResponseReceived(FakeTransaction(request), answer(request, status, *headers)))

    def time_out(self, entry: tuple[Request, Any, Any]) -> None:
        request, _, owner = entry
        owner.on_transaction_event(TransactionTimedOut(FakeTransaction(request)))


@pytest.fixture
def store() -> Iterator[Store]:
    s = Store(":memory:")
    s.add_account("acme", "acme.example.com", 3)
    s.add_account("beta", "beta.example.com", 3)
    yield s
    s.close()


async def resolver(host: str, port: int) -> list[str]:
    table = {"sip.carrier.example": ["192.0.2.10", "192.0.2.11"]}
    if host not in table:
        raise OSError(f"[Errno -2] Name or service not known: {host!r}")
    return table[host]


@pytest.fixture
def manager(store: Store) -> Iterator[TrunkManager]:
    # Long keep-alive and poll: the tests drive every step themselves.
    yield TrunkManager(FakeCore(store), keepalive=3600.0, poll_interval=3600.0, resolve=resolver, wall=lambda: 1e9,
                       unregister_wait=0.0)


async def until(condition: Any) -> Any:
    """Let the event loop run until ``condition()`` is truthy (a hang fails, not blocks, the test)."""
    async def wait() -> Any:
        while not (value := condition()):
            await asyncio.sleep(0)
        return value
    return await asyncio.wait_for(wait(), 5.0)


def status_rows(store: Store, account: str = "acme") -> dict[str, tuple[str, str]]:
    names = {t.id: t.name for t in store.trunks(store.account(account).id)}
    return {names[i]: (s.state, s.detail) for i, s in store.trunk_statuses(store.account(account).id).items()}


async def test_manager_starts_monitors_and_records_status(store: Store, manager: TrunkManager) -> None:
    core: FakeCore = manager.core  # type: ignore[assignment]
    acme = store.account("acme")
    store.add_trunk(acme.id, "carrier", "sip.carrier.example", username="acme01", password="pw", register=True)
    store.add_trunk(acme.id, "backup", "192.0.2.50:5080")
    await manager.refresh()
    assert status_rows(store) == {"carrier": ("registering", "registering at sip:sip.carrier.example"),
                                  "backup": ("unknown", "waiting for the first answer to OPTIONS")}
    [register] = core.take("REGISTER")
    assert register[1] == ("udp", "192.0.2.10", 5060)  # the first address the resolver gave
    probes = {entry[1]: entry for entry in core.take("OPTIONS")}
    assert set(probes) == {("udp", "192.0.2.10", 5060), ("udp", "192.0.2.50", 5080)}
    core.respond(probes[("udp", "192.0.2.50", 5080)], 200)
    core.respond(register, 200, ("Expires", "300"))
    assert status_rows(store) == {"carrier": ("up", "registered for 300 s"), "backup": ("up", "answers OPTIONS")}
    assert store.trunk_statuses(acme.id)[store.trunks(acme.id)[0].id].since == 1e9
    await manager.close()


async def test_status_changes_are_logged_once_each(store: Store, manager: TrunkManager,
                                                   caplog: pytest.LogCaptureFixture) -> None:
    core: FakeCore = manager.core  # type: ignore[assignment]
    store.add_trunk(store.account("acme").id, "carrier", "192.0.2.10")
    with caplog.at_level(logging.INFO, logger="softswitch.trunks"):
        await manager.refresh()
        [probe] = core.take("OPTIONS")
        core.time_out(probe)
        core.time_out(probe)  # a second report of the same fact: no second line
    assert [r.getMessage() for r in caplog.records] == [
        "trunk acme/carrier: unknown (waiting for the first answer to OPTIONS)",
        "trunk acme/carrier: unknown -> down (OPTIONS timed out)",
    ]
    await manager.close()


async def test_match_inbound_by_source_address(store: Store, manager: TrunkManager) -> None:
    acme, beta = store.account("acme"), store.account("beta")
    main = store.add_trunk(acme.id, "carrier", "sip.carrier.example")
    alt = store.add_trunk(acme.id, "alt-port", "192.0.2.11:5070", priority=2)
    other = store.add_trunk(beta.id, "shared", "192.0.2.10")
    await manager.refresh()
    assert manager.match_inbound(("udp", "192.0.2.11", 5070)) == alt  # the exact port wins
    assert manager.match_inbound(("udp", "192.0.2.11", 5060)) == main  # then priority
    assert manager.match_inbound(("udp", "::ffff:192.0.2.11", 5060)) == main  # IPv4-mapped source
    assert manager.match_inbound(("tcp", "192.0.2.10", 41234)) in (main, other)
    assert manager.match_inbound(("udp", "192.0.2.10", 5060), beta.id) == other  # the DID's account decides
    assert manager.match_inbound(("udp", "192.0.2.11", 5060), beta.id) is None
    assert manager.match_inbound(("udp", "198.51.100.9", 5060)) is None
    assert manager.match_inbound(("udp", "not-an-ip", 5060)) is None
    await manager.close()


async def test_candidates_up_first_then_unknown_and_never_down(store: Store, manager: TrunkManager) -> None:
    core: FakeCore = manager.core  # type: ignore[assignment]
    acme = store.account("acme")
    first = store.add_trunk(acme.id, "first", "192.0.2.1", priority=1)
    second = store.add_trunk(acme.id, "second", "192.0.2.2", priority=2)
    third = store.add_trunk(acme.id, "third", "192.0.2.3", priority=3)
    store.add_trunk(acme.id, "nowhere", "does-not-resolve.example", priority=1)
    await manager.refresh()
    assert manager.candidates(acme.id) == [first, second, third]  # nothing known yet: by priority
    probes = {entry[1][1]: entry for entry in core.take("OPTIONS")}
    core.time_out(probes["192.0.2.1"])
    core.respond(probes["192.0.2.3"], 200)
    assert manager.candidates(acme.id) == [third, second]
    assert manager.candidates(acme.id, include_down=True) == [third, second, first]  # unresolvable: never
    assert manager.status_of(first) == LinkStatus(TrunkState.DOWN, "OPTIONS timed out", manager.status_of(first).since)
    nowhere = store.trunks(acme.id)[1]
    assert nowhere.name == "nowhere" and manager.peer_of(nowhere) is None
    assert manager.status_of(nowhere).detail.startswith("cannot resolve does-not-resolve.example")
    assert manager.candidates(store.account("beta").id) == []
    assert manager.credentials(first) is None
    await manager.close()


async def test_configuration_changes_start_stop_and_keep_links(store: Store, manager: TrunkManager) -> None:
    core: FakeCore = manager.core  # type: ignore[assignment]
    acme = store.account("acme")
    store.add_trunk(acme.id, "carrier", "192.0.2.10", username="acme01", password="pw", register=True)
    await manager.refresh()
    [register] = core.take("REGISTER")
    core.respond(register, 200, ("Expires", "300"))
    core.sent.clear()

    await manager.refresh()  # nothing changed: nothing sent
    assert core.sent == []
    trunk = store.update_trunk(acme.id, "carrier", priority=5)
    await manager.refresh()  # priority only: registration untouched
    assert core.sent == [] and manager.candidates(acme.id) == [trunk]

    store.update_trunk(acme.id, "carrier", password="new-pw")
    await manager.refresh()  # same address-of-record: the new REGISTER replaces the binding
    assert [(r.headers.get("Expires"), peer[1]) for r, peer, _ in core.take("REGISTER")] == [("300", "192.0.2.10")]

    store.update_trunk(acme.id, "carrier", host="192.0.2.20")
    await manager.refresh()  # another registrar: withdraw the old binding, register at the new one
    assert [(r.headers.get("Expires"), peer[1]) for r, peer, _ in core.take("REGISTER")] == [
        ("0", "192.0.2.10"), ("300", "192.0.2.20")]

    core.sent.clear()
    store.add_trunk(acme.id, "spare", "192.0.2.30")
    await manager.refresh()  # another trunk: only its own probe
    assert [(r.method, peer[1]) for r, peer, _ in core.sent] == [("OPTIONS", "192.0.2.30")]
    core.sent.clear()
    store.delete_trunk(acme.id, "spare")
    await manager.refresh()
    assert core.sent == [] and [t.name for t in manager.candidates(acme.id)] == ["carrier"]
    await manager.close()


async def test_deleting_a_registered_trunk_unregisters_it(store: Store, manager: TrunkManager) -> None:
    core: FakeCore = manager.core  # type: ignore[assignment]
    acme = store.account("acme")
    store.add_trunk(acme.id, "carrier", "192.0.2.10", username="acme01", password="pw", register=True)
    await manager.refresh()
    [register] = core.take("REGISTER")
    core.respond(register, 200, ("Expires", "300"))
    store.delete_trunk(acme.id, "carrier")
    await manager.refresh()
    [unregister] = core.take("REGISTER")
    assert unregister[0].headers.get("Expires") == "0"
    assert manager.candidates(acme.id) == [] and store.trunk_statuses(acme.id) == {}
    await manager.close()


async def test_close_unregisters_waits_for_the_answer_and_clears_status(store: Store) -> None:
    core = FakeCore(store)
    manager = TrunkManager(core, keepalive=3600.0, poll_interval=3600.0, unregister_wait=5.0)
    acme = store.account("acme")
    store.add_trunk(acme.id, "carrier", "192.0.2.10", username="acme01", password="pw", register=True)
    await manager.start()
    await until(lambda: core.take("OPTIONS"))  # the first refresh runs in the background
    [register] = core.take("REGISTER")
    core.respond(register, 200, ("Expires", "300"))
    closing = asyncio.create_task(manager.close())
    unregister = await until(lambda: core.take("REGISTER"))
    assert unregister[0][0].headers.get("Expires") == "0" and not closing.done()
    core.respond(unregister[0], 200)
    await closing
    assert store.trunk_statuses(acme.id) == {}


def test_status_writes_are_not_configuration_changes(store: Store) -> None:
    """The manager reloads on every config_version change: its own writes must not cause one."""
    acme = store.account("acme")
    trunk = store.add_trunk(acme.id, "carrier", "192.0.2.10")
    version = store.config_version()
    store.set_trunk_status(trunk.id, "up", "answers OPTIONS", 1e9)
    store.set_trunk_status(trunk.id, "down", "OPTIONS timed out", 2e9)
    assert store.config_version() == version
    [status] = store.trunk_statuses(acme.id).values()
    assert (status.state, status.detail, status.since) == ("down", "OPTIONS timed out", 2e9)
    store.delete_trunk(acme.id, "carrier")
    store.set_trunk_status(trunk.id, "up", "answers OPTIONS", 3e9)  # a late write for a deleted trunk
    assert store.trunk_statuses(acme.id) == {}
    with pytest.raises(ValueError, match="trunk state 'sideways'"):
        store.set_trunk_status(trunk.id, "sideways", "", 0.0)
