"""Which of the planted facts a summary kept.

A fact is kept when its distinctive token (an invented place, an invented
surname, a year) occurs in the summary as a whole word, compared without
regard to case. Nothing looser is counted: a summary that says "a village on
the eastern bank" without its name did not keep the fact.

    python benchmarks/facts.py facts.json summary.txt
"""

from __future__ import annotations

import argparse
import json
import re
from collections.abc import Iterable
from pathlib import Path


def kept_tokens(summary: str, tokens: Iterable[str]) -> list[str]:
    """The tokens found in ``summary`` (whole word, case-insensitive), in the order given."""
    return [t for t in tokens if re.search(rf"(?<!\w){re.escape(t)}(?!\w)", summary, flags=re.IGNORECASE)]


def load_tokens(path: Path) -> list[str]:
    """The tokens of a facts file written by ``make_document.py --facts``."""
    return [str(f["token"]) for f in json.loads(path.read_text(encoding="utf-8"))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("facts", type=Path)
    parser.add_argument("summary", type=Path)
    args = parser.parse_args()
    tokens = load_tokens(args.facts)
    kept = kept_tokens(args.summary.read_text(encoding="utf-8"), tokens)
    print(f"{len(kept)} / {len(tokens)} facts kept: {', '.join(kept) or '-'}")


if __name__ == "__main__":
    main()
