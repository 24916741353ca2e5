"""SIP/SIPS URIs and name-addr values (RFC 3261 §19.1, §20.10, §25.1)."""
from __future__ import annotations

import pytest

from softswitch.sip.errors import ParseError
from softswitch.sip.uri import NameAddr, Uri, format_params, is_token, parse_params, unescape


def test_full_sip_uri() -> None:
    uri = Uri.parse("sips:alice:secret@Example.COM:5061;transport=tcp;lr;maddr=239.255.255.1?subject=hi&priority=urgent")
    assert uri.scheme == "sips" and uri.is_sip
    assert (uri.user, uri.password) == ("alice", "secret")
    assert (uri.host, uri.port) == ("example.com", 5061)  # host case-folded
    assert uri.params == {"transport": "tcp", "lr": None, "maddr": "239.255.255.1"}
    assert uri.headers == "subject=hi&priority=urgent"
    assert uri.host_port == "example.com:5061"
    assert uri.transport == "tcp"
    assert str(uri) == "sips:alice:secret@example.com:5061;transport=tcp;lr;maddr=239.255.255.1?subject=hi&priority=urgent"


@pytest.mark.parametrize("text", [
    "sip:example.com",
    "sip:bob@example.com",
    "sip:bob@192.0.2.4:5070;user=phone",
    "sip:+15551234;phone-context=example.com@gw.example.com;user=phone",
    "sip:[2001:db8::10]",
    "sip:alice@[2001:db8::10]:5070;transport=udp",
    "sip:user;par=u%40example.net@example.com",
    "sip:host.example.com.",
    "tel:+1-555-123-4567;phone-context=example.com",
    "urn:service:sos",
])
def test_round_trip(text: str) -> None:
    uri = Uri.parse(text)
    assert str(uri) == text
    assert Uri.parse(str(uri)) == uri


def test_ipv6_hosts_and_ports() -> None:
    uri = Uri.parse("sip:[2001:DB8::10]:5070")
    assert uri.host == "[2001:db8::10]" and uri.port == 5070 and uri.user is None
    assert Uri.parse("sip:[::1]").port is None
    assert Uri.parse("sip:a@h:0").port == 0
    assert Uri.parse("sip:a@h:65535").port == 65535


@pytest.mark.parametrize("text", [
    "sip:a@h:65536", "sip:a@h:12x", "sip:a@h:", "sip:a@[::1", "sip:a@[::1]x", "sip:a@", "sip:@h",
    "sip:a b@h", "sip:a@h>", "sip:", "nocolon", "1sip:a@h", "sip:a@-bad-.com", "sip:a@h\u00e9.com",
    "tel:",
])
def test_bad_uris(text: str) -> None:
    with pytest.raises(ParseError):
        Uri.parse(text)


def test_transport_defaults() -> None:
    assert Uri.parse("sip:a@h").transport == "udp"
    assert Uri.parse("sips:a@h").transport == "tls"
    assert Uri.parse("sip:a@h;transport=TCP").transport == "tcp"


def test_user_with_reserved_characters() -> None:
    # user-unreserved allows ';', '?', '/' … (RFC 4475 §3.1.1.2, §3.1.1.9)
    uri = Uri.parse("sip:1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*@example.com")
    assert uri.user == "1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*"
    assert uri.host == "example.com" and uri.params == {} and uri.headers == ""


def test_escapes_kept_until_unescape() -> None:
    uri = Uri.parse("sip:%61lice@example.com")
    assert uri.user == "%61lice"
    assert unescape(uri.user) == "alice"
    assert unescape("%2541") == "%41"  # once, never recursively
    assert unescape("plain") == "plain"
    assert unescape("%00") == "\x00"


def test_non_sip_scheme_is_opaque() -> None:
    uri = Uri.parse("HTTP://www.example.com/x?y")
    assert uri.scheme == "http" and not uri.is_sip and uri.opaque == "//www.example.com/x?y"
    assert str(uri) == "http://www.example.com/x?y"


