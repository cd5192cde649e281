"""AlexNet in Keras 3 (any backend): one builder for the three variants the series compares."""

from collections import namedtuple
from dataclasses import dataclass

import keras

from helpers.config import BATCH_NORM_MOMENTUM, INPUT_SIZE

# One convolution block: conv, then optional max-pool 3/2 and dropout (in variants that have it).
ConvSpec = namedtuple("ConvSpec", "filters kernel stride padding pool dropout")
# The 2012 layout as Keras tutorials write it (INPUT_SIZE x INPUT_SIZE x 3, one GPU, no LRN).
ORIGINAL_CONVS = (ConvSpec(96, 11, 4, "valid", pool=True, dropout=True),
                  ConvSpec(256, 5, 1, "same", pool=True, dropout=True),
                  ConvSpec(384, 3, 1, "same", pool=False, dropout=False),
                  ConvSpec(384, 3, 1, "same", pool=False, dropout=False),
                  ConvSpec(256, 3, 1, "same", pool=True, dropout=True))
ORIGINAL_DENSE = (4096, 4096)


@dataclass(frozen=True)
class Variant:
    """What differs between variants (the defaults are "bn")."""

    width: float = 1.0  # multiplier on the conv filters and dense units
    batch_norm: bool = True
    conv_dropout: float = 0.1
    dense_dropout: float = 0.5
    weight_decay: float = 2e-4


VARIANTS = {"original": Variant(batch_norm=False, conv_dropout=0.0, weight_decay=0.0),
            "bn": Variant(), "compact": Variant(width=0.25)}


def head_activation(classes: int, activation: str | None = None) -> str:
    """The output activation: sigmoid for 1 unit, softmax for more; never a 1-unit softmax."""
    if classes < 1:
        raise ValueError(f"classes must be at least 1, got {classes}")
    activation = activation or ("sigmoid" if classes == 1 else "softmax")
    if activation == "softmax" and classes == 1:
        raise ValueError("a 1-unit softmax always outputs 1.0 (exp(z)/exp(z)): use classes=1 "
                         "with sigmoid and binary cross-entropy, or classes=2 with softmax")
    if activation == "sigmoid" and classes > 2:
        raise ValueError(f"sigmoid scores each of the {classes} classes on its own; for one "
                         "label per photo use softmax")
    if activation not in ("sigmoid", "softmax"):
        raise ValueError(f"unknown output activation {activation!r}: use sigmoid or softmax")
    return activation


def head_loss(classes: int, activation: str, label_smoothing: float = 0.0) -> keras.losses.Loss:
    """The head's loss: binary cross-entropy for a sigmoid, categorical (one-hot) for a softmax."""
    sigmoid = head_activation(classes, activation) == "sigmoid"
    loss = keras.losses.BinaryCrossentropy if sigmoid else keras.losses.CategoricalCrossentropy
    return loss(label_smoothing=label_smoothing)


def build_alexnet(variant: str = "bn", classes: int = 1, activation: str | None = None,
                  image_size: int = INPUT_SIZE, augmentation: keras.Layer | None = None,
                  weight_decay: float | None = None,
                  batch_norm_momentum: float = BATCH_NORM_MOMENTUM,
                  conv_dropout: float | None = None, dense_dropout: float | None = None,
                  name: str | None = None) -> keras.Model:
    """AlexNet for raw 0-255 RGB input. `classes=1` gives a sigmoid P(dog) head, N > 1 a
    softmax over N classes; `augmentation` (a layer) runs first, in training only. Weight decay
    and dropout rates left at None are the variant's."""
    if variant not in VARIANTS:
        raise ValueError(f"unknown variant {variant!r}; choose one of {sorted(VARIANTS)}")
    spec = VARIANTS[variant]
    activation = head_activation(classes, activation)
    decay = spec.weight_decay if weight_decay is None else weight_decay
    regularizer = keras.regularizers.L2(decay) if decay else None
    conv_rate = spec.conv_dropout if conv_dropout is None else conv_dropout
    dense_rate = spec.dense_dropout if dense_dropout is None else dense_dropout

    inputs = keras.Input((image_size, image_size, 3), name="rgb_0_255")
    x = augmentation(inputs) if augmentation is not None else inputs
    x = keras.layers.Rescaling(1 / 255, name="rescale")(x)
    for i, conv in enumerate(ORIGINAL_CONVS, start=1):
        filters = max(8, round(conv.filters * spec.width))
        x = keras.layers.Conv2D(filters, conv.kernel, strides=conv.stride, padding=conv.padding,
                                kernel_regularizer=regularizer, name=f"conv{i}")(x)
        x = _activate(x, spec.batch_norm, batch_norm_momentum, f"conv{i}")
        if conv.pool:
            x = keras.layers.MaxPooling2D(3, strides=2, name=f"pool{i}")(x)
        if conv.dropout and conv_rate:
            x = keras.layers.Dropout(conv_rate, name=f"drop_conv{i}")(x)
    x = keras.layers.Flatten(name="flatten")(x)
    for i, units in enumerate(ORIGINAL_DENSE, start=6):
        x = keras.layers.Dense(max(8, round(units * spec.width)), kernel_regularizer=regularizer,
                               name=f"fc{i}")(x)
        x = _activate(x, spec.batch_norm, batch_norm_momentum, f"fc{i}")
        if dense_rate:
            x = keras.layers.Dropout(dense_rate, name=f"drop_fc{i}")(x)
    # The output stays float32 under mixed precision so probabilities and the loss are exact.
    outputs = keras.layers.Dense(classes, activation=activation, dtype="float32", name="output")(x)
    return keras.Model(inputs, outputs, name=name or f"alexnet_{variant}")


def _activate(x, batch_norm: bool, momentum: float, name: str):
    """ReLU, preceded by batch normalisation in the variants that use it."""
    if batch_norm:
        x = keras.layers.BatchNormalization(momentum=momentum, name=f"{name}_bn")(x)
    return keras.layers.ReLU(name=f"{name}_relu")(x)
