"""How the differential suite compares what a user sees under real Keras (the reference) and under tritonnn.

``diff(ref, got)`` walks two nests of dicts, lists, tuples, arrays and scalars and returns every difference with its
path (``history.keys``, ``weights[2]``, ...), not only the first; ``assert_same`` fails with all of them. Numbers
and arrays are compared with ``|got - ref| <= atol + rtol * |ref|`` (fp32 after one step: rtol 1e-5, atol 1e-6),
arrays also by shape and dtype; everything else (strings, ints, bools, None, shapes) must be equal.

A difference that tritonnn makes on purpose is listed in ``docs/keras_differences.md``; a comparison drops exactly
that item by naming its path and the list's id: ``assert_same(ref, got, deliberate={"evaluate.loss": <id>})`` with
the id given through ``differences.deliberate``, which fails for an id the list does not have.
"""

from __future__ import annotations

import numbers
import re
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

RTOL, ATOL = 1e-5, 1e-6  # fp32, after one step


def to_numpy(K: Any, x: Any) -> Any:
    """A nest of ``K``'s tensors as numpy arrays, the way a user gets them (``K.ops.convert_to_numpy``)."""
    if isinstance(x, Mapping):
        return {k: to_numpy(K, v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return type(x)(to_numpy(K, v) for v in x)
    return np.asarray(K.ops.convert_to_numpy(x))


def shape_of(x: Any) -> tuple[Any, ...]:
    """A shape as a tuple of Python ints and Nones (Keras' KerasTensor shapes, torch.Size, numpy shapes alike)."""
    return tuple(None if d is None else int(d) for d in x)


class Raised:
    """What a step raised instead of returning a value: compared by exception class (messages may differ)."""

    def __init__(self, error: BaseException):
        self.type = type(error).__name__
        self.message = " ".join(str(error).split())[:300]

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Raised) and other.type == self.type

    def __repr__(self) -> str:
        return f"<raised {self.type}: {self.message}>"


def observe(fn: Callable[[], Any]) -> Any:
    """``fn()``, or a :class:`Raised` for the exception it raised: one missing feature does not hide the others."""
    try:
        return fn()
    except Exception as e:  # noqa: BLE001  (any failure is what the user sees)
        return Raised(e)


def summary_counts(model: Any) -> dict[str, str]:
    """The parameter counts in ``model.summary()``'s footer, as printed: ``{"Total": "1,234", ...}``."""
    lines: list[str] = []
    model.summary(print_fn=lambda line, *args, **kwargs: lines.append(line))
    return dict(re.findall(r"(Total|Trainable|Non-trainable|Optimizer) params: ([\d,]+)", "\n".join(lines)))


def _is_number(x: Any) -> bool:
    return isinstance(x, numbers.Number) and not isinstance(x, bool)


def diff(ref: Any, got: Any, path: str = "", rtol: float = RTOL, atol: float = ATOL) -> list[str]:
    """Every difference between ``ref`` (Keras) and ``got`` (tritonnn), one line each, prefixed by its path."""
    where = path or "<root>"
    if isinstance(ref, Raised) or isinstance(got, Raised):
        if isinstance(ref, Raised) and isinstance(got, Raised) and ref == got:
            return []
        return [f"{where}: tritonnn gave {_short(got, 400)}, Keras {_short(ref, 400)}"]
    if isinstance(ref, Mapping) and isinstance(got, Mapping):
        out = []
        missing, extra = [k for k in ref if k not in got], [k for k in got if k not in ref]
        if missing or extra:
            out.append(f"{where}: keys differ: Keras has {missing} that tritonnn lacks, tritonnn has {extra} extra")
        for k in ref:
            if k in got:
                out += diff(ref[k], got[k], f"{path}.{k}" if path else str(k), rtol, atol)
        return out
    if isinstance(ref, (list, tuple)) and isinstance(got, (list, tuple)):
        if len(ref) != len(got):
            return [f"{where}: length {len(got)} != Keras' {len(ref)} (Keras: {_short(ref)}, tritonnn: {_short(got)})"]
        out = []
        for i, (r, g) in enumerate(zip(ref, got, strict=True)):
            out += diff(r, g, f"{path}[{i}]", rtol, atol)
        return out
    if isinstance(ref, np.ndarray) or isinstance(got, np.ndarray):
        r, g = np.asarray(ref), np.asarray(got)
        if r.shape != g.shape:
            return [f"{where}: shape {g.shape} != Keras' {r.shape}"]
        if r.dtype != g.dtype:
            return [f"{where}: dtype {g.dtype} != Keras' {r.dtype}"]
        if r.dtype.kind in "fc":
            ok = np.isclose(g, r, rtol=rtol, atol=atol, equal_nan=True)
            if not ok.all():
                i = tuple(int(v) for v in np.unravel_index(np.argmax(~ok), r.shape)) if r.ndim else ()
                err = np.max(np.abs(g.astype(np.float64) - r.astype(np.float64)))
                return [
                    f"{where}: {int((~ok).sum())}/{r.size} values differ (max abs err {err:.3g}; first at {i}: "
                    f"tritonnn {g[i]!r}, Keras {r[i]!r}; rtol={rtol}, atol={atol})"
                ]
            return []
        if not np.array_equal(r, g):
            return [f"{where}: values differ: tritonnn {_short(g)}, Keras {_short(r)}"]
        return []
    if _is_number(ref) and _is_number(got):
        if isinstance(ref, numbers.Integral) != isinstance(got, numbers.Integral):
            return [f"{where}: type {type(got).__name__} != Keras' {type(ref).__name__} ({got!r} vs {ref!r})"]
        if isinstance(ref, numbers.Integral):
            return [] if int(ref) == int(got) else [f"{where}: {got!r} != Keras' {ref!r}"]
        if not np.isclose(float(got), float(ref), rtol=rtol, atol=atol, equal_nan=True):
            return [f"{where}: {float(got)!r} != Keras' {float(ref)!r} (rtol={rtol}, atol={atol})"]
        return []
    if type(ref) is not type(got) and not (isinstance(ref, str) and isinstance(got, str)):
        return [f"{where}: type {type(got).__name__} != Keras' {type(ref).__name__} ({_short(got)} vs {_short(ref)})"]
    return [] if ref == got else [f"{where}: {_short(got)} != Keras' {_short(ref)}"]


def _short(x: Any, n: int = 160) -> str:
    s = repr(x)
    return s if len(s) <= n else s[: n - 3] + "..."


def _covered(path: str, skipped: str) -> bool:
    return path == skipped or path.startswith(skipped + ".") or path.startswith(skipped + "[")


def assert_same(
    ref: Any,
    got: Any,
    *,
    rtol: float = RTOL,
    atol: float = ATOL,
    deliberate: Mapping[str, str] | None = None,
    what: str = "",
) -> None:
    """Fail listing every difference, but those under a path of ``deliberate`` (path -> the list's id)."""
    deliberate = dict(deliberate or {})
    lines = diff(ref, got, rtol=rtol, atol=atol)
    kept = [line for line in lines if not any(_covered(line.split(":", 1)[0], p) for p in deliberate)]
    if kept:
        head = f"{what}: " if what else ""
        raise AssertionError(f"{head}tritonnn differs from Keras in {len(kept)} place(s):\n  " + "\n  ".join(kept))


def assert_optimizer_config_is_keras(
    keras_ref: Any, tritonnn: Any, ref: Any, got: Any, keras_reads_ours: bool = True
) -> None:
    """An optimizer's config is Keras' (``ref`` made by Keras, ``got`` by tritonnn with the same arguments): equal
    configs; Keras' serialized form builds the same optimizer under tritonnn; tritonnn's round-trips; and (unless
    ``keras_reads_ours`` is off: Keras 3.15 cannot deserialize a Lamb by name) Keras reads tritonnn's."""
    assert_same(ref.get_config(), got.get_config())
    config = keras_ref.optimizers.serialize(ref)
    back = tritonnn.optimizers.deserialize({k: config[k] for k in ("class_name", "config")})
    assert type(back) is type(got)
    assert_same(ref.get_config(), back.get_config())
    again = tritonnn.optimizers.deserialize(tritonnn.optimizers.serialize(got))
    assert type(again) is type(got) and again.get_config() == got.get_config()
    if not keras_reads_ours:
        return
    theirs = keras_ref.optimizers.deserialize(
        {k: tritonnn.optimizers.serialize(got)[k] for k in ("class_name", "config")}
    )
    assert_same(ref.get_config(), theirs.get_config())


def split_flat(flat: Any, shapes: list[tuple[int, ...]]) -> list[np.ndarray]:
    """A tritonnn optimizer's flat state buffer as one array per variable, in the variables' order."""
    out, offset = [], 0
    for shape in shapes:
        n = int(np.prod(shape, dtype=np.int64))
        out.append(flat[offset : offset + n].reshape(shape).numpy().copy())
        offset += n
    return out


def make_optimizer(K: Any, cls: str, kwargs: dict[str, Any]) -> Any:
    """``K.optimizers.<cls>(**kwargs)``, the value ``"schedule"`` standing for ExponentialDecay(0.05, 2, 0.5)."""
    schedule = K.optimizers.schedules.ExponentialDecay(0.05, decay_steps=2, decay_rate=0.5)
    return getattr(K.optimizers, cls)(**{k: schedule if v == "schedule" else v for k, v in kwargs.items()})
