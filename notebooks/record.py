"""Record a notebook's replay file: run it once, live, with every answer written down.

    python notebooks/record.py notebooks/04_text_to_image.ipynb --server a1111
    python notebooks/record.py notebooks/03_summarize.ipynb            # the embedded model

The file is the notebook's name with ``.replay.jsonl``, next to it (the one
its ``%lollms replay`` cell reads); it is written afresh. ``--server KIND``
starts one of the project's loopback servers (tests/servers) on the port its
binding uses by default, standing in for a real one; ``--reply TEXT`` makes
those servers answer TEXT instead of echoing the prompt; ``--script FILE``
makes them answer each question as FILE says (a JSON object: a part of the
question -> ``{"calls": [[["name", {arguments}], ...], ...], "answer": TEXT}``,
the calls asked for round by round, then the answer). ``--http-only``
keeps only the HTTP answers, so the embedded model still answers live.
``--missing`` keeps the file and records only what it lacks (what
``python -m lollms_magics.replay check`` lists): the rest is answered from it.
The notebook runs with ``LOLLMS_MAGICS_RECORD`` set, which turns its replay
cell into a recording (see lollms_magics.replay).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

import nbformat
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parent.parent
# The port each binding tries first, so a notebook naming no host reaches the stand-in.
PORTS = {"a1111": 7860, "comfyui": 8188, "ollama": 11434, "lollms_webui": 9600, "lollms": 9642,
         "openai": 8000}  # llama.cpp's and vLLM's port


def start_servers(kinds: list[str], reply: str | None, models: str | None) -> list[Any]:
    sys.path.insert(0, str(ROOT))
    from tests.servers import SERVERS

    started = []
    for kind in kinds:
        server = SERVERS[kind]()
        if reply is not None:
            server.reply = lambda prompt, text=reply: text
        if models:
            server.models = tuple(name.strip() for name in models.split(","))
        server.start(port=PORTS.get(kind, 0))
        print(f"{kind} stand-in at {server.url}", file=sys.stderr)
        started.append(server)
    return started


def follow_script(server: Any, script: dict[str, Any]) -> None:
    """Make the OpenAI-compatible stand-in ask for the calls ``script`` gives a question, then answer it."""
    chat = server.chat

    def scripted(ex: Any) -> None:
        messages = ex.json.get("messages") if isinstance(ex.json, dict) else None
        users = [m for m in messages or [] if isinstance(m, dict) and m.get("role") == "user"]
        asked = str(users[-1].get("content")) if users else ""
        plan = next((p for part, p in script.items() if part in asked), {})
        server.tool_script = plan.get("calls")
        server.reply = (lambda prompt, text=plan["answer"]: text) if plan.get("answer") else None
        chat(ex)

    server.route("POST", "/v1/chat/completions", scripted)


def keep_http_only(path: Path) -> None:
    lines = path.read_text(encoding="utf-8").splitlines()
    kept = [line for line in lines if "local" not in json.loads(line).get("key", {})]
    path.write_text("\n".join(kept) + "\n", encoding="utf-8")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("notebook", type=Path)
    ap.add_argument("--server", action="append", default=[], choices=sorted(PORTS))
    ap.add_argument("--reply", help="what the stand-in servers answer to every prompt")
    ap.add_argument("--models", help="comma-separated model names the stand-ins offer")
    ap.add_argument("--script", type=Path, help="the calls and answer of each question (the openai stand-in)")
    ap.add_argument("--http-only", action="store_true", help="drop the embedded model's answers")
    ap.add_argument("--missing", action="store_true", help="keep the file; record only what it lacks")
    ap.add_argument("--timeout", type=int, default=900, help="seconds per cell")
    args = ap.parse_args()
    notebook = args.notebook.resolve()
    target = notebook.with_suffix(".replay.jsonl")
    if args.missing:
        os.environ["LOLLMS_MAGICS_RECORD_MISSING"] = "1"
    else:
        target.unlink(missing_ok=True)
    servers = start_servers(args.server, args.reply, args.models)
    if args.script:
        for server in servers:
            follow_script(server, json.loads(args.script.read_text(encoding="utf-8")))
    os.environ["LOLLMS_MAGICS_RECORD"] = str(target)
    try:
        nb = nbformat.read(notebook, as_version=4)
        where = {"metadata": {"path": str(notebook.parent)}}
        NotebookClient(nb, timeout=args.timeout, kernel_name="python3", resources=where).execute()
    finally:
        for server in servers:
            server.stop()
    if args.http_only and target.exists():
        keep_http_only(target)
    size = target.stat().st_size if target.exists() else 0
    print(f"{target.relative_to(ROOT)}: {size} bytes", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
