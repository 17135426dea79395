"""``python -m lollms_magics.replay check|prune NOTEBOOK [--tape FILE]``: a tape checked before class.

    python -m lollms_magics.replay check notebooks/03_summarize.ipynb
    python -m lollms_magics.replay prune notebooks/03_summarize.ipynb --tape answers.replay.jsonl

``check`` runs the notebook with no server against its replay file and lists
every request the file lacks; the exit status is 1 when one is missing or a
cell fails, so a course repository can run it in CI. ``prune`` does the same
and, when nothing is missing, drops the answers no cell used. The file is the
one the notebook's ``%lollms replay`` cell names, else NOTEBOOK.replay.jsonl.
"""

from __future__ import annotations

import argparse
import sys

from .check import check, prune


def main(argv: list[str] | None = None) -> int:
    """The command line; its exit status (0: nothing missing, 1: something is, 2: could not run)."""
    ap = argparse.ArgumentParser(
        prog="python -m lollms_magics.replay", description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ap.add_argument("command", choices=["check", "prune"])
    ap.add_argument("notebook")
    ap.add_argument("--tape", help="the replay file (default: the one the notebook replays)")
    ap.add_argument("--timeout", type=int, default=600, help="seconds per cell")
    args = ap.parse_args(argv)
    try:
        if args.command == "check":
            report = check(args.notebook, args.tape, timeout=args.timeout)
            print(report.text())
        else:
            report, dropped = prune(args.notebook, args.tape, timeout=args.timeout)
            print(report.text())
            if report.ok:
                print(f"{report.tape.name}: {dropped} answer(s) no cell uses dropped")
            else:
                print(f"{report.tape.name}: not pruned (a cell did not run to its end)")
    except ModuleNotFoundError as exc:
        print(f"lollms: {exc.name} is needed to run a notebook: pip install nbclient", file=sys.stderr)
        return 2
    except (OSError, ValueError) as exc:
        print(f"lollms: {exc}", file=sys.stderr)
        return 2
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
