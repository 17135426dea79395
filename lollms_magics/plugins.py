"""Named classes found through an entry-point group: what text and image bindings are registered with.

Built-in and third-party classes are declared the same way::

    [project.entry-points."lollms_magics.bindings"]
    mybackend = "my_package.binding:MyBinding"

A class is imported only when it is first asked for, so listing the names
imports nothing (no httpx, no Pillow, no backend library).
"""

from __future__ import annotations

import importlib
import warnings
from collections.abc import Mapping
from importlib.metadata import entry_points
from typing import Any

from .errors import LollmsMagicsWarning, MissingDependencyError, UnknownBindingError

__all__ = ["Registry"]


class Registry:
    """The classes of one entry-point group, by name, built-ins first.

    Parameters
    ----------
    group:
        The entry-point group (``"lollms_magics.bindings"``).
    builtin:
        The built-ins, ``name -> "module:Class"``; also declared in
        pyproject.toml, and kept here so that a checkout that was never
        installed still finds them. A third party cannot take their names.
    kind:
        What the classes are, for messages (``"binding"``, ``"image binding"``).
    extras:
        The extra to install when a built-in's module fails to import.
    """

    def __init__(
        self, group: str, builtin: Mapping[str, str], kind: str, extras: Mapping[str, str] | None = None
    ) -> None:
        self.group = group
        self.builtin = dict(builtin)
        self.kind = kind
        self.extras = dict(extras or {})
        self.found: dict[str, str] | None = None  # tests may set it to add a class

    def targets(self) -> dict[str, str]:
        """``name -> "module:Class"`` for every registered class (read once)."""
        if self.found is None:
            found = dict(self.builtin)
            for ep in entry_points(group=self.group):
                if ep.name in self.builtin and ep.value != self.builtin[ep.name]:
                    warnings.warn(
                        f"{self.kind} {ep.name!r} from {ep.value} is ignored: a built-in has that name",
                        LollmsMagicsWarning,
                        stacklevel=3,
                    )
                    continue
                found[ep.name] = ep.value
            self.found = found
        return self.found

    def names(self) -> list[str]:
        """The registered names, built-in ones first."""
        targets = self.targets()
        return [*self.builtin, *sorted(set(targets) - set(self.builtin))]

    def load(self, name: str) -> Any:
        """Import and return the class registered as ``name``."""
        target = self.targets().get(name)
        if target is None:
            raise UnknownBindingError(
                f"no {self.kind} named {name!r}; the {self.kind}s are: {', '.join(self.names())}"
            )
        module_name, _, attr = target.partition(":")
        try:
            module = importlib.import_module(module_name)
        except ImportError as exc:
            extra = self.extras.get(name)
            missing = exc.name or module_name
            how = f"pip install 'lollms-magics[{extra}]'" if extra else f"install {missing}"
            raise MissingDependencyError(f"{self.kind} {name!r} needs {missing}: {how}") from exc
        return getattr(module, attr)
