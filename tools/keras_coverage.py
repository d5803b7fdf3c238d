"""Regenerate docs/keras_coverage.md: every public name of Keras 3's modules an MLP script reaches, and whether
tritonnn has it.

    python tools/keras_coverage.py          # rewrite docs/keras_coverage.md from the installed keras and tritonnn
    python tools/keras_coverage.py --check  # exit 1 if the file differs from what would be written

A name is ✓ when the tritonnn module of the same path has an attribute of that name, "not for MLPs" when
:data:`NOT_FOR_MLPS` (the one reviewed list of such judgements, below) says so with its reason, and ✗ otherwise.
A name tritonnn has is ✓ even when a pattern below would match it. Keras runs on its torch backend here
(``KERAS_BACKEND=torch`` unless set). tests/compat/test_coverage_doc.py fails when the file is out of date.
"""

from __future__ import annotations

import argparse
import fnmatch
import importlib
import os
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DOC = REPO / "docs" / "keras_coverage.md"

# The modules compared, by their path under `keras.` ("" is the top level).
MODULES = (
    "",
    "activations",
    "backend",
    "callbacks",
    "config",
    "constraints",
    "datasets",
    "initializers",
    "layers",
    "losses",
    "metrics",
    "mixed_precision",
    "models",
    "ops",
    "optimizers",
    "optimizers.schedules",
    "random",
    "regularizers",
    "saving",
    "utils",
    "wrappers",
)

_CONV = "convolutions (image, sequence and volume models)"
_POOL = "pooling over 1-3 spatial dimensions (convolutional models)"
_RNN = "recurrent layers (sequence models)"
_IMAGE = "image preprocessing and augmentation"
_TEXT = "text and categorical-string preprocessing"
_ATTN = "attention (transformers)"
_SIGNAL = "signal processing (audio, spectra)"
_COMPLEX = "complex numbers"
_TRACE = "JAX-style traced control flow and transforms (in tritonnn's eager torch, Python's if/for/autograd do it)"
_LINALG = "matrix decompositions and solvers"
_INTERNAL = "Keras' backend-agnostic tracing internals"

