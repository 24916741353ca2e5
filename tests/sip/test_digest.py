"""Tests for softswitch.sip.digest: RFC 2617/7616 vectors, challenger round trips, parsing."""
from __future__ import annotations

import itertools

import pytest

from softswitch.sip.digest import (
    NONCE_LENGTH,
    DigestChallenger,
    DigestError,
    VerifyResult,
    build_authorization,
    compute_ha1,
    compute_response,
    parse_challenge,
    parse_credentials,
)
from softswitch.sip.errors import LocalProtocolError, ParseError

SECRET = b"0123456789abcdef0123456789abcdef"
REALM = "pbx.example.com"
NOW = 1_700_000_000.0

# RFC 7616 §3.9.1
RFC7616 = dict(
    username="Mufasa", realm="http-auth@example.org", password="Circle of Life", method="GET",
    uri="/dir/index.html", nonce="7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v", qop="auth",
    nc="00000001", cnonce="f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ",
)
RFC7616_AUTHORIZATION_MD5 = '''Digest username="Mufasa",
       realm="http-auth@example.org",
       uri="/dir/index.html",
       algorithm=MD5,
       nonce="7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v",
       nc=00000001,
       cnonce="f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ",
       qop=auth,
       response="8ca523f5e9506fed4657c9700eebdbec",
       opaque="FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS"'''


def counter_random():
    """Deterministic stand-in for os.urandom."""
    counter = itertools.count()
    return lambda n: next(counter).to_bytes(n, "big")


def challenger(**kwargs) -> DigestChallenger:
    return DigestChallenger(SECRET, random_bytes=counter_random(), **kwargs)


def login(server: DigestChallenger, *, algorithm_index: int = 0, password: str = "s3cret",
          method: str = "REGISTER", uri: str = "sip:pbx.example.com", now: float = NOW,
          username: str = "1001") -> str:
    challenge = parse_challenge(server.challenge(REALM, now)[algorithm_index])
    return build_authorization(challenge, username=username, password=password, method=method,
                               uri=uri, cnonce="0a4f113b")


# --- vectors -------------------------------------------------------------------------------
def test_rfc2617_example():
    assert compute_response(
        algorithm="MD5", username="Mufasa", realm="testrealm@host.com", password="Circle Of Life",
        method="GET", uri="/dir/index.html", nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093",
        qop="auth", nc="00000001", cnonce="0a4f113b") == "6629fae49393a05397450978507c4ef1"


def test_rfc7616_md5_and_sha256_examples():
    assert compute_response(algorithm="MD5", **RFC7616) == "8ca523f5e9506fed4657c9700eebdbec"
    assert compute_response(algorithm="SHA-256", **RFC7616) == (
        "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1")


def test_rfc7616_authorization_header_parses():
    # SIP parsers unfold header lines; the example is kept folded to show LWS is tolerated.
    creds = parse_credentials(RFC7616_AUTHORIZATION_MD5)
    assert creds.is_digest
    assert (creds.username, creds.realm, creds.uri, creds.algorithm) == (
        "Mufasa", "http-auth@example.org", "/dir/index.html", "MD5")
    assert (creds.qop, creds.nc, creds.cnonce) == ("auth", "00000001", RFC7616["cnonce"])
    assert creds.opaque == "FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS"
    assert creds.response == compute_response(algorithm=creds.algorithm, **RFC7616)


