"""The media engine against a real RTP stack: pjsua2 calls a tiny test-only UAS.

The UAS is built from the product's own pieces (the sans-IO SipEndpoint, sdp.negotiate /
build_answer and the MediaEngine) and runs on an asyncio loop in a background thread;
the test thread pumps pjsua2 (its RTP runs in pjmedia's own threads). Checked, with the
audio pjsua2 recorded or the events the engine reported:

- a prompt played by the engine reaches pjsua2, not silent, with the energy envelope of
  the prompt's WAV;
- music on hold (MusicOnHold over a generated tone file) arrives at that tone's frequency;
- an in-band DTMF tone played by pjsua2 is detected by the Goertzel detector;
- the RFC 4733 digits pjsua2 sends with dial_dtmf("1234#") are reported once each.

Every wait is bounded; nothing asserts on timing.
"""
from __future__ import annotations

import asyncio
import threading
import wave
from collections.abc import Coroutine
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import numpy as np
import pjsua2 as pj

from media.engine import Endpoint, MediaEngine
from media.player import MusicOnHold, load_audio
from media.prompts import prompt_path
from media.tones import dtmf_samples
from softswitch.sip.endpoint import RequestReceived, SipEndpoint
from softswitch.sip.message import make_response
from softswitch.sip.sdp import SessionDescription, build_answer, negotiate
from tests.integration.phones import PhoneLab, assert_tone, read_wav, rms_level, write_tone_wav

HOST = "127.0.0.1"
MEDIA_RANGE = (46000, 46100)
WAIT = 10.0  # seconds, bound of every wait
FRAME = 160  # samples in 20 ms at 8 kHz


