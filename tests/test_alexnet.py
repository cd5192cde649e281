"""helpers.alexnet and helpers.params: the architecture, its parameter counts and the CLI."""

import os
import subprocess
import sys

import keras
import numpy as np
import pytest
from conftest import ROOT

from helpers.alexnet import (
    BATCH_NORM_MOMENTUM,
    VARIANTS,
    build_alexnet,
    head_activation,
    head_loss,
)
from helpers.data import augmentation
from helpers.params import layer_row, parameter_table

# The totals the notebooks publish (notebook 03 and the README).
PUBLISHED_TOTALS = {  # (variant, classes) -> (total, trainable)
    ("original", 1000): (62_378_344, 62_378_344),
    ("original", 2): (58_289_538, 58_289_538),
    ("original", 1): (58_285_441, 58_285_441),
    ("bn", 2): (58_327_810, 58_308_674),
}


def expected_params(layer: keras.Layer) -> int:
    """The textbook formula, computed here from the layer's own configuration."""
    in_channels = layer.input.shape[-1]
    if isinstance(layer, keras.layers.Conv2D):
        kh, kw = layer.kernel_size
        return (kh * kw * in_channels + 1) * layer.filters
    if isinstance(layer, keras.layers.Dense):
        return (in_channels + 1) * layer.units
    if isinstance(layer, keras.layers.BatchNormalization):
        return 4 * in_channels
    return 0


@pytest.mark.parametrize("classes", [1, 2, 1000])
@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_formula_matches_keras_for_every_layer(variant, classes):
    model = build_alexnet(variant, classes=classes)
    rows = parameter_table(model)
    body, total = rows[:-1], rows[-1]
    layers = [layer for layer in model.layers if not isinstance(layer, keras.layers.InputLayer)]
    assert [r["layer"] for r in body] == [layer.name for layer in layers]
    for row, layer in zip(body, layers, strict=True):
        assert row["value"] == row["keras"] == layer.count_params(), row
        assert row["value"] == expected_params(layer), row
    assert total["layer"] == "total"
    assert total["value"] == total["keras"] == model.count_params()
    assert sum(r["keras"] for r in body) == model.count_params()
    trainable = sum(int(np.prod(w.shape)) for w in model.trainable_weights)
    assert total["trainable"] == trainable
    if (variant, classes) in PUBLISHED_TOTALS:
        assert (total["keras"], total["trainable"]) == PUBLISHED_TOTALS[(variant, classes)]
    if not VARIANTS[variant].batch_norm:
        assert total["trainable"] == total["keras"]
    else:  # the moving mean and variance of each batch-norm layer: 2 per channel
        bn_channels = sum(r["k"] for r in body if r["type"] == "BatchNormalization")
        assert total["keras"] - total["trainable"] == 2 * bn_channels


def test_a_formula_that_disagrees_with_keras_raises():
    inputs = keras.Input((16, 16, 3))
    outputs = keras.layers.Conv2D(4, 3, use_bias=False, name="no_bias")(inputs)
    model = keras.Model(inputs, outputs)
    with pytest.raises(AssertionError, match="no_bias"):
        parameter_table(model)
    with pytest.raises(AssertionError, match="Keras counts 108"):
        layer_row(model.layers[-1])


def test_output_shapes_for_227_input():
    model = build_alexnet("original", classes=2)
    shapes = {layer.name: tuple(layer.output.shape[1:]) for layer in model.layers}
    assert shapes["conv1"] == (55, 55, 96)
    assert shapes["pool1"] == (27, 27, 96)
    assert shapes["conv2"] == (27, 27, 256)
    assert shapes["pool2"] == (13, 13, 256)
    assert shapes["conv3"] == (13, 13, 384)
    assert shapes["conv4"] == (13, 13, 384)
    assert shapes["conv5"] == (13, 13, 256)
    assert shapes["pool5"] == (6, 6, 256)
    assert shapes["flatten"] == (9216,)
    assert shapes["fc6"] == shapes["fc7"] == (4096,)
    assert shapes["output"] == (2,)
    table_outputs = {r["layer"]: r["output"] for r in parameter_table(model)}
    assert table_outputs["pool5"] == "6×6×256"
    assert table_outputs["flatten"] == "9,216"


