"""Pictures: ``plot_history`` (training curves) and ``plot_model`` (the layer graph), drawn with matplotlib, and
``model_to_dot`` (the layer graph as Keras' ``pydot.Dot``).

Matplotlib is optional (``pip install tritonnn[plot]``) and imported only when a picture is drawn. Figures are
rendered by the Agg canvas directly, never through ``pyplot``, so the caller's matplotlib backend and open figures
are left alone. pydot (in the same extra) is imported only by ``model_to_dot``; graphviz is not needed to make the
graph, only to render it (``dot.write_png``).
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Mapping, Sequence
from typing import Any

# connectionstyles in "TB" layout (rotated for "LR"); {arm} is half the gap between ranks, in points
_SPLINES = {
    "ortho": "arc,angleA={a},angleB={b},armA={arm},armB={arm},rad=0",
    "polyline": "arc,angleA={a},angleB={b},armA={arm},armB={arm},rad=0",
    "curved": "arc3,rad=0.25",
    "spline": "arc3,rad=0.25",
    "line": "arc3,rad=0",
}


def _matplotlib(what: str) -> tuple[Any, Any]:
    """``(Figure, FigureCanvasAgg)``, or an ImportError that says how to install matplotlib."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError as e:
        raise ImportError(f"{what} requires matplotlib: pip install tritonnn[plot]") from e
    return Figure, FigureCanvasAgg


def _check_path(name: str, path: Any) -> str:
    if not isinstance(path, (str, os.PathLike)) or not os.fspath(path):
        raise ValueError(f"Expected `{name}` to be a non-empty str or os.PathLike. Received: {name}={path!r}")
    path = os.fspath(path)
    directory = os.path.dirname(path)
    if directory:
        os.makedirs(directory, exist_ok=True)
    return path


def _save(fig: Any, canvas_cls: Any, path: str, dpi: int) -> None:
    canvas_cls(fig)
    ext = os.path.splitext(path)[1][1:].lower() or "png"
    fig.savefig(path, dpi=dpi, format=ext)


# ---- training curves ----------------------------------------------------------------------------------------------


def plot_history(
    history: Any,
    path: str | os.PathLike = "history.png",
    metrics: Sequence[str] | None = None,
    dpi: int = 100,
) -> str:
    """Draw training curves: one panel per metric, training and validation values against the epoch.

    Args:
        history: the ``History`` returned by ``fit`` (or its ``.history`` dict of lists).
        path: the image file to write (the extension picks the format; ``.png`` by default).
        metrics: the metrics to draw (default: every logged key without the ``val_`` prefix, ``loss`` first).
        dpi: resolution of the image.

    Returns:
        The path written.
    """
    Figure, FigureCanvasAgg = _matplotlib("plot_history")
    from matplotlib.ticker import MaxNLocator

    logs = getattr(history, "history", history)
    if not isinstance(logs, Mapping) or not logs:
        raise ValueError(
            "Expected `history` to be a History from fit() or a non-empty dict of lists of per-epoch values. "
            f"Received: history={history!r}"
        )
    if isinstance(dpi, bool) or not isinstance(dpi, int) or dpi <= 0:
        raise ValueError(f"Expected `dpi` to be a positive integer. Received: dpi={dpi!r}")
    names = sorted({k.removeprefix("val_") for k in logs}, key=lambda k: (k != "loss", k))
    if metrics is not None:
        unknown = [m for m in metrics if m not in names]
        if isinstance(metrics, str) or unknown or not metrics:
            raise ValueError(
                f"Expected `metrics` to be a non-empty list of logged names {names}. Received: {metrics!r}"
            )
        names = list(metrics)
    path = _check_path("path", path)
    epochs_logged = list(getattr(history, "epoch", []) or [])
    fig = Figure(figsize=(4.5 * len(names), 3.5), layout="constrained")
    for i, name in enumerate(names):
        ax = fig.add_subplot(1, len(names), i + 1)
        for key, label, style in ((name, "train", "-o"), ("val_" + name, "validation", "--s")):
            values = logs.get(key)
            if not values:
                continue
            values = [float(v) for v in values]
            n = len(values)
            xs = [e + 1 for e in epochs_logged] if len(epochs_logged) == n else list(range(1, n + 1))
            ax.plot(xs, values, style, markersize=3, label=label)
        ax.set_title(name)
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
        ax.legend()
    _save(fig, FigureCanvasAgg, path, dpi)
    return path


