"""A process that used the embedded model ends quietly: no traceback from llama-cpp-python's ``__del__``.

llama-cpp-python frees a model in ``Llama.__del__``. Left to the interpreter's
teardown, that runs after the ``llama_cpp`` module was emptied and prints
``TypeError: 'NoneType' object is not callable`` under "Exception ignored in",
which reads as a crash. The binding closes its models at exit, before that.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.conftest import require_embedded_model

# Hang guards, not speed bounds: each run took 30 s on a busy two-core machine.
pytestmark = [pytest.mark.model, pytest.mark.timeout(600)]

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True)
def _local_extra() -> None:
    require_embedded_model()


def run(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


def assert_quiet(done: subprocess.CompletedProcess[str]) -> None:
    output = done.stdout + done.stderr
    for sign in ("Traceback", "TypeError", "Exception ignored"):
        assert sign not in output, output[-3000:]


def test_a_script_that_used_the_model_exits_without_a_traceback(tmp_path: Path) -> None:
    script = tmp_path / "use_model.py"
    script.write_text(textwrap.dedent("""
        from lollms_magics import get_binding
        binding = get_binding("llamacpp")
        held = binding.load()  # a user may keep the Llama itself
        print(repr(binding.generate("Say hi.", n_predict=4, temperature=0, seed=1).text))
    """), encoding="utf-8")
    done = run([sys.executable, str(script)], tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.startswith("'") and len(done.stdout.strip()) > 2  # some text came
    assert_quiet(done)


def test_a_test_run_that_used_the_model_ends_without_a_traceback(tmp_path: Path) -> None:
    # The shape of the project's model tests: a binding kept by a module fixture. Before the
    # models were closed at exit, every such run ended with the TypeError traceback.
    (tmp_path / "test_uses_model.py").write_text(textwrap.dedent("""
        import pytest
        from lollms_magics import get_binding

        @pytest.fixture(scope="module")
        def binding():
            return get_binding("llamacpp")

        def test_generates(binding):
            assert binding.generate("Say hi.", n_predict=4, temperature=0, seed=1).text
    """), encoding="utf-8")
    (tmp_path / "pytest.ini").write_text("[pytest]\n", encoding="utf-8")
    done = run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "test_uses_model.py"],
               tmp_path)
    assert done.returncode == 0, done.stdout[-3000:]
    assert "1 passed" in done.stdout
    assert_quiet(done)
