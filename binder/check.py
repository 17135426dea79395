"""Check the Binder set-up: a fresh virtual environment made from binder/ alone runs every notebook.

    python3 binder/check.py                    # a new venv in a temporary folder
    python3 binder/check.py --venv /tmp/bvenv  # reuse (or make) that venv
    python3 binder/check.py --live notebooks/03_summarize.ipynb

The venv gets ``binder/requirements.txt``, then ``binder/postBuild`` runs in
it, as repo2docker does. Each notebook is executed top to bottom with nbclient
in a fresh kernel of that venv, from its own folder; a last cell (not saved)
reads the kernel's peak resident memory (``VmHWM`` in ``/proc/self/status``).
A failing cell fails the check. ``--live`` sets ``LOLLMS_MAGICS_REPLAY=off``,
so the notebooks ask the embedded model instead of their replay files.
pip's cache is used, so llama-cpp-python compiles only on the first run.
Binder gives 2 GB: a kernel above ``--limit-mb`` (1500) fails the check.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RUNNER = Path(__file__).resolve().parent / "run_measured.py"


def make_venv(where: Path) -> Path:
    python = where / "bin" / "python"
    if not python.exists():
        venv.create(where, with_pip=True)
    # postBuild calls `pip`: the venv's comes first on PATH, as in repo2docker's image.
    path = f"{where / 'bin'}:{os.environ['PATH']}"
    env = {**os.environ, "PATH": path, "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    requirements = ROOT / "binder" / "requirements.txt"
    subprocess.run([str(python), "-m", "pip", "install", "-q", "-r", str(requirements)], check=True, env=env)
    subprocess.run(["bash", str(ROOT / "binder" / "postBuild")], check=True, env=env, cwd=ROOT)
    return python


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("notebooks", nargs="*", type=Path)
    ap.add_argument("--venv", type=Path, help="the venv to make or reuse (default: a temporary one)")
    ap.add_argument("--live", action="store_true", help="LOLLMS_MAGICS_REPLAY=off: no replay files")
    ap.add_argument("--limit-mb", type=float, default=1500.0)
    args = ap.parse_args()
    notebooks = args.notebooks or sorted((ROOT / "notebooks").rglob("*.ipynb"))
    with tempfile.TemporaryDirectory(prefix="binder-venv-") as scratch:
        python = make_venv(args.venv or Path(scratch) / "venv")
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        env.pop("VIRTUAL_ENV", None)
        for name in [n for n in env if n.startswith("LOLLMS_MAGICS_")]:
            env.pop(name)
        if args.live:
            env["LOLLMS_MAGICS_REPLAY"] = "off"
        command = [str(python), str(RUNNER), "--limit-mb", str(args.limit_mb), *map(str, notebooks)]
        return subprocess.run(command, env=env, cwd=ROOT).returncode


if __name__ == "__main__":
    sys.exit(main())
