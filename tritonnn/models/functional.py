"""The Functional API: a model defined by symbolic inputs and outputs, ``Model(inputs, outputs)``."""

from __future__ import annotations

from typing import Any

import torch

from .. import saving
from ..layers import fusion
from ..layers.core import InputLayer
from ..layers.layer import Layer
from ..layers.op_node import OpNode, argument_config, is_op_entry, revive_argument
from ..layers.symbolic import KerasTensor, Node, flatten, map_structure
from ..trainers import data
from .model import Model


class Functional(Model):
    """A model defined by symbolic inputs and outputs: ``Model(inputs, outputs)``.

    ``inputs``/``outputs`` may be one tensor, a list, or a dict; layers may be shared and branches merged;
    ``tritonnn.ops`` and operators on symbolic tensors are op nodes of the graph (``layers/op_node.py``), which
    ``layers`` leaves out, as Keras' does. In training, a ``Dense`` whose output only a ``Dropout`` reads runs fused
    with it, as in ``Sequential``.
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
        # Keras' operations: the layers and the op nodes (keras.ops on symbolic tensors), which `layers` leaves out
        # (kept out of Layer.__setattr__'s tracking: its layers are registered once, in _layer_modules, by name)
        self.__dict__["_operations"] = self._layers_by_depth()
        layers = [layer for layer in self._operations if not isinstance(layer, OpNode)]
        names = [layer.name for layer in self._operations]
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

    def _layers_by_depth(self) -> list[Layer]:
        """The layers in Keras' order: by decreasing depth (a node's depth is the longest path from it to an
        output, and a shared layer takes the deepest of its nodes'), then in the order a walk from the outputs
        first reaches them; the input layers come first. ``model.layers[i]`` is the layer Keras has there."""
        discovered: dict[int, int] = {}  # id(layer) -> when the walk from the outputs first reached it
        post_order: list[Node] = []
        seen: set[int] = set()
        stack: list[tuple[Node, bool]] = [(t.node, False) for t in reversed(self.outputs)]
        while stack:
            node, expanded = stack.pop()
            if expanded:
                post_order.append(node)
                continue
            if id(node) in seen:
                continue
            seen.add(id(node))
            discovered.setdefault(id(node.layer), len(discovered))
            stack.append((node, True))
            stack.extend((parent.node, False) for parent in reversed(node.parents))
        node_depth: dict[int, int] = {}
        layer_depth: dict[int, int] = {}
        layers: dict[int, Layer] = {}
        for node in reversed(post_order):  # consumers before producers
            depth = max(node_depth.get(id(node), 0), layer_depth.get(id(node.layer), 0))
            node_depth[id(node)] = layer_depth[id(node.layer)] = depth
            layers[id(node.layer)] = node.layer
            for parent in node.parents:
                node_depth[id(parent.node)] = max(node_depth.get(id(parent.node), 0), depth + 1)
        return sorted(layers.values(), key=lambda layer: (-layer_depth[id(layer)], discovered[id(layer)]))

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
                or node.args
                or not isinstance(node.inputs, KerasTensor)
                or id(outs[0]) in model_outputs
            ):
                continue
            after = readers.get(id(outs[0]), [])
            if len(after) == 1 and not after[0].kwargs and not after[0].args and after[0].inputs is outs[0]:
                if fusion.fuses(node.layer, after[0].layer):
                    pairs[id(node)] = after[0]
        return pairs

    @property
    def layers(self) -> list[Layer]:
        return list(self._layer_modules.values())

    @property
    def inputs(self) -> list[KerasTensor]:
        """The symbolic inputs, flattened (a dict's in sorted-key order)."""
        return flatten(self._inputs_struct)

    @property
    def outputs(self) -> list[KerasTensor]:
        """The symbolic outputs, flattened (a dict's in sorted-key order)."""
        return flatten(self._outputs_struct)

    @property
    def input(self) -> Any:
        """The symbolic inputs as the model was given them (one tensor, a list or a dict)."""
        return self._inputs_struct

    @property
    def output(self) -> Any:
        """The symbolic outputs as the model was given them (one tensor, a list or a dict)."""
        return self._outputs_struct

    @property
    def input_shape(self) -> Any:
        """The inputs' shapes (batch dimension None): one shape for one input, else a list."""
        shapes = [t.shape for t in self.inputs]
        return shapes[0] if len(shapes) == 1 else shapes

    @property
    def output_shape(self) -> Any:
        """The outputs' shapes (batch dimension None): one shape for one output, else a list."""
        shapes = [t.shape for t in self.outputs]
        return shapes[0] if len(shapes) == 1 else shapes

    @property
    def input_names(self) -> list[str]:
        return [t.node.layer.name for t in self.inputs]

    @property
    def output_names(self) -> list[str] | None:
        """The names of the layers that make the outputs, one per output, as Keras gives them (``['dense']`` for
        one output, the layers' names for outputs given as a dict too)."""
        return [t.node.layer.name for t in self.outputs]

    @property
    def output_dict_keys(self) -> list[str] | None:
        """For outputs given as a dict, its keys in sorted order (the outputs' order), which key the targets,
        losses, metrics and History entries as in Keras; None otherwise."""
        return sorted(self._outputs_struct) if isinstance(self._outputs_struct, dict) else None

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

    def _fused_mlp_layers(self) -> list[Layer] | None:
        """The layers of a chain (one input tensor, one output tensor, each node reading the one before it and
        nothing else, each layer once), in order, for the fused MLP (``layers/fusion.py``); else None."""
        if type(self).call is not Functional.call:
            return None
        if not isinstance(self._inputs_struct, KerasTensor) or not isinstance(self._outputs_struct, KerasTensor):
            return None
        prev: Any = self._inputs_struct
        layers: list[Layer] = []
        for node in self._nodes:
            if isinstance(node.layer, InputLayer):
                continue
            outs = flatten(node.outputs)
            if node.args or node.kwargs or node.inputs is not prev or len(outs) != 1:
                return None
            layers.append(node.layer)
            prev = outs[0]
        if prev is not self._outputs_struct or len({id(layer) for layer in layers}) != len(layers):
            return None
        if any(isinstance(layer, OpNode) for layer in layers):
            return None
        return layers

    def call(self, inputs: Any, training: bool | None = None) -> Any:
        # A chain of Dense layers (+ dropouts) within the fused MLP's bounds runs as one kernel per pass, as in a
        # Sequential (layers/fusion.py; TRITONNN_FUSED_MLP=0 turns it off).
        if isinstance(inputs, torch.Tensor):
            chain = self._fused_mlp_layers()
            fused = fusion.call_fused_mlp(chain, inputs, training) if chain else None
            if fused is not None:
                return fused
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
            value_of = lambda t: values[id(t)] if isinstance(t, KerasTensor) else t  # noqa: E731
            inputs = map_structure(value_of, node.inputs)
            if node.args or node.kwargs:
                args = map_structure(value_of, node.args)
                kwargs = {"training": training, **map_structure(value_of, node.kwargs)}  # the node's own wins
                out = node.layer(inputs, *args, **kwargs)
            else:
                out = node.layer(inputs, training=training)
            for kt, value in zip(node.output_tensors, _tensors(out), strict=True):
                values[id(kt)] = value
        out = map_structure(lambda t: values[id(t)], self._outputs_struct)
        # Keras' unpack_singleton: outputs given as a list (or tuple) of one tensor are returned as that tensor
        return out[0] if isinstance(out, (list, tuple)) and len(out) == 1 else out

    # ---- config: Keras' layout ----
    def _own_node_indices(self) -> dict[int, int]:
        """{id(node): its index among this model's nodes of its layer, in the order they were made}: the node
        index of Keras' ``keras_history`` (a layer's calls in other models are not counted)."""
        by_layer: dict[int, list[Node]] = {}
        for node in self._nodes:
            by_layer.setdefault(id(node.layer), []).append(node)
        return {
            id(node): i for nodes in by_layer.values() for i, node in enumerate(sorted(nodes, key=lambda n: n.serial))
        }

    def get_config(self) -> dict[str, Any]:
        """Keras' Functional config: ``name``, ``trainable``, ``layers`` (each layer's serialized form with its
        ``name`` and ``inbound_nodes``: the calls in this model, as ``{"args": [...], "kwargs": {...}}`` with each
        symbolic tensor written as a ``__keras_tensor__`` whose ``keras_history`` is ``[layer name, node index,
        tensor index]``), ``input_layers`` and ``output_layers`` (the inputs' and outputs' structures, each tensor
        as ``[layer name, node index, tensor index]``). An op node is an entry as Keras writes its operations
        (``module`` ``keras.src.ops.numpy``, ``class_name`` ``Mean``...), its constants as ``__tensor__``,
        ``__numpy__``, ``__slice__``..."""
        node_index = self._own_node_indices()

        def tensor_config(t: Any, op: OpNode | None = None) -> Any:
            if not isinstance(t, KerasTensor):
                # an op node's constant (a tensor, an array, a slice...), as Keras writes it
                return t if op is None else argument_config(t, op)
            return {
                "class_name": KERAS_TENSOR,
                "config": {
                    "shape": list(t.shape),
                    "dtype": t.dtype,
                    "keras_history": [t.node.layer.name, node_index[id(t.node)], t.index],
                },
            }

        def endpoint(t: KerasTensor) -> list[Any]:
            # Keras counts a nested Functional model's own (construction) node first: its calls start at 1 here.
            offset = 1 if isinstance(t.node.layer, Functional) else 0
            return [t.node.layer.name, node_index[id(t.node)] + offset, t.index]

        layer_configs = []
        for layer in self._operations:
            op = layer if isinstance(layer, OpNode) else None
            entry = layer.serialize() if op is not None else saving.serialize_layer(layer)
            entry["name"] = layer.name
            entry["inbound_nodes"] = [
                {
                    "args": [map_structure(lambda t, op=op: tensor_config(t, op), a) for a in node.call_args],
                    "kwargs": map_structure(lambda t, op=op: tensor_config(t, op), node.kwargs),
                }
                for node in sorted((n for n in self._nodes if n.layer is layer), key=lambda n: n.serial)
                if not isinstance(layer, InputLayer)
            ]
            layer_configs.append(entry)
        return {
            "name": self.name,
            "trainable": self.trainable,
            "layers": layer_configs,
            "input_layers": map_structure(endpoint, self._inputs_struct),
            "output_layers": map_structure(endpoint, self._outputs_struct),
        }

    @staticmethod
    def is_functional_config(config: Any) -> bool:
        """Whether ``config`` is a Functional model's config: Keras' layout, or tritonnn's earlier one."""
        if not isinstance(config, dict) or "layers" not in config:
            return False
        return {"input_layers", "output_layers"} <= set(config) or {"nodes", "inputs", "outputs"} <= set(config)

    @classmethod
    def from_config(cls, config: dict[str, Any], custom_objects: dict[str, Any] | None = None) -> Functional:
        """Rebuild the model from :meth:`get_config`'s output (Keras' layout: the layers are made, then each
        node's call is replayed once the tensors it reads exist), or from the layout tritonnn wrote before it
        followed Keras' (``nodes``, ``inputs``, ``outputs``: files of format_version 1 until then)."""
        if not isinstance(config, dict):
            raise ValueError(f"Expected a Functional model's config to be a dict. Received: config={config!r}")
        if {"nodes", "inputs", "outputs"} <= set(config) and "input_layers" not in config:
            return cls._from_legacy_config(config, custom_objects)
        missing = [k for k in ("layers", "input_layers", "output_layers") if k not in config]
        if missing:
            raise ValueError(
                f"A Functional model's config needs the keys 'layers', 'input_layers' and 'output_layers'; it has no "
                f"{missing}. Received keys: {sorted(config)}"
            )
        unknown = sorted(set(config) - {"name", "trainable", "layers", "input_layers", "output_layers"})
        if unknown:
            raise ValueError(f"Unrecognized keys in a Functional model's config: {unknown}")
        if not isinstance(config["layers"], list):
            raise ValueError(f"Expected config['layers'] to be a list. Received: {config['layers']!r}")
        created: dict[str, Layer] = {}
        made: dict[str, list[list[Any]]] = {}  # layer name -> the flat outputs of each of its calls so far
        pending: dict[str, list[Any]] = {}
        for entry in config["layers"]:
            if not isinstance(entry, dict):
                raise ValueError(f"Expected each entry of config['layers'] to be a dict. Received: {entry!r}")
            if is_op_entry(entry):  # a keras.ops call (keras.src.ops.numpy.Mean...)
                layer = OpNode.from_entry(entry)
            else:
                layer = saving.deserialize_layer(entry, custom_objects=custom_objects)
            name = entry.get("name", layer.name)
            if not isinstance(name, str) or name in created:
                raise ValueError(f"The layer name {name!r} appears more than once (or is not a string) in the config")
            created[name] = layer
            made[name] = [layer._inbound_nodes[0].output_tensors] if isinstance(layer, InputLayer) else []
            nodes = entry.get("inbound_nodes", [])
            if not isinstance(nodes, list):
                raise ValueError(f"Expected the 'inbound_nodes' of layer {name!r} to be a list. Received: {nodes!r}")
            pending[name] = [] if isinstance(layer, InputLayer) else list(nodes)

        def tensor(history: Any) -> KerasTensor:
            if not (isinstance(history, (list, tuple)) and len(history) == 3 and isinstance(history[0], str)):
                raise ValueError(f"Expected a tensor reference [layer name, node index, tensor index]. Got {history!r}")
            name, node_i, tensor_i = history
            if name not in created:
                raise ValueError(f"The config refers to a layer {name!r} that it does not define")
            if not isinstance(node_i, int) or not isinstance(tensor_i, int) or node_i < 0 or tensor_i < 0:
                raise ValueError(f"Invalid tensor reference {history!r}: the indices must be non-negative integers")
            if node_i >= len(made[name]):
                raise _NotMadeYet(name)
            outputs = made[name][node_i]
            if tensor_i >= len(outputs):
                raise ValueError(
                    f"Invalid tensor reference {history!r}: that call of layer {name!r} has {len(outputs)} outputs"
                )
            return outputs[tensor_i]

        def revive(value: Any) -> Any:
            if isinstance(value, dict):
                if value.get("class_name") == KERAS_TENSOR:
                    inner = value.get("config")
                    return tensor(inner.get("keras_history") if isinstance(inner, dict) else None)
                constant = revive_argument(value)  # __tensor__, __slice__, __ellipsis__
                if constant is not value:
                    return constant
                return {k: revive(v) for k, v in value.items()}
            if isinstance(value, list):
                return [revive(v) for v in value]
            return value

        def call_of(node_data: Any) -> tuple[list[Any], dict[str, Any]]:
            if isinstance(node_data, list):  # tf.keras' layout: [[name, node, tensor, kwargs?], ...]
                if not all(isinstance(ref, list) and len(ref) in (3, 4) for ref in node_data):
                    raise ValueError(f"Cannot deserialize the node {node_data!r} (invalid config data?)")
                kwargs = node_data[0][3] if node_data and len(node_data[0]) == 4 else {}
                tensors = [tensor(ref[:3]) for ref in node_data]
                return [tensors[0] if len(tensors) == 1 else tensors], dict(kwargs)
            if not isinstance(node_data, dict) or not isinstance(node_data.get("args", []), list):
                raise ValueError(f"Expected a node as {{'args': [...], 'kwargs': {{...}}}}. Received: {node_data!r}")
            kwargs = node_data.get("kwargs", {})
            if not isinstance(kwargs, dict):
                raise ValueError(f"Expected a node's 'kwargs' to be a dict. Received: {kwargs!r}")
            return revive(node_data.get("args", [])), revive(kwargs)

        # Replay the calls: a layer's calls in order, each once the tensors it reads exist (a layer shared at
        # several depths, A(B(A(x))), waits for the other layer's call in between).
        while any(pending.values()):
            progressed = False
            for name, queue in pending.items():
                while queue:
                    try:
                        args, kwargs = call_of(queue[0])
                    except _NotMadeYet:
                        break
                    if not args:
                        raise ValueError(f"A call of layer {name!r} in the config has no positional argument")
                    out = created[name](*args, **kwargs)
                    made[name].append([t for t in flatten(out) if isinstance(t, KerasTensor)])
                    queue.pop(0)
                    progressed = True
            if not progressed:
                waiting = {name: len(queue) for name, queue in pending.items() if queue}
                raise ValueError(
                    "Invalid Functional model configuration. The graph of the Functional model either has loops or "
                    f"disconnected nodes. The calls of these layers could not be resolved: {waiting}"
                )

        def endpoints(value: Any) -> Any:
            if isinstance(value, list) and len(value) == 3 and isinstance(value[0], str):
                name, node_i, tensor_i = value
                if isinstance(created.get(name), Functional) and isinstance(node_i, int):
                    node_i -= 1  # Keras counts a nested model's construction node first
                return tensor([name, node_i, tensor_i])
            if isinstance(value, dict):
                return {k: endpoints(v) for k, v in value.items()}
            if isinstance(value, (list, tuple)):
                return [endpoints(v) for v in value]
            raise ValueError(f"Expected a tensor reference [layer name, node index, tensor index]. Got {value!r}")

        try:
            inputs, outputs = endpoints(config["input_layers"]), endpoints(config["output_layers"])
        except _NotMadeYet as e:
            raise ValueError(
                f"The config's inputs or outputs refer to a call of layer {e} that it does not make"
            ) from e
        return cls(inputs, outputs, name=config.get("name"), trainable=config.get("trainable", True))

    @classmethod
    def _from_legacy_config(cls, config: dict[str, Any], custom_objects: dict[str, Any] | None) -> Functional:
        """The layout tritonnn wrote until its configs followed Keras': ``layers`` (serialized layers), ``nodes``
        (``{"layer", "inputs", "kwargs"}`` in execution order, tensors as ``{"__tensor__": [node, index]}``),
        ``inputs`` and ``outputs``."""
        layers = {}
        for cfg in config["layers"]:
            layer = saving.deserialize_layer(cfg, custom_objects=custom_objects)
            layers[layer.name] = layer
        produced: list[Any] = []

        def deref(v: Any) -> Any:
            if isinstance(v, dict) and "__tensor__" in v:
                ref = v["__tensor__"]
                if not (isinstance(ref, list) and len(ref) == 2 and all(isinstance(i, int) for i in ref)):
                    raise ValueError(f"Invalid tensor reference in the config: {v!r}")
                node_i, idx = ref
                if not 0 <= node_i < len(produced):
                    raise ValueError(f"The config refers to node {node_i} before it is made: {v!r}")
                tensors = flatten(produced[node_i])
                if not 0 <= idx < len(tensors):
                    raise ValueError(f"The config refers to output {idx} of a node with {len(tensors)}: {v!r}")
                return tensors[idx]
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


KERAS_TENSOR = "__keras_tensor__"  # the class_name of a symbolic tensor in a node's arguments (Keras')


class _NotMadeYet(Exception):
    """A node's argument is the output of a call not replayed yet (from_config tries it again later)."""


def _tensors(out: Any) -> list[torch.Tensor]:
    return [t for t in flatten(out) if isinstance(t, torch.Tensor)]


# ---- Sequential ---------------------------------------------------------------------------------------------------


Model.functional_class = Functional
