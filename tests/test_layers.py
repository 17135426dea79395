"""The package's layers point down, never back, and no module imports itself through others.

Read from the source with ``ast``: every import counts, the ones inside
functions too (a lazy import upward is still a dependency upward, and made
the cycle ``core/session.py`` <-> ``summarize/__init__.py`` that issue 15
asked to remove).
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "lollms_magics"

# Top to bottom; a module may import from its own layer and the ones below.
LAYERS: list[set[str]] = [
    {"ipython", "widgets"},
    {"compat"},
    {"core"},
    {"summaries"},
    {"bindings", "tti"},
    {"replay"},
    {"transport"},
    {"<plain>"},  # errors, options, schema, response, images, plugins...
]
# The public surface: lazy doors to every layer, imported by nothing inside.
SURFACE = {"lollms_magics", "lollms_magics.panels", "lollms_magics.lollms_types"}


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path, module: str) -> set[str]:
    """The ``lollms_magics`` modules ``path`` imports, anywhere in it."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("lollms_magics"))
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if not target.startswith("lollms_magics"):
                continue
            modules = {f"{target}.{a.name}" for a in node.names if _exists(f"{target}.{a.name}")}
            # "from .. import replay" imports the module replay, not the package's own code.
            found.update(modules or {target})
        elif isinstance(node, ast.Call) and getattr(node.func, "attr", "") == "import_module":
            arg = node.args[0] if node.args else None
            if isinstance(arg, ast.Constant) and str(arg.value).startswith("lollms_magics"):
                found.add(str(arg.value))
    return {name for name in found if _exists(name)}


def _exists(name: str) -> bool:
    relative = Path(*name.split(".")[1:]) if "." in name else Path()
    base = PACKAGE / relative
    return base.with_suffix(".py").is_file() or (base / "__init__.py").is_file()


def _layer(module: str) -> int:
    parts = module.split(".")
    folder = parts[1] if len(parts) > 2 or (len(parts) == 2 and (PACKAGE / parts[1]).is_dir()) else "<plain>"
    for index, names in enumerate(LAYERS):
        if folder in names:
            return index
    raise AssertionError(f"{module} is in no layer: add its folder to LAYERS")


def _graph() -> dict[str, set[str]]:
    graph = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        module = _module_name(path)
        graph[module] = _imports(path, module) - {module}
    return graph


def test_every_import_points_down_or_sideways() -> None:
    upward = []
    for module, imported in _graph().items():
        if module in SURFACE:
            continue
        for target in imported:
            surface = target in SURFACE and target != "lollms_magics"
            if surface or (target not in SURFACE and _layer(target) < _layer(module)):
                upward.append(f"{module} -> {target}")
    assert upward == []


def test_nothing_inside_imports_the_public_surface_module() -> None:
    users = [m for m, imported in _graph().items() if "lollms_magics" in imported and m not in SURFACE]
    assert users == []


def test_there_is_no_import_cycle() -> None:
    graph = _graph()
    # A package and its own modules may refer to each other; only a cycle
    # that crosses folders is a defect of the layout.
    def folder(module: str) -> str:
        is_package = (PACKAGE / Path(*module.split(".")[1:]) / "__init__.py").is_file()
        return module if is_package else module.rpartition(".")[0]

    cycles = []
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if nxt in SURFACE:
                continue
            if state.get(nxt) == 1:
                cycle = [*stack[stack.index(nxt):], nxt]
                if len({folder(m) for m in cycle}) > 1:
                    cycles.append(" -> ".join(cycle))
            elif nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = 2

    for module in sorted(graph):
        if module not in state and module not in SURFACE:
            visit(module)
    assert cycles == []


def test_the_checker_sees_an_upward_import(tmp_path: Path) -> None:
    # The test above would pass on a graph it cannot read: prove it reads one.
    imported = _imports(PACKAGE / "summaries" / "__init__.py", "lollms_magics.summaries")
    assert "lollms_magics.summaries.work" in imported
    assert _layer("lollms_magics.core.session") < _layer("lollms_magics.summaries.work")