# module -> {name or fnmatch pattern: why an MLP script does not reach it}. The one place these judgements live.
NOT_FOR_MLPS: dict[str, dict[str, str]] = {
    "": {
        "applications": "pretrained image networks (ResNet, EfficientNet...)",
        "preprocessing": "image, text and audio preprocessing pipelines",
        "visualization": "bounding-box and segmentation-mask plotting",
        "export": "TensorFlow SavedModel / ONNX export",
        "legacy": "Keras 2 / tf.keras compatibility",
        "src": "Keras' private source tree",
        "distillation": "teacher-student distillation of large models",
        "quantizers": "int8/float8 quantization of trained models",
        "Quantizer": "int8/float8 quantization of trained models",
        "dtype_policies": "the quantized dtype-policy classes (DTypePolicy itself is at the top level)",
        "Function": _INTERNAL,
        "Operation": _INTERNAL,
        "SymbolicScope": _INTERNAL,
        "StatelessScope": "JAX's stateless (functional) variable scope",
        "RematScope": "activation rematerialization for models too large for memory",
        "remat": "activation rematerialization for models too large for memory",
    },
    "layers": {
        "*Conv*": _CONV,
        "DepthwiseConv*": _CONV,
        "Separable*": _CONV,
        "*Pool*": _POOL,
        "Cropping*": _IMAGE,
        "UpSampling*": "upsampling of images and sequences (convolutional models)",
        "ZeroPadding*": "spatial padding (convolutional models)",
        "SpatialDropout*": "channel dropout (convolutional models)",
        "*RNN*": _RNN,
        "*LSTM*": _RNN,
        "*GRU*": _RNN,
        "Bidirectional": _RNN,
        "TimeDistributed": _RNN,
        "Masking": "sequence masking (recurrent models); tritonnn has no automatic mask propagation",
        "*Attention*": _ATTN,
        "Random*": _IMAGE,
        "AugMix": _IMAGE,
        "AutoContrast": _IMAGE,
        "CenterCrop": _IMAGE,
        "ContrastLimitedAdaptiveHistogramEqualization": _IMAGE,
        "CutMix": _IMAGE,
        "Equalization": _IMAGE,
        "MixUp": _IMAGE,
        "RandAugment": _IMAGE,
        "Resizing": _IMAGE,
        "Solarization": _IMAGE,
        "MaxNumBoundingBoxes": _IMAGE,
        "Pipeline": "chains of preprocessing layers (image/audio augmentation)",
        "TextVectorization": _TEXT,
        "StringLookup": _TEXT,
        "Hashing": _TEXT,
        "HashedCrossing": _TEXT,
        "MelSpectrogram": _SIGNAL,
        "STFTSpectrogram": _SIGNAL,
        "JaxLayer": "wraps JAX functions (JAX backend only)",
        "FlaxLayer": "wraps Flax modules (JAX backend only)",
        "TFSMLayer": "loads TensorFlow SavedModels (TensorFlow only)",
        "ReversibleEmbedding": "tied input/output embeddings of language models",
        "GroupNormalization": "normalization over channel groups (convolutional models)",
        "SpectralNormalization": "GAN discriminators' weight normalization (convolutional models)",
    },
    "optimizers": {"legacy": "Keras 2 / tf.keras optimizers (TensorFlow only)"},
    "callbacks": {
        "OrbaxCheckpoint": "JAX's Orbax checkpoints (JAX backend only)",
        "TensorBoard": "writes TensorFlow event files (needs TensorFlow)",
    },
    "config": {
        "enable_flash_attention": _ATTN,
        "disable_flash_attention": _ATTN,
        "is_flash_attention_enabled": _ATTN,
        "is_nnx_enabled": "Flax NNX (JAX backend only)",
        "set_backend": "switches Keras' backend; tritonnn has one (torch)",
    },
    "initializers": {"STFT": _SIGNAL, "STFTInitializer": _SIGNAL, "stft": _SIGNAL},
    "datasets": {
        "cifar10": "image dataset (convolutional models)",
        "cifar100": "image dataset (convolutional models)",
        "imdb": "text sequences (recurrent/embedding models)",
        "reuters": "text sequences (recurrent/embedding models)",
    },
    "losses": {
        "CTC": "sequence alignment (speech/handwriting recognition)",
        "ctc": "sequence alignment (speech/handwriting recognition)",
        "Dice": "image segmentation",
        "dice": "image segmentation",
        "Tversky": "image segmentation",
        "tversky": "image segmentation",
        "Circle": "similarity learning on embeddings (pairs within a batch), not classification or regression",
        "circle": "similarity learning on embeddings (pairs within a batch), not classification or regression",
    },
    "metrics": {"*IoU": "image segmentation and detection"},
    "ops": {
        "image": _IMAGE,
        "linalg": _LINALG,
        "conv": _CONV,
        "conv_transpose": _CONV,
        "depthwise_conv": _CONV,
        "separable_conv": _CONV,
        "max_pool": _POOL,
        "average_pool": _POOL,
        "adaptive_*_pool": _POOL,
        "depth_to_space": _IMAGE,
        "space_to_depth": _IMAGE,
        "fold": "image patches (convolutional models)",
        "unfold": "image patches (convolutional models)",
        "psnr": "image quality metric",
        "dot_product_attention": _ATTN,
        "ctc_loss": "sequence alignment (speech/handwriting recognition)",
        "ctc_decode": "sequence alignment (speech/handwriting recognition)",
        "*fft*": _SIGNAL,
        "stft": _SIGNAL,
        "istft": _SIGNAL,
        "extract_sequences": _SIGNAL,
        "correlate": _SIGNAL,
        "bartlett": _SIGNAL,
        "blackman": _SIGNAL,
        "hamming": _SIGNAL,
        "hanning": _SIGNAL,
        "kaiser": _SIGNAL,
        "angle": _COMPLEX,
        "conj": _COMPLEX,
        "conjugate": _COMPLEX,
        "imag": _COMPLEX,
        "real": _COMPLEX,
        "isreal": _COMPLEX,
        "polar": _COMPLEX,
        "view_as_complex": _COMPLEX,
        "view_as_real": _COMPLEX,
        "associative_scan": _TRACE,
        "cond": _TRACE,
        "fori_loop": _TRACE,
        "scan": _TRACE,
        "switch": _TRACE,
        "while_loop": _TRACE,
        "vectorized_map": _TRACE,
        "vectorize": _TRACE,
        "custom_gradient": _TRACE,
        "jvp": _TRACE,
        "cholesky": _LINALG,
        "cholesky_inverse": _LINALG,
        "det": _LINALG,
        "eig": _LINALG,
        "eigh": _LINALG,
        "inv": _LINALG,
        "lstsq": _LINALG,
        "lu_factor": _LINALG,
        "qr": _LINALG,
        "solve": _LINALG,
        "solve_triangular": _LINALG,
        "svd": _LINALG,
        "slogdet": _LINALG,
        "logdet": _LINALG,
        "matrix_rank": _LINALG,
        "pinv": _LINALG,
    },
    "utils": {
        "array_to_img": _IMAGE,
        "img_to_array": _IMAGE,
        "load_img": _IMAGE,
        "save_img": _IMAGE,
        "image_dataset_from_directory": _IMAGE,
        "bounding_boxes": _IMAGE,
        "audio_dataset_from_directory": _SIGNAL,
        "text_dataset_from_directory": _TEXT,
        "timeseries_dataset_from_array": "windows of time series (recurrent models)",
        "pad_sequences": "padding of variable-length sequences (recurrent models)",
        "legacy": "Keras 2 / tf.keras compatibility",
        "FeatureSpace": "tf.data feature preprocessing: Keras 3 itself raises ImportError without TensorFlow",
    },
}