def test_dense_layers_hold_the_parameters_and_convolutions_the_compute():
    rows = parameter_table("original", classes=1000)
    body, total = rows[:-1], rows[-1]
    dense_params = sum(r["keras"] for r in body if r["type"] == "Dense")
    conv_params = sum(r["keras"] for r in body if r["type"] == "Conv2D")
    conv_macs = sum(r["macs"] for r in body if r["type"] == "Conv2D")
    dense_macs = sum(r["macs"] for r in body if r["type"] == "Dense")
    assert dense_params > 0.9 * total["keras"]
    assert conv_params < 0.1 * total["keras"]
    assert conv_macs > 0.9 * total["macs"]
    assert total["macs"] == conv_macs + dense_macs
    # conv1: 55·55 positions × 96 filters × 11·11·3 multiplies each
    conv1 = next(r for r in body if r["layer"] == "conv1")
    assert conv1["macs"] == 55 * 55 * 96 * 11 * 11 * 3
    # a dense layer does one multiply-accumulate per weight
    fc6 = next(r for r in body if r["layer"] == "fc6")
    assert fc6["macs"] == 9216 * 4096


def test_one_unit_softmax_is_refused():
    with pytest.raises(ValueError, match=r"1\.0"):
        build_alexnet("compact", classes=1, activation="softmax", image_size=99)
    with pytest.raises(ValueError, match=r"1\.0"):
        head_activation(1, "softmax")


def test_sigmoid_with_more_than_two_classes_is_refused():
    with pytest.raises(ValueError, match="sigmoid"):
        build_alexnet("compact", classes=3, activation="sigmoid", image_size=99)
    assert head_activation(2, "sigmoid") == "sigmoid"  # two independent scores is allowed


def test_unknown_variant_and_bad_heads_are_refused():
    with pytest.raises(ValueError, match="unknown variant 'nope'"):
        build_alexnet("nope")
    with pytest.raises(ValueError, match="at least 1"):
        build_alexnet("compact", classes=0, image_size=99)
    with pytest.raises(ValueError, match="unknown output activation"):
        head_activation(2, "relu")


def test_default_heads_and_losses():
    assert head_activation(1) == "sigmoid"
    assert head_activation(2) == "softmax"
    assert head_activation(1000) == "softmax"
    assert isinstance(head_loss(1, "sigmoid"), keras.losses.BinaryCrossentropy)
    assert isinstance(head_loss(2, "softmax"), keras.losses.CategoricalCrossentropy)
    smoothed = head_loss(2, "softmax", label_smoothing=0.1)
    assert smoothed.get_config()["label_smoothing"] == pytest.approx(0.1)
    with pytest.raises(ValueError):
        head_loss(1, "softmax")


def test_batch_norm_keeps_short_moving_averages_unless_told_otherwise():
    """0.9, not Keras's default 0.99, whose averages lag behind the training weights."""
    def momenta(model):
        return {layer.momentum for layer in model.layers
                if isinstance(layer, keras.layers.BatchNormalization)}

    assert BATCH_NORM_MOMENTUM == 0.9 != keras.layers.BatchNormalization().momentum
    assert momenta(build_alexnet("bn")) == {0.9}
    assert momenta(build_alexnet("compact", batch_norm_momentum=0.99)) == {0.99}
    assert momenta(build_alexnet("original")) == set()


