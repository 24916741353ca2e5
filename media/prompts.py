"""The catalogue of spoken prompts, in Dutch and English.

Each prompt id maps to its text in both languages; ``tools/make_prompts.py`` renders
the texts with espeak-ng into ``media/sounds/prompts/{lang}/{id}.wav`` (8 kHz mono
16-bit), and those files are committed. Call control refers to prompts by id and the
account's language: ``prompt_path("nl", "enter-pin")``.

Number prompts (``digit-0`` .. ``digit-9``, ``number-10`` .. ``number-19``, the tens,
``number-100``, ``number-1000`` and ``number-and``) let the player say a park slot or a
queue position (``number_prompt_ids``).
"""
from __future__ import annotations

import logging
from pathlib import Path

logger = logging.getLogger(__name__)

LANGUAGES = ("nl", "en")
DEFAULT_LANGUAGE = "nl"
PROMPT_DIR = Path(__file__).resolve().parent / "sounds" / "prompts"
MAX_SAY_NUMBER = 9999

_DIGIT_WORDS = {
    "nl": ["nul", "een", "twee", "drie", "vier", "vijf", "zes", "zeven", "acht", "negen"],
    "en": ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"],
}
_TEEN_WORDS = {
    "nl": ["tien", "elf", "twaalf", "dertien", "veertien", "vijftien", "zestien", "zeventien",
           "achttien", "negentien"],
    "en": ["ten", "eleven", "twelve", "thirteen", "fourteen", "fifteen", "sixteen",
           "seventeen", "eighteen", "nineteen"],
}
_TENS_WORDS = {
    "nl": ["twintig", "dertig", "veertig", "vijftig", "zestig", "zeventig", "tachtig", "negentig"],
    "en": ["twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety"],
}

