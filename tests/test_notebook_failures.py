"""A notebook whose backend fails must fail under nbval: the quickstart, pointed at nothing."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_the_quickstart_fails_under_nbval_when_its_server_fails(tmp_path: Path) -> None:
    notebook = tmp_path / "quickstart.ipynb"
    shutil.copy(ROOT / "notebooks" / "01_quickstart.ipynb", notebook)
    env = {
        **os.environ,
        # A chosen backend whose server refuses connections (port 9, discard).
        "LOLLMS_MAGICS_BINDING": "ollama",
        "LOLLMS_MAGICS_HOST": "http://127.0.0.1:9",
    }
    env.pop("LOLLMS_MAGICS_REPLAY", None)
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "--nbval-lax", "-p", "no:cacheprovider",
         "-o", "addopts=", "-q", str(notebook)],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 1, result.stdout[-2000:]
    assert "cannot reach ollama at http://127.0.0.1:9" in result.stdout
    assert "failed" in result.stdout.splitlines()[-1]