# ---- the layer graph ----------------------------------------------------------------------------------------------


def _shape_text(shape: Any) -> str:
    if shape is None:
        return "?"
    if isinstance(shape, list):
        return ", ".join(_shape_text(s) for s in shape)
    return str(tuple(shape)).replace(",)", ")")


def _inbound_edges(model: Any) -> list[tuple[Any, Any, int, Any]]:
    """The data flow into a Functional model's layers, in Keras' order (``model_to_dot``'s): for each layer of
    ``model.layers``, for each of its calls that belongs to the model, for each symbolic tensor the call reads,
    ``(the layer that made the tensor, the layer, the tensor's index among the call's inputs, the tensor)``."""
    nodes = {id(node) for node in getattr(model, "_nodes", [])}
    edges = []
    for layer in model.layers:
        for node in layer._inbound_nodes:
            if id(node) not in nodes:
                continue
            for index, tensor in enumerate(node.input_tensors):
                source = getattr(tensor.node, "layer", None)
                if source is not None:
                    edges.append((source, layer, index, tensor))
    return edges


def _graph(model: Any) -> tuple[list[Any], list[tuple[str, str]]]:
    """The layers to draw and the (from, to) edges between their names, each once."""
    layers = list(model.layers)
    if _is_model(model, "Functional"):
        edges = list(dict.fromkeys((a.name, b.name) for a, b, _, _ in _inbound_edges(model)))
    else:  # Sequential, or a model without a graph: the layers in order
        edges = [(a.name, b.name) for a, b in zip(layers, layers[1:], strict=False)]
    return layers, edges


def _is_model(obj: Any, kind: str) -> bool:
    """Whether ``obj`` is a ``tritonnn.models.Functional`` or ``Sequential`` (``kind``), or of a subclass, told from
    its class's MRO: plotting cannot import tritonnn.models (which imports utils, which imports plotting)."""
    module = f"tritonnn.models.{kind.lower()}"
    return any(c.__module__ == module and c.__qualname__ == kind for c in type(obj).__mro__)


def _output_shapes(model: Any, layers: list[Any]) -> dict[str, Any]:
    shapes: dict[str, Any] = {}
    for node in getattr(model, "_nodes", []) or []:  # a Functional model's symbolic outputs
        outs = getattr(node, "outputs", None)
        if outs is not None:
            flat = outs if isinstance(outs, (list, tuple)) else [outs]
            shaped = [tuple(t.shape) for t in flat if hasattr(t, "shape")]
            shapes[node.layer.name] = shaped[0] if len(shaped) == 1 else shaped
    for layer in layers:
        if layer.name in shapes:
            continue
        if getattr(layer, "_output_shape", None) is not None:
            shapes[layer.name] = tuple(layer._output_shape)
        elif type(layer).__name__ == "InputLayer":
            shapes[layer.name] = (None, *layer.shape)
    return shapes


def _ranks(names: list[str], edges: list[tuple[str, str]]) -> dict[str, int]:
    """Longest-path depth of each node from the sources (the graph is acyclic)."""
    rank = {n: 0 for n in names}
    for _ in range(len(names)):
        changed = False
        for a, b in edges:
            if a in rank and b in rank and rank[b] < rank[a] + 1:
                rank[b] = rank[a] + 1
                changed = True
        if not changed:
            break
    return rank


