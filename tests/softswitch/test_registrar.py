"""Registrar logic (RFC 3261 §10.3) on a real store in a temporary file, no network."""
from __future__ import annotations

import time

import pytest

from config.store import Store
from softswitch.auth import Authenticator
from softswitch.location import Directory, Location
from softswitch.registrar import Registrar, peer_of_binding
from softswitch.sip.digest import DigestChallenger, build_authorization, parse_challenge
from softswitch.sip.message import Request

PEER = ("udp", "198.51.100.7", 40000)
WALL = 1_800_000_000.0


@pytest.fixture()
def store(tmp_path):
    s = Store(tmp_path / "reg.db")
    s.add_account("acme", "acme.test", 3)
    s.add_channel("acme", "acme-201", "s3cret-201")
    s.add_channel("acme", "acme-202", "s3cret-202")
    yield s
    s.close()


@pytest.fixture()
def registrar(store):
    directory = Directory(store)
    return Registrar(directory, Location(store), Authenticator(directory, DigestChallenger(b"k" * 32)))


def persisted(registrar, store, channel="acme-201"):
    """Flush the write-behind and read the channel's bindings back from SQLite."""
    registrar.location.flush()
    ch = store.channel_by_username(store.account("acme").id, channel)
    return store.bindings(ch.id, WALL)


def register(user="acme-201", *, contact="<sip:acme-201@192.168.1.10:5062>", expires="3600",
             auth: str | None = None, domain="acme.test", call_id="reg-1", cseq=1, ruri=None) -> Request:
    headers = [
        ("Via", "SIP/2.0/UDP 192.168.1.10:5062;branch=z9hG4bK-1;rport"),
        ("From", f"<sip:{user}@{domain}>;tag=a1"), ("To", f"<sip:{user}@{domain}>"),
        ("Call-ID", call_id), ("CSeq", f"{cseq} REGISTER"), ("Max-Forwards", "70"),
        ("User-Agent", "Yealink SIP-T46U 108.86.0.20"),
    ]
    if contact is not None:
        headers.append(("Contact", contact))
    if expires is not None:
        headers.append(("Expires", expires))
    if auth:
        headers.append(("Authorization", auth))
    return Request("REGISTER", ruri or f"sip:{domain}", headers)


def authed(registrar, password="s3cret-201", now=100.0, **kw):
    first = registrar.register(register(**kw), PEER, now, WALL)
    assert first.status == 401
    values = [v for n, v in first.headers if n == "WWW-Authenticate"]
    assert values[0].startswith("Digest") and "algorithm=SHA-256" in values[0] and "algorithm=MD5" in values[1]
    challenge = parse_challenge(values[0])
    user = kw.get("user", "acme-201")
    auth = build_authorization(challenge, username=user, password=password, method="REGISTER",
                               uri="sip:acme.test", cnonce="c0ffee")
    return registrar.register(register(auth=auth, **kw), PEER, now + 1, WALL)


def test_unknown_domain_is_404(registrar):
    assert registrar.register(register(domain="nowhere.test"), PEER, 0, WALL).status == 404


def test_missing_credentials_get_a_challenge(registrar):
    reply = registrar.register(register(), PEER, 0, WALL)
    assert reply.status == 401
    assert sum(1 for n, _ in reply.headers if n == "WWW-Authenticate") == 2


def test_register_stores_binding_with_source_and_user_agent(registrar, store):
    reply = authed(registrar)
    assert reply.status == 200
    contacts = [v for n, v in reply.headers if n == "Contact"]
    assert contacts == ["<sip:acme-201@192.168.1.10:5062>;expires=3600"]
    [binding] = persisted(registrar, store)
    assert binding.source == "udp:198.51.100.7:40000"
    assert peer_of_binding(binding) == PEER
    assert binding.user_agent.startswith("Yealink")


def test_wrong_password_is_403(registrar):
    assert authed(registrar, password="wrong").status == 403


def test_credentials_of_another_channel_are_403(registrar):
    first = registrar.register(register(), PEER, 0, WALL)
    challenge = parse_challenge([v for n, v in first.headers if n == "WWW-Authenticate"][0])
    auth = build_authorization(challenge, username="acme-202", password="s3cret-202", method="REGISTER",
                               uri="sip:acme.test", cnonce="x")
    assert registrar.register(register(auth=auth), PEER, 1, WALL).status == 403


def test_stale_nonce_is_rechallenged_with_stale_true(registrar):
    first = registrar.register(register(), PEER, 0, WALL)
    challenge = parse_challenge([v for n, v in first.headers if n == "WWW-Authenticate"][0])
    auth = build_authorization(challenge, username="acme-201", password="s3cret-201", method="REGISTER",
                               uri="sip:acme.test", cnonce="x")
    reply = registrar.register(register(auth=auth), PEER, 10_000, WALL)
    assert reply.status == 401
    assert all("stale=true" in v for n, v in reply.headers if n == "WWW-Authenticate")


