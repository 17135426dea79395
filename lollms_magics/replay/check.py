"""Check a notebook against its replay file before class: every request the file lacks, at once.

:func:`check` runs the notebook headless (nbclient, a fresh kernel in the
notebook's folder, as Jupyter does) with :data:`~lollms_magics.replay.ENV_CHECK`
set: the replay answers at once, never asks a live backend, and writes one
line per request to a log. The notebook's own ``%lollms replay`` cell
replays the tape (``--tape`` replaces its file), so what the notebook runs
live before or after stays live; a notebook with no such cell replays the
tape from the start. A request the file lacks fails its cell (the usual
one-line error) and the run goes on, so one run finds every miss. Each miss
is reported with its cell, the start of its prompt, and the nearest answer of
the file with what differs (model, options, prompt, history).

:func:`prune` runs the same check, and when nothing is missing writes the
file again without the answers no cell used.

nbclient and nbformat (the ``test`` extra, or Jupyter itself) are imported
only when a notebook is run.
"""

from __future__ import annotations

import difflib
import json
import os
import re
import shlex
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .cassette import Cassette
from .scrub import canonical, prompt_of

__all__ = ["Miss", "Report", "check", "default_tape", "differences", "nearest", "prune"]

_REPLAY_CELL = re.compile(r"^%lollms\s+replay\s+(?!off\b|check\b|prune\b)(\S+).*$", re.MULTILINE)
_SHOWN = 60  # characters of a prompt shown in the report


@dataclass
class Miss:
    """A request the replay file lacks, where it was asked, and the file's nearest answer."""

    cell: int  # position of the cell in the notebook, from 1
    source: str  # the cell's first line
    key: dict[str, Any]
    nearest: int | None = None  # the nearest answer's line in the file
    differs: list[str] = field(default_factory=list)


@dataclass
class Report:
    """What :func:`check` found."""

    notebook: Path
    tape: Path
    answered: int = 0
    misses: list[Miss] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)  # cells failing for another reason
    used: set[int] = field(default_factory=set)  # lines of the file that answered a request

    @property
    def ok(self) -> bool:
        """True when every request was answered and no cell failed."""
        return not self.misses and not self.failures

    def text(self) -> str:
        """The report, for a terminal or a cell."""
        head = f"{self.notebook.name} against {self.tape.name}: "
        if self.ok:
            return head + f"every request is on the tape ({self.answered} answered from it)"
        lines = [head + f"{len(self.misses)} request(s) not on the tape ({self.answered} answered from it)"]
        for miss in self.misses:
            lines.append("")
            lines.append(f"cell {miss.cell}: {miss.source}")
            prompt = _short(prompt_of(miss.key.get("local", miss.key)))
            lines.append(f"  prompt: {prompt!r}" if prompt else f"  request: {_where(miss.key)}")
            if miss.nearest is None:
                lines.append("  nearest on the tape: none of its kind")
            else:
                lines.append(f"  nearest on the tape: line {miss.nearest}; " + "; ".join(miss.differs))
        for failure in self.failures:
            lines.append("")
            lines.append(failure)
        return "\n".join(lines)


def _short(text: str, size: int = _SHOWN) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= size else text[: size - 1] + "…"


def _where(key: dict[str, Any]) -> str:
    if "local" in key:
        return f"the embedded model ({key['local'].get('binding', '')})"
    return f"{key.get('method', '')} {key.get('path', '')}"


def _parts(key: dict[str, Any]) -> dict[str, Any]:
    """A request cut into what a teacher compares: model, prompt, history, options."""
    body: Any = key["local"] if "local" in key else key.get("body", {})
    options: dict[str, Any] = {}
    if "query" in key:
        options["query"] = key["query"]
    if not isinstance(body, dict):
        return {"where": _where(key), "model": None, "prompt": "", "history": [], "options": {"body": body}}
    messages = body.get("messages") if isinstance(body.get("messages"), list) else None
    prompt = prompt_of(body)
    history: list[Any] = []
    if messages is not None:
        last = max((i for i, m in enumerate(messages) if isinstance(m, dict) and m.get("role") == "user"),
                   default=len(messages))
        history = messages[:last] + messages[last + 1:]
    skip = {"model", "messages", "binding"} | ({"prompt", "text", "input"} if messages is None else set())

    def flatten(prefix: str, value: Any) -> None:
        if isinstance(value, dict) and value:
            for name, inner in value.items():
                flatten(f"{prefix}{name}.", inner)
        else:
            options[prefix[:-1]] = value

    for name, value in body.items():
        if name in skip:
            continue
        if isinstance(value, dict):
            flatten("" if name == "options" else f"{name}.", value)  # Ollama's options read as the others'
        else:
            options[name] = value
    return {"where": _where(key), "model": body.get("model"), "prompt": prompt, "history": history,
            "options": options}


def differences(asked: dict[str, Any], recorded: dict[str, Any]) -> list[str]:
    """What differs between the request ``asked`` and the ``recorded`` one, a few words each."""
    a, r = _parts(asked), _parts(recorded)
    found = []
    if a["where"] != r["where"]:
        found.append(f"asked of {a['where']}, the tape's of {r['where']}")
    if a["model"] != r["model"]:
        found.append(f"model {a['model']!r} here, {r['model']!r} on the tape")
    changed = []
    for name in sorted(set(a["options"]) | set(r["options"])):
        here, there = a["options"].get(name, "—"), r["options"].get(name, "—")
        if here != there:
            changed.append(f"{name} {_short(json.dumps(here, ensure_ascii=False), 30)} here, "
                           f"{_short(json.dumps(there, ensure_ascii=False), 30)} on the tape")
    if changed:
        found.append("options: " + ", ".join(changed))
    if a["prompt"] != r["prompt"]:
        found.append(f"prompt {_short(r['prompt'])!r} on the tape")
    if a["history"] != r["history"]:
        if len(a["history"]) != len(r["history"]):
            found.append(f"history: {len(a['history'])} message(s) here, {len(r['history'])} on the tape")
        else:
            at = next(i for i, (x, y) in enumerate(zip(a["history"], r["history"], strict=True)) if x != y)
            found.append(f"history differs from message {at + 1} on")
    return found or ["the same request (the file's answers for it are used up?)"]


