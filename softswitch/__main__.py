"""``python -m softswitch``: the same command line as the ``softswitch`` console script."""
from __future__ import annotations

from cli import main

if __name__ == "__main__":
    main(prog_name="softswitch")
