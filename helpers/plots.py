"""Plotting boilerplate: figures sized for GitHub's 900 px (WIDTH inches at DPI, text ≥ 9 pt)."""

import inspect
import io
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
from IPython import display
from matplotlib.colors import to_rgb
from PIL import Image

from helpers.alexnet import ORIGINAL_CONVS, ORIGINAL_DENSE
from helpers.files import write_atomic

DPI = 100
WIDTH = 9.0  # inches: WIDTH * DPI = the 900 px GitHub gives a notebook's figures
MAX_PNG_BYTES = 400_000  # a photo figure larger than this is saved with fewer levels per channel
CLASS_COLORS = {"cat": "tab:orange", "dog": "tab:blue"}  # each class's colour in every figure
plt.rcParams.update({"font.size": 10, "axes.titlesize": 11, "axes.labelsize": 10,
                     "xtick.labelsize": 9, "ytick.labelsize": 9, "legend.fontsize": 9,
                     "figure.titlesize": 12, "figure.dpi": DPI, "savefig.dpi": DPI})
pd.set_option("display.max_colwidth", None)  # tables show whole cells: hardware names are long


def save(fig, figures_dir: str | Path, name: str) -> Path:
    """Save `fig` as figures_dir/name.png: charts with a palette, photos full colour (unbanded)."""
    path = Path(figures_dir) / f"{name}.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    buffer = io.BytesIO()
    fig.savefig(buffer, dpi=DPI, bbox_inches="tight", format="png")
    rgb = Image.open(buffer).convert("RGB")
    photos = any(np.ndim(image.get_array()) == 3 for ax in fig.axes for image in ax.get_images())
    pixels = np.asarray(rgb, dtype="float64")
    candidates = ((Image.fromarray(np.clip(np.round(pixels / step) * step, 0, 255).astype("uint8"))
                   for step in (1, 2, 4, 8)) if photos else [rgb.quantize(256)])
    for candidate in candidates:  # 8, 7, 6, then 5 bits per channel
        encoded = io.BytesIO()
        candidate.save(encoded, format="png", optimize=True, dpi=(DPI, DPI))
        if encoded.tell() <= MAX_PNG_BYTES:
            break
    write_atomic(path, lambda temporary: temporary.write_bytes(encoded.getvalue()))
    return path


def show(fig, figures_dir: str | Path, name: str) -> None:
    """Save `fig`, show that PNG inline and close the figure: the notebook shows figures/' file."""
    display.display(display.Image(filename=save(fig, figures_dir, name)))
    plt.close(fig)


def show_source(obj) -> None:
    """Display the source of a function or class from helpers, syntax-highlighted."""
    display.display(display.Code(inspect.getsource(obj), language="python"))


def image_grid(images, titles, ncols: int = 6, title: str = "", size: float = 1.5, colors=None):
    """A grid of photos (uint8 arrays or PIL images) with a small title above each."""
    nrows = -(-len(images) // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(ncols * size, nrows * (size + 0.55)),
                             squeeze=False, layout="constrained")  # room for the suptitle
    for i, ax in enumerate(axes.flat):
        ax.axis("off")
        if i < len(images):
            ax.imshow(np.asarray(images[i]))
            ax.set_title(titles[i], fontsize=9, color=(colors[i] if colors else "black"))
    fig.suptitle(title)
    return fig


def learning_curves(history, best_epoch: int, title: str = "Learning curves"):
    """Accuracy, loss and learning rate per epoch (history indexed by epoch), best epoch marked,
    and the epochs of a progressive run's smaller photos shaded, the smallest darkest."""
    fig, (acc, loss, lr) = plt.subplots(1, 3, figsize=(WIDTH, 3.4))
    sizes = history.get("image_size", pd.Series(dtype=float))
    smaller = sizes[sizes < sizes.max()]
    for ax in (acc, loss, lr):
        ax.xaxis.set_major_locator(plt.MaxNLocator(integer=True))
        for i, (size, epochs) in enumerate(smaller.groupby(smaller)):
            ax.axvspan(epochs.index.min() - 0.5, epochs.index.max() + 0.5, color="grey",
                       alpha=0.12 * (smaller.nunique() - i), label=f"{size:.0f} px photos")
    for ax, metric in ((acc, "accuracy"), (loss, "loss")):
        ax.plot(history[[metric, f"val_{metric}"]], "o-", label=["train", "validation"])  # x: index
        ax.axvline(best_epoch, color="grey", linestyle="--", label=f"best epoch ({best_epoch})")
        ax.set(xlabel="epoch", ylabel=metric, title=metric.capitalize())
        ax.legend()
    lr.plot(history["learning_rate"], "o-", color="tab:green")
    lr.set(xlabel="epoch", ylabel="learning rate (end of epoch)", title="Learning rate")
    lr.ticklabel_format(axis="y", style="sci", scilimits=(0, 0))
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def confusion_heatmaps(counts, class_names, title: str = "Confusion matrix"):
    """Side by side: counts, and rows normalised to 1 (the share of each true class)."""
    normalised = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)
    fig, axes = plt.subplots(1, 2, figsize=(8, 3.8))
    for ax, data, fmt, sub in ((axes[0], counts, ",d", "counts"),
                               (axes[1], normalised, ".3f", "normalised by true class")):
        sns.heatmap(data, annot=True, fmt=fmt, cmap="Blues", cbar=False, square=True, ax=ax,
                    xticklabels=class_names, yticklabels=class_names, annot_kws={"size": 11})
        ax.set(xlabel="predicted class", ylabel="true class", title=sub)
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def box_3d(ax, x: float, height: float, width: float, depth: float, color, gid: str) -> float:
    """A shaded cuboid, front centred on y = 0, top and side receding 45°; returns their rise."""
    dx = dy = depth * 0.5**0.5
    bottom, top, right = -height / 2, height / 2, x + width
    top_face = [(x, top), (right, top), (right + dx, top + dy), (x + dx, top + dy)]
    side_face = [(right, bottom), (right + dx, bottom + dy), (right + dx, top + dy), (right, top)]
    for face, shade in ((plt.Rectangle((x, bottom), width, height), 1.0),
                        (plt.Polygon(top_face), 1.2), (plt.Polygon(side_face), 0.75)):
        ax.add_patch(face).set(facecolor=np.clip(np.array(to_rgb(color)) * shade, 0, 1),
                               edgecolor="black", linewidth=0.7, gid=gid)
    return dy


