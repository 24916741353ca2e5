"""Render the prompt catalogue (media/prompts.py) to WAV files with espeak-ng and sox.

    .venv/bin/python tools/make_prompts.py [--out media/sounds/prompts] [--only ID ...]

Each prompt becomes ``{out}/{lang}/{id}.wav``: 8 kHz, mono, 16-bit PCM. espeak-ng
(Debian package ``espeak-ng``, voices ``nl`` and ``en``) speaks the text at 22050 Hz;
sox (Debian ``sox``) resamples with its high-quality rate effect, without dither
(``-D``) and with a fixed random seed (``-R``), so the same tool versions always give
the same bytes. A short silence is added at both ends so prompts concatenate cleanly.
"""
from __future__ import annotations

import argparse
import logging
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from media.prompts import LANGUAGES, PROMPT_DIR, PROMPT_IDS, prompt_text  # noqa: E402

logger = logging.getLogger("make_prompts")

VOICES = {"nl": "nl", "en": "en-gb"}
WORDS_PER_MINUTE = 150
PAD_SECONDS = "0.05"
TIMEOUT_S = 60


def render(lang: str, prompt_id: str, out_dir: Path) -> Path:
    """Render one prompt; returns the path of the WAV written."""
    target = out_dir / lang / f"{prompt_id}.wav"
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        raw = Path(tmp) / "raw.wav"
        subprocess.run(
            ["espeak-ng", "-v", VOICES[lang], "-s", str(WORDS_PER_MINUTE), "-w", str(raw),
             prompt_text(lang, prompt_id)],
            check=True, timeout=TIMEOUT_S,
        )
        subprocess.run(
            ["sox", "-R", "-D", str(raw), "-r", "8000", "-c", "1", "-b", "16", "-e", "signed",
             str(target), "rate", "-h", "pad", PAD_SECONDS, PAD_SECONDS],
            check=True, timeout=TIMEOUT_S,
        )
    return target


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=PROMPT_DIR)
    parser.add_argument("--only", nargs="*", default=None, help="prompt ids to render")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    for tool in ("espeak-ng", "sox"):
        if shutil.which(tool) is None:
            logger.error("%s is not installed (apt-get install %s)", tool, tool)
            return 1
    ids = args.only or list(PROMPT_IDS)
    for lang in LANGUAGES:
        for prompt_id in ids:
            path = render(lang, prompt_id, args.out)
            logger.info("%s", path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
