"""Tests for softswitch.sip.sdp: RFC 4566 parsing/serialising and RFC 3264 offer/answer."""
from __future__ import annotations

import re

import pytest

from softswitch.sip.errors import SipError
from softswitch.sip.sdp import (
    MAX_MEDIA_STREAMS,
    MAX_SDP_SIZE,
    MediaDescription,
    NoCommonCodec,
    Origin,
    SdpError,
    SessionDescription,
    build_answer,
    build_offer,
    direction_of,
    negotiate,
    reverse_direction,
    rewrite,
)


def crlf(text: str) -> bytes:
    return text.replace("\n", "\r\n").encode()


# A Yealink T46S offer: G722 preferred, G729 with annexb=no, telephone-event 101.
YEALINK = """\
v=0
o=- 20091 20091 IN IP4 192.168.1.101
s=SDP data
c=IN IP4 192.168.1.101
t=0 0
m=audio 11796 RTP/AVP 9 0 8 18 101
a=rtpmap:9 G722/8000
a=rtpmap:0 PCMU/8000
a=rtpmap:8 PCMA/8000
a=rtpmap:18 G729/8000
a=fmtp:18 annexb=no
a=rtpmap:101 telephone-event/8000
a=fmtp:101 0-15
a=ptime:20
a=sendrecv
"""

# pjsua 2.x: media-level c=, a=rtcp with address, telephone-event at three clock rates.
PJSUA = """\
v=0
o=- 3917462400 3917462400 IN IP4 192.168.1.20
s=pjmedia
b=AS:84
t=0 0
a=X-nat:0
m=audio 4000 RTP/AVP 96 97 98 99 3 0 8 9 120 121 122
c=IN IP4 192.168.1.20
b=AS:64000
b=TIAS:64000
a=rtcp:4001 IN IP4 192.168.1.20
a=sendrecv
a=rtpmap:96 speex/16000
a=rtpmap:97 speex/8000
a=rtpmap:98 speex/32000
a=rtpmap:99 iLBC/8000
a=fmtp:99 mode=30
a=rtpmap:3 GSM/8000
a=rtpmap:0 PCMU/8000
a=rtpmap:8 PCMA/8000
a=rtpmap:9 G722/8000
a=rtpmap:120 telephone-event/16000
a=fmtp:120 0-16
a=rtpmap:121 telephone-event/8000
a=fmtp:121 0-16
a=rtpmap:122 telephone-event/32000
a=fmtp:122 0-16
a=ssrc:1804457362 cname:5c3e6b2a1d0b4f7e
"""

# Asterisk (chan_pjsip) offer towards a trunk.
ASTERISK = """\
v=0
o=- 1616423510 1616423510 IN IP4 203.0.113.5
s=Asterisk
c=IN IP4 203.0.113.5
t=0 0
m=audio 14562 RTP/AVP 8 0 3 101
a=rtpmap:8 PCMA/8000
a=rtpmap:0 PCMU/8000
a=rtpmap:3 GSM/8000
a=rtpmap:101 telephone-event/8000
a=fmtp:101 0-16
a=ptime:20
a=maxptime:150
a=sendrecv
"""

# An RFC 2543 style hold re-offer: c=0.0.0.0 and sendonly, version bumped.
HOLD_2543 = """\
v=0
o=- 20091 20092 IN IP4 192.168.1.101
s=SDP data
c=IN IP4 0.0.0.0
t=0 0
m=audio 11796 RTP/AVP 0 101
a=rtpmap:0 PCMU/8000
a=rtpmap:101 telephone-event/8000
a=fmtp:101 0-15
a=sendonly
"""