def plot_model(
    model: Any,
    to_file: str | os.PathLike = "model.png",
    show_shapes: bool = False,
    show_dtype: bool = False,
    show_layer_names: bool = False,
    rankdir: str = "TB",
    expand_nested: bool = False,
    dpi: int = 200,
    show_layer_activations: bool = False,
    show_trainable: bool = False,
    splines: str = "ortho",
    **kwargs: Any,
) -> Any:
    """Draw a model's layer graph to an image file (Keras' ``plot_model``, drawn with matplotlib, not graphviz).

    One box per layer (its class, and optionally its name, input/output shapes, dtype, activation and whether it
    is trainable), with arrows along the data flow: a chain for a ``Sequential`` model, the graph of a Functional
    model.

    Args:
        model: a built model.
        to_file: the image file; its extension picks the format (``.png`` when there is none).
        show_shapes, show_dtype, show_layer_names, show_layer_activations, show_trainable: what each box shows.
        rankdir: ``"TB"`` (top to bottom) or ``"LR"`` (left to right).
        expand_nested: drawing nested models as clusters is not supported; must be ``False``.
        dpi: resolution of the image.
        splines: how arrows are drawn: ``"ortho"``/``"polyline"`` (right angles), ``"curved"``/``"spline"``,
            ``"line"``.

    Returns:
        An ``IPython.display.Image`` of the file when IPython is installed (and the file is not a PDF), as in
        Keras; otherwise ``None``.
    """
    Figure, FigureCanvasAgg = _matplotlib("plot_model")
    from matplotlib.patches import FancyBboxPatch

    if kwargs.pop("layer_range", None) is not None:
        raise ValueError("Argument `layer_range` is no longer supported.")
    if kwargs:
        raise ValueError(f"Unrecognized keyword arguments: {kwargs}")
    if not hasattr(model, "layers") or not hasattr(model, "built"):
        raise ValueError(f"Expected `model` to be a tritonnn Model. Received: model={model!r}")
    if not model.built:
        raise ValueError(
            "This model has not yet been built. Build the model first by calling `build()` or by calling the model "
            "on a batch of data."
        )
    if rankdir not in ("TB", "LR"):
        raise ValueError(f"Expected `rankdir` to be 'TB' or 'LR'. Received: rankdir={rankdir!r}")
    if splines not in _SPLINES:
        raise ValueError(f"Expected `splines` to be one of {sorted(_SPLINES)}. Received: splines={splines!r}")
    if expand_nested:
        raise NotImplementedError("plot_model(expand_nested=True) is not supported: nested models are drawn as one box")
    if isinstance(dpi, bool) or not isinstance(dpi, int) or dpi <= 0:
        raise ValueError(f"Expected `dpi` to be a positive integer. Received: dpi={dpi!r}")
    path = _check_path("to_file", to_file)

    layers, edges = _graph(model)
    if not layers:
        raise ValueError(f"The model {model.name!r} has no layers to draw")
    names = [layer.name for layer in layers]
    out_shapes = _output_shapes(model, layers)
    in_shapes: dict[str, Any] = {}
    for a, b in edges:
        in_shapes.setdefault(b, []).append(out_shapes.get(a))
    first_input = getattr(model, "_input_layer", None)
    if first_input is not None and names[0] not in in_shapes:
        in_shapes[names[0]] = [(None, *first_input.shape)]

    labels = {}
    for layer in layers:
        head = f"{layer.name} ({type(layer).__name__})" if show_layer_names else type(layer).__name__
        lines = [head]
        if show_shapes:
            ins = in_shapes.get(layer.name)
            if ins is not None and type(layer).__name__ != "InputLayer":
                lines.append(f"Input shape: {_shape_text(ins[0] if len(ins) == 1 else ins)}")
            lines.append(f"Output shape: {_shape_text(out_shapes.get(layer.name))}")
        if show_dtype:
            lines.append(f"dtype: {str(getattr(layer, '_dtype', '?')).replace('torch.', '')}")
        activation = getattr(layer, "activation", None)
        if show_layer_activations and isinstance(activation, str):
            lines.append(f"Activation: {activation}")
        if show_trainable:
            lines.append(f"Trainable: {bool(layer.trainable)}")
        labels[layer.name] = "\n".join(lines)

    rank = _ranks(names, edges)
    by_rank: dict[int, list[str]] = {}
    for n in names:
        by_rank.setdefault(rank[n], []).append(n)
    depth, breadth = max(by_rank) + 1, max(len(v) for v in by_rank.values())
    box_w = max(2.4, 0.095 * max(len(line) for text in labels.values() for line in text.split("\n")))
    box_h = 0.32 + 0.24 * max(text.count("\n") + 1 for text in labels.values())
    step_r, step_c = box_h + 0.6, box_w + 0.5  # distance between ranks, between boxes in a rank
    pos = {}
    for r, members in by_rank.items():
        for c, n in enumerate(members):
            offset = (c - (len(members) - 1) / 2) * step_c
            pos[n] = (offset, -r * step_r) if rankdir == "TB" else (r * step_c, -offset * step_r / step_c)
    if rankdir == "TB":
        size = (max(3.0, breadth * step_c + 0.5), max(1.5, depth * step_r + 0.3))
    else:
        size = (max(3.0, depth * step_c + 0.5), max(1.5, breadth * step_r + 0.3))
    fig = Figure(figsize=size)
    ax = fig.add_axes((0, 0, 1, 1))
    ax.set_axis_off()
    for n, (x, y) in pos.items():
        ax.add_patch(
            FancyBboxPatch(
                (x - box_w / 2, y - box_h / 2),
                box_w,
                box_h,
                boxstyle="round,pad=0.02,rounding_size=0.08",
                facecolor="#e8eef7",
                edgecolor="#34495e",
                linewidth=1.0,
            )
        )
        ax.text(x, y, labels[n], ha="center", va="center", fontsize=8, family="monospace")
    gap = (step_r - box_h) if rankdir == "TB" else (step_c - box_w)
    angles = dict(a=-90, b=90) if rankdir == "TB" else dict(a=0, b=180)
    style = _SPLINES[splines].format(arm=gap / 2 * 72, **angles)
    for a, b in edges:
        if a not in pos or b not in pos:
            continue
        (xa, ya), (xb, yb) = pos[a], pos[b]
        if rankdir == "TB":
            start, end = (xa, ya - box_h / 2), (xb, yb + box_h / 2)
        else:
            start, end = (xa + box_w / 2, ya), (xb - box_w / 2, yb)
        straight = start[0] == end[0] or start[1] == end[1]
        ax.annotate(
            "",
            xy=end,
            xytext=start,
            arrowprops=dict(
                arrowstyle="-|>", color="#34495e", lw=1.0, connectionstyle="arc3,rad=0" if straight else style
            ),
        )
    xs = [p[0] for p in pos.values()]
    ys = [p[1] for p in pos.values()]
    ax.set_xlim(min(xs) - box_w / 2 - 0.25, max(xs) + box_w / 2 + 0.25)
    ax.set_ylim(min(ys) - box_h / 2 - 0.15, max(ys) + box_h / 2 + 0.15)
    _save(fig, FigureCanvasAgg, path, dpi)
    if not path.lower().endswith(".pdf"):
        try:
            from IPython import display
        except ImportError:
            return None
        return display.Image(filename=path)
    return None