def test_dropout_rates_are_the_variants_unless_told_otherwise():
    def rates(model):
        return {layer.name: layer.rate for layer in model.layers
                if isinstance(layer, keras.layers.Dropout)}

    assert rates(build_alexnet("compact", image_size=99)) == {
        "drop_conv1": 0.1, "drop_conv2": 0.1, "drop_conv5": 0.1, "drop_fc6": 0.5,
        "drop_fc7": 0.5}
    assert rates(build_alexnet("compact", image_size=99, conv_dropout=0.0,
                               dense_dropout=0.3)) == {"drop_fc6": 0.3, "drop_fc7": 0.3}
    assert rates(build_alexnet("original", image_size=99, dense_dropout=0.0)) == {}


def test_model_takes_raw_pixels_with_rescaling_inside():
    plain = build_alexnet("compact", classes=1, image_size=99)
    assert isinstance(plain.layers[0], keras.layers.InputLayer)
    assert isinstance(plain.layers[1], keras.layers.Rescaling)
    assert plain.layers[1].scale == pytest.approx(1 / 255)
    assert tuple(plain.inputs[0].shape[1:]) == (99, 99, 3)

    augmented = build_alexnet("compact", classes=2, image_size=99,
                              augmentation=augmentation(seed=0))
    assert isinstance(augmented.layers[0], keras.layers.InputLayer)
    assert augmented.layers[1].name == "augmentation"
    assert isinstance(augmented.layers[2], keras.layers.Rescaling)
    # Augmentation adds no parameters: same count as without it.
    assert augmented.count_params() == build_alexnet("compact", classes=2,
                                                     image_size=99).count_params()


@pytest.mark.parametrize(("classes", "activation"), [(1, "sigmoid"), (2, "softmax"),
                                                     (5, "softmax")])
def test_outputs_are_probabilities(classes, activation):
    keras.utils.set_random_seed(0)
    model = build_alexnet("compact", classes=classes, image_size=99,
                          augmentation=augmentation(seed=0))
    assert model.layers[-1].get_config()["activation"] == activation
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, (6, 99, 99, 3)).astype("float32")  # raw 0-255 values
    for training in (False, True):
        probs = keras.ops.convert_to_numpy(model(pixels, training=training))
        assert probs.shape == (6, classes)
        assert probs.dtype == np.float32
        assert np.all(np.isfinite(probs))
        assert np.all((probs >= 0) & (probs <= 1))
        if activation == "softmax":
            np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-5)
    # Inference is deterministic (augmentation and dropout off).
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(model(pixels, training=False)),
                                  keras.ops.convert_to_numpy(model(pixels, training=False)))


def run_cli(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    return subprocess.run([sys.executable, "-m", "helpers", "params", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300)


def test_cli_prints_the_original_1000_class_total():
    result = run_cli("--variant", "original", "--classes", "1000")
    assert result.returncode == 0, result.stderr
    assert "62,378,344" in result.stdout
    assert "Total params: 62,378,344 (trainable 62,378,344, non-trainable 0)" in result.stdout


def test_cli_prints_trainable_and_non_trainable_counts():
    result = run_cli("--variant", "bn", "--classes", "2")
    assert result.returncode == 0, result.stderr
    *table, _, totals = result.stdout.strip().splitlines()
    assert totals == "Total params: 58,327,810 (trainable 58,308,674, non-trainable 19,136)"
    first_words = [line.split()[0] for line in table]
    assert first_words[0] == "layer" and first_words[-1] == "total"
    assert {"conv1", "conv1_bn", "pool5", "fc7", "output"} <= set(first_words)
    assert "(11·11·3 + 1)·96" in table[first_words.index("conv1")]


@pytest.mark.parametrize(("args", "message"), [
    (("--variant", "nope"), "unknown variant 'nope'"),
    (("--classes", "0"), "at least 1"),
])
def test_cli_errors_are_clean(args, message):
    result = run_cli(*args)
    assert result.returncode != 0
    assert "error:" in result.stderr
    assert message in result.stderr
    assert "Traceback" not in result.stderr
    assert "Total params" not in result.stdout