# A WebRTC-flavoured offer through a gateway: ICE, DTLS, SAVPF, rtcp-mux, plus video.
WEBRTC = """\
v=0
o=mozilla...THIS_IS_SDPARTA-99.0 4294967296 0 IN IP4 0.0.0.0
s=-
t=0 0
a=fingerprint:sha-256 4A:AD:B9:B1:3F:82:18:3B:54:02:12:DF:3E:5D:49:6B:19:E5:7C:AB:4A:AD:B9:B1:3F:82:18:3B:54:02:12:DF
a=group:BUNDLE 0 1
a=ice-options:trickle
m=audio 50000 UDP/TLS/RTP/SAVPF 0 8 101
c=IN IP4 198.51.100.7
a=candidate:0 1 UDP 2122252543 198.51.100.7 50000 typ host
a=ice-pwd:0b2b8b9a8b1bd8d6fe6bf5d3ad8aa4e4
a=ice-ufrag:7d1b5f3c
a=mid:0
a=rtcp:50001 IN IP4 198.51.100.7
a=rtcp-mux
a=setup:actpass
a=rtpmap:0 PCMU/8000
a=rtpmap:8 PCMA/8000
a=rtpmap:101 telephone-event/8000
a=fmtp:101 0-15
a=sendrecv
m=video 50002 UDP/TLS/RTP/SAVPF 120
c=IN IP4 198.51.100.7
a=mid:1
a=rtpmap:120 VP8/90000
a=sendrecv
"""


# --- parsing -------------------------------------------------------------------------------
def test_parse_yealink_offer():
    sdp = SessionDescription.parse(crlf(YEALINK))
    assert sdp.version == 0
    assert sdp.origin == Origin("-", 20091, 20091, "IN", "IP4", "192.168.1.101")
    assert sdp.session_name == "SDP data"
    assert sdp.connection == "192.168.1.101"
    assert sdp.times == [("t", "0 0")]
    audio = sdp.audio()
    assert audio is sdp.media[0]
    assert (audio.media, audio.port, audio.proto) == ("audio", 11796, "RTP/AVP")
    assert audio.formats == [9, 0, 8, 18, 101]
    # RFC 3551: G722 is listed with an 8000 Hz RTP clock although it samples at 16 kHz.
    assert audio.rtpmap[9] == ("G722", 8000, None)
    assert audio.rtpmap[101] == ("telephone-event", 8000, None)
    assert audio.fmtp == {18: "annexb=no", 101: "0-15"}
    assert audio.ptime == 20
    assert audio.direction == "sendrecv"
    assert audio.rtcp_port is None
    assert audio.other_attributes == []
    assert audio.connection is None
    assert sdp.media_address(audio) == "192.168.1.101"


def test_parse_pjsua_offer():
    sdp = SessionDescription.parse(PJSUA)
    assert sdp.connection is None
    assert sdp.other_lines == [("b", "AS:84")]
    assert sdp.attributes == ["X-nat:0"]
    audio = sdp.audio()
    assert audio.connection == "192.168.1.20"
    assert sdp.media_address(audio) == "192.168.1.20"
    assert audio.rtcp_port == 4001
    assert audio.other_lines == [("b", "AS:64000"), ("b", "TIAS:64000")]
    assert audio.rtpmap[96] == ("speex", 16000, None)
    assert audio.fmtp[99] == "mode=30"
    assert audio.other_attributes == ["ssrc:1804457362 cname:5c3e6b2a1d0b4f7e"]
    assert audio.codec(3) == ("GSM", 8000, None)


def test_parse_asterisk_offer_keeps_unknown_attributes():
    audio = SessionDescription.parse(ASTERISK).audio()
    assert audio.formats == [8, 0, 3, 101]
    assert audio.other_attributes == ["maxptime:150"]


def test_static_payload_types_without_rtpmap():
    sdp = SessionDescription.parse(
        "v=0\no=- 1 1 IN IP4 10.0.0.1\ns=-\nc=IN IP4 10.0.0.1\nt=0 0\nm=audio 5004 RTP/AVP 0 8 9 18\n")
    audio = sdp.audio()
    assert audio.rtpmap == {}
    assert [audio.codec(pt) for pt in audio.formats] == [
        ("PCMU", 8000, None), ("PCMA", 8000, None), ("G722", 8000, None), ("G729", 8000, None)]
    assert audio.direction == "sendrecv"