def architecture_diagram(model, title: str = "AlexNet, drawn to scale"):
    """The model drawn to scale as in the 2012 paper; each shape's patches have gid = its layer."""
    stages, steps = [("input", tuple(model.inputs[0].shape[1:]), "")], []
    for layer in model.layers:  # (name, output shape, the steps leading to it) per shape drawn
        kind = type(layer).__name__
        if kind == "MaxPooling2D":
            steps.append(f"pool {layer.pool_size[0]}×{layer.pool_size[1]}/{layer.strides[0]}")
        elif kind == "Flatten":
            steps.append(f"flatten {int(np.prod(layer.output.shape[1:])):,}")
        elif kind in ("Conv2D", "Dense"):
            steps.append(f"conv {layer.kernel_size[0]}×{layer.kernel_size[1]}/{layer.strides[0]}"
                         if kind == "Conv2D" else "dense")
            stages.append((layer.name, tuple(layer.output.shape[1:]), "\n".join(steps)))
            steps = []
    side = stages[0][1][0]
    widest = max(max(c.filters for c in ORIGINAL_CONVS),  # 2012 scale: variants compare by eye
                 *(shape[-1] for _, shape, _ in stages if len(shape) == 3))
    most_units = max(max(ORIGINAL_DENSE), *(shape[0] for _, shape, _ in stages if len(shape) == 1))
    tall, thick, bar, depth = 2.0, 0.45, 0.12, 0.5  # inches; receding depth = 0.5 x height
    widths = [thick * shape[-1] / widest + depth * tall * shape[0] / side * 0.5**0.5
              if len(shape) == 3 else bar for _, shape, _ in stages]
    gap = (WIDTH - 0.3 - sum(widths)) / (len(stages) - 1)
    ax = plt.figure(figsize=(WIDTH, 4.2)).add_axes(  # 1 data unit = 1 inch: text and boxes agree
        (0, 0, 1, 1), xlim=(0, WIDTH), aspect="equal",
        ylim=(-tall / 2 - 1.2, tall / 2 + depth * tall * 0.5**0.5 + 0.9))
    x, previous_right = 0.15, None
    for i, (name, shape, step) in enumerate(stages):
        if len(shape) == 3:
            height = tall * shape[0] / side
            dy = box_3d(ax, x, height, thick * shape[-1] / widest, depth * height,
                        "0.88" if name == "input" else "tab:blue", name)
            label = "×".join(map(str, shape))
        elif i < len(stages) - 1:
            height, dy = tall * shape[0] / most_units, 0.0
            ax.add_patch(plt.Rectangle((x, -height / 2), bar, height, facecolor="tab:orange",
                                       edgecolor="black", linewidth=0.7, gid=name))
            label = f"{shape[0]:,}"
        else:  # the output: a unit or a few, a dot rather than a bar too thin to see
            height, dy = bar, 0.0
            ax.add_patch(plt.Circle((x + bar / 2, 0), bar / 2, facecolor="tab:green",
                                    edgecolor="black", gid=name))
            label = f"{shape[0]:,} unit" + ("s" if shape[0] > 1 else "")
        right = x + widths[i]
        ax.text((x + right) / 2, height / 2 + dy + 0.08, f"{name}\n{label}", ha="center",
                va="bottom", fontsize=9)
        if previous_right is not None:
            ax.annotate("", xy=(x - 0.04, 0), xytext=(previous_right + 0.04, 0),
                        arrowprops={"arrowstyle": "->", "color": "dimgrey"})
            ax.text((previous_right + x) / 2, -tall / 2 - 0.1, step, ha="center", va="top",
                    fontsize=9, color="dimgrey")
        previous_right, x = right, right + gap
    ax.text(0.15, -tall / 2 - 0.7, f"To scale: box height and depth ∝ side ({side} px = "
            f"{tall:g} in), box width ∝ channels ({widest:,} = {thick:g} in); bar height ∝ "
            f"units ({most_units:,} = {tall:g} in).\nconv k×k/s: a k×k kernel at stride s; "
            "pool 3×3/2: max pooling.", fontsize=9, va="top")
    ax.text(0.15, tall / 2 + depth * tall * 0.5**0.5 + 0.55, title, fontsize=12, va="bottom")
    ax.axis("off")
    return ax.figure
