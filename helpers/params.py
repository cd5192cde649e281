"""AlexNet's parameters by formula: conv (w·h·d + 1)·k, batch norm 4·k (γ, β trainable), dense
(d + 1)·k, others 0; checked against Keras's count, so notebook 03's table cannot drift."""

import keras

from helpers.alexnet import build_alexnet
from helpers.config import INPUT_SIZE


def layer_row(layer: keras.Layer) -> dict:
    """A layer's row (not the input layer's): kernel, d, k, output, formula, value, count, MACs."""
    d, out_shape = layer.input.shape[-1], tuple(layer.output.shape[1:])
    row = {"layer": layer.name, "type": type(layer).__name__, "kernel": "", "d": "", "k": "",
           "output": "×".join(f"{n:,}" for n in out_shape), "formula": "0", "value": 0,
           "keras": layer.count_params(),
           "trainable": sum(int(w.numpy().size) for w in layer.trainable_weights), "macs": 0}
    if isinstance(layer, keras.layers.Conv2D):
        (w, h), k = layer.kernel_size, layer.filters
        row.update(kernel=f"{w}×{h}", d=d, k=k, formula=f"({w}·{h}·{d:,} + 1)·{k:,}",
                   value=(w * h * d + 1) * k, macs=out_shape[0] * out_shape[1] * k * w * h * d)
    elif isinstance(layer, keras.layers.Dense):
        k = layer.units
        row.update(d=d, k=k, formula=f"({d:,} + 1)·{k:,}", value=(d + 1) * k, macs=d * k)
    elif isinstance(layer, keras.layers.BatchNormalization):
        row.update(k=d, formula=f"4·{d:,}", value=4 * d)
    if row["value"] != row["keras"]:
        raise AssertionError(f"{layer.name}: formula {row['formula']} = {row['value']:,} but "
                             f"Keras counts {row['keras']:,}")
    return row


def parameter_table(variant: str | keras.Model = "original", classes: int = 1000,
                    image_size: int = INPUT_SIZE) -> list[dict]:
    """Rows for every layer of a variant (or of a given model), then a "total" row."""
    model = variant if isinstance(variant, keras.Model) else build_alexnet(
        variant, classes=classes, image_size=image_size)
    rows = [layer_row(layer) for layer in model.layers
            if not isinstance(layer, keras.layers.InputLayer)]
    total = {**dict.fromkeys(rows[0], ""), "layer": "total",
             **{key: sum(r[key] for r in rows) for key in ("value", "keras", "trainable", "macs")}}
    if total["keras"] != (count := model.count_params()):
        raise AssertionError(f"rows add up to {total['keras']:,}, model has {count:,}")
    return rows + [total]