def test_parse_tolerates_lf_only_and_unknown_lines():
    text = ("v=0\no=alice 1 2 IN IP6 2001:db8::1\ns= \ni=a call\nc=IN IP6 2001:db8::1\n"
            "t=0 0\nx=something new\na=tool:foo\na=recvonly\n"
            "m=audio 49170/2 RTP/AVP 0\na=rtpmap:0 PCMU/8000/1\na=weird-attribute\n\n")
    sdp = SessionDescription.parse(text)
    assert sdp.session_name == " "
    assert sdp.other_lines == [("i", "a call"), ("x", "something new")]
    assert sdp.attributes == ["tool:foo"]
    audio = sdp.audio()
    # The session-level direction applies to every stream that has none of its own.
    assert audio.direction == "recvonly"
    assert audio.port == 49170 and audio.port_count == 2
    assert audio.rtpmap[0] == ("PCMU", 8000, "1")
    assert audio.other_attributes == ["weird-attribute"]
    out = sdp.serialize().decode()
    assert out.startswith("v=0\r\no=alice 1 2 IN IP6 2001:db8::1\r\ns= \r\ni=a call\r\n"
                          "c=IN IP6 2001:db8::1\r\nt=0 0\r\nx=something new\r\na=tool:foo\r\n"
                          "m=audio 49170/2 RTP/AVP 0\r\n")
    assert "a=recvonly\r\n" in out
    assert SessionDescription.parse(out) == sdp


def test_non_rtp_media_keeps_format_tokens():
    sdp = SessionDescription.parse(
        "v=0\no=- 1 1 IN IP4 10.0.0.1\ns=-\nc=IN IP4 10.0.0.1\nt=0 0\n"
        "m=image 6000 udptl t38\na=T38FaxVersion:0\na=fmtp:t38 foo\n")
    image = sdp.media[0]
    assert image.formats == [] and image.format_tokens == ["t38"]
    assert image.other_attributes == ["T38FaxVersion:0", "fmtp:t38 foo"]
    assert sdp.audio() is None
    assert b"m=image 6000 udptl t38\r\n" in sdp.serialize()


@pytest.mark.parametrize("text", [YEALINK, ASTERISK, HOLD_2543])
def test_round_trip_is_byte_exact(text):
    assert SessionDescription.parse(crlf(text)).serialize() == crlf(text)


@pytest.mark.parametrize("text", [PJSUA, WEBRTC])
def test_round_trip_preserves_meaning(text):
    sdp = SessionDescription.parse(text)
    again = SessionDescription.parse(sdp.serialize())
    assert again == sdp
    assert again.serialize() == sdp.serialize()


def test_serialize_orders_lines_per_rfc4566():
    sdp = SessionDescription(
        origin=Origin("-", 1, 1, "IN", "IP4", "10.0.0.1"), session_name="x", connection="10.0.0.1",
        other_lines=[("k", "prompt"), ("b", "AS:64"), ("i", "info"), ("z", "0 0"), ("e", "a@b")],
        times=[("t", "0 0"), ("r", "7d 1h 0 25h")],
        media=[MediaDescription(port=5000, formats=[0], other_lines=[("b", "AS:64"), ("i", "voice")],
                                connection="10.0.0.2", rtcp_port=5009, ptime=30)],
    )
    assert sdp.serialize() == crlf(
        "v=0\no=- 1 1 IN IP4 10.0.0.1\ns=x\ni=info\ne=a@b\nc=IN IP4 10.0.0.1\nb=AS:64\n"
        "t=0 0\nr=7d 1h 0 25h\nz=0 0\nk=prompt\n"
        "m=audio 5000 RTP/AVP 0\ni=voice\nc=IN IP4 10.0.0.2\nb=AS:64\na=rtcp:5009\n"
        "a=ptime:30\na=sendrecv\n")


# --- errors --------------------------------------------------------------------------------
GOOD_HEAD = "v=0\no=- 1 1 IN IP4 10.0.0.1\ns=-\nc=IN IP4 10.0.0.1\nt=0 0\n"


