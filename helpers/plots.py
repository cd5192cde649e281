"""Plotting boilerplate: figures sized for GitHub's 900 px (WIDTH inches at DPI, text ≥ 9 pt)."""

import inspect
import io
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
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


def laid_out(fig, title: str | None = None, **pads):
    """`fig` with `title` above all its panels, spaced by tight_layout."""
    if title is not None:
        fig.suptitle(title)
    fig.tight_layout(**pads)
    return fig


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


def busiest_region(image, side: float) -> tuple[float, float]:
    """(top, left), as fractions of the height and width, of the region `side` of each wide
    where `image` changes most from pixel to pixel: where resizing methods differ most."""
    gray = np.asarray(image, dtype="float32").mean(axis=-1)
    edges = np.abs(np.diff(gray, axis=0))[:, 1:] + np.abs(np.diff(gray, axis=1))[1:]
    height, width = edges.shape
    starts = np.linspace(0, 1 - side, 17)
    detail = {(top, left): edges[round(top * height):round((top + side) * height),
                                 round(left * width):round((left + side) * width)].mean()
              for top in starts for left in starts}
    return max(detail, key=detail.get)


def zoomed_comparison(images, titles, title: str = "", side: float = 0.12):
    """Versions of one photo side by side, and below each the same small region magnified with
    nearest-neighbour display, one block per pixel: the first photo's busiest region."""
    top, left = busiest_region(images[0], side)
    panel = WIDTH / len(images)
    fig, axes = plt.subplots(2, len(images), figsize=(WIDTH, 2 * panel + 1.0), squeeze=False,
                             layout="constrained")
    for image, name, whole, zoom in zip(images, titles, *axes, strict=True):
        image = np.asarray(image)
        height, width = image.shape[:2]
        rows = slice(round(top * height), round((top + side) * height))
        cols = slice(round(left * width), round((left + side) * width))
        whole.imshow(image)
        whole.add_patch(plt.Rectangle((cols.start - 0.5, rows.start - 0.5), cols.stop - cols.start,
                                      rows.stop - rows.start, fill=False, edgecolor="yellow",
                                      linewidth=1.5))
        whole.set_title(f"{name}\n{width}×{height}", fontsize=10)
        zoom.imshow(image[rows, cols], interpolation="nearest")
        zoom.set_title(f"{cols.stop - cols.start}×{rows.stop - rows.start} px, magnified",
                       fontsize=10)
        for ax in (whole, zoom):
            ax.set_xticks([])
            ax.set_yticks([])
    fig.suptitle(title)
    return fig


def throughput_chart(speeds, title: str = "Input pipeline throughput", colors=None):
    """Photos per second ({name: speed}, drawn top to bottom) as horizontal bars on a log
    scale, each labelled with its value."""
    names, values = list(dict(speeds)), [float(speed) for speed in dict(speeds).values()]
    fig, ax = plt.subplots(figsize=(WIDTH, 0.6 * len(values) + 1.4))
    bars = ax.barh(names, values, color=colors or sns.color_palette(n_colors=len(values)))
    ax.bar_label(bars, [f"{value:,.0f} photos/s" for value in values], padding=5, fontsize=10)
    ax.set_xscale("log")
    ax.set_xlim(10 ** np.floor(np.log10(min(values) / 2)), max(values) * 8)  # room for labels
    ax.invert_yaxis()
    ax.tick_params(axis="both", which="both", labelsize=10)
    ax.set_xlabel("photos per second (log scale; higher is better)", fontsize=10)
    return laid_out(fig, title)


def learning_curves(history, best_epoch: int, title: str = "Learning curves"):
    """Accuracy, loss and learning rate per epoch (history indexed by epoch), best epoch marked."""
    fig, (acc, loss, lr) = plt.subplots(1, 3, figsize=(WIDTH, 3.4))
    for ax, metric in ((acc, "accuracy"), (loss, "loss")):
        ax.plot(history[[metric, f"val_{metric}"]], "o-", label=["train", "validation"])  # x: index
        ax.axvline(best_epoch, color="grey", linestyle="--", label=f"best epoch ({best_epoch})")
        ax.set(xlabel="epoch", ylabel=metric, title=metric.capitalize())
        ax.legend()
    lr.plot(history["learning_rate"], "o-", color="tab:green")
    lr.set(xlabel="epoch", ylabel="learning rate (end of epoch)", title="Learning rate")
    lr.ticklabel_format(axis="y", style="sci", scilimits=(0, 0))
    for ax in (acc, loss, lr):
        ax.xaxis.set_major_locator(plt.MaxNLocator(integer=True))
    return laid_out(fig, title)