# ---- the layer graph as a pydot.Dot ------------------------------------------------------------------------------


def _import_pydot() -> Any:
    """pydot, or one of its older forks (pydot_ng, pydotplus) as Keras accepts them; None when none is installed."""
    for name in ("pydot", "pydot_ng", "pydotplus"):
        try:
            return importlib.import_module(name)
        except ImportError:
            continue
    return None


def _activation_name(layer: Any) -> str:
    activation = layer.activation  # tritonnn keeps a string for a named activation: str() of it is the name
    if hasattr(activation, "name"):
        return str(activation.name)
    if hasattr(activation, "__name__"):
        return str(activation.__name__)
    return str(activation)


def _format_shape(shape: Any) -> str:
    if shape is None:
        return "?"
    text = ", ".join(f"{k}: {v}" for k, v in shape.items()) if isinstance(shape, dict) else f"{shape}"
    return text.replace("}", "").replace("{", "")


def _map(fn: Any, tensors: Any) -> Any:
    return [fn(t) for t in tensors] if isinstance(tensors, list) else fn(tensors)


def _dot_label(
    layer: Any,
    show_layer_names: bool,
    show_layer_activations: bool,
    show_dtype: bool,
    show_shapes: bool,
    show_trainable: bool,
) -> str:
    """Keras' HTML-like label of a layer's node: a black title row (the name and class, or the class), then the
    activation, then one row of the asked-for cells (input and output shapes, output dtype, trainable)."""
    class_name = type(layer).__name__
    colspan = max(1, int(show_dtype) + int(show_trainable) + (2 if show_shapes else 0))
    title = f"<b>{layer.name}</b> ({class_name})" if show_layer_names else f"<b>{class_name}</b>"
    label = '<<table border="0" cellborder="1" bgcolor="black" cellpadding="10">'
    label += f'<tr><td colspan="{colspan}" bgcolor="black"><font point-size="16" color="white">{title}</font></td></tr>'
    if show_layer_activations and getattr(layer, "activation", None) is not None:
        label += (
            f'<tr><td bgcolor="white" colspan="{colspan}"><font point-size="14">'
            f"Activation: <b>{_activation_name(layer)}</b></font></td></tr>"
        )
    white = '<td bgcolor="white"><font point-size="14">{}</font></td>'
    cells = []
    if show_shapes:
        try:
            input_shape, output_shape = _map(lambda t: t.shape, layer.input), _map(lambda t: t.shape, layer.output)
        except (ValueError, AttributeError):  # never called on symbolic tensors (a subclassed model)
            input_shape = output_shape = None
        if class_name != "InputLayer":
            cells.append(white.format(f"Input shape: <b>{_format_shape(input_shape)}</b>"))
        cells.append(white.format(f"Output shape: <b>{_format_shape(output_shape)}</b>"))
    if show_dtype:
        try:
            dtype = _map(lambda t: t.dtype, layer.output)
        except (ValueError, AttributeError):
            dtype = None
        cells.append(white.format(f"Output dtype: <b>{dtype or '?'}</b>"))
    if show_trainable and hasattr(layer, "trainable") and layer.weights:
        if layer.trainable:
            cells.append('<td bgcolor="forestgreen"><font point-size="14" color="white"><b>Trainable</b></font></td>')
        else:
            cells.append('<td bgcolor="firebrick"><font point-size="14" color="white"><b>Non-trainable</b></font></td>')
    if cells:
        label += f"<tr>{''.join(cells)}</tr>"
    return label + "</table>>"