@pytest.mark.parametrize("text, message", [
    ("", "no v= line"),
    ("\r\n\r\n", "no v= line"),
    ("o=- 1 1 IN IP4 10.0.0.1\nv=0\n", "line 1: SDP must start with v="),
    ("v=1\no=- 1 1 IN IP4 10.0.0.1\nm=audio 1 RTP/AVP 0\n", "line 1: unsupported SDP version"),
    ("v=0\nv=0\n", "line 2: duplicate v= line"),
    ("v=0\ns=-\nm=audio 1 RTP/AVP 0\n", "no o= line"),
    ("v=0\no=- 1 IN IP4 10.0.0.1\n", "line 2: o= needs 6 fields, got 5"),
    ("v=0\no=- abc 1 IN IP4 10.0.0.1\n", "line 2: o= sess-id/sess-version must be numeric"),
    (GOOD_HEAD, "no m= line"),
    (GOOD_HEAD + "m=audio abc RTP/AVP 0\n", "line 6: bad port 'abc' in m= line"),
    (GOOD_HEAD + "m=audio 70000 RTP/AVP 0\n", "line 6: bad port '70000'"),
    (GOOD_HEAD + "m=audio -1 RTP/AVP 0\n", "line 6: bad port '-1'"),
    (GOOD_HEAD + "m=audio 5000/x RTP/AVP 0\n", "line 6: bad port count"),
    (GOOD_HEAD + "m=audio 5000\n", "line 6: m= needs"),
    (GOOD_HEAD + "m=audio 5000 RTP/AVP 0 PCMU\n", "line 6: bad RTP payload type 'PCMU'"),
    (GOOD_HEAD + "m=audio 5000 RTP/AVP 128\n", "bad RTP payload type '128'"),
    (GOOD_HEAD + "m=audio 5000 RTP/AVP 0\na sendrecv\n", "line 7: expected '<type>=<value>'"),
    (GOOD_HEAD + "m=audio 5000 RTP/AVP 0\nA=sendrecv\n", "line 7: expected '<type>=<value>'"),
    (GOOD_HEAD + "m=audio 5000 RTP/AVP 0\n=x\n", "line 7: expected '<type>=<value>'"),
    (GOOD_HEAD + "m=audio 5000 RTP/AVP 0\na=rtpmap:0 PCMU\n", "line 7: a=rtpmap needs"),
    (GOOD_HEAD + "m=audio 5000 RTP/AVP 0\na=rtpmap:x PCMU/8000\n", "bad RTP payload type 'x' in a=rtpmap"),
    (GOOD_HEAD + "m=audio 5000 RTP/AVP 0\na=rtpmap:0 PCMU/fast\n", "a=rtpmap needs"),
    (GOOD_HEAD + "m=audio 5000 RTP/AVP 0\na=ptime:soon\n", "line 7: bad a=ptime value"),
    (GOOD_HEAD + "m=audio 5000 RTP/AVP 0\na=rtcp:\n", "line 7: bad a=rtcp port"),
    (GOOD_HEAD + "m=audio 5000 RTP/AVP 0\nc=IN 10.0.0.1\n", "line 7: c= needs"),
])
def test_parse_errors_are_precise(text, message):
    with pytest.raises(SdpError, match=re.escape(message)):
        SessionDescription.parse(text)