def test_with_() -> None:
    uri = Uri.parse("sip:bob@example.com;transport=tcp")
    moved = uri.with_(host="192.0.2.9", port=5080)
    assert str(moved) == "sip:bob@192.0.2.9:5080;transport=tcp"
    assert str(uri) == "sip:bob@example.com;transport=tcp"  # frozen original untouched


def test_params() -> None:
    assert parse_params(";A=1;b;c=\"x;y\"") == {"a": "1", "b": None, "c": '"x;y"'}
    assert parse_params("") == {}
    assert format_params({"lr": None, "q": "0.5"}) == ";lr;q=0.5"
    with pytest.raises(ParseError):
        parse_params(";bad name=1")
    assert is_token("INVITE") and not is_token("") and not is_token("a b") and not is_token("a,b")


# ---------------------------------------------------------------------------------- name-addr
def test_name_addr_quoted_display_with_comma() -> None:
    na = NameAddr.parse('"Watson, Thomas" <sip:t.watson@example.org>;tag=12;expires=60')
    assert na.display == "Watson, Thomas"
    assert str(na.uri) == "sip:t.watson@example.org"
    assert na.tag == "12" and na.params["expires"] == "60"
    assert str(na) == '"Watson, Thomas" <sip:t.watson@example.org>;tag=12;expires=60'
    assert NameAddr.parse(str(na)) == na


def test_name_addr_token_display_and_none() -> None:
    assert NameAddr.parse("Bob  Smith <sip:bob@h>").display == "Bob Smith"
    assert NameAddr.parse("<sip:bob@h>").display is None
    assert NameAddr.parse("caller<sip:c@h>").display == "caller"  # RFC 4475 §3.1.1.6


def test_name_addr_quoted_pairs() -> None:
    na = NameAddr.parse(r'"say \"hi\" <now>" <sip:a@h>')
    assert na.display == r'say \"hi\" <now>'  # kept escaped, <> inside quotes ignored
    assert str(na.uri) == "sip:a@h"
    assert NameAddr.parse(str(na)) == na


def test_addr_spec_params_belong_to_header() -> None:
    na = NameAddr.parse("sip:+19725552222@gw1.example.net;unknownparam")
    assert na.params == {"unknownparam": None} and na.uri.params == {}
    inside = NameAddr.parse("<sip:+19725552222@gw1.example.net;unknownparam>")
    assert inside.uri.params == {"unknownparam": None} and inside.params == {}


def test_name_addr_uri_headers() -> None:
    na = NameAddr.parse("<sip:user@example.com?Route=%3Csip:sip.example.com%3E>")
    assert na.uri.headers == "Route=%3Csip:sip.example.com%3E"
    assert str(na) == "<sip:user@example.com?Route=%3Csip:sip.example.com%3E>"


def test_wildcard_contact() -> None:
    na = NameAddr.parse(" * ")
    assert na.wildcard and str(na) == "*"


def test_with_params() -> None:
    na = NameAddr.parse("<sip:bob@h>")
    tagged = na.with_params(tag="abc")
    assert tagged.tag == "abc" and na.tag is None
    assert str(tagged) == "<sip:bob@h>;tag=abc"


@pytest.mark.parametrize("text", [
    '"Mr. J. User <sip:j.user@example.com>',        # unterminated quote (quotbal)
    '"Watson, Thomas" < sip:t.watson@example.org >',  # LWS inside <> (badaspec)
    "Bell, Alexander <sip:a.g.bell@example.com>",     # unquoted non-token display (baddn)
    "sip:user@example.com?Route=x",                   # '?' needs <> (regbadct)
    "<sip:a@h",                                       # missing '>'
    "Alice sip:a@h",                                  # display name without <>
    "<tel>",
])
def test_bad_name_addr(text: str) -> None:
    with pytest.raises(ParseError):
        NameAddr.parse(text)