def model_to_dot(
    model: Any,
    show_shapes: bool = False,
    show_dtype: bool = False,
    show_layer_names: bool = True,
    rankdir: str = "TB",
    expand_nested: bool = False,
    dpi: int = 200,
    subgraph: bool = False,
    show_layer_activations: bool = False,
    show_trainable: bool = False,
    splines: str = "ortho",
    **kwargs: Any,
) -> Any:
    """Convert a model's layer graph to dot format (Keras' ``model_to_dot``): a ``pydot.Dot`` with Keras' nodes,
    labels and edges.

    One node per layer, named ``str(id(layer))`` and labelled with Keras' HTML-like table (the layer's name and
    class, and what the ``show_*`` arguments ask for), with an edge along each data flow: between consecutive layers
    of a ``Sequential`` model (its input layer has no node, as in Keras), from each layer to the layers reading its
    output in a Functional model (its input layers included). A subclassed model is a single node. Requires pydot
    (``pip install tritonnn[plot]``); rendering the graph (``dot.write_png(...)``) requires graphviz too.

    Args:
        model: a built model.
        show_shapes: show each layer's input and output shapes.
        show_dtype: show each layer's output dtype.
        show_layer_names: show each layer's name beside its class.
        rankdir: the ``rankdir`` of the graph: ``"TB"`` (top to bottom) or ``"LR"`` (left to right).
        expand_nested: draw the layers of nested Functional and Sequential models, in dashed clusters, instead of
            one node per nested model.
        dpi: the image resolution the graph asks for.
        subgraph: return a ``pydot.Cluster`` (a nested model's, with ``expand_nested``) instead of a ``pydot.Dot``.
        show_layer_activations: show the activation of the layers that have one.
        show_trainable: show whether each layer with weights is trainable.
        splines: how graphviz draws the edges: ``"ortho"`` (right angles), ``"curved"``, ``"polyline"``,
            ``"spline"`` or ``"line"``.

    Returns:
        A ``pydot.Dot`` of the model, or a ``pydot.Cluster`` with ``subgraph=True``.

    Raises:
        ValueError: the model is not built, or an unknown keyword argument (``layer_range`` is no longer
            supported, as in Keras).
        ImportError: pydot is not installed.
    """
    if not model.built:
        raise ValueError(
            "This model has not yet been built. Build the model first by calling `build()` or by calling the model "
            "on a batch of data."
        )
    pydot = _import_pydot()
    if pydot is None:
        raise ImportError("You must install pydot (`pip install pydot`) for model_to_dot to work.")
    if subgraph:
        dot = pydot.Cluster(style="dashed", graph_name=model.name)
        dot.set("label", model.name)
        dot.set("labeljust", "l")
    else:
        dot = pydot.Dot()
        dot.set("rankdir", rankdir)
        dot.set("concentrate", True)
        dot.set("dpi", dpi)
        dot.set("splines", splines)
        dot.set_node_defaults(shape="record")
    if kwargs.pop("layer_range", None) is not None:
        raise ValueError("Argument `layer_range` is no longer supported.")
    if kwargs:
        raise ValueError(f"Unrecognized keyword arguments: {kwargs}")
    shows = dict(
        show_layer_names=show_layer_names,
        show_layer_activations=show_layer_activations,
        show_dtype=show_dtype,
        show_shapes=show_shapes,
        show_trainable=show_trainable,
    )

    def add_node(layer: Any) -> None:
        node = pydot.Node(str(id(layer)), label=_dot_label(layer, **shows))
        node.set("fontname", "Helvetica")
        node.set("border", "0")
        node.set("margin", "0")
        dot.add_node(node)

    def add_edge(source: Any, destination: Any) -> None:
        src, dst = str(id(source)), str(id(destination))
        if not dot.get_edge(src, dst):
            edge = pydot.Edge(src, dst)
            edge.set("penwidth", "2")
            dot.add_edge(edge)

    def nests(layer: Any) -> bool:
        return _is_model(layer, "Functional") or _is_model(layer, "Sequential")

    if not nests(model):  # a subclassed model: one node
        add_node(model)
        return dot
    layers = list(model.layers)
    for layer in layers:
        if expand_nested and nests(layer):
            dot.add_subgraph(
                model_to_dot(
                    layer,
                    show_shapes,
                    show_dtype,
                    show_layer_names,
                    rankdir,
                    expand_nested,
                    subgraph=True,
                    show_layer_activations=show_layer_activations,
                    show_trainable=show_trainable,
                )
            )
        else:
            add_node(layer)
    if _is_model(model, "Sequential"):
        if not expand_nested:
            for a, b in zip(layers, layers[1:], strict=False):
                add_edge(a, b)
            return dot
        # Expanded, a Sequential's first layer has no edge in: its input layer has no node, and the edge into the
        # nested model comes from the model around it.
        flows = [
            (t.node.layer, layer, i, t)
            for layer in layers[1:]
            for node in layer._inbound_nodes
            for i, t in enumerate(node.input_tensors)
            if t.node is not None
        ]
    else:
        flows = _inbound_edges(model)
    for source, destination, index, tensor in flows:
        if expand_nested:
            # Into a nested model's box: from the layer inside it that made the output, to the layer inside it
            # that reads the input (its input layer, or a Sequential's first layer), however deep.
            while nests(source):
                tensor = source.outputs[_output_index(tensor)]
                source = tensor.node.layer
            while nests(destination):
                if _is_model(destination, "Functional"):
                    destination = destination.inputs[index].node.layer
                else:
                    destination = destination.layers[0]
        add_edge(source, destination)
    return dot


def _output_index(tensor: Any) -> int:
    """The tensor's index among its node's outputs."""
    return next(i for i, t in enumerate(tensor.node.output_tensors) if t is tensor)


__all__ = ["model_to_dot", "plot_history", "plot_model"]
