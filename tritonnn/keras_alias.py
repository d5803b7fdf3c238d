"""``tritonnn.install_as_keras()``: make ``import keras`` give tritonnn (as PyMySQL's ``install_as_MySQLdb()``).

After the call, ``keras`` and every ``keras.<name>`` resolve to tritonnn's module of the same name: ``import keras``,
``from keras import layers, ops``, ``import keras.layers``, ``from keras.models import Sequential``,
``from keras.optimizers.schedules import ExponentialDecay``. Two mechanisms, so that no module is ever loaded twice:

- every tritonnn module already imported (``import tritonnn`` imports all the public ones) is entered in
  ``sys.modules`` under its ``keras`` name, the very same module object;
- a finder placed first on ``sys.meta_path`` answers any other ``keras.*`` name by importing the tritonnn module
  of that name and handing back that object (its ``__spec__`` kept as tritonnn's). A name tritonnn lacks
  (``keras.src``, ``keras.applications``) is a ``ModuleNotFoundError`` that says so; it never falls through to a
  real Keras installed beside tritonnn.

A process that imported the real Keras before cannot be switched: the call raises a ``RuntimeError`` instead of
leaving a mix of the two (objects of one would be handed to the other).
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import sys
import types
from collections.abc import Sequence

KERAS = "keras"
TRITONNN = __name__.rsplit(".", 1)[0]  # "tritonnn"


def _target(fullname: str) -> str:
    return TRITONNN + fullname[len(KERAS) :]


class _ExistingModuleLoader(importlib.abc.Loader):
    """Hands the import system a module that is already loaded (tritonnn's), leaving its own spec in place."""

    def __init__(self, module: types.ModuleType):
        self.module = module
        self.original_spec = module.__spec__

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> types.ModuleType:
        return self.module

    def exec_module(self, module: types.ModuleType) -> None:
        module.__spec__ = self.original_spec  # the import system set the keras-named spec; put tritonnn's back


class KerasAliasFinder(importlib.abc.MetaPathFinder):
    """Resolves ``keras`` and ``keras.*`` to tritonnn's modules (installed by :func:`install_as_keras`)."""

    def find_spec(
        self, fullname: str, path: Sequence[str] | None = None, target: types.ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname != KERAS and not fullname.startswith(KERAS + "."):
            return None
        name = _target(fullname)
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as e:
            if e.name is not None and e.name != name and not name.startswith(e.name + "."):
                raise  # something the tritonnn module itself imports is missing
            raise ModuleNotFoundError(
                f"No module named {fullname!r}: tritonnn.install_as_keras() makes `keras` tritonnn, which has no "
                f"{name!r} (docs/keras_coverage.md lists what tritonnn provides of Keras)",
                name=fullname,
            ) from None
        return importlib.machinery.ModuleSpec(
            fullname, _ExistingModuleLoader(module), is_package=hasattr(module, "__path__")
        )


def _is_installed() -> bool:
    return any(isinstance(f, KerasAliasFinder) for f in sys.meta_path)


def install_as_keras() -> None:
    """Make ``import keras`` (and ``keras.layers``, ``keras.models``, ...) resolve to tritonnn in this process.

    Call it before anything imports ``keras``; calling it again is harmless. If the real Keras is imported
    already, this raises a ``RuntimeError`` naming the modules, rather than mixing the two frameworks.
    """
    real = sorted(
        name
        for name, module in list(sys.modules.items())
        if (name == KERAS or name.startswith(KERAS + "."))
        and not str(getattr(module, "__name__", "")).startswith(TRITONNN)
    )
    if real:
        raise RuntimeError(
            "tritonnn.install_as_keras() must run before the real Keras is imported: this process already has "
            f"{len(real)} keras modules loaded ({', '.join(real[:4])}{', ...' if len(real) > 4 else ''}), so "
            "`import keras` would mix the two frameworks. Call it first thing (before `import keras`), or "
            "`import tritonnn as keras` instead."
        )
    for name, module in list(sys.modules.items()):
        if module is not None and (name == TRITONNN or name.startswith(TRITONNN + ".")):
            sys.modules.setdefault(KERAS + name[len(TRITONNN) :], module)
    if not _is_installed():
        sys.meta_path.insert(0, KerasAliasFinder())


__all__ = ["KerasAliasFinder", "install_as_keras"]
