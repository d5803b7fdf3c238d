"""``clone_model``: the same architecture with new layers (and so new weights), as ``keras.models.clone_model``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .. import saving
from ..layers.core import Input, InputLayer
from ..layers.layer import Layer
from ..layers.op_node import OpNode
from ..layers.symbolic import KerasTensor, flatten, map_structure
from .functional import Functional
from .model import Model
from .sequential import Sequential


def clone_model(
    model: Model,
    input_tensors: Any = None,
    clone_function: Callable[[Layer], Layer] | None = None,
    call_function: Callable[..., Any] | None = None,
    recursive: bool = False,
    **kwargs: Any,
) -> Model:
    """Clone a Sequential or Functional model: every layer is made again (new weights, not copied), the graph
    is the same. A compiled model's clone is compiled the same way.

    Args:
        model: a ``Sequential`` or ``Functional`` model (a subclassed model is rebuilt from its ``get_config``).
        input_tensors: optional inputs for the clone, ``Input`` tensors with the structure of ``model.input`` (for a
            Sequential model, one tensor or a list of one); new ``Input``s like the original's otherwise.
        clone_function: ``fn(layer) -> layer`` making each layer of the clone (input layers aside); the default is
            ``layer.__class__.from_config(layer.get_config())``. Return the layer itself to share it.
        call_function: ``fn(layer, *args, **kwargs)`` calling each cloned layer on its inputs (default: the call
            itself), e.g. to insert a layer after some; Functional models only.
        recursive: clone nested Sequential/Functional models with ``clone_model`` (same arguments) instead of
            ``clone_function``.

    A layer called several times (shared) is cloned once and the clone is shared the same way.
    """
    kwargs.pop("cache", None)
    if kwargs:
        raise ValueError(f"Unexpected keyword argument(s): {tuple(kwargs)}")
    if not isinstance(model, Model):
        raise ValueError(f"Expected `model` to be a tritonnn Model. Received: model={model!r}")
    if clone_function is not None and not callable(clone_function):
        raise ValueError(f"Expected `clone_function` to be a callable. Received: clone_function={clone_function!r}")
    if call_function is not None and not callable(call_function):
        raise ValueError(f"Expected `call_function` to be a callable. Received: call_function={call_function!r}")
    cache: dict[int, Layer] = {}

    def clone_layer(layer: Layer) -> Layer:
        if isinstance(layer, OpNode):  # an op (keras.ops on symbolic tensors) has no state: reused, as in Keras
            return layer
        if id(layer) in cache:
            return cache[id(layer)]
        if recursive and isinstance(layer, (Sequential, Functional)):
            clone = clone_model(
                layer,
                clone_function=clone_function,
                call_function=None if isinstance(layer, Sequential) else call_function,
                recursive=True,
            )
        elif clone_function is not None:
            clone = clone_function(layer)
        else:
            clone = layer.__class__.from_config(layer.get_config())
        if not isinstance(clone, Layer):
            raise ValueError(f"`clone_function` must return a Layer. For {layer.name!r} it returned {clone!r}")
        cache[id(layer)] = clone
        return clone

    if isinstance(model, Sequential):
        if call_function is not None:
            raise ValueError(
                "`call_function` argument is not supported with Sequential models. In a Sequential model, layers "
                "aren't called at model-construction time (they're merely listed). Use `call_function` with "
                f"Functional models only. Received model of type '{type(model).__name__}'."
            )
        clone = _clone_sequential(model, clone_layer, input_tensors)
    elif isinstance(model, Functional):
        clone = _clone_functional(model, clone_layer, input_tensors, call_function)
    else:
        if clone_function is not None or input_tensors is not None:
            raise ValueError(
                "Arguments `clone_function` and `input_tensors` are only supported for Sequential models or "
                f"Functional models. Received model of type '{type(model).__name__}'."
            )
        if call_function is not None:
            raise ValueError(
                "Argument `call_function` is only supported for Functional models. Received model of type "
                f"'{type(model).__name__}'."
            )
        return saving.deserialize_layer(
            saving.serialize_layer(model), custom_objects={type(model).__name__: type(model)}
        )
    compile_config = model.get_compile_config()
    if compile_config is not None:
        clone.compile_from_config(compile_config)
    return clone


def _clone_sequential(model: Sequential, clone_layer: Callable[[Layer], Layer], input_tensors: Any) -> Sequential:
    layers: list[Any] = [clone_layer(layer) for layer in model.layers]
    original = model._input_layer
    if input_tensors is not None:
        if isinstance(input_tensors, (list, tuple)):
            if len(input_tensors) != 1:
                raise ValueError("Argument `input_tensors` must contain a single tensor.")
            input_tensors = input_tensors[0]
        if not isinstance(input_tensors, KerasTensor) or not isinstance(input_tensors.node.layer, InputLayer):
            raise ValueError(
                "Argument `input_tensors` of a Sequential model must be a tensor from `Input`. "
                f"Received invalid value: input_tensors={input_tensors!r}"
            )
        layers.insert(0, input_tensors.node.layer)
    elif original is not None:
        layers.insert(0, InputLayer(batch_shape=original.batch_shape, dtype=original.dtype, name=original.name))
    return Sequential(layers, name=model.name, trainable=model.trainable)


def _clone_functional(
    model: Functional,
    clone_layer: Callable[[Layer], Layer],
    input_tensors: Any,
    call_function: Callable[..., Any] | None,
) -> Functional:
    originals = model.inputs
    if input_tensors is None:
        new_inputs = map_structure(
            lambda t: Input(batch_shape=t.node.layer.batch_shape, dtype=t.node.layer.dtype, name=t.node.layer.name),
            model.input,
        )
    else:
        if not all(isinstance(t, KerasTensor) for t in flatten(input_tensors)):
            raise ValueError(
                f"All entries in `input_tensors` must be KerasTensors. Received invalid values: {input_tensors!r}"
            )
        if _structure(input_tensors) != _structure(model.input):
            raise ValueError(
                "`input_tensors` must have the same structure as model.input\n"
                f"Reference structure: {model.input}\nReceived structure: {input_tensors}"
            )
        new_inputs = input_tensors
    values: dict[int, Any] = {id(old): new for old, new in zip(originals, flatten(new_inputs), strict=True)}
    value_of = lambda t: values[id(t)] if isinstance(t, KerasTensor) else t  # noqa: E731
    call = call_function or (lambda layer, *args, **kw: layer(*args, **kw))
    for node in model._nodes:
        if isinstance(node.layer, InputLayer):
            continue
        args = [map_structure(value_of, a) for a in node.call_args]
        out = call(clone_layer(node.layer), *args, **map_structure(value_of, node.kwargs))
        produced = [t for t in flatten(out) if isinstance(t, KerasTensor)]
        if len(produced) != len(node.output_tensors):
            raise ValueError(
                f"The clone of layer {node.layer.name!r} returned {len(produced)} symbolic outputs where the original "
                f"returns {len(node.output_tensors)}"
            )
        values.update({id(old): new for old, new in zip(node.output_tensors, produced, strict=True)})
    outputs = map_structure(value_of, model.output)
    return Functional(new_inputs, outputs, name=model.name, trainable=model.trainable)


def _structure(value: Any) -> Any:
    if isinstance(value, dict):
        return ("dict", tuple(sorted((k, _structure(v)) for k, v in value.items())))
    if isinstance(value, (list, tuple)):
        return ("list", tuple(_structure(v) for v in value))
    return "leaf"