def test_rfc2069_compatibility_without_qop():
    ha1 = compute_ha1("MD5", "Mufasa", "testrealm@host.com", "Circle Of Life")
    assert ha1 == "939e7578ed9e3c518a452acee763bce9"  # RFC 2617 §3.5 HA1
    response = compute_response(algorithm="MD5", username="Mufasa", realm="testrealm@host.com",
                                password="Circle Of Life", method="GET", uri="/dir/index.html",
                                nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093")
    assert len(response) == 32 and response != "6629fae49393a05397450978507c4ef1"


def test_sess_variants_mix_nonce_and_cnonce_into_ha1():
    plain = compute_response(algorithm="SHA-256", **RFC7616)
    sess = compute_response(algorithm="SHA-256-sess", **RFC7616)
    assert sess != plain and len(sess) == 64
    with pytest.raises(DigestError, match="needs a cnonce"):
        compute_response(algorithm="MD5-sess", username="a", realm="r", password="p", method="M",
                         uri="u", nonce="n")
    with pytest.raises(DigestError, match="unsupported digest algorithm"):
        compute_response(algorithm="SHA-1", username="a", realm="r", password="p", method="M",
                         uri="u", nonce="n")
    with pytest.raises(DigestError, match="unsupported qop"):
        compute_response(algorithm="MD5", username="a", realm="r", password="p", method="M",
                         uri="u", nonce="n", qop="auth-int", nc="00000001", cnonce="c")


# --- challenges ----------------------------------------------------------------------------
def test_challenge_offers_sha256_then_md5_with_one_nonce():
    values = challenger().challenge(REALM, NOW)
    assert len(values) == 2
    sha, md5 = (parse_challenge(v) for v in values)
    assert (sha.algorithm, md5.algorithm) == ("SHA-256", "MD5")
    assert sha.nonce == md5.nonce and len(sha.nonce) == NONCE_LENGTH
    assert sha.realm == REALM and sha.qop == ("auth",) and not sha.stale
    assert values[0] == f'Digest realm="{REALM}", nonce="{sha.nonce}", algorithm=SHA-256, qop="auth"'


def test_challenge_stale_and_opaque():
    values = challenger(opaque="xyz", algorithms=("MD5",)).challenge(REALM, NOW, stale=True)
    assert len(values) == 1
    parsed = parse_challenge(values[0])
    assert parsed.stale and parsed.opaque == "xyz" and parsed.algorithm == "MD5"
    assert values[0].endswith(', opaque="xyz", algorithm=MD5, qop="auth", stale=true')


def test_nonces_differ_per_challenge():
    server = challenger()
    assert server.make_nonce(REALM, NOW) != server.make_nonce(REALM, NOW)


def test_challenger_rejects_weak_configuration():
    with pytest.raises(ValueError, match="at least 16 bytes"):
        DigestChallenger(b"short")
    with pytest.raises(DigestError, match="unsupported digest algorithm"):
        DigestChallenger(SECRET, algorithms=("SHA-1",))
    with pytest.raises(ValueError, match="at least one"):
        DigestChallenger(SECRET, algorithms=())


# --- verification --------------------------------------------------------------------------
@pytest.mark.parametrize("index, algorithm", [(0, "SHA-256"), (1, "MD5")])
def test_round_trip_client_to_server(index, algorithm):
    server = challenger()
    creds = parse_credentials(login(server, algorithm_index=index))
    assert creds.algorithm == algorithm
    assert server.verify(creds, method="REGISTER", password="s3cret", now=NOW + 10) is VerifyResult.OK
    ha1 = compute_ha1(algorithm, "1001", REALM, "s3cret")
    assert server.verify(creds, method="REGISTER", ha1=ha1, now=NOW + 10) is VerifyResult.OK


@pytest.mark.parametrize("algorithm", ["MD5-sess", "SHA-256-sess"])
def test_round_trip_sess_algorithms(algorithm):
    server = challenger(algorithms=(algorithm,))
    creds = parse_credentials(login(server))
    assert creds.algorithm == algorithm and creds.cnonce == "0a4f113b"
    assert server.verify(creds, method="REGISTER", password="s3cret", now=NOW) is VerifyResult.OK
    ha1 = compute_ha1(algorithm, "1001", REALM, "s3cret")
    assert server.verify(creds, method="REGISTER", ha1=ha1, now=NOW) is VerifyResult.OK


def test_uri_is_verified_as_received_not_request_uri():
    # SIPp signs with the address it sends to, not the Request-URI (RFC 3261 §22.4 allows it).
    server = challenger()
    creds = parse_credentials(login(server, method="INVITE", uri="sip:127.0.0.1:5060"))
    assert creds.uri == "sip:127.0.0.1:5060"
    assert server.verify(creds, method="INVITE", password="s3cret", now=NOW) is VerifyResult.OK
    assert server.verify(creds, method="REGISTER", password="s3cret", now=NOW) is VerifyResult.BAD_RESPONSE


def test_wrong_password_is_bad_response():
    server = challenger()
    creds = parse_credentials(login(server, password="guess"))
    assert server.verify(creds, method="REGISTER", password="s3cret", now=NOW) is VerifyResult.BAD_RESPONSE


def test_expired_nonce_is_stale_only_with_right_password():
    server = challenger(nonce_ttl=60.0)
    creds = parse_credentials(login(server))
    assert server.verify(creds, method="REGISTER", password="s3cret", now=NOW + 60) is VerifyResult.OK
    assert server.verify(creds, method="REGISTER", password="s3cret", now=NOW + 61) is VerifyResult.STALE
    wrong = parse_credentials(login(server, password="guess"))
    assert server.verify(wrong, method="REGISTER", password="s3cret", now=NOW + 61) is VerifyResult.BAD_RESPONSE


def _with_nonce(header: str, old: str, new: str) -> str:
    return header.replace(f'nonce="{old}"', f'nonce="{new}"')


def test_tampered_nonce_is_bad_nonce():
    server = challenger()
    header = login(server)
    nonce = parse_credentials(header).nonce
    flipped = nonce[:10] + ("A" if nonce[10] != "A" else "B") + nonce[11:]
    for bad in (flipped, nonce[:-1], nonce + "A", "dcd98b7102dd2f0e8b11d0f600bfb0c093",
                "é" * NONCE_LENGTH, "!" * NONCE_LENGTH, ""):
        creds = parse_credentials(_with_nonce(header, nonce, bad))
        assert server.verify(creds, method="REGISTER", password="s3cret", now=NOW) is VerifyResult.BAD_NONCE, bad


def test_nonce_from_another_secret_or_realm_is_bad_nonce():
    other = DigestChallenger(b"another secret of enough length!")
    creds = parse_credentials(login(other))
    assert challenger().verify(creds, method="REGISTER", password="s3cret", now=NOW) is VerifyResult.BAD_NONCE
    server = challenger()
    header = login(server).replace(f'realm="{REALM}"', 'realm="other.example.com"')
    creds = parse_credentials(header)
    assert server.verify(creds, method="REGISTER", password="s3cret", now=NOW) is VerifyResult.BAD_NONCE


def test_nonce_from_the_future_is_bad_nonce():
    server = challenger()
    creds = parse_credentials(login(server, now=NOW + 3600))
    assert server.verify(creds, method="REGISTER", password="s3cret", now=NOW) is VerifyResult.BAD_NONCE
    assert server.check_nonce(creds.nonce, REALM, NOW + 3600 - 1) is VerifyResult.OK


def test_algorithm_not_offered_is_bad_response():
    md5_only = challenger(algorithms=("MD5",))
    sha_client = challenger()  # same secret, so only the algorithm differs
    creds = parse_credentials(login(sha_client, algorithm_index=0))
    assert creds.algorithm == "SHA-256"
    assert md5_only.verify(creds, method="REGISTER", password="s3cret", now=NOW) is VerifyResult.BAD_RESPONSE


def test_qop_variants():
    server = challenger()
    nonce = server.make_nonce(REALM, NOW)
    base = dict(username="1001", realm=REALM, password="s3cret", method="REGISTER",
                uri="sip:pbx.example.com", nonce=nonce)
    # RFC 2069 compatibility (no qop) is accepted.
    response = compute_response(algorithm="MD5", **base)
    creds = parse_credentials(f'Digest username="1001", realm="{REALM}", nonce="{nonce}", '
                              f'uri="sip:pbx.example.com", response="{response}"')
    assert creds.algorithm == "MD5" and creds.qop is None
    assert server.verify(creds, method="REGISTER", password="s3cret", now=NOW) is VerifyResult.OK
    # Upper-case hex is tolerated.
    upper = parse_credentials(f'Digest username="1001", realm="{REALM}", nonce="{nonce}", '
                              f'uri="sip:pbx.example.com", response="{response.upper()}"')
    assert server.verify(upper, method="REGISTER", password="s3cret", now=NOW) is VerifyResult.OK
    # auth-int is not supported.
    auth_int = parse_credentials(f'Digest username="1001", realm="{REALM}", nonce="{nonce}", '
                                 f'uri="sip:pbx.example.com", response="{response}", qop=auth-int, '
                                 f'nc=00000001, cnonce="x"')
    assert server.verify(auth_int, method="REGISTER", password="s3cret", now=NOW) is VerifyResult.BAD_RESPONSE


def test_opaque_must_come_back():
    server = challenger(opaque="op4que")
    header = login(server)
    assert 'opaque="op4que"' in header
    assert server.verify(parse_credentials(header), method="REGISTER", password="s3cret",
                         now=NOW) is VerifyResult.OK
    stripped = header.replace(', opaque="op4que"', "")
    assert server.verify(parse_credentials(stripped), method="REGISTER", password="s3cret",
                         now=NOW) is VerifyResult.BAD_NONCE


def test_unknown_scheme_parses_and_is_not_accepted():
    creds = parse_credentials("NoOp")
    assert creds.scheme == "NoOp" and not creds.is_digest and creds.username == ""
    basic = parse_credentials("Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ==")
    assert basic.scheme == "Basic"
    assert challenger().verify(creds, method="REGISTER", password="x", now=NOW) is VerifyResult.BAD_RESPONSE
    assert parse_challenge("Bearer").scheme == "Bearer"
    with pytest.raises(DigestError, match="cannot answer"):
        build_authorization(parse_challenge("Bearer"), username="a", password="b", method="M",
                            uri="u", cnonce="c")


def test_verify_needs_exactly_one_secret():
    creds = parse_credentials(login(challenger()))
    with pytest.raises(LocalProtocolError):
        challenger().verify(creds, method="REGISTER", now=NOW)
    with pytest.raises(LocalProtocolError):
        challenger().verify(creds, method="REGISTER", password="a", ha1="b", now=NOW)


# --- parsing -------------------------------------------------------------------------------
def test_quoted_strings_with_escaped_quotes_and_commas():
    header = ('Digest username="al\\"ice, jr", realm="a, b=c", nonce="n", uri="sip:x;a=\\\\b", '
              'response="r", cnonce="c,d", nc=00000002, qop=auth, algorithm="sha-256"')
    creds = parse_credentials(header)
    assert creds.username == 'al"ice, jr'
    assert creds.realm == "a, b=c"
    assert creds.uri == "sip:x;a=\\b"
    assert creds.cnonce == "c,d" and creds.nc == "00000002"
    assert creds.algorithm == "SHA-256"  # case-insensitive, quoted form tolerated


def test_build_authorization_quotes_and_round_trips_odd_usernames():
    server = challenger()
    header = login(server, username='we"ird\\user, x')
    creds = parse_credentials(header)
    assert creds.username == 'we"ird\\user, x'
    assert server.verify(creds, method="REGISTER", password="s3cret", now=NOW) is VerifyResult.OK


def test_build_authorization_layout():
    challenge = parse_challenge('Digest realm="r", nonce="abc", opaque="o", qop="auth-int, auth"')
    assert challenge.qop == ("auth-int", "auth") and challenge.algorithm == "MD5"
    header = build_authorization(challenge, username="u", password="p", method="REGISTER",
                                 uri="sip:r", cnonce="cn", nc=10)
    response = compute_response(algorithm="MD5", username="u", realm="r", password="p",
                                method="REGISTER", uri="sip:r", nonce="abc", qop="auth",
                                nc="0000000a", cnonce="cn")
    assert header == (f'Digest username="u", realm="r", nonce="abc", uri="sip:r", '
                      f'response="{response}", algorithm=MD5, cnonce="cn", opaque="o", '
                      f'qop=auth, nc=0000000a')
    no_qop = build_authorization(parse_challenge('Digest realm="r", nonce="abc"'), username="u",
                                 password="p", method="REGISTER", uri="sip:r", cnonce="cn")
    assert "qop" not in no_qop and "cnonce" not in no_qop
    with pytest.raises(DigestError, match="no supported qop"):
        build_authorization(parse_challenge('Digest realm="r", nonce="abc", qop="auth-int"'),
                            username="u", password="p", method="M", uri="u", cnonce="c")


def test_real_world_headers_parse():
    # Yealink and SIPp style values (no spaces after commas, unquoted algorithm).
    yealink = ('Digest username="1001",realm="pbx.example.com",nonce="abc",uri="sip:pbx.example.com",'
               'response="0123456789abcdef0123456789abcdef",algorithm=MD5,cnonce="5d3a",qop=auth,nc=00000001')
    creds = parse_credentials(yealink)
    assert (creds.username, creds.qop, creds.nc) == ("1001", "auth", "00000001")
    challenge = parse_challenge('DIGEST REALM="pbx", NONCE="n", STALE=TRUE, ALGORITHM=sha-256, '
                                'domain="sip:pbx"')
    assert challenge.is_digest and challenge.stale and challenge.algorithm == "SHA-256"
    assert challenge.domain == "sip:pbx"


@pytest.mark.parametrize("header, message", [
    # A lost closing quote swallows the next parameter; what follows is then misplaced.
    ('Digest username="1001, realm="r"', "text after the quoted value of parameter 'username'"),
    ('Digest username="1001', "unterminated quoted string in parameter 'username'"),
    ('Digest username="u", realm="r", nonce="n", uri="u"', "lacks required parameter(s) response"),
    ('Digest realm="r"', "lacks required parameter(s) username, nonce, uri, response"),
    ('Digest', "lacks required parameter(s)"),
    ('Digest username="u", realm="r", nonce="n", uri="u", response="r", qop=auth',
     "with qop lacks required parameter(s) cnonce, nc"),
    ('Digest username="u", username="v"', "duplicate parameter 'username'"),
    ('Digest username=, realm="r"', "empty value for parameter 'username'"),
    ('Digest username', "expected name=value"),
    ('Digest username="u"x, realm="r"', "text after the quoted value of parameter 'username'"),
    ('Digest realm=a b', "malformed value of parameter 'realm'"),
    ('"Digest" realm="r"', "expected an auth scheme"),
    ('', "expected an auth scheme"),
    ('Digest ' + ", ".join(f'p{i}="b"' for i in range(40)), "more than 32 parameters"),
    ('Digest realm="' + "x" * 9000 + '"', "longer than"),
])
def test_parse_errors(header, message):
    with pytest.raises(DigestError) as info:
        parse_credentials(header)
    assert message in str(info.value)
    assert isinstance(info.value, ValueError) and isinstance(info.value, ParseError)
    assert info.value.status_code == 400


def test_challenge_parse_errors():
    with pytest.raises(DigestError, match="lacks required parameter"):
        parse_challenge('Digest realm="r"')
    with pytest.raises(DigestError, match="unterminated"):
        parse_challenge('Digest nonce="n", realm="r, stale=false')
