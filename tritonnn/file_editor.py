"""``keras.saving.KerasFileEditor`` for tritonnn's files: inspect, edit and resave a saved model's weights.

A Keras file holds its weights in an HDF5 tree whose paths follow the model's structure: ``layers/dense/vars/0``
for the first variable of the model's first ``Dense`` (objects are named by their class, snake-cased, with a counter
in each container: ``dense``, ``dense_1``...; a layer's own variables are numbered in creation order, trainable ones
first; a nested model's layers sit under ``layers/sequential/layers/...``, a layer's sublayers under their attribute
names). Keras' editor shows that tree without the ``vars`` level (``layers/dense/0``) and edits it.

A tritonnn file (see :mod:`tritonnn.saving`) is one safetensors file holding each weight under the model's
``state_dict`` key (``_layer_modules.d1.kernel``) and the optimizer's state under ``optimizer/``. The editor shows
such a file as the tree Keras would show for the same model, so that code written for Keras' editor runs unchanged:

- A ``.keras`` file records the model's config: the editor rebuilds the model from it (as ``load_model`` does,
  within the same memory budget, without loading the weights) and walks it as Keras' saving walks a model, which
  gives every tensor key its Keras path. Keys the walk does not reach keep the path their key spells.
- A weights file (``.weights.h5``, ``.weights.safetensors``) written by ``save_weights`` records no config: its
  objects are named by the keys themselves (``_layer_modules`` and ``_layers`` read as ``layers``, the other dotted
  parts as objects and weights: ``layers/d1/kernel``) until :meth:`KerasFileEditor.compare` is given the model,
  which names each of the file's keys that the model holds by the model's Keras path (when nothing was edited yet).
  A weights file written by the editor records each key's path (the header entry ``keras_paths``), so it reopens
  with the tree it was saved with.
- The optimizer's state is ``optimizer/<name>`` (``iterations``, ``learning_rate``, ``momentums``...): tritonnn's
  optimizers keep one flat buffer per kind of state, not Keras' variable per weight.

Saving writes a weights file that ``load_weights`` reads: each weight of the tree goes under a ``state_dict`` key.
A path is looked up first in the reference model of the last :meth:`~KerasFileEditor.compare` (the model the file
is meant for: its keys are the ones ``load_weights`` will ask for), then in the file as it was opened. A path found
in neither (an object added or renamed to a name the file's model does not have) is an error naming the paths, so
that an edit never yields a file whose weights land in the wrong place; the file is written atomically, after every
check, like ``save_weights``' files.
"""

from __future__ import annotations

import json
import math
import os
import re
import warnings
from collections import OrderedDict
from typing import Any

import numpy as np
import torch
from safetensors.torch import save as st_save

from . import _file_format, _registry, ops
from .layers.layer import Layer, weight_budget
from .layers.torch_module_wrapper import TorchModuleWrapper
from .version import __version__

# The file format (tritonnn.saving's module docstring; saving imports this module, so these are restated here).
FORMAT_NAME, FORMAT_VERSION = _file_format.FORMAT_NAME, _file_format.FORMAT_VERSION
OPTIMIZER_PREFIX = _file_format.OPTIMIZER_PREFIX
MODEL_SUFFIX = ".keras"
WEIGHTS_SUFFIXES = (".weights.h5", ".weights.safetensors")
# The header entry in which the editor records the path of each key of a file it writes.
PATHS_ENTRY = "keras_paths"
# The most elements one sample of the inputs a .keras file's config declares may hold for the editor to rebuild the
# model (saving.MAX_INPUT_ELEMENTS' default): above it the file's objects are named by their keys.
MAX_INPUT_ELEMENTS = 2**26
# The containers of a Sequential (`_layers`) and a Functional (`_layer_modules`) model: Keras' `layers`.
_LAYER_CONTAINERS = ("_layers", "_layer_modules")

Path = tuple[str, ...]


class _Spec:
    """A weight of a model, as the editor compares it: its shape and dtype (Keras' ``KerasTensor`` spec)."""

    def __init__(self, shape: tuple[int, ...], dtype: torch.dtype):
        self.shape = shape
        self.dtype = dtype

    def __repr__(self) -> str:
        return f"<spec shape={self.shape}, dtype={str(self.dtype).replace('torch.', '')}>"


# ---- reading and writing files ----------------------------------------------------------------------------------


def _json_entry(metadata: dict[str, str], key: str, path: str) -> Any:
    """A JSON header entry (None when the file has none)."""
    if key not in metadata:
        return None
    try:
        return json.loads(metadata[key])
    except (json.JSONDecodeError, RecursionError) as e:
        raise ValueError(f"{path} is not a valid tritonnn file: the header entry {key!r} is not JSON ({e})") from e


