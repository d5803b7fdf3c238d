"""IntegerLookup: maps integer tokens to contiguous vocabulary indices (or back, ``invert=True``), optionally
encoded as one-hot, multi-hot, count or TF-IDF vectors (Keras' ``keras.layers.IntegerLookup``).

Keras' layer runs on TensorFlow lookup tables (on the torch backend it raises ``ImportError`` without TensorFlow);
this one is torch ops on the layer's device, usable inside a model. Its rules are Keras': the index layout (the
mask token at 0 in ``"int"`` mode, then the OOV indices, then the vocabulary), ``adapt``'s order (by count, ties
by the larger token first), the OOV buckets (``floormod``, or FarmHash64 / SipHash of the token's decimal string for
``oov_method="farmhash"``), the outputs' dtypes (int64 but for ``tf_idf``, float32) and the errors.

The vocabulary is kept as the persistent buffer ``vocabulary_tokens`` (and the TF-IDF weights as ``idf_weights``),
not as weights: they are saved with the model's weights (where Keras saves them as an asset and a variable) and
count no parameters, as in Keras.
"""

from __future__ import annotations

import collections
import os
from typing import Any

import numpy as np
import torch

from .. import config
from . import symbolic
from ._string_hash import fingerprint64, siphash24
from .layer import Layer

_INT64_MAX = torch.iinfo(torch.int64).max
_OUTPUT_MODES = ("int", "one_hot", "multi_hot", "count", "tf_idf")


def _validate_string_arg(value: Any, allowed: tuple[str, ...], arg_name: str) -> None:
    if not (isinstance(value, str) and value in allowed):
        raise ValueError(
            f"Unknown value for `{arg_name}` argument of IntegerLookup. Allowed values are: {allowed}. Received: "
            f"{arg_name}={value}"
        )


def _as_int64_array(data: Any, what: str) -> np.ndarray:
    """Tokens as an int64 array: integers as they are, floats only when they hold whole numbers."""
    if isinstance(data, torch.Tensor):
        data = data.detach().cpu().numpy()
    arr = np.asarray(data)
    if arr.dtype.kind in "iub":
        return arr.astype(np.int64)
    if arr.dtype.kind == "f":
        if arr.size and not np.all(np.isfinite(arr) & (arr == np.floor(arr))):
            raise ValueError(f"IntegerLookup: {what} must hold integers. Received non-integer values {arr!r}")
        return arr.astype(np.int64)
    raise ValueError(f"IntegerLookup: {what} must hold integers. Received an array of dtype {arr.dtype}")