def confusion_heatmaps(counts, class_names, title: str = "Confusion matrix"):
    """Side by side: counts, and rows normalised to 1 (the share of each true class)."""
    normalised = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)
    fig, axes = plt.subplots(1, 2, figsize=(8, 3.8))
    for ax, data, fmt, sub in ((axes[0], counts, ",d", "counts"),
                               (axes[1], normalised, ".3f", "normalised by true class")):
        sns.heatmap(data, annot=True, fmt=fmt, cmap="Blues", cbar=False, square=True, ax=ax,
                    xticklabels=class_names, yticklabels=class_names, annot_kws={"size": 11})
        ax.set(xlabel="predicted class", ylabel="true class", title=sub)
    return laid_out(fig, title)


def roc_plot(fpr, tpr, auc: float, title: str = "ROC curve", at_half=None, corner=(0.2, 0.8)):
    """True- against false-positive rate, whole and its top-left corner (FPR <= corner[0],
    TPR >= corner[1]) enlarged; at_half: the (FPR, TPR) of the 0.5 threshold, marked if given."""
    fig, axes = plt.subplots(1, 2, figsize=(WIDTH, 5), layout="constrained")
    for ax, (right, bottom) in zip(axes, ((1, 0), corner), strict=True):
        ax.plot(fpr, tpr, label=f"AlexNet (AUC = {auc:.4f})")
        ax.plot([0, 1], [0, 1], "--", color="grey", label="chance (AUC = 0.5)")
        if at_half is not None:
            ax.plot(*at_half, "o", markersize=9, mfc="none", mec="black", mew=1.5,
                    label="threshold 0.5")
        ax.set(xlim=(0, right), ylim=(bottom, 1 + (1 - bottom) / 100), aspect="equal",
               xlabel="false-positive rate (cats called dogs)")
        ax.tick_params(labelsize=10)
        ax.xaxis.set_major_locator(plt.MaxNLocator(5))
        ax.yaxis.set_major_locator(plt.MaxNLocator(5))
    axes[0].add_patch(plt.Rectangle((0, corner[1]), corner[0], 1 - corner[1], fill=False,
                                    linestyle=":", label="enlarged on the right"))
    axes[0].set(title="the whole curve", ylabel="true-positive rate (dogs found)")
    axes[1].set(title=f"its top-left corner: FPR ≤ {corner[0]:g}, TPR ≥ {corner[1]:g}")
    fig.legend(*axes[0].get_legend_handles_labels(), loc="outside lower center", ncols=2,
               fontsize=10)
    fig.suptitle(title)
    return fig


def reliability_diagram(table, ece: float, title: str = "Reliability diagram"):
    """Accuracy against confidence per reliability_bins bin (diagonal: calibrated), photos below."""
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(5.4, 5.6), sharex=True, height_ratios=(3, 1.2))
    width, used = table["high"] - table["low"], table["photos"] > 0
    top.bar(table["low"][used], table["accuracy"][used], width=width[used], align="edge",
            edgecolor="black", color="tab:blue", alpha=0.75, label="accuracy in the bin")
    top.plot(table["confidence"][used], table["confidence"][used], "o", color="tab:red",
             label="mean confidence in the bin")
    top.plot([0.5, 1], [0.5, 1], "--", color="grey", label="perfect calibration")
    top.set(ylabel="accuracy", ylim=(max(0.0, min(0.5, np.nanmin(table["accuracy"])) - 0.05), 1.01),
            title=f"{title}\nexpected calibration error (ECE) {ece:.2%}")
    top.legend(loc="upper left")
    bottom.bar(table["low"], table["photos"], width=width, align="edge", edgecolor="black",
               color="tab:grey")
    bottom.set(xlabel="confidence: P(predicted class)", ylabel="photos", xlim=(0.5, 1))
    bottom.yaxis.set_major_locator(plt.MaxNLocator(3, integer=True))
    return laid_out(fig)