def test_interval_too_brief_is_423_with_min_expires(registrar):
    reply = authed(registrar, expires="10")
    assert reply.status == 423
    assert ("Min-Expires", "60") in reply.headers


def test_expiry_is_capped(registrar):
    reply = authed(registrar, expires="999999")
    assert reply.status == 200
    assert any(v.endswith(";expires=7200") for n, v in reply.headers if n == "Contact")


def test_new_device_replaces_the_old_binding(registrar, store):
    assert authed(registrar).status == 200
    assert authed(registrar, contact="<sip:acme-201@10.9.9.9:5060>", call_id="other-device").status == 200
    assert [b.contact for b in persisted(registrar, store)] == ["sip:acme-201@10.9.9.9:5060"]


def test_wildcard_with_expires_zero_removes_all(registrar, store):
    assert authed(registrar).status == 200
    assert persisted(registrar, store) != []
    assert authed(registrar, contact="*", expires="0", cseq=2).status == 200
    assert persisted(registrar, store) == []


def test_wildcard_without_expires_zero_is_400(registrar):
    assert authed(registrar, contact="*", expires="60").status == 400


def test_query_without_contact_lists_bindings(registrar):
    assert authed(registrar).status == 200
    reply = authed(registrar, contact=None, expires=None, cseq=3)
    assert reply.status == 200
    assert [v for n, v in reply.headers if n == "Contact"][0].startswith("<sip:acme-201@192.168.1.10:5062>")


def test_contact_expires_zero_removes_that_binding(registrar, store):
    assert authed(registrar).status == 200
    assert persisted(registrar, store) != []
    assert authed(registrar, contact="<sip:acme-201@192.168.1.10:5062>;expires=0", cseq=4).status == 200
    assert persisted(registrar, store) == []


def test_non_sip_aor_is_400(registrar):
    request = register()
    request.headers.set("To", "isbn:2983792873")
    request.invalidate()
    assert registrar.register(request, PEER, 0, WALL).status == 400


def test_server_address_in_request_uri_is_accepted(registrar):
    assert authed(registrar, ruri="sip:127.0.0.1:5060").status == 200


def test_write_behind_batches_and_restart_reload(registrar, store):
    """Bindings reach SQLite only on flush (one transaction) and a new Location loads them."""
    assert authed(registrar).status == 200
    ch = store.channel_by_username(store.account("acme").id, "acme-201")
    assert store.bindings(ch.id, WALL) == []  # not yet written
    assert registrar.location.dirty
    registrar.location.flush()
    assert not registrar.location.dirty
    reloaded = Location(store)
    assert reloaded.load(WALL) == 1
    assert [b.contact for b in reloaded.bindings(ch.id, WALL)] == ["sip:acme-201@192.168.1.10:5062"]


def test_directory_sees_cli_changes_from_another_connection(tmp_path):
    path = tmp_path / "dir.db"
    daemon_side, cli_side = Store(path), Store(path)
    directory = Directory(daemon_side)
    assert directory.account_by_domain("late.test") is None  # cached as unknown
    cli_side.add_account("late", "late.test", 3)
    time.sleep(0.01)  # the directory checks PRAGMA data_version at most every 5 ms
    assert directory.account_by_domain("late.test") is not None  # data_version moved
    daemon_side.close()
    cli_side.close()


def test_directory_ignores_our_own_runtime_writes_but_not_configuration(tmp_path):
    """Registrations and CDRs written behind must not flush the cache; a login must."""
    path = tmp_path / "cv.db"
    daemon_side, writer, cli_side = Store(path), Store(path), Store(path)
    cli_side.add_account("acme", "acme.test", 3)
    ch = cli_side.add_channel("acme", "acme-201", "pw-201-long")
    cli_side.add_user("acme", "201", "Alice", "4711")
    directory = Directory(daemon_side)
    before = daemon_side.config_version()
    assert directory.user_on_channel(ch.id) is None
    from config.models import Binding
    writer.apply_bindings([Binding(ch.id, "sip:a@10.0.0.1", 2e9, "udp:10.0.0.1:5060")], [], [])
    assert daemon_side.config_version() == before  # runtime state: configuration unchanged
    cli_side.login("acme", "201", "acme-201")
    assert daemon_side.config_version() > before
    time.sleep(0.01)
    assert directory.user_on_channel(ch.id).extension == "201"
    for s in (daemon_side, writer, cli_side):
        s.close()
