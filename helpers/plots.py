"""Plotting boilerplate: photo grids, learning curves, confusion matrices, ROC curves.

Every figure gets a title and labelled axes, is shown inline and saved as a PNG under the
run's figures/ folder at a modest DPI, so the rendered notebooks stay small.
"""

import io
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import seaborn as sns
from matplotlib.ticker import MaxNLocator
from PIL import Image

DPI = 72


def save(fig, figures_dir: str | Path, name: str) -> Path:
    """Save `fig` as figures_dir/name.png with a 256-colour palette (photo grids shrink about
    4x, charts lose nothing visible) and return the path."""
    path = Path(figures_dir) / f"{name}.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    buffer = io.BytesIO()
    fig.savefig(buffer, dpi=DPI, bbox_inches="tight", format="png")
    with Image.open(buffer) as image:
        image.convert("RGB").quantize(256).save(path, optimize=True)
    return path


def show(fig, figures_dir: str | Path, name: str) -> None:
    """Save `fig` (see `save`), show that small PNG inline, and close the figure, so the
    notebook embeds the same compact image that lands in figures/."""
    from IPython.display import Image as Picture
    from IPython.display import display

    path = save(fig, figures_dir, name)
    plt.close(fig)
    display(Picture(filename=path))


def image_grid(images, titles, ncols: int = 6, title: str = "", size: float = 1.8,
               colors=None):
    """A grid of photos (uint8 arrays or PIL images) with a small title above each."""
    nrows = -(-len(images) // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(ncols * size, nrows * (size + 0.5)),
                             squeeze=False)
    for i, ax in enumerate(axes.flat):
        ax.axis("off")
        if i < len(images):
            ax.imshow(np.asarray(images[i]))
            ax.set_title(titles[i], fontsize=8, color=(colors[i] if colors else "black"))
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def learning_curves(history, best_epoch: int, title: str = "Learning curves"):
    """Accuracy, loss and learning rate per epoch for train and validation, best epoch marked.
    `history` is a DataFrame indexed by epoch (notebook 05 reads it from history.json)."""
    fig, (acc, loss, lr) = plt.subplots(1, 3, figsize=(14, 3.8))
    for ax, metric, label in ((acc, "accuracy", "accuracy"), (loss, "loss", "loss")):
        ax.plot(history.index, history[metric], "o-", label=f"train {label}")
        ax.plot(history.index, history[f"val_{metric}"], "o-", label=f"validation {label}")
        ax.axvline(best_epoch, color="grey", linestyle="--", label=f"best epoch ({best_epoch})")
        ax.set(xlabel="epoch", ylabel=label, title=label.capitalize())
        ax.legend()
    lr.plot(history.index, history["learning_rate"], "o-", color="tab:green")
    lr.set(xlabel="epoch", ylabel="learning rate (end of epoch)", title="Learning rate")
    lr.ticklabel_format(axis="y", style="sci", scilimits=(0, 0))
    for ax in (acc, loss, lr):
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def confusion_heatmaps(counts, class_names, title: str = "Confusion matrix"):
    """Side by side: counts, and rows normalised to 1 (the share of each true class)."""
    normalised = counts / counts.sum(axis=1, keepdims=True)
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for ax, data, fmt, sub in ((axes[0], counts, "d", "counts"),
                               (axes[1], normalised, ".3f", "normalised by true class")):
        sns.heatmap(data, annot=True, fmt=fmt, cmap="Blues", cbar=False, square=True, ax=ax,
                    xticklabels=class_names, yticklabels=class_names)
        ax.set(xlabel="predicted class", ylabel="true class", title=sub)
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def roc_plot(fpr, tpr, auc: float, title: str = "ROC curve"):
    """True-positive rate against false-positive rate, chance diagonal for reference."""
    fig, ax = plt.subplots(figsize=(4.5, 4.5))
    ax.plot(fpr, tpr, label=f"AlexNet (AUC = {auc:.4f})")
    ax.plot([0, 1], [0, 1], "--", color="grey", label="chance (AUC = 0.5)")
    ax.set(xlabel="false-positive rate (cats called dogs)",
           ylabel="true-positive rate (dogs found)", title=title, xlim=(0, 1), ylim=(0, 1.01))
    ax.legend(loc="lower right")
    fig.tight_layout()
    return fig


def architecture_diagram(model, title: str = "AlexNet, layer by layer"):
    """Boxes for the layers that change the shape (conv, pool, dense), drawn left to right:
    height ~ spatial size, label = output shape and layer name."""
    shaped = [layer for layer in model.layers
              if type(layer).__name__ in ("Conv2D", "MaxPooling2D", "Dense", "Flatten")]
    fig, ax = plt.subplots(figsize=(1.25 * (len(shaped) + 1), 3.6))
    colors = {"Conv2D": "tab:blue", "MaxPooling2D": "tab:grey", "Dense": "tab:orange",
              "Flatten": "tab:green"}
    first = model.inputs[0].shape[1]
    entries = [("input", tuple(model.inputs[0].shape[1:]), "white")]
    entries += [(layer.name, tuple(layer.output.shape[1:]), colors[type(layer).__name__])
                for layer in shaped]
    for x, (name, shape, color) in enumerate(entries):
        side = shape[0] if len(shape) == 3 else 8
        height = 0.3 + 2.2 * (side / first) ** 0.5
        ax.add_patch(plt.Rectangle((x - 0.4, -height / 2), 0.8, height, facecolor=color,
                                   edgecolor="black", alpha=0.75))
        ax.text(x, height / 2 + 0.1, "×".join(map(str, shape)), ha="center", fontsize=7)
        ax.text(x, -height / 2 - 0.25, name, ha="center", fontsize=8)
    for label, color in colors.items():
        ax.bar(0, 0, color=color, label=label)
    ax.set(xlim=(-0.6, len(entries) - 0.4), ylim=(-1.8, 1.9), title=title)
    ax.axis("off")
    ax.legend(loc="lower right", ncols=4, fontsize=8)
    fig.tight_layout()
    return fig