class IntegerLookup(Layer):
    """Maps integer tokens to indices: ``[mask] [OOV x num_oov_indices] [vocabulary...]`` in ``"int"`` mode (the
    mask index only when ``mask_token`` is set), the same without the mask index in the other modes.

    Args:
        max_tokens: the largest vocabulary ``adapt`` keeps (mask and OOV indices included); None for no cap.
        num_oov_indices: how many indices out-of-vocabulary tokens share (``token % num_oov_indices``, or a hash:
            see ``oov_method``); 0 makes an OOV token an error.
        mask_token: a token that maps to index 0 in ``"int"`` mode and is dropped by the other modes.
        oov_token: what ``invert=True`` returns for an OOV index (default -1).
        vocabulary: the tokens (a list, array or tensor; it may start with the mask and OOV tokens, as
            ``get_vocabulary()`` returns them) or the path of a text file with one token a line.
        vocabulary_dtype: only ``"int64"``.
        idf_weights: the TF-IDF weights of the vocabulary (``output_mode="tf_idf"`` with a given vocabulary).
        invert: map indices back to tokens (``"int"`` mode only).
        output_mode: ``"int"``, ``"one_hot"``, ``"multi_hot"``, ``"count"`` or ``"tf_idf"`` (Keras' old names
            ``"binary"`` and ``"tf-idf"`` accepted).
        sparse: Keras' sparse outputs (TensorFlow only): must be False.
        pad_to_max_tokens: encode over ``max_tokens`` entries whatever the vocabulary's size.
        oov_method: ``"floormod"`` (default) or ``"farmhash"`` (FarmHash64 of the token's decimal string, or
            SipHash-2-4 with ``salt`` as its key).
        salt: the SipHash key for ``oov_method="farmhash"``: one int (both words) or two.

    The encoded modes reduce axis 1 of a rank-2 (or higher) input, as Keras (a rank-1 input is one sample).
    """

    _autocast_inputs = False

    def __init__(
        self,
        max_tokens: int | None = None,
        num_oov_indices: int = 1,
        mask_token: int | None = None,
        oov_token: int | None = -1,
        vocabulary: Any = None,
        vocabulary_dtype: str = "int64",
        idf_weights: Any = None,
        invert: bool = False,
        output_mode: str = "int",
        sparse: bool = False,
        pad_to_max_tokens: bool = False,
        oov_method: str = "floormod",
        salt: Any = None,
        name: str | None = None,
        **kwargs: Any,
    ):
        if max_tokens is not None and max_tokens <= 1:
            raise ValueError(
                f"If `max_tokens` is set for `IntegerLookup`, it must be greater than 1. Received: max_tokens="
                f"{max_tokens}"
            )
        if num_oov_indices < 0:
            raise ValueError(
                "The value of `num_oov_indices` argument for `IntegerLookup` must >= 0. Received: num_oov_indices="
                f"{num_oov_indices}"
            )
        if sparse:
            raise ValueError("`sparse=True` can only be used with the TensorFlow backend.")
        if vocabulary_dtype != "int64":
            raise ValueError(
                f"Only `vocabulary_dtype='int64'` is supported at this time. Received: vocabulary_dtype="
                f"{vocabulary_dtype}"
            )
        if pad_to_max_tokens and max_tokens is None:
            raise ValueError(f"If pad_to_max_tokens is True, must set `max_tokens`. Received: max_tokens={max_tokens}")
        _validate_string_arg(oov_method, ("floormod", "farmhash"), "oov_method")
        if salt is not None:
            if oov_method != "farmhash":
                raise ValueError(
                    f"`salt` can only be used when `oov_method='farmhash'`. Received: oov_method={oov_method}"
                )
            if isinstance(salt, (tuple, list)) and len(salt) == 2:
                salt = list(salt)
            elif isinstance(salt, int):
                salt = [salt, salt]
            else:
                raise ValueError(
                    "The `salt` argument for `IndexLookup` can only be a tuple of 2 integers, or a single integer. "
                    f"Received: salt={salt}."
                )
        output_mode = {"binary": "multi_hot", "tf-idf": "tf_idf"}.get(output_mode, output_mode)
        _validate_string_arg(output_mode, _OUTPUT_MODES, "output_mode")
        if invert and output_mode != "int":
            raise ValueError(
                f"`output_mode` must be `'int'` when `invert` is true. Received: output_mode={output_mode}"
            )
        if idf_weights is not None and output_mode != "tf_idf":
            raise ValueError(
                "`idf_weights` should only be set if `output_mode` is `'tf_idf'`. Received: idf_weights="
                f"{idf_weights} and output_mode={output_mode}"
            )
        frozen_size = kwargs.pop("vocabulary_size", None)
        has_input_vocabulary = kwargs.pop("has_input_vocabulary", vocabulary is not None)
        kwargs.pop("trainable", None)  # Keras' lookup layers take these from a config and ignore them
        kwargs.pop("dtype", None)
        if kwargs:
            raise ValueError(f"Unrecognized keyword argument(s): {kwargs}")
        super().__init__(name=name)
        self.invert = bool(invert)
        self.max_tokens = max_tokens
        self.num_oov_indices = num_oov_indices
        self.mask_token = mask_token
        self.oov_token = oov_token
        self.output_mode = output_mode
        self.sparse = False
        self.pad_to_max_tokens = pad_to_max_tokens
        self.vocabulary_dtype = "int64"
        self.oov_method = oov_method
        self.salt = salt
        self._frozen_vocab_size = frozen_size
        self.input_vocabulary = None if isinstance(vocabulary, (str, os.PathLike)) else vocabulary
        self.input_idf_weights = idf_weights
        self._has_input_vocabulary = bool(has_input_vocabulary)
        self._tracing = False
        self._table_cache: tuple[Any, ...] | None = None
        self._token_counts: collections.Counter[int] = collections.Counter()
        self._document_counts: collections.Counter[int] = collections.Counter()
        self._num_documents = 0
        if output_mode == "tf_idf" and self._has_input_vocabulary and idf_weights is None:
            raise ValueError(
                "When specifying the `vocabulary` argument, in TF-IDF output mode, the `idf_weights` argument must "
                "also be provided."
            )
        device = config.default_device()
        self.register_buffer("vocabulary_tokens", torch.zeros(0, dtype=torch.int64, device=device))
        self._placeholder_version: int | None = None
        if output_mode == "tf_idf":
            self.register_buffer("idf_weights", None)
        if vocabulary is not None:
            self.set_vocabulary(vocabulary, idf_weights)
        elif frozen_size is not None:
            # A config of an adapted layer: the tokens (and TF-IDF weights) come with the model's weights.
            self._allocate_placeholders(int(frozen_size))
        self.built = True

    # ---- the vocabulary -------------------------------------------------------------------------------------------
    def _oov_start_index(self) -> int:
        return 1 if self.mask_token is not None and self.output_mode == "int" else 0

    def _token_start_index(self) -> int:
        return self._oov_start_index() + self.num_oov_indices

    def _allocate_placeholders(self, frozen_size: int) -> None:
        n_tokens = max(frozen_size - self._token_start_index(), 0)
        depth = self.max_tokens if self.pad_to_max_tokens else frozen_size
        n_idf = depth if self.output_mode == "tf_idf" else 0
        self.vocabulary_tokens = self._placeholder("vocabulary_tokens", n_tokens, torch.int64)
        self._placeholder_version = self.vocabulary_tokens._version
        if n_idf:
            self.idf_weights = self._placeholder("idf_weights", n_idf, torch.float32)

    def _placeholder(self, name: str, size: int, dtype: torch.dtype) -> torch.Tensor:
        """Zeros of ``size`` for a buffer that the model's saved tensors fill. Made through ``add_weight`` and then
        taken off the weights, so that inside ``tritonnn.saving``'s weight budget a file's config cannot ask for
        more than the file holds (the check runs before anything is allocated)."""
        weight = self.add_weight((size,), "zeros", dtype=dtype, trainable=False, name=f"{name}_placeholder")
        for key, value in list(self._parameters.items()):
            if value is weight:
                del self._parameters[key]
        del weight
        return torch.zeros(size, dtype=dtype, device=config.default_device())

    def _tokens(self) -> torch.Tensor:
        """The vocabulary's tokens in index order (empty while a placeholder awaits its loaded values)."""
        t = self.vocabulary_tokens
        if self._placeholder_version is not None and t._version == self._placeholder_version:
            return t[:0]
        return t

    def vocabulary_size(self) -> int:
        """The size of the vocabulary, mask and OOV indices included."""
        return int(self._tokens().numel()) + self._token_start_index()

    def get_vocabulary(self, include_special_tokens: bool = True) -> list[Any]:
        """The vocabulary in index order: a token's index in the list is its index in the layer's output (with
        ``include_special_tokens``: the mask token first in ``"int"`` mode, then ``oov_token`` for each OOV index).
        """
        tokens = [int(v) for v in self._tokens().cpu().tolist()]
        vocab: list[Any] = [self.oov_token] * self._token_start_index() + tokens
        if self.mask_token is not None and self.output_mode == "int":
            vocab[0] = self.mask_token
        return vocab if include_special_tokens else vocab[self._token_start_index() :]

    def _record_vocabulary_size(self) -> None:
        new_size = self.vocabulary_size()
        if self.output_mode != "int" and not self.pad_to_max_tokens:
            if self._frozen_vocab_size is not None and new_size != self._frozen_vocab_size:
                raise RuntimeError(
                    f"When using `output_mode={self.output_mode}` and `pad_to_max_tokens=False`, the vocabulary "
                    f"size cannot be changed after the layer is called. Old vocab size is {self._frozen_vocab_size}, "
                    f"new vocab size is {new_size}"
                )
        self._frozen_vocab_size = new_size

    def _set_tokens(self, tokens: np.ndarray) -> None:
        self.vocabulary_tokens = torch.as_tensor(tokens, dtype=torch.int64).to(config.default_device())
        self._placeholder_version = None
        self._table_cache = None

    def set_vocabulary(self, vocabulary: Any, idf_weights: Any = None) -> None:
        """Set the vocabulary (and, in ``"tf_idf"`` mode, its weights), replacing any: a list, array or tensor of
        tokens (which may start with the mask and OOV tokens, as ``get_vocabulary()`` returns them), or the path
        of a text file of one token a line."""
        if self.output_mode == "tf_idf":
            if idf_weights is None:
                raise ValueError("`idf_weights` must be set if output_mode is 'tf_idf'.")
        elif idf_weights is not None:
            raise ValueError(
                f"`idf_weights` should only be set if output_mode is `'tf_idf'`. Received: output_mode="
                f"{self.output_mode} and idf_weights={idf_weights}"
            )
        if isinstance(vocabulary, (str, os.PathLike)):
            path = os.fspath(vocabulary)
            if not os.path.exists(path):
                raise ValueError(f"Vocabulary file {path} does not exist.")
            if self.output_mode == "tf_idf":
                raise ValueError("output_mode `'tf_idf'` does not support loading a vocabulary from file.")
            with open(path) as f:
                lines = f.read().splitlines()
            while lines and lines[-1] == "":
                lines.pop()
            try:
                tokens = np.array([int(line) for line in lines], dtype=np.int64)
            except ValueError as e:
                raise ValueError(f"Vocabulary file {path} must hold one integer a line: {e}") from e
            repeated = [t for t, c in collections.Counter(tokens.tolist()).items() if c > 1]
            if repeated:
                raise ValueError(f"Vocabulary file {path} holds repeated terms: {repeated}")
            self._set_tokens(tokens)
            self._record_vocabulary_size()
            return
        vocab = _as_int64_array(vocabulary, "`vocabulary`").reshape(-1) if not _is_none_list(vocabulary) else None
        if vocab is None or vocab.size == 0:
            raise ValueError(f"Cannot set an empty vocabulary. Received: vocabulary={vocabulary}")
        oov_start, token_start = self._oov_start_index(), self._token_start_index()
        special = [self.mask_token] * oov_start + [self.oov_token] * self.num_oov_indices
        found_special = np.array_equal(np.array(special, dtype=object), vocab[:token_start].astype(object))
        tokens = vocab[token_start:] if found_special else vocab
        repeated = [t for t, c in collections.Counter(tokens.tolist()).items() if c > 1]
        if repeated:
            raise ValueError(
                "The passed vocabulary has at least one repeated term. Please uniquify your dataset. The repeated "
                f"terms are: {repeated}"
            )
        if self.mask_token is not None and self.mask_token in tokens:
            raise ValueError(
                "Found reserved mask token at unexpected location in `vocabulary`. Note that passed `vocabulary` "
                "does not need to include the OOV and mask tokens. Either remove all mask and OOV tokens, or include "
                f"them only at the start of the vocabulary in precisely this order: {special}. Received: mask_token="
                f"{self.mask_token} at vocabulary index {np.argwhere(vocab == self.mask_token)[-1]}"
            )
        if self.oov_token is not None and self.invert and self.oov_token in tokens:
            raise ValueError(
                "Found reserved OOV token at unexpected location in `vocabulary`. Note that passed `vocabulary` "
                "does not need to include the OOV and mask tokens. Either remove all mask and OOV tokens, or include "
                f"them only at the start of the vocabulary in precisely this order: {special}. Received: oov_token="
                f"{self.oov_token} at vocabulary index {np.argwhere(vocab == self.oov_token)[-1]}"
            )
        new_size = token_start + len(tokens)
        if self.max_tokens is not None and new_size > self.max_tokens:
            raise ValueError(
                "Attempted to set a vocabulary larger than the maximum vocab size. Received vocabulary size is "
                f"{new_size}; `max_tokens` is {self.max_tokens}."
            )
        self._set_tokens(tokens)
        self._record_vocabulary_size()
        if self.output_mode == "tf_idf":
            self._set_idf_weights(idf_weights, len(vocab), found_special, token_start)

    def _set_idf_weights(self, idf_weights: Any, n_vocab: int, found_special: bool, token_start: int) -> None:
        weights = np.asarray(
            idf_weights.detach().cpu().numpy() if isinstance(idf_weights, torch.Tensor) else idf_weights
        )
        if weights.ndim == 0 or len(weights) != n_vocab:
            raise ValueError(
                f"`idf_weights` must be the same length as vocabulary. len(idf_weights) is "
                f"{weights.size if weights.ndim == 0 else len(weights)}; len(vocabulary) is {n_vocab}"
            )
        if weights.ndim != 1:
            raise ValueError(f"TF-IDF data must be a 1-index array. Received: type(idf_weights)={type(idf_weights)}")
        weights = weights.astype(np.float64)
        front, front_value = (0, 0.0) if found_special else (token_start, float(np.average(weights)))
        back = self.max_tokens - front - len(weights) if self.pad_to_max_tokens and self.max_tokens else 0
        weights = np.pad(weights, (front, back), "constant", constant_values=(front_value, 0.0))
        self.idf_weights = torch.as_tensor(weights, dtype=torch.float32).to(config.default_device())

    # ---- adapt ------------------------------------------------------------------------------------------------------
    def adapt(self, data: Any, steps: int | None = None) -> None:
        """Learn the vocabulary from ``data``: every token seen, by descending count, ties broken by the larger
        token first, capped at ``max_tokens`` (mask and OOV indices included); in ``"tf_idf"`` mode also each
        token's weight ``log(1 + documents / (1 + documents holding it))`` (a document is a row of the data).

        ``data``: an array, a tensor or a list of tokens (a rank-1 array is one token per document), or an
        iterable of batches (a generator...), of which at most ``steps`` are read.
        """
        self._reset_state()
        if hasattr(data, "__iter__") and not isinstance(data, (list, tuple, np.ndarray, torch.Tensor, str, bytes)):
            for i, batch in enumerate(data):
                if steps is not None and i >= steps:
                    break
                self.update_state(batch)
        else:
            arr = _as_int64_array(data, "adapt()'s data")
            if arr.ndim == 1:
                arr = arr[:, None]
            self.update_state(arr)
        self.finalize_state()

    def _reset_state(self) -> None:
        self._token_counts = collections.Counter()
        self._document_counts = collections.Counter()
        self._num_documents = 0

    def update_state(self, data: Any) -> None:
        """Count the tokens of one batch (``adapt`` calls it for each)."""
        if self._has_input_vocabulary:
            raise ValueError(
                f"Cannot adapt layer '{self.name}' after setting a static vocabulary via `vocabulary` argument or "
                "`set_vocabulary()` method."
            )
        arr = _as_int64_array(data, "adapt()'s data")
        if arr.ndim == 0:
            arr = arr[None]
        if arr.ndim == 1:
            arr = arr[None]  # one document
        tokens, counts = np.unique(arr.reshape(-1), return_counts=True)
        self._token_counts.update(dict(zip(tokens.tolist(), counts.tolist(), strict=True)))
        if self.output_mode == "tf_idf":
            for row in arr:
                self._document_counts.update(np.unique(row).tolist())
            self._num_documents += arr.shape[0]

    def finalize_state(self) -> None:
        """Turn the counts into the vocabulary (``adapt`` calls it after the last batch)."""
        if self._has_input_vocabulary or not self._token_counts:
            self._record_vocabulary_size()
            return
        counts = dict(self._token_counts)
        for special in (self.mask_token, self.oov_token):
            if special is not None:
                counts.pop(int(special), None)
        tokens = np.array(list(counts), dtype=np.int64)
        order = np.lexsort((tokens, np.array([counts[t] for t in tokens.tolist()], dtype=np.int64)))[::-1]
        if self.max_tokens:
            order = order[: self.max_tokens - self._token_start_index()]
        tokens = tokens[order]
        self._set_tokens(tokens)
        if self.output_mode == "tf_idf":
            doc_counts = np.array([self._document_counts[t] for t in tokens.tolist()], dtype=np.float64)
            idf = np.log(1 + self._num_documents / (1 + doc_counts)).astype(np.float32)
            mean = np.float32(idf.mean()) if idf.size else np.float32(np.nan)
            idf = np.concatenate([np.full(self._token_start_index(), mean, np.float32), idf])
            if self.pad_to_max_tokens and self.max_tokens is not None:
                idf = np.pad(idf, (0, self.max_tokens - idf.size))
            self.idf_weights = torch.as_tensor(idf).to(config.default_device())
        self._reset_state()
        self._record_vocabulary_size()

    # ---- calling ----------------------------------------------------------------------------------------------------
    def __call__(self, inputs: Any, *args: Any, **kwargs: Any) -> Any:
        tracing = symbolic.is_symbolic(inputs)
        self._tracing = tracing  # a symbolic call runs on placeholder values: no OOV check on them
        try:
            return super().__call__(inputs, *args, **kwargs)
        finally:
            self._tracing = False

    def _table(self, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        """The tokens sorted, with each one's index, on ``device`` (recomputed when the tokens change)."""
        tokens = self._tokens()
        key = (id(self.vocabulary_tokens), self.vocabulary_tokens._version, tokens.numel(), device)
        if self._table_cache is None or self._table_cache[0] != key:
            on_device = tokens.to(device)
            order = torch.argsort(on_device)
            indices = torch.arange(tokens.numel(), device=device, dtype=torch.int64) + self._token_start_index()
            self._table_cache = (key, on_device[order], indices[order], on_device)
        return self._table_cache[1], self._table_cache[2]

    def _oov_buckets(self, x: torch.Tensor) -> torch.Tensor:
        n = self.num_oov_indices
        if self.oov_method == "floormod":
            return torch.remainder(x, n)
        values = x.reshape(-1).cpu().tolist()
        if self.salt is None:
            buckets = [fingerprint64(str(v).encode()) % n for v in values]
        else:
            key = (int(self.salt[0]), int(self.salt[1]))
            buckets = [siphash24(key, str(v).encode()) % n for v in values]
        return torch.tensor(buckets, dtype=torch.int64, device=x.device).reshape(x.shape)

    def _lookup(self, x: torch.Tensor) -> torch.Tensor:
        if self.invert:
            self._table(x.device)
            by_index = self._table_cache[3]  # the tokens in index order, on x's device
            pos = x - self._token_start_index()
            inside = (pos >= 0) & (pos < by_index.numel())
            oov = torch.full_like(x, -1 if self.oov_token is None else int(self.oov_token))
            out = torch.where(inside, by_index[pos.clamp(0, by_index.numel() - 1)], oov) if by_index.numel() else oov
            if self.mask_token is not None:
                out = torch.where(x == 0, torch.full_like(x, int(self.mask_token)), out)
            return out
        sorted_tokens, sorted_indices = self._table(x.device)
        if self.num_oov_indices == 0 or self.num_oov_indices > 1:
            default = -1
        else:
            default = self._oov_start_index()
        if sorted_tokens.numel():
            pos = torch.searchsorted(sorted_tokens, x).clamp(max=sorted_tokens.numel() - 1)
            hit = sorted_tokens[pos] == x
            out = torch.where(hit, sorted_indices[pos], torch.full_like(x, default))
        else:
            out = torch.full_like(x, default)
        if self.mask_token is not None:
            mask_value = 0 if self.output_mode == "int" else _INT64_MAX
            out = torch.where(x == self.mask_token, torch.full_like(x, mask_value), out)
        if self.num_oov_indices == 0:
            capturing = out.is_cuda and torch.cuda.is_current_stream_capturing()  # nothing can be read back then
            if not self._tracing and not capturing and out.numel():
                oov = out == -1
                if bool(oov.any()):
                    raise ValueError(
                        "When `num_oov_indices=0` all inputs should be in vocabulary, found OOV values "
                        f"{x[oov].cpu().tolist()}, consider setting `num_oov_indices=1`."
                    )
        elif self.num_oov_indices > 1:
            out = torch.where(out == -1, self._oov_buckets(x) + self._oov_start_index(), out)
        return out

    def call(self, inputs: Any) -> torch.Tensor:
        if self.output_mode != "int" and not self.pad_to_max_tokens and self._frozen_vocab_size is None:
            raise RuntimeError(
                f"When using `output_mode={self.output_mode}` and `pad_to_max_tokens=False`, you must set the "
                "layer's vocabulary before calling it. Either pass a `vocabulary` argument to the layer, or call "
                "`adapt` with some sample data."
            )
        x = inputs if isinstance(inputs, torch.Tensor) else torch.as_tensor(_as_int64_array(inputs, "the inputs"))
        if x.is_floating_point():
            x = torch.as_tensor(_as_int64_array(x, "the inputs"), device=x.device)
        x = x.to(torch.int64)
        scalar = x.dim() == 0
        if scalar:
            x = x.reshape(1)
        lookups = self._lookup(x)
        if self.output_mode == "int":
            return lookups.reshape(()) if scalar else lookups
        depth = self.max_tokens if self.pad_to_max_tokens else self._frozen_vocab_size
        out = self._encode(lookups, depth)
        if self.output_mode == "tf_idf":
            out = out.to(torch.float32) * self.idf_weights.to(out.device)
        return out

    def _encode(self, lookups: torch.Tensor, depth: int) -> torch.Tensor:
        """Keras' ``encode_categorical_inputs`` of the indices (int64): an index outside ``[0, depth)`` (the mask)
        gives no entry; ``one_hot`` replaces a trailing axis of 1; the other modes reduce axis 1 (axis 0 of a
        rank-1 input, one sample)."""
        classes = torch.arange(depth, device=lookups.device)
        if self.output_mode == "one_hot":
            idx = lookups.squeeze(-1) if lookups.dim() > 1 and lookups.shape[-1] == 1 else lookups
            return (idx[..., None] == classes).to(torch.int64)
        hits = (lookups[..., None] == classes).to(torch.int64)
        axis = 1 if lookups.dim() > 1 else 0
        return hits.amax(dim=axis) if self.output_mode == "multi_hot" else hits.sum(dim=axis)

    def compute_output_shape(self, input_shape: Any) -> Any:
        if self.output_mode == "int":
            return input_shape
        depth = self.max_tokens if self.pad_to_max_tokens else self._frozen_vocab_size
        input_shape = tuple(input_shape)
        if self.output_mode == "one_hot":
            if len(input_shape) > 1 and input_shape[-1] == 1:
                return (*input_shape[:-1], depth)
            return (*input_shape, depth)
        return (*input_shape[:-1], depth)

    # ---- config -----------------------------------------------------------------------------------------------------
    def get_config(self) -> dict[str, Any]:
        def listify(x: Any) -> Any:
            if isinstance(x, torch.Tensor):
                x = x.detach().cpu().numpy()
            return x.tolist() if isinstance(x, np.ndarray) else x

        vocabulary = listify(self.input_vocabulary)
        return {
            **super().get_config(),
            "invert": self.invert,
            "max_tokens": self.max_tokens,
            "num_oov_indices": self.num_oov_indices,
            "oov_token": None if self.oov_token is None else int(self.oov_token),
            "mask_token": None if self.mask_token is None else int(self.mask_token),
            "output_mode": self.output_mode,
            "sparse": self.sparse,
            "pad_to_max_tokens": self.pad_to_max_tokens,
            "vocabulary_dtype": self.vocabulary_dtype,
            "idf_weights": listify(self.input_idf_weights),
            "vocabulary": None if vocabulary is None else [int(v) for v in vocabulary],
            "vocabulary_size": self._frozen_vocab_size,
            "oov_method": self.oov_method,
            "salt": self.salt,
        }

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> IntegerLookup:
        """Rebuild from :meth:`get_config`. A vocabulary file named in a config is not read (a path in a file is
        refused with a ``ValueError``); an adapted layer's tokens come with the model's weights."""
        if isinstance(config.get("vocabulary"), str):
            raise ValueError(
                "Requested the loading of a vocabulary file outside of the model archive: tritonnn does not read "
                f"files named in a config. Vocabulary file: '{config['vocabulary']}'"
            )
        return cls(**config)


def _is_none_list(value: Any) -> bool:
    return value is None or (isinstance(value, (list, tuple)) and len(value) == 0)


__all__ = ["IntegerLookup"]