# ---- Keras paths of a model's weights ---------------------------------------------------------------------------


def _snake(name: str) -> str:
    """A class name as Keras names its object in a saved file (``BatchNormalization`` -> ``batch_normalization``)."""
    name = re.sub(r"\W+", "", name)
    name = re.sub(r"(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub(r"([a-z])([A-Z])", r"\1_\2", name).lower()


def _attribute_order(name: str) -> tuple[bool, str]:
    """Keras visits a layer's public attributes before its private ones, each in name order."""
    return (name.startswith("_"), name)


class _Walk:
    """The Keras path of every ``state_dict`` key of a model, found as Keras' saving walks the model.

    ``labels`` maps each key to its path (aliases of one tensor share a path), ``spec`` is the tree of the model's
    weights in Keras' walk order (leaves are :class:`_Spec`), ``names`` the layer name of each object path.
    """

    def __init__(self, model: Layer):
        self.state = model.state_dict(keep_vars=True)
        self.labels: dict[str, Path] = {}
        self.names: dict[Path, str] = {}
        self.spec: OrderedDict[str, Any] = OrderedDict()
        self._visited: set[int] = set()
        self._layer(model, "", (), self.spec)
        # A tensor reached under another key (a weight that is two attributes, a layer that is two children):
        # the key is an alias of the path of that tensor.
        by_tensor = {id(self.state[k]): p for k, p in self.labels.items()}
        for key, value in self.state.items():
            if key not in self.labels and id(value) in by_tensor:
                self.labels[key] = by_tensor[id(value)]
        # Tensors the walk does not reach (a plain torch module inside a layer): the path their key spells.
        for key, value in self.state.items():
            if key not in self.labels:
                path = _key_path(key)
                if _insert(self.spec, path, _Spec(tuple(value.shape), value.dtype)):
                    self.labels[key] = path

    def _leaf(self, node: OrderedDict[str, Any], path: Path, keys: list[str]) -> None:
        value = self.state[keys[0]]
        node[path[-1]] = _Spec(tuple(value.shape), value.dtype)
        for key in keys:
            self.labels[key] = path

    def _own(self, layer: Layer, prefix: str) -> list[tuple[str, list[str], bool]]:
        """The layer's own tensors: (attribute, keys of the same tensor, is a parameter), in registration order."""
        groups: dict[int, tuple[str, list[str], bool]] = {}
        for attr, p in layer.named_parameters(recurse=False, remove_duplicate=False):
            if p is not None and prefix + attr in self.state:
                groups.setdefault(id(p), (attr, [], True))[1].append(prefix + attr)
        for attr, b in layer.named_buffers(recurse=False, remove_duplicate=False):
            if b is not None and prefix + attr in self.state:
                groups.setdefault(id(b), (attr, [], False))[1].append(prefix + attr)
        return list(groups.values())

    def _layer(self, layer: Layer, prefix: str, path: Path, node: OrderedDict[str, Any]) -> None:
        self._visited.add(id(layer))
        if path:
            self.names[path] = layer.name
        own = self._own(layer, prefix)
        params = [(keys, self.state[keys[0]]) for _, keys, is_param in own if is_param]
        # Keras numbers a layer's variables trainable first (as created), then the others.
        params.sort(key=lambda kp: not getattr(kp[1], "_tritonnn_trainable", True))
        leaves: list[tuple[str, list[str]]] = [(str(i), keys) for i, (keys, _) in enumerate(params)]
        leaves += [(attr, keys) for attr, keys, is_param in own if not is_param]
        if isinstance(layer, TorchModuleWrapper):
            # Keras' wrapper saves the module's own state_dict, under its keys.
            inner = prefix + "module."
            leaves += [(k[len(inner) :], [k]) for k in self.state if k.startswith(inner)]
        for name, keys in sorted(leaves):
            self._leaf(node, (*path, name), keys)
        children = [(n, m) for n, m in layer.named_children() if not isinstance(layer, TorchModuleWrapper)]
        first = [(n, m) for n, m in children if n in _LAYER_CONTAINERS and hasattr(layer, "layers")]
        rest = sorted((c for c in children if c not in first), key=lambda c: _attribute_order(c[0]))
        for name, child in first:
            self._container(child, f"{prefix}{name}.", (*path, "layers"), node)
        for name, child in rest:
            if isinstance(child, Layer):
                if id(child) not in self._visited:
                    sub: OrderedDict[str, Any] = OrderedDict()
                    self._layer(child, f"{prefix}{name}.", (*path, name), sub)
                    if sub:
                        node[name] = sub
            elif isinstance(child, (torch.nn.ModuleList, torch.nn.ModuleDict)):
                self._container(child, f"{prefix}{name}.", (*path, name), node)

    def _container(self, container: torch.nn.Module, prefix: str, path: Path, node: OrderedDict[str, Any]) -> None:
        """A list of layers: each named by its class, snake-cased, ``_1``, ``_2``... for the next of one class."""
        sub: OrderedDict[str, Any] = OrderedDict()
        used: dict[str, int] = {}
        for key, child in container.named_children():
            if not isinstance(child, Layer):
                continue
            base = _snake(type(child).__name__)
            used[base] = used.get(base, -1) + 1
            name = base if used[base] == 0 else f"{base}_{used[base]}"
            if id(child) not in self._visited:
                child_node: OrderedDict[str, Any] = OrderedDict()
                self._layer(child, f"{prefix}{key}.", (*path, name), child_node)
                if child_node:
                    sub[name] = child_node
        if sub:
            node[path[-1]] = sub


def _optimizer_state(model: Any) -> dict[str, torch.Tensor]:
    """The optimizer's state a file of ``model`` holds (``save_model``/``save_weights`` write it once built)."""
    optimizer = getattr(model, "optimizer", None)
    if optimizer is None or not getattr(optimizer, "built", False):
        return {}
    return {OPTIMIZER_PREFIX + k: v for k, v in optimizer.state_dict().items()}


def _key_path(key: str) -> Path:
    """The path a key spells when no model names it: ``_layer_modules.d1.kernel`` -> ``layers/d1/kernel``,
    ``optimizer/momentums`` -> ``optimizer/momentums``."""
    if key.startswith(OPTIMIZER_PREFIX):
        parts = ["optimizer", *key[len(OPTIMIZER_PREFIX) :].split("/")]
    else:
        parts = ["layers" if p in _LAYER_CONTAINERS else p for p in key.split(".")]
    if any(not p or "/" in p for p in parts):
        raise ValueError(f"The tensor key {key!r} cannot be shown as a path of names (an empty name or a '/')")
    return tuple(parts)


def _insert(tree: dict[str, Any], path: Path, value: Any) -> bool:
    """Put ``value`` at ``path`` in ``tree``; False (and nothing changed) when the path is taken or crosses a weight."""
    node = tree
    for part in path[:-1]:
        node = node.setdefault(part, OrderedDict())
        if not isinstance(node, dict):
            return False
    if path[-1] in node:
        return False
    node[path[-1]] = value
    return True


def _check_labels(labels: dict[str, Path]) -> None:
    """Paths form a tree: no path is both a weight and an object holding others."""
    leaves = set(labels.values())
    for path in leaves:
        for n in range(1, len(path)):
            if path[:n] in leaves:
                raise ValueError(f"The path {'/'.join(path[:n])!r} is both a weight and an object")


def _rebuild(model_config: Any, build_config: Any, n_elements: int, path: str) -> Layer:
    """The model a ``.keras`` file's config describes, built, its weights not loaded (``load_model``'s checks: the
    classes come from the registry, the weights it creates are bounded by what the file stores)."""
    if not isinstance(model_config, dict) or not isinstance(model_config.get("class_name"), str):
        raise ValueError("its model_config is not a layer config")
    for shape in _file_format.declared_shapes([model_config, build_config]):
        n = math.prod(1 if d is None else d for d in shape)
        if n > MAX_INPUT_ELEMENTS:
            raise ValueError(f"its config declares the input shape {shape}, over {MAX_INPUT_ELEMENTS} elements")
    config = {"module": "keras.models", **model_config}
    if build_config is not None:
        config["build_config"] = build_config
    with weight_budget(n_elements, source=f"the file {path}"):
        model = _registry.deserialize_object(config)
    if not isinstance(model, Layer):
        raise ValueError(f"its model_config describes a {type(model).__name__}, not a model")
    return model


# ---- values -----------------------------------------------------------------------------------------------------


def _to_numpy(value: torch.Tensor) -> np.ndarray:
    """A stored tensor as Keras' editor holds it: a numpy array (bfloat16 as ``ml_dtypes.bfloat16`` when ml_dtypes is
    installed)."""
    return np.asarray(ops.convert_to_numpy(value))


def _to_tensor(value: Any, where: str, target: torch.dtype | None) -> torch.Tensor:
    """A weight of the tree as the tensor to store: numbers only, cast to the dtype of the weight it fills (a float to
    an integer or anything to or from bool refused)."""
    if isinstance(value, torch.Tensor):
        tensor = value.detach().to("cpu", copy=True)
    else:
        try:
            array = np.asarray(value)
        except Exception as e:  # noqa: BLE001  (whatever numpy refuses is the user's value)
            raise ValueError(f"The weight {where!r} is not an array of numbers: {value!r} ({e})") from e
        if array.dtype.name == "bfloat16":  # ml_dtypes'
            tensor = torch.from_numpy(np.ascontiguousarray(array).view(np.uint16).copy()).view(torch.bfloat16)
        elif array.dtype.kind not in "biuf":
            raise ValueError(
                f"The weight {where!r} is not an array of numbers: dtype {array.dtype} ({type(value).__name__}). "
                "Weights are numeric arrays (NumPy arrays, tensors, lists of numbers)."
            )
        else:
            tensor = torch.from_numpy(np.array(array, dtype=array.dtype.newbyteorder("="), copy=True))
    tensor = tensor.contiguous()
    if target is not None and tensor.dtype != target:
        src_float, dst_float = tensor.dtype.is_floating_point, target.is_floating_point
        src_bool, dst_bool = tensor.dtype == torch.bool, target == torch.bool
        if (src_float and not dst_float) or src_bool != dst_bool:
            raise ValueError(
                f"The weight {where!r} is {str(tensor.dtype).replace('torch.', '')}, but the weight it fills is "
                f"{str(target).replace('torch.', '')}: a float does not fill an integer weight, nor a bool another "
                "dtype. Pass an array of a matching dtype."
            )
        tensor = tensor.to(target)
    return tensor


def _check_weights(weights: Any, where: str) -> None:
    """Weights to add: a dict of names to arrays (or of names to such dicts, for sub-objects)."""
    for name, value in weights.items():
        if not isinstance(name, str) or not name or "/" in name:
            raise ValueError(
                f"Weight names are non-empty strings without '/'. Received: {name!r} in the weights of {where!r}"
            )
        if isinstance(value, dict):
            _check_weights(value, f"{where}/{name}")
        else:
            _to_tensor(value, f"{where}/{name}", None)


def _leaves(tree: dict[str, Any], path: Path = ()) -> list[tuple[Path, Any]]:
    out: list[tuple[Path, Any]] = []
    for name, value in tree.items():
        if isinstance(value, dict):
            out += _leaves(value, (*path, name))
        else:
            out.append(((*path, name), value))
    return out


def _tree(items: list[tuple[Path, Any]]) -> OrderedDict[str, Any]:
    """Nested dicts of the paths' values, each level in name order (the order Keras' editor reads an HDF5 file in)."""
    tree: OrderedDict[str, Any] = OrderedDict()
    for path, value in items:
        node = tree
        for part in path[:-1]:
            node = node.setdefault(part, OrderedDict())
        node[path[-1]] = value

    def ordered(node: OrderedDict[str, Any]) -> OrderedDict[str, Any]:
        return OrderedDict((k, ordered(v) if isinstance(v, dict) else v) for k, v in sorted(node.items()))

    return ordered(tree)


def _shape_text(shape: Any) -> str:
    return str(tuple(int(d) for d in shape))


# ---- the editor -------------------------------------------------------------------------------------------------


class KerasFileEditor:
    """Inspect, edit and resave the weights of a saved model (Keras' ``keras.saving.KerasFileEditor``).

    Useful to adapt a saved file to a changed architecture: rename, delete or add objects (layers) and weights,
    compare the file with the new model, and save weights the new model loads.

    Args:
        filepath: a ``.keras`` file written by ``save_model``, or a ``.weights.h5`` / ``.weights.safetensors`` file
            written by ``save_weights`` (or by this editor).

    The weights are in ``weights_dict``: nested dicts of objects whose leaves are NumPy arrays, under the paths
    Keras' editor shows for the same model (``layers/dense/0``); see the module docstring for how tritonnn's tensor
    keys map to them.

    Example::

        editor = KerasFileEditor("my_model.keras")
        editor.summary()
        editor.compare(new_model)
        editor.delete_object("layers/dense_2")
        editor.add_object("layers/einsum_dense", weights={"0": kernel, "1": bias})
        editor.save("edited_model.weights.h5")
        new_model.load_weights("edited_model.weights.h5")
    """

    def __init__(self, filepath: str | os.PathLike) -> None:
        if not isinstance(filepath, (str, os.PathLike)):
            raise ValueError(f"Expected `filepath` to be a str or os.PathLike. Received: filepath={filepath!r}")
        self.filepath = os.fspath(filepath)
        self.metadata: dict[str, str] | None = None
        self.config: dict[str, Any] | None = None
        self.model = None
        if self.filepath.endswith(MODEL_SUFFIX):
            is_model = True
        elif self.filepath.endswith(WEIGHTS_SUFFIXES):
            is_model = False
        else:
            raise ValueError(
                "Invalid filename: expected a `.keras`, `.weights.h5` or `.weights.safetensors` extension. "
                f"Received: filepath={self.filepath}"
            )
        metadata, tensors = _file_format.read(self.filepath)
        self._header = metadata
        self._tensors = tensors
        self._edited = False
        self._reference: dict[Path, tuple[list[str], torch.dtype]] = {}
        self.object_metadata: dict[str, dict[str, str]] = {}
        self._labels, self._from_keys = self._label(is_model)
        self.weights_dict = self._tree_of(self._labels)
        if is_model:
            self.metadata = dict(metadata)
            config = _json_entry(metadata, "model_config", self.filepath)
            self.config = config if isinstance(config, dict) else None
        print(f"Keras model file '{self.filepath}'")
        if self.metadata is not None:
            print(f"Saved with tritonnn {self.metadata.get('tritonnn_version', 'unknown')}")

    # ---- naming the file's keys ---------------------------------------------------------------------------------

    def _label(self, is_model: bool) -> tuple[dict[str, Path], bool]:
        """The path of each key, and whether they come from the keys alone (no model, no recorded paths)."""
        recorded = self._recorded_paths()
        if recorded is not None:
            return recorded, False
        model_config = _json_entry(self._header, "model_config", self.filepath)
        if model_config is not None:
            n = sum(v.numel() for k, v in self._tensors.items() if not k.startswith(OPTIMIZER_PREFIX))
            build_config = _json_entry(self._header, "build_config", self.filepath)
            try:
                model = _rebuild(model_config, build_config, n, self.filepath)
            except Exception as e:  # noqa: BLE001  (a class not registered, a forged config: named in the warning)
                warnings.warn(
                    f"The model of {self.filepath} could not be rebuilt from its config ({type(e).__name__}: {e}); "
                    "its objects are named by the file's tensor keys instead of Keras' paths. Register its custom "
                    "classes with `tritonnn.saving.register_keras_serializable` to see Keras' paths.",
                    stacklevel=3,
                )
            else:
                labels = self._labels_from(_Walk(model))
                if labels is not None:
                    return labels, False
        return {key: _key_path(key) for key in self._tensors}, True

    def _recorded_paths(self) -> dict[str, Path] | None:
        """The paths recorded by the editor that wrote the file, when they name every key and form a tree."""
        try:
            recorded = _json_entry(self._header, PATHS_ENTRY, self.filepath)
        except ValueError:
            return None
        if not isinstance(recorded, dict) or set(recorded) != set(self._tensors):
            return None
        labels: dict[str, Path] = {}
        for key, value in recorded.items():
            if not isinstance(value, str):
                return None
            path = tuple(value.split("/"))
            if any(not p for p in path):
                return None
            labels[key] = path
        try:
            _check_labels(labels)
        except ValueError:
            return None
        return labels

    def _labels_from(self, walk: _Walk) -> dict[str, Path] | None:
        """The file's keys named by a model's walk (those the model lacks by their keys), or None when the result
        is not a tree."""
        labels = {key: walk.labels[key] if key in walk.labels else _key_path(key) for key in self._tensors}
        # An object holds the model's weights or the file's other keys, not both (a layer half renamed).
        named = {labels[k][:-1] for k in self._tensors if k in walk.labels}
        if any(labels[k][:-1] in named for k in self._tensors if k not in walk.labels):
            return None
        try:
            _check_labels(labels)
        except ValueError:
            return None
        for path, name in walk.names.items():
            self.object_metadata["/" + "/".join(path)] = {"name": name}
        return labels

    def _tree_of(self, labels: dict[str, Path]) -> OrderedDict[str, Any]:
        """The weights under their paths (the first key of a path gives its value: aliases hold the same tensor)."""
        items: dict[Path, Any] = {}
        for key, path in labels.items():
            if path not in items:
                items[path] = _to_numpy(self._tensors[key])
        return _tree(list(items.items()))

    # ---- inspecting ---------------------------------------------------------------------------------------------

    def summary(self) -> None:
        """Prints the weight structure of the opened file."""
        print("Weights structure")
        self._print_tree(self.weights_dict, prefix="  ", first=True)

    def _print_tree(self, tree: dict[str, Any], prefix: str, first: bool) -> bool:
        """Keras' drawing: the very first entry is ``> ``, then ``├─ `` and, for the last of a level, ``└─ ``."""
        items = list(tree.items())
        for i, (name, value) in enumerate(items):
            last = i == len(items) - 1
            connector = "> " if first else ("└─ " if last else "├─ ")
            first = False
            if isinstance(value, dict):
                print(f"{prefix}{connector}{name}")
                first = self._print_tree(value, prefix + ("    " if last else "│   "), first)
            elif hasattr(value, "shape") and hasattr(value, "dtype"):
                print(f"{prefix}{connector}{name}: shape={_shape_text(value.shape)}, dtype={value.dtype}")
            else:
                print(f"{prefix}{connector}{name}: {value}")
        return first

    def compare(self, reference_model: Any) -> dict[str, Any]:
        """Compares the opened file to a reference model.

        Lists every mismatch between the file and the model: an object or weight one has and the other lacks, a
        weight of another shape. The reference model is also the model the editor's :meth:`save` names the weights
        for (its ``state_dict`` keys); a weights file whose objects were named by its keys (and not edited yet) is
        named by the model's paths first.

        Args:
            reference_model: the model to compare to.

        Returns:
            Dict with the following keys: ``'status'``, ``'error_count'``, ``'match_count'``. Status can be
            ``'success'`` or ``'error'``; ``'error_count'`` is the number of mismatches found, ``'match_count'`` the
            number of matching weights found.
        """
        if not isinstance(reference_model, Layer):
            raise ValueError(
                "Expected `reference_model` to be a tritonnn Model or Layer. "
                f"Received: reference_model={reference_model!r}"
            )
        print("Running comparison")
        walk = _Walk(reference_model)
        spec = walk.spec
        optimizer = _optimizer_state(reference_model)
        if optimizer:
            spec["optimizer"] = OrderedDict(
                (k[len(OPTIMIZER_PREFIX) :], _Spec(tuple(v.shape), v.dtype)) for k, v in optimizer.items()
            )
        reference: dict[Path, tuple[list[str], torch.dtype]] = {}
        for key, path in walk.labels.items():
            reference.setdefault(path, ([], walk.state[key].dtype))[0].append(key)
        for key, value in optimizer.items():
            reference[_key_path(key)] = ([key], value.dtype)
        self._reference = reference
        if self._from_keys and not self._edited:
            self._name_by(walk)
        checked: set[str] = set()
        errors, matches = self._compare(self.weights_dict, spec, "", "saved file", "reference model", checked)
        more, _ = self._compare(spec, self.weights_dict, "", "reference model", "saved file", checked)
        errors += more
        print("─────────────────────")
        if errors == 0:
            print("Comparison successful: saved file is compatible with the reference model")
            print(f"    Found {matches} matching weight{'' if matches == 1 else 's'}")
        else:
            plural = "" if errors == 1 else "s"
            print(f"Found {errors} error{plural}: saved file is not compatible with the reference model")
        return {"status": "success" if errors == 0 else "error", "error_count": errors, "match_count": matches}

    def _name_by(self, walk: _Walk) -> None:
        """Name the keys of a file read without a model by the model's paths, where it holds them."""
        labels = self._labels_from(walk)
        if labels is None or labels == self._labels:
            return
        values = {path: value for path, value in _leaves(self.weights_dict)}
        items: dict[Path, Any] = {}
        for key, path in labels.items():
            old = self._labels[key]
            if old in values and path not in items:
                items[path] = values[old]
        self._labels, self._from_keys = labels, False
        self.weights_dict = _tree(list(items.items()))

    def _compare(
        self, target: dict[str, Any], ref: dict[str, Any], base: str, target_name: str, ref_name: str, checked: set
    ) -> tuple[int, int]:
        """The mismatches and matches of ``ref``'s entries in ``target`` (each counted once)."""
        errors = matches = 0
        for key, ref_value in ref.items():
            path = f"{base}/{key}"
            if path in checked:
                continue
            found = target.get(key) if isinstance(target, dict) else None
            if isinstance(ref_value, dict) and isinstance(found, dict):
                e, m = self._compare(found, ref_value, path, target_name, ref_name, checked)
                errors, matches = errors + e, matches + m
            elif isinstance(ref_value, dict):
                errors += 1
                checked.add(path)
                print(f"...Object {path} present in {ref_name}, missing from {target_name}")
                print(f"    In {ref_name}, {path} contains the following keys: {list(ref_value.keys())}")
            elif found is None or isinstance(found, dict):
                errors += 1
                checked.add(path)
                print(f"...Weight {path} present in {ref_name}, missing from {target_name}")
            elif tuple(found.shape) != tuple(ref_value.shape):
                errors += 1
                checked.add(path)
                print(f"...Weight shape mismatch for {path}")
                print(f"    In {ref_name}: shape={_shape_text(ref_value.shape)}")
                print(f"    In {target_name}: shape={_shape_text(found.shape)}")
            else:
                matches += 1
        return errors, matches

    # ---- editing ------------------------------------------------------------------------------------------------

    def _edit_object(self, edit_fn: Any, source_name: Any, target_name: Any = None) -> None:
        """Apply ``edit_fn(parent_dict, source_name, target_name)`` where ``source_name`` is: at its path when it
        holds a ``/``, else wherever the name occurs in the tree, which must be exactly once."""
        if not isinstance(source_name, str) or not source_name:
            raise ValueError(f"Expected a name or path (a non-empty string). Received: {source_name!r}")
        if target_name is not None:
            if not isinstance(target_name, str) or not target_name:
                raise ValueError(f"Expected `new_name` to be a non-empty string. Received: {target_name!r}")
            if "/" in target_name:
                raise ValueError(
                    "Argument `target_name` should be a leaf name, not a full path name. "
                    f"Received: target_name='{target_name}'"
                )
        if "/" in source_name:
            elements = source_name.split("/")
            node: Any = self.weights_dict
            for element in elements[:-1]:
                if not isinstance(node, dict) or element not in node:
                    raise ValueError(f"Path '{source_name}' not found in model.")
                node = node[element]
            if not isinstance(node, dict) or elements[-1] not in node:
                raise ValueError(f"Path '{source_name}' not found in model.")
            edit_fn(node, source_name=elements[-1], target_name=target_name)
            self._edited = True
            return
        parents = [node for node in self._objects(self.weights_dict) if source_name in node]
        if len(parents) > 1:
            raise ValueError(f"Name '{source_name}' occurs more than once in the model; try passing a complete path")
        if not parents:
            raise ValueError(
                f"Source name '{source_name}' does not appear in the model. Use `editor.summary()` to list all objects."
            )
        edit_fn(parents[0], source_name=source_name, target_name=target_name)
        self._edited = True

    def _objects(self, node: dict[str, Any]) -> list[dict[str, Any]]:
        out = [node]
        for value in node.values():
            if isinstance(value, dict):
                out += self._objects(value)
        return out

    def rename_object(self, object_name: str, new_name: str) -> None:
        """Rename an object in the file (e.g. a layer).

        Args:
            object_name: String, name or path of the object to rename (e.g. ``"dense_2"`` or ``"layers/dense_2"``).
            new_name: String, new name of the object.
        """

        def rename_fn(weights_dict: dict[str, Any], source_name: str, target_name: str) -> None:
            if target_name != source_name:  # (Keras' renaming to the same name deletes the object)
                weights_dict[target_name] = weights_dict.pop(source_name)

        self._edit_object(rename_fn, object_name, new_name)

    def delete_object(self, object_name: str) -> None:
        """Removes an object from the file (e.g. a layer).

        Args:
            object_name: String, name or path of the object to delete (e.g. ``"dense_2"`` or ``"layers/dense_2"``).
        """

        def delete_fn(weights_dict: dict[str, Any], source_name: str, target_name: Any = None) -> None:
            weights_dict.pop(source_name)

        self._edit_object(delete_fn, object_name)

    def add_object(self, object_path: str, weights: dict[str, Any]) -> None:
        """Add a new object to the file (e.g. a layer).

        Args:
            object_path: String, full path of the object to add (e.g. ``"layers/dense_2"``).
            weights: Dict mapping weight names to weight values (arrays), e.g. ``{"0": kernel_value, "1":
                bias_value}``.
        """
        if not isinstance(weights, dict):
            raise ValueError(
                "Argument `weights` should be a dict where keys are weight names (usually '0', '1', etc.) and values "
                f"are NumPy arrays. Received: type(weights)={type(weights)}"
            )
        if not isinstance(object_path, str) or not object_path:
            raise ValueError(f"Expected `object_path` to be a non-empty string. Received: {object_path!r}")
        elements = object_path.split("/")
        if any(not e for e in elements):
            raise ValueError(f"Invalid `object_path`: it has an empty name. Received: object_path='{object_path}'")
        _check_weights(weights, object_path)
        node: Any = self.weights_dict
        for element in elements[:-1]:
            if not isinstance(node, dict) or not isinstance(node.get(element), dict):
                raise ValueError(f"Path '{'/'.join(elements[:-1])}' not found in model.")
            node = node[element]
        node[elements[-1]] = self._copy(weights)
        self._edited = True

    def _copy(self, weights: dict[str, Any]) -> dict[str, Any]:
        return {k: self._copy(v) if isinstance(v, dict) else v for k, v in weights.items()}

    def delete_weight(self, object_name: str, weight_name: str) -> None:
        """Removes a weight from an existing object.

        Args:
            object_name: String, name or path of the object from which to remove the weight (e.g. ``"dense_2"`` or
                ``"layers/dense_2"``).
            weight_name: String, name of the weight to delete (e.g. ``"0"``).
        """

        def delete_weight_fn(weights_dict: dict[str, Any], source_name: str, target_name: Any = None) -> None:
            obj = weights_dict[source_name]
            if not isinstance(obj, dict):
                raise ValueError(f"{object_name} is a weight, not an object: it holds no weight {weight_name}")
            if weight_name not in obj:
                raise ValueError(
                    f"Weight {weight_name} not found in object {object_name}. Weights found: {list(obj.keys())}"
                )
            obj.pop(weight_name)

        self._edit_object(delete_weight_fn, object_name)

    def add_weights(self, object_name: str, weights: dict[str, Any]) -> None:
        """Add one or more new weights to an existing object.

        Args:
            object_name: String, name or path of the object to add the weights to (e.g. ``"dense_2"`` or
                ``"layers/dense_2"``).
            weights: Dict mapping weight names to weight values (arrays), e.g. ``{"0": kernel_value, "1":
                bias_value}``.
        """
        if not isinstance(weights, dict):
            raise ValueError(
                "Argument `weights` should be a dict where keys are weight names (usually '0', '1', etc.) and values "
                f"are NumPy arrays. Received: type(weights)={type(weights)}"
            )
        _check_weights(weights, str(object_name))

        def add_weight_fn(weights_dict: dict[str, Any], source_name: str, target_name: Any = None) -> None:
            obj = weights_dict[source_name]
            if not isinstance(obj, dict):
                raise ValueError(f"{object_name} is a weight, not an object: weights are added to objects")
            obj.update(self._copy(weights))

        self._edit_object(add_weight_fn, object_name)

    # ---- saving -------------------------------------------------------------------------------------------------

    def save(self, filepath: str | os.PathLike) -> None:
        """Save the edited weights file.

        Args:
            filepath: Path to save the file to. Must be a ``.weights.h5`` (or ``.weights.safetensors``) file.

        The file is a tritonnn weights file (``load_weights`` reads it): each weight goes under the ``state_dict``
        key its path has in the reference model of the last :meth:`compare`, else in the file as opened. Raises
        ``ValueError``, writing nothing, when a path has no key in either (an object added or renamed to a name
        neither model has: compare with the model the file is for first), when two paths would fill one key, or
        when a weight is not an array of numbers.
        """
        if not isinstance(filepath, (str, os.PathLike)):
            raise ValueError(f"Expected `filepath` to be a str or os.PathLike. Received: filepath={filepath!r}")
        filepath = os.fspath(filepath)
        if not filepath.endswith(WEIGHTS_SUFFIXES):
            raise ValueError(
                f"Invalid `filepath` argument: expected a `.weights.h5` extension. Received: filepath={filepath}"
            )
        own: dict[Path, list[str]] = {}
        for key, path in self._labels.items():
            own.setdefault(path, []).append(key)
        tensors: dict[str, torch.Tensor] = {}
        paths: dict[str, str] = {}
        unmapped: list[str] = []
        for path, value in _leaves(self.weights_dict):
            where = "/".join(path)
            if path in self._reference:
                keys, dtype = self._reference[path]
            elif path in own:
                keys, dtype = own[path], self._tensors[own[path][0]].dtype
            else:
                unmapped.append(where)
                continue
            tensor = _to_tensor(value, where, dtype)
            for key in keys:
                if key in tensors:
                    raise ValueError(
                        f"Cannot save {filepath}: the paths '{paths[key]}' and '{where}' both fill the weight "
                        f"{key!r}. Delete or rename one of them."
                    )
                tensors[key] = tensor.clone()  # one tensor per key: safetensors refuses shared memory
                paths[key] = where
        if unmapped:
            models = f"the model {self.filepath} was saved from"
            if self._reference:
                models = f"the reference model given to `compare()` nor of {models}"
            raise ValueError(
                f"Cannot save {filepath}: tritonnn files hold each weight under the model's state_dict key, and these "
                f"paths name no weight of {models}: {unmapped}. Call "
                "`editor.compare(model)` with the model the file is for, so that its paths name its weights, and "
                "save again. Nothing was written."
            )
        metadata = {
            "format": FORMAT_NAME,
            "format_version": str(FORMAT_VERSION),
            "tritonnn_version": __version__,
            "kind": "weights",
            "build_config": self._header.get("build_config", "null"),
            "compile_config": self._header.get("compile_config", "null"),
            "extra": self._header.get("extra", "{}"),
            PATHS_ENTRY: json.dumps(paths),
        }
        _file_format.atomic_write(filepath, st_save(tensors, metadata=metadata))

    def resave_weights(self, filepath: str | os.PathLike) -> None:
        """Save the edited weights file (the same as :meth:`save`)."""
        self.save(filepath)


__all__ = ["KerasFileEditor"]
