"""Prompt catalogue: every id has a WAV in both languages, 8 kHz mono 16-bit."""
from __future__ import annotations

import wave

import pytest

from media.prompts import (
    LANGUAGES,
    PROMPT_IDS,
    UnknownPromptError,
    number_prompt_ids,
    prompt_path,
    prompt_text,
)

REQUIRED = [
    "enter-extension", "enter-pin", "logged-in", "logged-out", "invalid", "login-failed",
    "goodbye", "choose-new-pin", "pin-too-simple", "pin-changed", "max-devices",
    "logout-this-or-all", "park-slot", "no-parked-call", "not-allowed", "transfer-failed",
    "queue-position", "queue-thanks", "vm-main-menu", "timecfg-menu",
] + [f"digit-{d}" for d in range(10)]


def test_catalogue_has_the_required_prompts() -> None:
    assert set(REQUIRED) <= set(PROMPT_IDS)
    assert prompt_text("en", "park-slot") == "The call is parked at"
    assert prompt_text("nl", "digit-7") == "zeven"


@pytest.mark.parametrize("lang", LANGUAGES)
def test_every_prompt_has_a_wav_8k_mono(lang: str) -> None:
    for prompt_id in PROMPT_IDS:
        path = prompt_path(lang, prompt_id)
        assert path.name == f"{prompt_id}.wav" and path.parent.name == lang
        with wave.open(str(path), "rb") as wav:
            assert wav.getframerate() == 8000, path
            assert wav.getnchannels() == 1, path
            assert wav.getsampwidth() == 2, path
            assert wav.getnframes() > 8000 * 0.2, path


def test_unknown_prompt_or_language() -> None:
    with pytest.raises(UnknownPromptError):
        prompt_path("de", "enter-pin")
    with pytest.raises(UnknownPromptError):
        prompt_path("nl", "no-such-prompt")


@pytest.mark.parametrize(("number", "lang", "ids"), [
    (0, "nl", ["digit-0"]),
    (7, "en", ["digit-7"]),
    (12, "nl", ["number-12"]),
    (40, "en", ["number-40"]),
    (21, "nl", ["digit-1", "number-and", "number-20"]),
    (21, "en", ["number-20", "digit-1"]),
    (100, "nl", ["number-100"]),
    (701, "nl", ["digit-7", "number-100", "digit-1"]),
    (701, "en", ["digit-7", "number-100", "number-and", "digit-1"]),
    (1999, "nl", ["number-1000", "digit-9", "number-100", "digit-9", "number-and", "number-90"]),
])
def test_number_prompt_ids(number: int, lang: str, ids: list[str]) -> None:
    assert number_prompt_ids(number, lang) == ids
    for prompt_id in ids:
        assert prompt_id in PROMPT_IDS


def test_number_out_of_range() -> None:
    with pytest.raises(ValueError):
        number_prompt_ids(10000, "nl")
