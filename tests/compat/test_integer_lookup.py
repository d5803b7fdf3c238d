"""IntegerLookup. Keras' layer needs TensorFlow (its vocabulary is a ``tf.lookup`` table; on the torch backend
without TensorFlow it raises ``ImportError``), so the expected values here are written out from Keras 3.15's
docstring examples (each one below, with the docstring's numbers) and from its source's rules (index_lookup.py:
the index layout, adapt's order by count with ties broken by the larger token first, the OOV buckets, the TF-IDF
weights, the checks and their messages). Where Keras' own code runs without TensorFlow it is compared directly:
the encoding of the looked-up indices (``encode_categorical_inputs``) and TensorFlow's hash-bucket examples. When
TensorFlow is installed, the docstring examples are also run through Keras' layer."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import tritonnn as tk

from .compare import assert_same, observe, to_numpy
from .differences import deliberate

IL = tk.layers.IntegerLookup
VOCAB = [12, 36, 1138, 42]
DATA = np.array([[12, 1138, 42], [42, 1000, 36]])
DATA4 = np.array([[12, 1138, 42, 42], [42, 7, 36, 7]])

# Keras 3.15 integer_lookup.py's docstring examples: (kwargs, input, expected output). The encoded outputs are
# int64 (the docstring prints float32, but index_lookup.py encodes with its int64 value dtype; keras-team/keras
# #19660 has the same for StringLookup); tf_idf is float32.
DOC_EXAMPLES = [
    ("known-vocabulary", {"vocabulary": VOCAB}, DATA, [[1, 3, 4], [4, 0, 2]]),
    ("two-oov-indices", {"vocabulary": VOCAB, "num_oov_indices": 2}, np.array([[12, 1138, 42], [37, 1000, 36]]),
     [[2, 4, 5], [1, 0, 3]]),
    ("floormod", {"vocabulary": [10, 20, 30], "num_oov_indices": 4, "oov_method": "floormod"},
     np.array([100, 300, 700, 1100, 1700, 2000]), [0, 0, 0, 0, 0, 0]),
    ("farmhash", {"vocabulary": [10, 20, 30], "num_oov_indices": 4, "oov_method": "farmhash"},
     np.array([100, 300, 700, 1100, 1700, 2000]), [3, 3, 2, 2, 0, 1]),
    ("one-hot", {"vocabulary": VOCAB, "output_mode": "one_hot"}, np.array([12, 36, 1138, 42, 7]),
     [[0, 1, 0, 0, 0], [0, 0, 1, 0, 0], [0, 0, 0, 1, 0], [0, 0, 0, 0, 1], [1, 0, 0, 0, 0]]),
    ("multi-hot", {"vocabulary": VOCAB, "output_mode": "multi_hot"}, DATA4, [[0, 1, 0, 1, 1], [1, 0, 1, 0, 1]]),
    ("count", {"vocabulary": VOCAB, "output_mode": "count"}, DATA4, [[0, 1, 0, 1, 2], [2, 0, 1, 0, 1]]),
    ("tf-idf", {"vocabulary": VOCAB, "output_mode": "tf_idf", "idf_weights": [0.25, 0.75, 0.6, 0.4]}, DATA4,
     [[0, 0.25, 0, 0.6, 0.8], [1.0, 0, 0.75, 0, 0.4]]),
    ("tf-idf-oov-weight", {"vocabulary": [-1, *VOCAB], "output_mode": "tf_idf",
                           "idf_weights": [0.9, 0.25, 0.75, 0.6, 0.4]}, DATA4,
     [[0, 0.25, 0, 0.6, 0.8], [1.8, 0, 0.75, 0, 0.4]]),
    ("invert", {"vocabulary": VOCAB, "invert": True}, np.array([[1, 3, 4], [4, 0, 2]]),
     [[12, 1138, 42], [42, -1, 36]]),
]  # fmt: skip


def _json(x):
    return json.loads(json.dumps(x))


def _keras_layer_or_none(keras_ref, **kwargs):
    made = observe(lambda: keras_ref.layers.IntegerLookup(**kwargs))
    if made.__class__.__name__ == "Raised":
        assert made.type == "ImportError" and "TensorFlow" in made.message  # Keras on torch without TensorFlow
        return None
    return made


@pytest.mark.parametrize("case, kwargs, x, expected", DOC_EXAMPLES, ids=[c[0] for c in DOC_EXAMPLES])
def test_keras_docstring_examples(keras_ref, case, kwargs, x, expected):
    deliberate("layers.integer-lookup-without-tensorflow")
    layer = IL(**kwargs)
    out = layer(x)
    expected = np.array(expected, dtype="float32" if kwargs.get("output_mode") == "tf_idf" else "int64")
    assert out.dtype == torch.from_numpy(expected).dtype
    assert_same(expected, out.cpu().numpy(), what=case)
    ref = _keras_layer_or_none(keras_ref, **kwargs)
    if ref is not None:  # TensorFlow is installed: Keras' own layer too
        assert_same(to_numpy(keras_ref, ref(x)), out.cpu().numpy(), what=case)


def test_adapt_orders_by_count_then_by_the_larger_token(keras_ref):
    layer = IL()
    layer.adapt(DATA)  # the docstring's example: 42 twice, then 1138 > 1000 > 36 > 12 once each
    assert layer.get_vocabulary() == [-1, 42, 1138, 1000, 36, 12]
    np.testing.assert_array_equal(layer(DATA).numpy(), [[5, 2, 1], [1, 3, 4]])
    ties = np.array([[1, 2, 3, 3], [4, 4, 5, 2], [7, 7, 7, 9]])  # 7: 3; 4, 3, 2: 2 each; 9, 5, 1: once
    layer = IL()
    layer.adapt(ties)
    assert layer.get_vocabulary(include_special_tokens=False) == [7, 4, 3, 2, 9, 5, 1]
    capped = IL(max_tokens=4, mask_token=0)  # mask + OOV + the two most frequent
    capped.adapt(np.concatenate([ties, [[0, 0, 0, 0], [-1, -1, -1, -1]]]))  # special tokens are not counted
    assert capped.get_vocabulary() == [0, -1, 7, 4] and capped.vocabulary_size() == 4
    np.testing.assert_array_equal(capped(np.array([[0, 7, 4, 3]])).numpy(), [[0, 2, 3, 1]])
    batches = IL()
    batches.adapt(iter([ties[:1], ties[1:], np.array([[100]] * 9)]), steps=2)  # the third batch is not read
    assert batches.get_vocabulary() == layer.get_vocabulary()
    listed = IL()
    listed.adapt([3, 3, 5])  # a list of tokens (rank 1: one token per document)
    assert listed.get_vocabulary() == [-1, 3, 5]


def test_mask_and_oov_layout_in_each_mode():
    vocab = [5, 6, 7]
    ints = IL(vocabulary=vocab, mask_token=0, num_oov_indices=2)
    assert ints.get_vocabulary() == [0, -1, -1, 5, 6, 7] and ints.vocabulary_size() == 6
    np.testing.assert_array_equal(ints(np.array([[0, 5, 7, 8, 9]])).numpy(), [[0, 3, 5, 1, 2]])  # 8 % 2, 9 % 2
    np.testing.assert_array_equal(ints(np.array([-3])).numpy(), [1 + (-3 % 2)])  # a floor modulo
    hot = IL(vocabulary=vocab, mask_token=0, output_mode="multi_hot")
    assert hot.get_vocabulary() == [-1, 5, 6, 7]  # no mask index outside "int" mode
    np.testing.assert_array_equal(hot(np.array([[0, 0, 5, 9]])).numpy(), [[1, 1, 0, 0]])  # the mask is dropped
    np.testing.assert_array_equal(
        IL(vocabulary=vocab, mask_token=0, output_mode="one_hot")(np.array([[0], [6]])).numpy(),
        [[0, 0, 0, 0], [0, 0, 1, 0]],
    )
    inverse = IL(vocabulary=ints.get_vocabulary(), mask_token=0, num_oov_indices=2, invert=True)
    np.testing.assert_array_equal(inverse(ints(np.array([[0, 5, 7, 8]]))).numpy(), [[0, 5, 7, -1]])
    assert IL(vocabulary=vocab, invert=True, oov_token=99)(np.array([0, 4])).tolist() == [99, 99]
    assert IL(vocabulary=vocab)(torch.tensor(6)).tolist() == 2  # a scalar stays a scalar


def test_num_oov_indices_zero_refuses_an_unknown_token():
    deliberate("layers.integer-lookup-without-tensorflow")
    layer = IL(vocabulary=[5, 6], num_oov_indices=0)
    np.testing.assert_array_equal(layer(np.array([[5, 6]])).numpy(), [[0, 1]])
    with pytest.raises(ValueError, match=r"When `num_oov_indices=0` all inputs should be in vocabulary, found OOV"):
        layer(np.array([[5, 9]]))
    inp = tk.Input((2,), dtype="int64")  # building a model on placeholder values raises nothing
    model = tk.Model(inp, layer(inp))
    np.testing.assert_array_equal(model.predict(np.array([[6, 5]]), verbose=0), [[1, 0]])


def test_tf_idf_adapt_weights():
    data = np.array([[1, 1, 2], [2, 3, 3], [1, 4, 4]])  # three documents
    layer = IL(output_mode="tf_idf")
    layer.adapt(data)
    assert layer.get_vocabulary() == [-1, 1, 4, 3, 2]  # 1 three times; 4, 3, 2 twice each
    docs = {1: 2, 4: 1, 3: 1, 2: 2}  # the documents holding each token
    idf = [np.log(1 + 3 / (1 + docs[t])) for t in (1, 4, 3, 2)]
    expected_weights = np.array([np.mean(np.float32(idf)), *idf], dtype="float32")
    np.testing.assert_allclose(layer.idf_weights.numpy(), expected_weights, rtol=1e-6)
    counts = np.array([[0, 2, 0, 0, 1]], dtype="float32")  # the counts of [1, 1, 2]
    np.testing.assert_allclose(layer(data[:1]).numpy(), counts * expected_weights, rtol=1e-6)
    padded = IL(output_mode="tf_idf", max_tokens=8, pad_to_max_tokens=True)
    padded.adapt(data)
    assert padded(data).shape == (3, 8) and padded.idf_weights.shape == (8,)
    np.testing.assert_array_equal(padded.idf_weights.numpy()[5:], 0)


def test_vocabulary_from_a_file_and_its_config(tmp_path):
    path = tmp_path / "vocab.txt"
    path.write_text("12\n36\n1138\n42\n\n")
    layer = IL(vocabulary=str(path))
    assert layer.get_vocabulary() == [-1, *VOCAB]
    np.testing.assert_array_equal(layer(DATA).numpy(), [[1, 3, 4], [4, 0, 2]])
    assert layer.get_config()["vocabulary"] is None and layer.get_config()["vocabulary_size"] == 5
    with pytest.raises(ValueError, match="does not exist"):
        IL(vocabulary=str(tmp_path / "missing.txt"))
    with pytest.raises(ValueError, match="not read files named in a config"):
        IL.from_config({**layer.get_config(), "vocabulary": str(path)})


KERAS_CONFIG_KEYS = [
    "name",
    "trainable",
    "dtype",
    "invert",
    "max_tokens",
    "num_oov_indices",
    "oov_token",
    "mask_token",
    "output_mode",
    "sparse",
    "pad_to_max_tokens",
    "vocabulary_dtype",
    "idf_weights",
    "vocabulary",
    "vocabulary_size",
    "oov_method",
    "salt",
]  # fmt: skip  (index_lookup.py's get_config, after the base layer's entries)


def test_config_is_keras_and_rebuilds_the_layer(keras_ref):
    layer = IL(vocabulary=np.array(VOCAB), mask_token=0, output_mode="count", salt=None)
    cfg = _json(layer.get_config())
    assert list(cfg) == KERAS_CONFIG_KEYS
    assert cfg["vocabulary"] == VOCAB and cfg["vocabulary_size"] == 5 and cfg["output_mode"] == "count"
    again = tk.saving.deserialize_layer(_json(tk.saving.serialize_layer(layer)))
    assert _json(again.get_config()) == {**cfg, "name": cfg["name"]}
    np.testing.assert_array_equal(again(DATA4).numpy(), layer(DATA4).numpy())
    assert IL(output_mode="binary").output_mode == "multi_hot" and IL(output_mode="tf-idf").output_mode == "tf_idf"
    assert IL(salt=7, oov_method="farmhash").get_config()["salt"] == [7, 7]
    # Keras' lookup layers ignore `trainable` and `dtype` from a config
    assert IL(trainable=False, dtype="float16").get_config()["dtype"] == "float32"


def test_an_adapted_lookup_round_trips_in_a_saved_model(tmp_path):
    lookup = IL(mask_token=0)
    lookup.adapt(np.array([[3, 3, 9, 4], [9, 9, 0, 2]]))
    inp = tk.Input((4,), dtype="int64")
    out = tk.layers.Dense(2)(tk.layers.Flatten()(tk.layers.Embedding(lookup.vocabulary_size(), 3)(lookup(inp))))
    model = tk.Model(inp, out)
    model.compile(optimizer="adam", loss="mse")
    x = np.array([[3, 9, 4, 2], [0, 7, 9, 3]])
    model.fit(x, np.zeros((2, 2), "float32"), epochs=1, verbose=0)
    assert model.count_params() == 6 * 3 + 12 * 2 + 2 and lookup.count_params() == 0  # the lookup has no weights
    tk.saving.save_model(model, tmp_path / "m.keras")
    loaded = tk.saving.load_model(tmp_path / "m.keras")
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), model.predict(x, verbose=0))
    again = loaded.layers[1]
    assert type(again) is IL and again.get_vocabulary() == lookup.get_vocabulary() == [0, -1, 9, 3, 4, 2]
    assert again.get_config()["vocabulary"] is None  # an adapted vocabulary travels with the weights
    fresh = IL.from_config(lookup.get_config())  # a config alone has no tokens yet: all OOV, as in Keras
    assert fresh.vocabulary_size() == 2 and fresh(np.array([3])).tolist() == [1]
    fresh.adapt(np.array([[5]]))  # and it can be adapted again
    assert fresh.get_vocabulary() == [0, -1, 5]


def test_a_config_cannot_ask_for_more_tokens_than_the_file_holds():
    forged = {**IL(vocabulary=VOCAB).get_config(), "vocabulary": None, "vocabulary_size": 10**12}
    with tk.layers.layer.weight_budget(100, source="a forged file"), pytest.raises(ValueError, match="forged file"):
        IL.from_config(forged)  # refused before anything is allocated
    with tk.layers.layer.weight_budget(100):
        assert IL.from_config({**forged, "vocabulary_size": 50}).vocabulary_size() == 1  # placeholder: no tokens yet


def test_tf_idf_weights_round_trip_in_a_saved_model(tmp_path):
    lookup = IL(output_mode="tf_idf")
    lookup.adapt(np.array([[1, 1, 2], [2, 3, 3], [1, 4, 4]]))
    inp = tk.Input((3,), dtype="int64")
    model = tk.Model(inp, tk.layers.Dense(1)(lookup(inp)))
    tk.saving.save_model(model, tmp_path / "m.keras")
    loaded = tk.saving.load_model(tmp_path / "m.keras")
    x = np.array([[4, 4, 1]])
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), model.predict(x, verbose=0))
    np.testing.assert_array_equal(loaded.layers[1].idf_weights.numpy(), lookup.idf_weights.numpy())


@pytest.mark.parametrize("mode", ["one_hot", "multi_hot", "count"])
@pytest.mark.parametrize("shape", [(6,), (3, 4), (3, 1), (2, 3, 4)])
def test_encoding_is_keras_encode_categorical_inputs(keras_ref, mode, shape):
    # IndexLookup.call encodes the looked-up indices with Keras' numerical_utils.encode_categorical_inputs: run it
    # (on Keras' torch backend) on the layer's own indices. Axis 1 is reduced for rank 2 and more, as in Keras.
    from keras.src.utils import numerical_utils

    x = np.random.default_rng(1).integers(0, 6, size=shape)
    vocab = [0, 2, 3, 5]
    indices = IL(vocabulary=vocab)(x)
    expected = numerical_utils.encode_categorical_inputs(torch.as_tensor(indices), mode, 5, "int64")
    got = IL(vocabulary=vocab, output_mode=mode)(x)
    assert_same(to_numpy(keras_ref, expected), got.numpy(), what=f"{mode} {shape}")
    declared = tuple(IL(vocabulary=vocab, output_mode=mode).compute_output_shape((None, *shape[1:])))
    if len(shape) > 2 and mode != "one_hot":  # Keras' compute_output_shape keeps axis 1, which its call reduces
        assert declared == (None, shape[1], 5) and tuple(got.shape) == (shape[0], shape[2], 5)
    elif len(shape) > 1:
        assert declared == (None, *got.shape[1:])


def test_farmhash_and_siphash_buckets_are_tensorflows():
    # tf.strings.to_hash_bucket_fast / _strong, TensorFlow's documented examples
    from tritonnn.layers._string_hash import fingerprint64, siphash24

    assert [fingerprint64(s) % 3 for s in (b"Hello", b"TensorFlow", b"2.x")] == [0, 2, 2]
    assert [siphash24((1, 2), s) % 3 for s in (b"Hello", b"TF")] == [2, 0]
    key = (0x0706050403020100, 0x0F0E0D0C0B0A0908)  # the SipHash paper's test vectors
    assert siphash24(key, b"") == 0x726FDB47DD0E0E31 and siphash24(key, bytes(range(15))) == 0xA129CA6149BE45E5
    salted = IL(vocabulary=[10, 20], num_oov_indices=3, oov_method="farmhash", salt=[1, 2])
    expected = [siphash24((1, 2), str(v).encode()) % 3 for v in (7, 123456789, -5)]
    np.testing.assert_array_equal(salted(np.array([7, 123456789, -5])).numpy(), expected)


def test_lookup_layers_have_no_weights_and_run_in_models(keras_ref):
    layer = IL(vocabulary=VOCAB, output_mode="multi_hot")
    assert layer.weights == [] and layer.count_params() == 0
    inp = tk.Input((4,), dtype="int64")
    model = tk.Model(inp, tk.layers.Dense(2)(tk.layers.Lambda(lambda t: t.float())(layer(inp))))
    assert model.output_shape == (None, 2)
    out = model.predict(DATA4, verbose=0)
    assert out.shape == (2, 2)
    assert tuple(layer.compute_output_shape((None, 4))) == (None, 5)
    assert tuple(IL(vocabulary=VOCAB).compute_output_shape((None, 4))) == (None, 4)
    assert tuple(IL(vocabulary=VOCAB, output_mode="one_hot").compute_output_shape((None, 1))) == (None, 5)
    assert tuple(IL(max_tokens=9, pad_to_max_tokens=True, output_mode="count").compute_output_shape((None, 3))) == (
        None,
        9,
    )


BAD = [
    (ValueError, lambda: IL(max_tokens=1)),
    (ValueError, lambda: IL(num_oov_indices=-1)),
    (ValueError, lambda: IL(sparse=True)),
    (ValueError, lambda: IL(vocabulary_dtype="int32")),
    (ValueError, lambda: IL(pad_to_max_tokens=True)),
    (ValueError, lambda: IL(oov_method="modulo")),
    (ValueError, lambda: IL(salt=3)),  # salt without farmhash
    (ValueError, lambda: IL(salt="x", oov_method="farmhash")),
    (ValueError, lambda: IL(output_mode="hot")),
    (ValueError, lambda: IL(invert=True, output_mode="multi_hot")),
    (ValueError, lambda: IL(idf_weights=[1.0])),
    (ValueError, lambda: IL(vocabulary=VOCAB, output_mode="tf_idf")),
    (ValueError, lambda: IL(vocabulary=[1, 2, 1])),
    (ValueError, lambda: IL(vocabulary=[])),
    (ValueError, lambda: IL(vocabulary=[1, 0, 2], mask_token=0)),
    (ValueError, lambda: IL(vocabulary=[1, -1, 2], invert=True)),
    (ValueError, lambda: IL(vocabulary=[1, 2, 3], max_tokens=3)),
    (ValueError, lambda: IL(vocabulary=VOCAB, output_mode="tf_idf", idf_weights=[1.0, 2.0])),
    (ValueError, lambda: IL(vocabulary=VOCAB).adapt(DATA)),
    (ValueError, lambda: IL(foo=1)),
    (ValueError, lambda: IL(vocabulary=[1.5, 2.0])),
    (RuntimeError, lambda: IL(output_mode="multi_hot")(DATA)),
    (RuntimeError, lambda: _readapt_changes_size()),
]


def _readapt_changes_size():
    layer = IL(output_mode="count")
    layer.adapt(np.array([[1, 2]]))
    layer.adapt(np.array([[1, 2, 3]]))  # the encoded width cannot change once set


@pytest.mark.parametrize("error, make", BAD, ids=[f"bad-{i}" for i in range(len(BAD))])
def test_bad_arguments_raise_the_errors_of_keras_source(error, make):
    with pytest.raises(error):
        make()
