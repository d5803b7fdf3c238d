"""The Functional API: a model defined by symbolic inputs and outputs, ``Model(inputs, outputs)``."""

from __future__ import annotations

from typing import Any

import torch

from .. import saving
from ..layers import fusion
from ..layers.core import InputLayer
from ..layers.layer import Layer
from ..layers.symbolic import KerasTensor, Node, flatten, map_structure
from ..trainers import data
from .model import Model


class Functional(Model):
    """A model defined by symbolic inputs and outputs: ``Model(inputs, outputs)``.

    ``inputs``/``outputs`` may be one tensor, a list, or a dict; layers may be shared and branches merged. In
    training, a ``Dense`` whose output only a ``Dropout`` reads runs fused with it, as in ``Sequential``.
    """

    builds_from_config = True  # from_config rebuilds it whole: its inputs are part of its config (tritonnn.saving)

    def __init__(self, inputs: Any, outputs: Any, name: str | None = None, trainable: bool = True, **kwargs: Any):
        super().__init__(name=name, trainable=trainable, **kwargs)
        for t in flatten(inputs):
            if not isinstance(t, KerasTensor) or not isinstance(t.node.layer, InputLayer):
                raise ValueError(f"All `inputs` of a Functional model must come from `tritonnn.Input`. Received: {t!r}")
        for t in flatten(outputs):
            if not isinstance(t, KerasTensor):
                raise ValueError(f"All `outputs` of a Functional model must be symbolic tensors. Received: {t!r}")
        self._inputs_struct = inputs
        self._outputs_struct = outputs
        self._nodes = self._topological_nodes()
        self._fusable = self._fusable_pairs()
        layers: list[Layer] = []
        for node in self._nodes:
            if node.layer not in layers:
                layers.append(node.layer)
        names = [layer.name for layer in layers]
        dup = {n for n in names if names.count(n) > 1}
        if dup:
            raise ValueError(
                f"The name(s) {sorted(dup)} are used by more than one layer. All layer names should be unique."
            )
        self._layer_modules = torch.nn.ModuleDict({layer.name: layer for layer in layers})
        self.built = True

    def _topological_nodes(self) -> list[Node]:
        order: list[Node] = []
        visiting: set[int] = set()
        done: set[int] = set()
        input_ids = {id(t) for t in flatten(self._inputs_struct)}

        def visit(t: KerasTensor) -> None:
            node = t.node
            if id(node) in done:
                return
            if id(node) in visiting:
                raise ValueError("The layer graph has a cycle")
            visiting.add(id(node))
            if isinstance(node.layer, InputLayer):
                if id(t) not in input_ids:
                    raise ValueError(
                        f"Graph disconnected: cannot obtain value for tensor {t!r}: the Input {node.layer.name!r} "
                        "is not among the model's `inputs`."
                    )
            else:
                for parent in node.parents:
                    if isinstance(parent, KerasTensor):
                        visit(parent)
            visiting.discard(id(node))
            done.add(id(node))
            order.append(node)

        for t in flatten(self._outputs_struct):
            visit(t)
        return order

    def _fusable_pairs(self) -> dict[int, Node]:
        """Nodes whose one output tensor only a dropout node reads, and is not a model output: {id(node): that
        dropout's node}. In training each such pair runs fused when its layers agree (``layers/fusion.py``)."""
        readers: dict[int, list[Node]] = {}
        for node in self._nodes:
            for parent in node.parents:
                if isinstance(parent, KerasTensor):
                    readers.setdefault(id(parent), []).append(node)
        model_outputs = {id(t) for t in self.outputs}
        pairs = {}
        for node in self._nodes:
            outs = flatten(node.outputs)
            if (
                len(outs) != 1
                or node.kwargs
                or not isinstance(node.inputs, KerasTensor)
                or id(outs[0]) in model_outputs
            ):
                continue
            after = readers.get(id(outs[0]), [])
            if len(after) == 1 and not after[0].kwargs and after[0].inputs is outs[0]:
                if fusion.fuses(node.layer, after[0].layer):
                    pairs[id(node)] = after[0]
        return pairs

    @property
    def layers(self) -> list[Layer]:
        return list(self._layer_modules.values())

    @property
    def inputs(self) -> list[KerasTensor]:
        return flatten(self._inputs_struct)

    @property
    def outputs(self) -> list[KerasTensor]:
        return flatten(self._outputs_struct)

    @property
    def input_names(self) -> list[str]:
        return [t.node.layer.name for t in self.inputs]

    @property
    def output_names(self) -> list[str] | None:
        if isinstance(self._outputs_struct, dict):
            return sorted(self._outputs_struct)
        outs = self.outputs
        return [t.node.layer.name for t in outs] if len(outs) > 1 else None

    def _graph_edges(self) -> list[tuple[str, str]]:
        """(from layer, to layer) pairs, for drawing the graph."""
        edges = []
        for node in self._nodes:
            for parent in node.parents:
                if isinstance(parent, KerasTensor):
                    edges.append((parent.node.layer.name, node.layer.name))
        return edges

    def _bind_inputs(self, inputs: Any) -> dict[int, torch.Tensor]:
        spec = self._inputs_struct
        if isinstance(spec, dict):
            if not isinstance(inputs, dict):
                raise ValueError(f"The model expects a dict of inputs with keys {sorted(spec)}")
            missing = set(spec) - set(inputs)
            if missing:
                raise ValueError(f"Missing inputs {sorted(missing)}; the model expects {sorted(spec)}")
            pairs = [(spec[k], inputs[k]) for k in spec]
        else:
            specs = flatten(spec)
            if isinstance(inputs, dict):
                names = [t.node.layer.name for t in specs]
                missing = set(names) - set(inputs)
                if missing:
                    raise ValueError(f"Missing inputs {sorted(missing)}; the model expects {names}")
                values = [inputs[n] for n in names]
            else:
                values = flatten(inputs)
            if len(values) != len(specs):
                raise ValueError(f"The model expects {len(specs)} input(s) but received {len(values)}")
            pairs = list(zip(specs, values, strict=True))
        bound = {}
        for kt, value in pairs:
            if not isinstance(value, torch.Tensor):
                value = data.to_tensor(value, self.device)
            expected = kt.shape[1:]
            if value.dim() != len(kt.shape) or any(
                e is not None and e != g for e, g in zip(expected, value.shape[1:], strict=True)
            ):
                raise ValueError(
                    f"Input {kt.node.layer.name!r} is incompatible with the model: expected shape {kt.shape}, "
                    f"received {tuple(value.shape)}"
                )
            want = kt.node.layer.dtype
            if value.dtype != want and (value.dtype.is_floating_point or want.is_floating_point):
                value = value.to(want)
            bound[id(kt)] = value
        return bound

    def call(self, inputs: Any, training: bool | None = None) -> Any:
        values = self._bind_inputs(inputs)
        fusable = self._fusable if training else {}
        done: set[int] = set()  # dropout nodes already run inside the kernel of the node before them
        for node in self._nodes:
            if isinstance(node.layer, InputLayer) or id(node) in done:
                continue
            following = fusable.get(id(node))
            if following is not None and fusion.fuses(node.layer, following.layer):
                out = fusion.call_fused(node.layer, following.layer, values[id(node.inputs)])
                values[id(flatten(following.outputs)[0])] = out
                done.add(id(following))
                continue
            args = map_structure(lambda t: values[id(t)] if isinstance(t, KerasTensor) else t, node.inputs)
            out = node.layer(args, training=training, **node.kwargs)
            out_flat = flatten(out)
            for kt, value in zip(flatten(node.outputs), out_flat, strict=True):
                values[id(kt)] = value
        return map_structure(lambda t: values[id(t)], self._outputs_struct)

    def get_config(self) -> dict[str, Any]:
        node_ids = {id(node): i for i, node in enumerate(self._nodes)}

        def ref(t: Any) -> Any:
            if isinstance(t, KerasTensor):
                return {"__tensor__": [node_ids[id(t.node)], t.index]}
            return t

        layer_cfgs = []
        for layer in self.layers:
            cfg = saving.serialize_layer(layer)
            layer_cfgs.append(cfg)
        nodes = []
        for node in self._nodes:
            nodes.append(
                {
                    "layer": node.layer.name,
                    "inputs": None if node.inputs is None else map_structure(ref, node.inputs),
                    "kwargs": node.kwargs,
                }
            )
        return {
            "name": self.name,
            "trainable": self.trainable,
            "layers": layer_cfgs,
            "nodes": nodes,
            "inputs": map_structure(ref, self._inputs_struct),
            "outputs": map_structure(ref, self._outputs_struct),
        }

    @classmethod
    def from_config(cls, config: dict[str, Any], custom_objects: dict[str, Any] | None = None) -> Functional:
        layers = {}
        for cfg in config["layers"]:
            layer = saving.deserialize_layer(cfg, custom_objects=custom_objects)
            layers[layer.name] = layer
        produced: list[Any] = []

        def deref(v: Any) -> Any:
            if isinstance(v, dict) and "__tensor__" in v:
                node_i, idx = v["__tensor__"]
                return flatten(produced[node_i])[idx]
            if isinstance(v, dict):
                return {k: deref(x) for k, x in v.items()}
            if isinstance(v, list):
                return [deref(x) for x in v]
            return v

        for node_cfg in config["nodes"]:
            layer = layers.get(node_cfg["layer"])
            if layer is None:
                raise ValueError(f"The config names a layer {node_cfg['layer']!r} that it does not define")
            if isinstance(layer, InputLayer):
                produced.append(layer.output)
            else:
                produced.append(layer(deref(node_cfg["inputs"]), **node_cfg.get("kwargs", {})))
        return cls(
            deref(config["inputs"]),
            deref(config["outputs"]),
            name=config.get("name"),
            trainable=config.get("trainable", True),
        )


# ---- Sequential ---------------------------------------------------------------------------------------------------


Model.functional_class = Functional