def import_both() -> tuple[object, object]:
    os.environ.setdefault("KERAS_BACKEND", "torch")
    sys.path.insert(0, str(REPO))
    try:
        keras = importlib.import_module("keras")
        tritonnn = importlib.import_module("tritonnn")
    finally:
        sys.path.remove(str(REPO))
    return keras, tritonnn


def _module(root: object, path: str) -> object | None:
    obj = root
    for part in filter(None, path.split(".")):
        obj = getattr(obj, part, None)
        if obj is None:
            return None
    return obj


def reason_for(module: str, name: str) -> str | None:
    for pattern, reason in NOT_FOR_MLPS.get(module, {}).items():
        if fnmatch.fnmatchcase(name, pattern):
            return reason
    return None


def table(keras: object, tritonnn: object) -> list[tuple[str, str, str]]:
    """(``keras.<module>.<name>``, status, reason) for every public Keras name of :data:`MODULES`."""
    rows = []
    for module in MODULES:
        kmod, tmod = _module(keras, module), _module(tritonnn, module)
        if kmod is None:
            raise RuntimeError(f"keras.{module} is missing from the installed Keras: update MODULES")
        for name in sorted(n for n in dir(kmod) if not n.startswith("_")):
            full = ".".join(filter(None, ["keras", module, name]))
            if tmod is not None and hasattr(tmod, name):
                rows.append((full, "✓", ""))
            elif (reason := reason_for(module, name)) is not None:
                rows.append((full, "not for MLPs", reason))
            else:
                rows.append((full, "✗", ""))
    return rows


def render(keras: object, tritonnn: object) -> str:
    rows = table(keras, tritonnn)

    def counts(selected: list[tuple[str, str, str]]) -> tuple[int, int, int]:
        present = sum(r[1] == "✓" for r in selected)
        out = sum(r[1] == "not for MLPs" for r in selected)
        return present, len(selected) - out, out

    present, in_scope, out = counts(rows)
    lines = [
        "# Keras 3 coverage",
        "",
        f"**{present} / {in_scope}** Keras names in scope are present in tritonnn "
        f"({len(rows)} public names in all, {out} of them not for MLPs). Keras {keras.__version__}, "
        f"tritonnn {tritonnn.__version__}.",
        "",
        "Every public name of the Keras modules an MLP script reaches, from `dir(keras.<module>)`: ✓ tritonnn has a "
        "name of that path, ✗ it does not, *not for MLPs* with the reason (the judgements live in one reviewed "
        "place, `NOT_FOR_MLPS` in `tools/keras_coverage.py`). Generated, do not edit: run "
        "`python tools/keras_coverage.py` after a change (tests/compat/test_coverage_doc.py fails while this file "
        "is out of date).",
        "",
        "| module | present / in scope | not for MLPs |",
        "| --- | --- | --- |",
    ]
    for module in MODULES:
        prefix = ".".join(filter(None, ["keras", module])) + "."
        sel = [r for r in rows if r[0].startswith(prefix) and "." not in r[0][len(prefix) :]]
        p, s, o = counts(sel)
        lines.append(f"| `{prefix[:-1]}` | {p} / {s} | {o} |")
    for module in MODULES:
        prefix = ".".join(filter(None, ["keras", module])) + "."
        sel = [r for r in rows if r[0].startswith(prefix) and "." not in r[0][len(prefix) :]]
        lines += ["", f"## `{prefix[:-1]}`", "", "| name | tritonnn | why not |", "| --- | --- | --- |"]
        lines += [f"| `{name}` | {status} | {reason} |".replace(" |  |", " | |") for name, status, reason in sel]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if docs/keras_coverage.md is out of date")
    args = parser.parse_args(argv)
    text = render(*import_both())
    if args.check:
        current = DOC.read_text(encoding="utf-8") if DOC.exists() else ""
        if current != text:
            print(f"{DOC.relative_to(REPO)} is out of date: run python tools/keras_coverage.py", file=sys.stderr)
            return 1
        return 0
    DOC.write_text(text, encoding="utf-8")
    print(f"wrote {DOC.relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