def threshold_plot(table, title: str = "Precision and recall of 'dog' against the threshold"):
    """Precision, recall and accuracy against the P(dog) threshold, the usual 0.5 marked."""
    fig, ax = plt.subplots(figsize=(6.4, 4))
    for column, style in (("precision", "-"), ("recall", "-"), ("accuracy", "--")):
        ax.plot(table["threshold"], table[column], style, label=column)
    ax.axvline(0.5, color="grey", linestyle=":", label="threshold 0.5")
    ax.set(xlabel="threshold: call a photo a dog when P(dog) ≥ threshold", ylabel="share",
           title=title, xlim=(0, 1))
    ax.legend(loc="lower center")
    return laid_out(fig)


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


def filter_grid(filters, title: str = "conv1 filters", ncols: int = 16):
    """Small RGB filters (count, k, k, 3, values 0-1) in a grid, one square per filter."""
    nrows, cell = -(-len(filters) // ncols), min(WIDTH / ncols, 0.6)
    fig, axes = plt.subplots(nrows, ncols, figsize=(ncols * cell, nrows * cell + 0.6),
                             squeeze=False)
    for i, ax in enumerate(axes.flat):
        ax.axis("off")
        if i < len(filters):
            ax.imshow(filters[i], interpolation="nearest")
    return laid_out(fig, title, pad=0.3, h_pad=0.2, w_pad=0.2)


def feature_map_grid(photo, maps: dict, channels: dict, title: str = "Feature maps",
                     scores: dict | None = None):
    """The photo, then a row per layer of its activation's `channels[layer]`, each scaled alone;
    `scores[layer][channel]`, when given, is printed above its map."""
    ncols = max(len(c) for c in channels.values())
    cell = WIDTH / (ncols + 1.5)  # the photo's column is 1.5 maps wide
    fig = plt.figure(figsize=(WIDTH, (cell + 0.1) * len(maps) + 0.4), layout="constrained")
    grid = fig.add_gridspec(len(maps), ncols + 1, width_ratios=[1.5] + [1] * ncols)
    photo_ax = fig.add_subplot(grid[:, 0], anchor="N")
    photo_ax.imshow(photo)
    photo_ax.set_title("the photo", fontsize=10)
    photo_ax.axis("off")
    for row, (name, activation) in enumerate(maps.items()):
        for col, channel in enumerate(channels[name]):
            ax = fig.add_subplot(grid[row, col + 1], xticks=[], yticks=[])
            ax.imshow(activation[..., channel], cmap="viridis")
            score = f": {scores[name][channel]:.2f}" if scores is not None else ""
            ax.set_title(f"channel {channel}{score}", fontsize=10)
            if col == 0:
                ax.set_ylabel(f"{name}\n" + "×".join(map(str, activation.shape)), fontsize=10)
    fig.suptitle(title)
    return fig


def embedding_scatter(points: dict, labels, wrong, class_names, title: str = "fc7 features"):
    """A panel per 2-D map (name -> points): photos coloured by class, mistakes ringed in black."""
    fig, axes = plt.subplots(1, len(points), figsize=(WIDTH, 4.3), squeeze=False)
    labels, wrong = np.asarray(labels), np.asarray(wrong, dtype=bool)
    for ax, (name, xy) in zip(axes.flat, points.items(), strict=True):
        for label, cls in enumerate(class_names[:2]):
            mine = labels == label
            ax.scatter(xy[mine, 0], xy[mine, 1], s=6, alpha=0.5,
                       color=CLASS_COLORS[cls], label=f"{cls} ({mine.sum():,})")
        ax.scatter(xy[wrong, 0], xy[wrong, 1], s=28, facecolors="none", edgecolors="black",
                   linewidths=0.8, label=f"misclassified ({wrong.sum():,})")
        ax.set(title=name, xlabel=f"{name.split()[0]} 1", ylabel=f"{name.split()[0]} 2",
               xticks=[], yticks=[])
    axes.flat[0].legend(loc="best", markerscale=2)
    return laid_out(fig, title)