def nearest(key: dict[str, Any], cassette: Cassette) -> tuple[int | None, list[str]]:
    """The line of the answer in ``cassette`` nearest to the request ``key``, and what differs."""
    asked = _parts(key)
    best: tuple[tuple[int, int, float], int | None, list[str]] | None = None
    for entry in cassette.entries():
        recorded = _parts(entry["key"])
        if ("local" in key) != ("local" in entry["key"]):
            continue  # the embedded model's answers and HTTP answers are never near each other
        if not asked["prompt"] and recorded["where"] != asked["where"]:
            continue  # a model list is near another list of the same route only
        found = differences(key, entry["key"])
        similar = difflib.SequenceMatcher(None, asked["prompt"][:2000], recorded["prompt"][:2000]).ratio()
        score = (int(asked["where"] != recorded["where"]), len(found), -similar)
        if best is None or score < best[0]:
            best = (score, cassette.line_of(entry), found)
    return (None, []) if best is None else (best[1], best[2])


def default_tape(notebook: Path) -> Path:
    """The file a notebook replays: the one its ``%lollms replay`` cell names, else NOTEBOOK.replay.jsonl."""
    import nbformat

    nb = nbformat.read(notebook, as_version=4)  # type: ignore[no-untyped-call]
    for cell in nb.cells:
        if cell.cell_type == "code":
            match = _REPLAY_CELL.search(cell.source)
            if match:
                return (notebook.parent / match.group(1)).resolve()
    return notebook.with_suffix(".replay.jsonl").resolve()


def check(notebook: str | os.PathLike[str], tape: str | os.PathLike[str] | None = None,
          *, timeout: int = 600) -> Report:
    """Run ``notebook`` against ``tape`` (default: :func:`default_tape`) with no server; what it lacks.

    Raises ``FileNotFoundError`` or ``ValueError`` when the notebook or the file cannot be read.
    """
    import nbformat
    from nbclient import NotebookClient

    from . import ENV_CHECK, ENV_FALLBACK, ENV_RECORD, ENV_REPLAY, ENV_SPEED

    path = Path(notebook).resolve()
    if not path.is_file():
        raise FileNotFoundError(f"no notebook at {path}")
    tape_path = Path(tape).resolve() if tape is not None else default_tape(path)
    cassette = Cassette.load(tape_path)
    report = Report(path, tape_path)
    nb = nbformat.read(path, as_version=4)  # type: ignore[no-untyped-call]
    sources = [cell.source for cell in nb.cells]
    # The notebook's own replay cell replays the tape (what it runs live before or after stays
    # live, as in class); a notebook with none replays it from the start.
    own = False
    for cell in nb.cells:
        if cell.cell_type == "code" and _REPLAY_CELL.search(cell.source):
            cell.source = _REPLAY_CELL.sub(f"%lollms replay {shlex.quote(str(tape_path))}", cell.source)
            own = True
    with tempfile.TemporaryDirectory(prefix="lollms-check-") as scratch:
        log = Path(scratch) / "requests.jsonl"
        log.touch()
        read = 0

        def executed(cell: Any, cell_index: int, **_: Any) -> None:
            nonlocal read
            with open(log, encoding="utf-8") as lines:
                lines.seek(read)
                new = lines.read()
                read += len(new.encode("utf-8"))
            source = sources[cell_index].strip()
            first = _short(source.splitlines()[0] if source else "", 70)
            missed: set[str] = set()  # a request tried again (a mapped item) is reported once
            for line in new.splitlines():
                record = json.loads(line)
                if record.get("used") is not None:
                    report.answered += 1
                    report.used.add(int(record["used"]))
                elif "missing" in record and canonical(record["missing"]) not in missed:
                    missed.add(canonical(record["missing"]))
                    line_no, differs = nearest(record["missing"], cassette)
                    report.misses.append(Miss(cell_index + 1, first, record["missing"], line_no, differs))
            for output in cell.get("outputs", []):
                if output.get("output_type") == "error" and not missed:
                    report.failures.append(
                        f"cell {cell_index + 1}: {first}\n  failed: {output.get('ename')}: "
                        f"{_short(output.get('evalue', ''), 200)}"
                    )

        env = {k: v for k, v in os.environ.items()
               if k not in (ENV_RECORD, ENV_REPLAY, ENV_FALLBACK, ENV_SPEED)}
        env[ENV_CHECK] = str(log)
        if not own:
            env[ENV_REPLAY] = str(tape_path)
        client = NotebookClient(
            nb, timeout=timeout, kernel_name="python3", allow_errors=True, record_timing=False,
            resources={"metadata": {"path": str(path.parent)}}, on_cell_executed=executed,
        )
        client.execute(env=env)
    return report


def prune(notebook: str | os.PathLike[str], tape: str | os.PathLike[str] | None = None,
          *, timeout: int = 600) -> tuple[Report, int]:
    """Drop the answers of the file no cell uses; the check's report and how many went.

    Nothing is dropped when the check finds a miss or a failing cell: a cell
    that stopped early did not ask all it would have.
    """
    report = check(notebook, tape, timeout=timeout)
    if not report.ok:
        return report, 0
    cassette = Cassette.load(report.tape)
    dropped = cassette.keep_lines(report.used)
    if dropped:
        cassette.save()
    return report, dropped