class MiniUas(asyncio.DatagramProtocol):
    """Answers every INVITE with our SDP answer and an engine endpoint; 200 to the rest."""

    def __init__(self, engine: MediaEngine) -> None:
        self.engine = engine
        self.sip = SipEndpoint()
        self.transport: asyncio.DatagramTransport | None = None
        self.port = 0
        self.endpoints: asyncio.Queue[Endpoint] = asyncio.Queue()
        self._timer: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        await loop.create_datagram_endpoint(lambda: self, local_addr=(HOST, 0))
        self._timer = loop.create_task(self._timers())

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.port = transport.get_extra_info("sockname")[1]

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        if self.transport is not None:
            self.transport.close()

    async def _timers(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(0.01)
            deadline = self.sip.next_deadline()
            if deadline is not None and deadline <= loop.time():
                self.sip.handle_timer(loop.time())
                self._flush()

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        now = asyncio.get_running_loop().time()
        self.sip.receive(data, ("udp", addr[0], addr[1]), now)
        for event in self.sip.events():
            if isinstance(event, RequestReceived) and event.transaction is not None:
                if event.request.method == "INVITE":
                    task = asyncio.get_running_loop().create_task(self._answer(event))
                    self._tasks.add(task)
                    task.add_done_callback(self._tasks.discard)
                else:
                    self.sip.respond(event.transaction, make_response(event.request, 200), now)
        self._flush()

    def _flush(self) -> None:
        assert self.transport is not None
        for data, peer in self.sip.datagrams_to_send():
            self.transport.sendto(data, (peer[1], peer[2]))

    async def _answer(self, event: RequestReceived) -> None:
        request = event.request
        offer = SessionDescription.parse(request.body)
        audio = offer.audio()
        assert audio is not None
        codecs = negotiate(offer)
        name_pt = [(pt, name, clock) for pt, name, clock in codecs if name != "telephone-event"]
        events = [pt for pt, name, _ in codecs if name == "telephone-event"]
        ep = await self.engine.create_endpoint(request.call_id)
        pt, name, clock = name_pt[0]
        ep.set_codec(pt, name, clock, telephone_event_pt=events[0] if events else None)
        ep.set_remote(offer.media_address(audio) or HOST, audio.port)
        answer = build_answer(offer, address=HOST, port=ep.rtp_port, session_id=1,
                              session_version=1)
        response = make_response(request, 200, to_tag="engine1", headers=[
            ("Contact", f"<sip:engine@{HOST}:{self.port}>"),
            ("Content-Type", "application/sdp")], body=answer.serialize())
        assert event.transaction is not None
        self.sip.respond(event.transaction, response, asyncio.get_running_loop().time())
        self._flush()
        self.endpoints.put_nowait(ep)


class LoopThread:
    """An asyncio loop in a background thread; `call()` waits while pumping pjsua2."""

    def __init__(self, lab: PhoneLab) -> None:
        self.lab = lab
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def call(self, coro: Coroutine[Any, Any, Any], what: str) -> Any:
        future: Future[Any] = asyncio.run_coroutine_threadsafe(
            asyncio.wait_for(coro, WAIT), self.loop)
        self.lab.wait_for(future.done, WAIT + 1, what)
        return future.result()

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(WAIT)
        self.loop.close()


def envelope(samples: np.ndarray) -> np.ndarray:
    usable = samples[:samples.size - samples.size % FRAME].astype(np.float64)
    return np.sqrt(np.mean(usable.reshape(-1, FRAME) ** 2, axis=1))


def best_envelope_correlation(recorded: np.ndarray, reference: np.ndarray) -> float:
    """Max over lags of the normalised correlation of two 20 ms RMS envelopes."""
    a, b = envelope(recorded), envelope(reference)
    best = 0.0
    for lag in range(0, a.size - b.size + 1):
        part = a[lag:lag + b.size]
        x, y = part - part.mean(), b - b.mean()
        denom = float(np.sqrt(np.dot(x, x) * np.dot(y, y)))
        if denom:
            best = max(best, float(np.dot(x, y)) / denom)
    return best


def test_engine_prompt_moh_and_dtmf_with_pjsua2(tmp_path: Path) -> None:
    with PhoneLab() as lab:
        runner = LoopThread(lab)
        engine = MediaEngine(HOST, MEDIA_RANGE)
        uas = MiniUas(engine)

        async def setup() -> None:
            await engine.start()
            await uas.start()
        runner.call(setup(), "the UAS to start")
        try:
            phone = lab.phone("alice")
            call = phone.call(f"sip:engine@{HOST}:{uas.port}")
            call.wait_state("CONFIRMED", WAIT)
            call.wait_media(WAIT)
            ep: Endpoint = runner.call(uas.endpoints.get(), "the engine endpoint")

            # 1. a prompt
            call.start_recording(tmp_path / "prompt.wav")
            lab.pump(200)

            async def play_and_wait(source: object, **kw: Any) -> str:
                return await engine.play(ep, source, **kw).done
            assert runner.call(play_and_wait(["goodbye"], lang="en"), "the prompt") == "finished"
            lab.pump(300)
            recorded_path = call.stop_recording()
            assert recorded_path is not None
            assert rms_level(recorded_path, skip_s=0.0) > 200.0
            recorded, rate = read_wav(recorded_path)
            assert rate == 8000
            reference = load_audio(prompt_path("en", "goodbye"))
            assert best_envelope_correlation(recorded, reference) > 0.8

            # 2. music on hold from a tone file
            moh = MusicOnHold([str(write_tone_wav(tmp_path / "moh.wav", 700.0))])

            async def start_moh() -> Any:
                return engine.play(ep, moh)
            call.start_recording(tmp_path / "moh-rec.wav")
            handle = runner.call(start_moh(), "music on hold")
            lab.pump(1500)
            runner.loop.call_soon_threadsafe(handle.stop)
            moh_path = call.stop_recording()
            assert moh_path is not None
            assert_tone(moh_path, 700.0)

            # 3. in-band DTMF played by pjsua2
            tone_path = tmp_path / "dtmf5.wav"
            samples = np.concatenate([np.zeros(1600, np.int16), dtmf_samples("5", 200),
                                      np.zeros(4000, np.int16)])
            with wave.open(str(tone_path), "wb") as w:
                w.setnchannels(1), w.setsampwidth(2), w.setframerate(8000)
                w.writeframes(samples.astype("<i2").tobytes())

            async def events_of() -> Any:
                return ep.dtmf_events(detect_inband=True)
            events = runner.call(events_of(), "DTMF detection")
            player = pj.AudioMediaPlayer()
            player.createPlayer(str(tone_path), pj.PJMEDIA_FILE_NO_LOOP)
            call._tone = player  # the harness connects its player to the call
            call._connect_media()
            digit, duration = runner.call(events.__anext__(), "the in-band digit")
            assert digit == "5" and duration > 0
            call.stop_tone()
            del player

            # 4. RFC 4733 digits from pjsua2
            call.dial_dtmf("1234#")

            async def five() -> list[str]:
                return [(await events.__anext__())[0] for _ in range(5)]
            assert runner.call(five(), "five RFC 4733 digits") == ["1", "2", "3", "4", "#"]
            assert ep.stats.dtmf_rfc4733 == 5 and ep.stats.dtmf_inband == 1

            call.hangup()
            call.wait_state("DISCONNECTED", WAIT)
        finally:
            async def teardown() -> None:
                uas.close()
                await engine.close()
            runner.call(teardown(), "the engine to close")
            runner.stop()