# id -> (Dutch, English)
_TEXTS: dict[str, tuple[str, str]] = {
    # 901 / 902 login and logout (SPEC 3.6, 29)
    "enter-extension": ("Voer uw toestelnummer in, gevolgd door een hekje.",
                        "Please enter your extension number, followed by the hash key."),
    "enter-pin": ("Voer uw pincode in, gevolgd door een hekje.",
                  "Please enter your PIN, followed by the hash key."),
    "logged-in": ("U bent aangemeld.", "You are now logged in."),
    "logged-out": ("U bent afgemeld.", "You are now logged out."),
    "invalid": ("Ongeldige invoer.", "That is not valid."),
    "login-failed": ("Aanmelden is mislukt.", "Login failed."),
    "goodbye": ("Tot ziens.", "Goodbye."),
    "choose-new-pin": ("Kies een nieuwe pincode van vier cijfers, gevolgd door een hekje.",
                       "Choose a new four digit PIN, followed by the hash key."),
    "pin-too-simple": ("Deze pincode is te eenvoudig. Kies een andere.",
                       "This PIN is too simple. Please choose another one."),
    "pin-changed": ("Uw pincode is gewijzigd.", "Your PIN has been changed."),
    "max-devices": ("U bent al op het maximale aantal toestellen aangemeld. "
                    "Druk een om hier aan te melden en op de andere toestellen af te melden.",
                    "You are already logged in on the maximum number of devices. "
                    "Press one to log in here and log out of the other devices."),
    "logout-this-or-all": ("Druk een om alleen dit toestel af te melden, of twee voor alle "
                           "toestellen.",
                           "Press one to log out of this device only, or two for all devices."),
    "not-logged-in": ("Er is niemand aangemeld op dit toestel.",
                      "Nobody is logged in on this device."),
    # queues (903 / 904, SPEC 12)
    "queue-logged-in": ("U bent aangemeld bij de wachtrij.", "You are logged in to the queue."),
    "queue-logged-out": ("U bent afgemeld bij de wachtrij.", "You are logged out of the queue."),
    "queue-position": ("Uw positie in de wachtrij is", "Your position in the queue is"),
    "queue-thanks": ("Bedankt voor uw geduld. U wordt zo spoedig mogelijk geholpen.",
                     "Thank you for your patience. You will be helped as soon as possible."),
    # parking (SPEC 7)
    "park-slot": ("Het gesprek is geparkeerd op", "The call is parked at"),
    "no-parked-call": ("Er is geen geparkeerd gesprek.", "There is no parked call."),
    # general
    "not-allowed": ("Dit is niet toegestaan.", "This is not allowed."),
    "transfer-failed": ("Doorverbinden is mislukt.", "The transfer failed."),
    "unavailable": ("Het nummer is niet bereikbaar.", "The number is not available."),
    "number-not-in-use": ("Dit nummer is niet in gebruik.", "This number is not in use."),
    "ip-not-listed": ("Meld u eerst aan met negen nul een en uw pincode.",
                      "Please log in first with nine zero one and your PIN."),
    "please-hold": ("Een ogenblik geduld alstublieft.", "Please hold."),
    "enter-postcode": ("Voer de vier cijfers van uw postcode in.",
                       "Please enter the four digits of your postcode."),
    "enter-destination": ("Voer het nummer in dat u wilt bereiken.",
                          "Please enter the number you want to reach."),
    # 905 sound recording
    "record-after-tone": ("Spreek uw bericht in na de toon. Druk op hekje om te bewaren.",
                          "Record your message after the tone. Press hash to save."),
    "recording-saved": ("De opname is bewaard.", "The recording has been saved."),
    # voicemail (SPEC 9, 29)
    "vm-enter-box": ("Voer het nummer van de voicemailbox in, gevolgd door een hekje.",
                     "Please enter the voicemail box number, followed by the hash key."),
    "vm-leave-message": ("Spreek uw bericht in na de toon.",
                         "Please leave your message after the tone."),
    "vm-you-have": ("U heeft", "You have"),
    "vm-new-messages": ("nieuwe berichten.", "new messages."),
    "vm-old-messages": ("oude berichten.", "old messages."),
    "vm-no-messages": ("U heeft geen nieuwe berichten.", "You have no new messages."),
    "vm-main-menu": ("Druk een om af te luisteren, twee om te herhalen, drie om te wissen, "
                     "vier om te bewaren en naar het volgende bericht te gaan, "
                     "hekje voor het volgende bericht, nul voor opties.",
                     "Press one to listen, two to repeat, three to delete, four to save and "
                     "go to the next message, hash for the next message, zero for options."),
    "vm-old-menu": ("Druk een om oude berichten te beluisteren.",
                    "Press one to listen to old messages."),
    "vm-options-menu": ("Druk een om uw begroeting op te nemen, twee om uw pincode te wijzigen.",
                        "Press one to record your greeting, two to change your PIN."),
    "vm-message-deleted": ("Bericht gewist.", "Message deleted."),
    "vm-message-saved": ("Bericht bewaard.", "Message saved."),
    "vm-no-more-messages": ("Er zijn geen berichten meer.", "There are no more messages."),
    "vm-record-greeting": ("Spreek uw begroeting in na de toon. Druk op hekje om te bewaren.",
                           "Record your greeting after the tone. Press hash to save."),
    "vm-greeting-saved": ("Uw begroeting is bewaard.", "Your greeting has been saved."),
    "vm-box-full": ("De voicemailbox is vol.", "The voicemail box is full."),
    # 915 time-configuration IVR (SPEC 19)
    "timecfg-menu": ("Druk een voor een tijdelijke wijziging tot de volgende geplande "
                     "wijziging, twee voor een vaste wijziging, drie om terug te keren naar "
                     "het tijdschema.",
                     "Press one for a temporary change until the next scheduled change, two "
                     "for a permanent change, three to return to the time schedule."),
    "timecfg-enter-schema": ("Voer het nummer van het schema in, gevolgd door een hekje.",
                             "Enter the schema number, followed by the hash key."),
    "timecfg-enter-numberplan": ("Voer het nummer van het nummerplan in, gevolgd door een "
                                 "hekje.",
                                 "Enter the numberplan number, followed by the hash key."),
    "timecfg-confirm": ("Druk op hekje om te bevestigen.", "Press hash to confirm."),
    "timecfg-changed": ("Het actieve nummerplan is gewijzigd.",
                        "The active numberplan has been changed."),
    "timecfg-schedule-restored": ("Het tijdschema is weer actief.",
                                  "The time schedule is active again."),
    "timecfg-active-plan": ("Het actieve nummerplan is", "The active numberplan is"),
    # REACH *910
    "forward-set": ("Doorschakeling ingesteld.", "Call forwarding is set."),
    "forward-cleared": ("Doorschakeling opgeheven.", "Call forwarding is cleared."),
}
for _n in range(10):
    _TEXTS[f"digit-{_n}"] = (_DIGIT_WORDS["nl"][_n], _DIGIT_WORDS["en"][_n])
    _TEXTS[f"number-{10 + _n}"] = (_TEEN_WORDS["nl"][_n], _TEEN_WORDS["en"][_n])