def test_parse_error_on_non_utf8_and_oversize():
    with pytest.raises(SdpError, match="not UTF-8"):
        SessionDescription.parse(b"v=0\no=- 1 1 IN IP4 10.0.0.1\ns=\xff\n")
    with pytest.raises(SdpError, match="exceeds"):
        SessionDescription.parse(b"v=0\n" + b"a=x\n" * (MAX_SDP_SIZE // 4))
    with pytest.raises(SdpError, match="more than 32 m= lines"):
        SessionDescription.parse(GOOD_HEAD + "m=audio 0 RTP/AVP 0\n" * (MAX_MEDIA_STREAMS + 1))


def test_errors_carry_their_sip_status():
    err = SdpError("bad")
    assert isinstance(err, ValueError) and isinstance(err, SipError)
    assert err.status_code == 400
    nc = NoCommonCodec("none")
    assert isinstance(nc, SdpError)
    assert (nc.status_code, nc.reason) == (488, "Not Acceptable Here")


# --- directions ----------------------------------------------------------------------------
@pytest.mark.parametrize("direction, reverse", [
    ("sendrecv", "sendrecv"), ("sendonly", "recvonly"), ("recvonly", "sendonly"),
    ("inactive", "inactive"),
])
def test_reverse_direction(direction, reverse):
    assert reverse_direction(direction) == reverse


def test_unknown_direction_raises():
    with pytest.raises(SdpError, match="unknown direction"):
        reverse_direction("sideways")


def test_direction_of_counts_rfc2543_hold_and_port_zero():
    hold = SessionDescription.parse(HOLD_2543)
    assert hold.audio().direction == "sendonly"
    assert direction_of(hold.audio(), hold) == "sendonly"
    held_sendrecv = MediaDescription(port=4000, formats=[0], connection="0.0.0.0")
    assert direction_of(held_sendrecv) == "sendonly"
    assert direction_of(MediaDescription(port=4000, formats=[0], connection="0.0.0.0",
                                         direction="recvonly")) == "inactive"
    assert direction_of(MediaDescription(port=0, formats=[0])) == "inactive"
    assert direction_of(MediaDescription(port=4000, formats=[0], direction="recvonly")) == "recvonly"


# --- negotiation ---------------------------------------------------------------------------
def test_negotiate_keeps_offerer_order():
    yealink = SessionDescription.parse(YEALINK)
    assert negotiate(yealink) == [(0, "PCMU", 8000), (8, "PCMA", 8000), (101, "telephone-event", 8000)]
    asterisk = SessionDescription.parse(ASTERISK)
    # Our preference order does not matter: RFC 3264 §6.1 answers in the offerer's order.
    assert negotiate(asterisk, ["PCMU", "PCMA", "telephone-event"]) == [
        (8, "PCMA", 8000), (0, "PCMU", 8000), (101, "telephone-event", 8000)]
    assert negotiate(yealink, ["telephone-event", "pcma", "G722"]) == [
        (9, "G722", 8000), (8, "pcma", 8000), (101, "telephone-event", 8000)]


def test_negotiate_picks_telephone_event_at_the_audio_clock():
    pjsua = SessionDescription.parse(PJSUA)
    assert negotiate(pjsua) == [(0, "PCMU", 8000), (8, "PCMA", 8000), (121, "telephone-event", 8000)]
    assert negotiate(pjsua, ["speex/16000", "telephone-event"]) == [
        (96, "speex", 16000), (120, "telephone-event", 16000)]


def test_negotiate_without_common_audio_codec():
    offer = SessionDescription.parse(GOOD_HEAD + "m=audio 5000 RTP/AVP 18 101\n"
                                     "a=rtpmap:101 telephone-event/8000\n")
    assert negotiate(offer) == []  # telephone-event alone is no codec
    unmapped = SessionDescription.parse(GOOD_HEAD + "m=audio 5000 RTP/AVP 96\n")
    assert negotiate(unmapped, ["PCMU", "opus"]) == []


# --- answers -------------------------------------------------------------------------------
def _offer(direction: str, connection: str = "192.168.1.101") -> SessionDescription:
    return SessionDescription.parse(
        f"v=0\no=- 5 5 IN IP4 192.168.1.101\ns=-\nc=IN IP4 {connection}\nt=0 0\n"
        f"m=audio 11796 RTP/AVP 0 8 101\na=rtpmap:101 telephone-event/8000\na=fmtp:101 0-15\n"
        f"a={direction}\n")


@pytest.mark.parametrize("offered, ours, connection, answered", [
    ("sendrecv", None, "192.168.1.101", "sendrecv"),
    ("sendonly", None, "192.168.1.101", "recvonly"),
    ("recvonly", None, "192.168.1.101", "sendonly"),
    ("inactive", None, "192.168.1.101", "inactive"),
    ("sendrecv", "sendonly", "192.168.1.101", "sendonly"),   # we hold
    ("sendrecv", "inactive", "192.168.1.101", "inactive"),
    ("sendonly", "sendonly", "192.168.1.101", "inactive"),   # both hold
    ("sendonly", "sendrecv", "192.168.1.101", "recvonly"),
    ("sendrecv", None, "0.0.0.0", "recvonly"),               # RFC 2543 hold
    ("sendonly", None, "0.0.0.0", "recvonly"),
    ("recvonly", None, "0.0.0.0", "inactive"),
])
def test_answer_direction_table(offered, ours, connection, answered):
    answer = build_answer(_offer(offered, connection), address="10.0.0.1", port=20000,
                          session_id=7, session_version=1, direction=ours)
    assert answer.audio().direction == answered


def test_answer_for_yealink_offer():
    offer = SessionDescription.parse(YEALINK)
    answer = build_answer(offer, address="10.0.0.1", port=20000, session_id=42, session_version=3,
                          supported=["PCMA", "PCMU", "telephone-event"])
    assert answer.origin == Origin("softswitch", 42, 3, "IN", "IP4", "10.0.0.1")
    assert answer.connection == "10.0.0.1"
    audio = answer.audio()
    assert (audio.port, audio.proto, audio.formats) == (20000, "RTP/AVP", [0, 8, 101])
    assert audio.fmtp == {101: "0-16"}
    assert audio.ptime == 20
    assert answer.serialize() == crlf(
        "v=0\no=softswitch 42 3 IN IP4 10.0.0.1\ns=softswitch\nc=IN IP4 10.0.0.1\nt=0 0\n"
        "m=audio 20000 RTP/AVP 0 8 101\na=rtpmap:0 PCMU/8000\na=rtpmap:8 PCMA/8000\n"
        "a=rtpmap:101 telephone-event/8000\na=fmtp:101 0-16\na=ptime:20\na=sendrecv\n")


def test_answer_uses_offerers_telephone_event_pt_and_keeps_fmtp():
    offer = SessionDescription.parse(PJSUA)
    answer = build_answer(offer, address="10.0.0.1", port=20000, session_id=1, session_version=1)
    assert answer.audio().formats == [0, 8, 121]
    offer = SessionDescription.parse(YEALINK)
    answer = build_answer(offer, address="10.0.0.1", port=20000, session_id=1, session_version=1,
                          supported=["G729", "telephone-event"])
    assert answer.audio().formats == [18, 101]
    assert answer.audio().fmtp == {18: "annexb=no", 101: "0-16"}


def test_answer_rejects_other_streams_with_port_zero():
    offer = SessionDescription.parse(WEBRTC.replace("UDP/TLS/RTP/SAVPF 0 8 101", "RTP/AVP 0 8 101"))
    answer = build_answer(offer, address="10.0.0.1", port=20000, session_id=1, session_version=1)
    assert len(answer.media) == len(offer.media) == 2
    assert answer.media[0].port == 20000
    video = answer.media[1]
    assert (video.media, video.port, video.proto, video.formats) == ("video", 0, "UDP/TLS/RTP/SAVPF", [120])
    assert b"m=video 0 UDP/TLS/RTP/SAVPF 120\r\n" in answer.serialize()


def test_answer_skips_disabled_and_unanswerable_audio_streams():
    offer = SessionDescription.parse(
        GOOD_HEAD + "m=audio 0 RTP/AVP 0\nm=audio 6000 RTP/SAVP 0\na=crypto:1 AES_CM_128_HMAC_SHA1_80 "
        "inline:WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz\nm=audio 7000 RTP/AVP 18 8\n")
    answer = build_answer(offer, address="10.0.0.1", port=20000, session_id=1, session_version=1)
    assert [m.port for m in answer.media] == [0, 0, 20000]
    assert answer.media[2].formats == [8]
    assert answer.audio() is answer.media[2]


def test_no_common_codec_raises_488():
    offer = SessionDescription.parse(GOOD_HEAD + "m=audio 5000 RTP/AVP 18\na=rtpmap:18 G729/8000\n")
    with pytest.raises(NoCommonCodec, match="G729/8000") as info:
        build_answer(offer, address="10.0.0.1", port=20000, session_id=1, session_version=1)
    assert info.value.status_code == 488
    srtp_only = SessionDescription.parse(GOOD_HEAD + "m=audio 5000 RTP/SAVP 0\n")
    with pytest.raises(NoCommonCodec):
        build_answer(srtp_only, address="10.0.0.1", port=20000, session_id=1, session_version=1)


# --- offers --------------------------------------------------------------------------------
def test_build_offer():
    offer = build_offer(address="10.0.0.1", port=30000,
                        codecs=[(8, "PCMA", 8000), (0, "PCMU", 8000), (101, "telephone-event", 8000)],
                        session_id=99, session_version=1)
    assert offer.serialize() == crlf(
        "v=0\no=softswitch 99 1 IN IP4 10.0.0.1\ns=softswitch\nc=IN IP4 10.0.0.1\nt=0 0\n"
        "m=audio 30000 RTP/AVP 8 0 101\na=rtpmap:8 PCMA/8000\na=rtpmap:0 PCMU/8000\n"
        "a=rtpmap:101 telephone-event/8000\na=fmtp:101 0-16\na=ptime:20\na=sendrecv\n")
    hold = build_offer(address="::1", port=30000, codecs=[(0, "PCMU", 8000)], direction="sendonly",
                       session_id=99, session_version=2, ptime=None)
    assert hold.serialize().endswith(b"c=IN IP6 ::1\r\nt=0 0\r\nm=audio 30000 RTP/AVP 0\r\n"
                                     b"a=rtpmap:0 PCMU/8000\r\na=sendonly\r\n")
    # What we offer, a peer answering with our own code accepts unchanged.
    answer = build_answer(SessionDescription.parse(offer.serialize()), address="10.9.9.9", port=4000,
                          session_id=1, session_version=1)
    assert negotiate(answer) == [(8, "PCMA", 8000), (0, "PCMU", 8000), (101, "telephone-event", 8000)]


# --- rewrite (B2BUA anchoring) -------------------------------------------------------------
def test_rewrite_anchors_media_and_keeps_codecs():
    sdp = SessionDescription.parse(PJSUA)
    out = rewrite(sdp, address="10.0.0.1", port=20000, session_id=5, session_version=6)
    assert out.origin == Origin("softswitch", 5, 6, "IN", "IP4", "10.0.0.1")
    audio = out.audio()
    assert (audio.port, audio.connection, audio.rtcp_port) == (20000, "10.0.0.1", None)
    assert out.media_address(audio) == "10.0.0.1"
    assert audio.formats == sdp.audio().formats
    assert audio.rtpmap == sdp.audio().rtpmap and audio.fmtp == sdp.audio().fmtp
    assert audio.direction == "sendrecv"
    text = out.serialize().decode()
    assert "192.168.1.20" not in text
    assert "a=rtcp:" not in text
    assert sdp.audio().port == 4000  # the input is untouched


def test_rewrite_drops_ice_and_crypto_and_disables_what_we_cannot_relay():
    sdp = SessionDescription.parse(WEBRTC)
    out = rewrite(sdp, address="10.0.0.1", port=20000, session_id=5, session_version=6)
    text = out.serialize().decode()
    for gone in ("candidate", "ice-", "fingerprint", "setup:", "rtcp-mux", "a=rtcp:", "198.51.100.7"):
        assert gone not in text
    assert out.attributes == ["group:BUNDLE 0 1"]
    audio, video = out.media
    assert (audio.port, audio.proto) == (20000, "RTP/AVPF")
    assert audio.other_attributes == ["mid:0"]
    assert (video.port, video.connection) == (0, "10.0.0.1")
    assert out.connection is None


def test_rewrite_makes_rfc2543_hold_explicit():
    sdp = SessionDescription.parse(HOLD_2543)
    out = rewrite(sdp, address="10.0.0.1", port=20000, session_id=5, session_version=7)
    assert out.connection == "10.0.0.1"
    assert out.audio().direction == "sendonly"
    held = _offer("sendrecv", "0.0.0.0")
    assert rewrite(held, address="10.0.0.1", port=1, session_id=1, session_version=1).audio().direction == "sendonly"


def test_rewrite_keeps_port_zero_streams():
    sdp = SessionDescription.parse(GOOD_HEAD + "m=audio 0 RTP/AVP 0\nm=audio 6000 RTP/AVP 8\na=inactive\n")
    out = rewrite(sdp, address="10.0.0.1", port=20000, session_id=1, session_version=1)
    assert [m.port for m in out.media] == [0, 20000]
    assert out.media[1].direction == "inactive"
    all_off = SessionDescription.parse(GOOD_HEAD + "m=audio 0 RTP/AVP 0\n")
    assert rewrite(all_off, address="10.0.0.1", port=20000, session_id=1, session_version=1).media[0].port == 0
