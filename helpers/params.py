"""Count AlexNet's parameters layer by layer with the formulas, and check them against Keras.

conv (w·h·d + 1)·k · batch norm 4·k (γ, β trainable; moving mean and variance not) ·
dense (d + 1)·k · pooling, dropout, flatten, rescaling, ReLU 0. A formula that disagrees with
Keras's own count raises, so the table in notebook 03 cannot drift from the model.
"""

import keras

from helpers.alexnet import build_alexnet
from helpers.config import INPUT_SIZE


def _shape(tensor) -> tuple:
    """A layer output's shape without the batch dimension."""
    return tuple(tensor.shape[1:])


def layer_row(layer: keras.Layer) -> dict | None:
    """One table row: kernel, d, k, output shape, formula, its value, Keras's count and the
    multiply-accumulates per image. None for the input layer."""
    if isinstance(layer, keras.layers.InputLayer):
        return None
    in_shape, out_shape = _shape(layer.input), _shape(layer.output)
    row = {"layer": layer.name, "type": type(layer).__name__, "kernel": "", "d": "", "k": "",
           "output": "×".join(f"{n:,}" for n in out_shape), "formula": "0", "value": 0,
           "keras": layer.count_params(),
           "trainable": sum(int(w.numpy().size) for w in layer.trainable_weights), "macs": 0}
    if isinstance(layer, keras.layers.Conv2D):
        w, h = layer.kernel_size
        d, k = in_shape[-1], layer.filters
        row.update(kernel=f"{w}×{h}", d=d, k=k, formula=f"({w}·{h}·{d:,} + 1)·{k:,}",
                   value=(w * h * d + 1) * k, macs=out_shape[0] * out_shape[1] * k * w * h * d)
    elif isinstance(layer, keras.layers.Dense):
        d, k = in_shape[-1], layer.units
        row.update(d=d, k=k, formula=f"({d:,} + 1)·{k:,}", value=(d + 1) * k, macs=d * k)
    elif isinstance(layer, keras.layers.BatchNormalization):
        k = in_shape[-1]
        row.update(k=k, formula=f"4·{k:,}", value=4 * k)
    if row["value"] != row["keras"]:
        raise AssertionError(f"{layer.name}: formula {row['formula']} = {row['value']:,} but "
                             f"Keras counts {row['keras']:,}")
    return row


def parameter_table(variant: str | keras.Model = "original", classes: int = 1000,
                    image_size: int = INPUT_SIZE) -> list[dict]:
    """Rows for every layer of a variant (or of a given model), then a "total" row."""
    model = variant if isinstance(variant, keras.Model) else build_alexnet(
        variant, classes=classes, image_size=image_size)
    rows = [row for layer in model.layers if (row := layer_row(layer)) is not None]
    total = {"layer": "total", "type": "", "kernel": "", "d": "", "k": "", "output": "",
             "formula": "", **{key: sum(r[key] for r in rows)
                               for key in ("value", "keras", "trainable", "macs")}}
    if total["keras"] != model.count_params():
        raise AssertionError(f"rows add up to {total['keras']:,}, model has "
                             f"{model.count_params():,}")
    return rows + [total]


def format_table(rows: list[dict]) -> str:
    """The table as aligned text with thousands separators, then the totals line."""
    headers = ["layer", "type", "kernel", "d", "k", "output", "formula", "value", "keras", "macs"]
    cells = [[f"{r[h]:,}" if isinstance(r[h], int) else str(r[h]) for h in headers] for r in rows]
    widths = [max(len(h), *(len(c[i]) for c in cells)) for i, h in enumerate(headers)]
    numeric = {"d", "k", "value", "keras", "macs"}

    def line(values):
        return "  ".join(v.rjust(w) if h in numeric else v.ljust(w)
                         for h, v, w in zip(headers, values, widths, strict=True))

    total = rows[-1]
    return "\n".join([line(headers), line(["-" * w for w in widths]), *map(line, cells), "",
                      f"Total params: {total['keras']:,} (trainable {total['trainable']:,}, "
                      f"non-trainable {total['keras'] - total['trainable']:,})"])