for _n in range(8):
    _TEXTS[f"number-{(_n + 2) * 10}"] = (_TENS_WORDS["nl"][_n], _TENS_WORDS["en"][_n])
_TEXTS["number-100"] = ("honderd", "hundred")
_TEXTS["number-1000"] = ("duizend", "thousand")
_TEXTS["number-and"] = ("en", "and")
_TEXTS["digit-star"] = ("sterretje", "star")
_TEXTS["digit-hash"] = ("hekje", "hash")

PROMPT_IDS: tuple[str, ...] = tuple(_TEXTS)


class UnknownPromptError(LookupError):
    """A prompt id or language that the catalogue does not have."""


def _check_language(lang: str) -> str:
    lang = lang.lower()
    if lang not in LANGUAGES:
        raise UnknownPromptError(f"unknown prompt language {lang!r} (have {', '.join(LANGUAGES)})")
    return lang


def prompt_text(lang: str, prompt_id: str) -> str:
    """The text of a prompt in a language."""
    lang = _check_language(lang)
    if prompt_id not in _TEXTS:
        raise UnknownPromptError(f"unknown prompt {prompt_id!r}")
    return _TEXTS[prompt_id][LANGUAGES.index(lang)]


def prompt_path(lang: str, prompt_id: str, root: Path = PROMPT_DIR) -> Path:
    """``media/sounds/prompts/{lang}/{id}.wav``; raises UnknownPromptError."""
    prompt_text(lang, prompt_id)
    return root / _check_language(lang) / f"{prompt_id}.wav"


def digit_prompt_id(char: str) -> str:
    """Prompt id that says one keypad character (0-9, * and #)."""
    if char.isdigit():
        return f"digit-{char}"
    names = {"*": "digit-star", "#": "digit-hash"}
    if char not in names:
        raise UnknownPromptError(f"no prompt for character {char!r}")
    return names[char]


def number_prompt_ids(number: int, lang: str) -> list[str]:
    """Prompt ids that say ``number`` (0..9999) the way the language says it.

    Dutch puts units before tens ("een-en-twintig": digit-1, number-and, number-20) and
    has no "and" after hundreds; English says tens then units ("twenty one").
    """
    lang = _check_language(lang)
    if not 0 <= number <= MAX_SAY_NUMBER:
        raise ValueError(f"can only say numbers 0..{MAX_SAY_NUMBER}, not {number}")
    if number == 0:
        return ["digit-0"]
    ids: list[str] = []
    thousands, rest = divmod(number, 1000)
    hundreds, rest = divmod(rest, 100)
    if thousands:
        if thousands > 1 or lang == "en":
            ids += _below_hundred(thousands, lang)
        ids.append("number-1000")
    if hundreds:
        if hundreds > 1 or lang == "en":
            ids.append(f"digit-{hundreds}")
        ids.append("number-100")
    if rest:
        if lang == "en" and (thousands or hundreds):
            ids.append("number-and")
        ids += _below_hundred(rest, lang)
    return ids


def _below_hundred(number: int, lang: str) -> list[str]:
    if number < 10:
        return [f"digit-{number}"]
    if number < 20:
        return [f"number-{number}"]
    tens, units = divmod(number, 10)
    if not units:
        return [f"number-{tens * 10}"]
    if lang == "nl":
        return [f"digit-{units}", "number-and", f"number-{tens * 10}"]
    return [f"number-{tens * 10}", f"digit-{units}"]
