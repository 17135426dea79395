"""The package surface: cheap to import, lazy exports, binding registry."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

import lollms_magics
from lollms_magics.bindings import BUILTIN, binding_class, binding_names
from lollms_magics.errors import UnknownBindingError

HEAVY = ("httpx", "docling", "PIL", "ipywidgets", "llama_cpp", "torch", "openai", "ollama", "jsonschema")


def _modules_after(code: str) -> set[str]:
    probe = f"{code}\nimport sys, json\nprint(json.dumps(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    return set(json.loads(out.stdout.strip().splitlines()[-1]))


def test_import_loads_nothing_heavy() -> None:
    loaded = _modules_after("import lollms_magics; lollms_magics.binding_names()")
    assert "lollms_magics.bindings" in loaded  # the probe really ran our code
    assert not {m for m in loaded if m.split(".")[0] in HEAVY}


def test_first_binding_use_loads_httpx_only() -> None:
    loaded = _modules_after("import lollms_magics; lollms_magics.get_binding('ollama')")
    top = {m.split(".")[0] for m in loaded}
    assert "httpx" in top
    assert not top & {"docling", "PIL", "ipywidgets", "llama_cpp", "torch"}


def test_all_matches_the_namespace() -> None:
    assert sorted(lollms_magics.__all__) == dir(lollms_magics)
    for name in lollms_magics.__all__:
        assert getattr(lollms_magics, name) is not None


def test_unknown_attribute() -> None:
    with pytest.raises(AttributeError):
        lollms_magics.nothing_here  # noqa: B018


def test_builtin_bindings_are_entry_points() -> None:
    # The built-ins are declared in the entry-point group, like third-party ones.
    from importlib.metadata import entry_points

    declared = {ep.name: ep.value for ep in entry_points(group="lollms_magics.bindings")}
    assert declared == BUILTIN
    assert binding_names()[: len(BUILTIN)] == list(BUILTIN)


def test_unknown_binding_names_the_known_ones() -> None:
    with pytest.raises(UnknownBindingError, match="ollama"):
        binding_class("olama")


def test_third_party_binding_via_entry_point(monkeypatch: pytest.MonkeyPatch) -> None:
    import lollms_magics.bindings as registry
    from lollms_magics import plugins

    class FakeEP:
        name, value = "echo", "tests.test_package:EchoBinding"

    monkeypatch.setattr(registry.REGISTRY, "found", None)  # read the entry points again
    monkeypatch.setattr(plugins, "entry_points", lambda group: [FakeEP()])
    assert "echo" in registry.binding_names()
    binding = registry.get_binding("echo", model="m")
    assert binding.generate("abc").text == "cba"


from lollms_magics.bindings.base import Binding  # noqa: E402


class EchoBinding(Binding):
    """A third-party binding that needs no server: it answers the prompt reversed."""

    name = "echo"
    option_names = {"n_predict": "n_predict"}

    def _generate(self, request, response):  # type: ignore[no-untyped-def]
        yield request.messages[-1].content[::-1]

    def _list_models(self):  # type: ignore[no-untyped-def]
        return []
