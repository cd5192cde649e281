"""helpers.plots: figures sized for GitHub (DPI, width, text size), photos saved in full colour
and charts with a palette, one colour per class, and the architecture diagram drawn to the
model's shapes."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pandas as pd
import pytest
from matplotlib.colors import to_rgb
from matplotlib.text import Text
from PIL import Image

from helpers import plots
from helpers.alexnet import build_alexnet


def smooth_photos(count: int, size: int = 64) -> np.ndarray:
    """Photo-like uint8 images: colour gradients, the kind a 256-colour palette bands."""
    ramp = np.linspace(0, 1, size)
    photos = []
    for i in range(count):
        red = np.add.outer(ramp, ramp) / 2
        green = np.outer(ramp, np.ones(size)) * (i + 1) / count
        blue = np.outer(np.ones(size), ramp[::-1])
        photos.append(np.uint8(255 * np.stack([red, green, blue], axis=-1)))
    return np.stack(photos)


def chart_figures():
    """One figure from each chart helper, on small made-up data."""
    history = pd.DataFrame({"accuracy": [0.6, 0.7], "val_accuracy": [0.55, 0.65],
                            "loss": [0.7, 0.6], "val_loss": [0.72, 0.66],
                            "learning_rate": [1e-3, 5e-4]}, index=[1, 2])
    return {
        "learning_curves": plots.learning_curves(history, 2),
        "confusion": plots.confusion_heatmaps(np.array([[90, 10], [20, 80]]), ["cat", "dog"]),
    }


def test_figures_fit_githubs_width_at_100_dpi_with_text_of_at_least_9_pt(tmp_path):
    for name, fig in chart_figures().items():
        small = [t.get_text() for t in fig.findobj(Text)
                 if t.get_text().strip() and t.get_fontsize() < 9]
        assert not small, f"{name}: text below 9 pt: {small}"
        path = plots.save(fig, tmp_path, name)
        with Image.open(path) as image:
            assert image.info["dpi"] == pytest.approx((plots.DPI, plots.DPI), abs=0.5)
            assert image.width <= plots.WIDTH * plots.DPI + 40, name
        matplotlib.pyplot.close(fig)
    assert plots.DPI >= 100


def test_learning_curves_shade_each_stage_of_smaller_photos():
    history = pd.DataFrame({"accuracy": [0.6, 0.7, 0.8, 0.9], "val_accuracy": [0.5, 0.6, 0.7, 0.8],
                            "loss": [0.7, 0.6, 0.5, 0.4], "val_loss": [0.8, 0.7, 0.6, 0.5],
                            "learning_rate": [1e-3, 5e-4, 1e-4, 1e-5],
                            "image_size": [128, 128, 180, 227]}, index=[1, 2, 3, 4])
    fig = plots.learning_curves(history, 4)
    for ax in fig.axes:
        shades = {patch.get_label(): patch for patch in ax.patches}
        assert list(shades) == ["128 px photos", "180 px photos"]
        assert (shades["128 px photos"].get_x(), shades["128 px photos"].get_width()) == (0.5, 2)
        assert (shades["180 px photos"].get_x(), shades["180 px photos"].get_width()) == (2.5, 1)
        assert shades["128 px photos"].get_alpha() > shades["180 px photos"].get_alpha()
    one_size = plots.learning_curves(history.assign(image_size=180), 4)
    assert not any(ax.patches for ax in one_size.axes)
    matplotlib.pyplot.close("all")


def test_a_saved_figure_has_the_size_it_was_drawn_at(tmp_path):
    fig = matplotlib.pyplot.figure(figsize=(4, 3))
    fig.add_artist(matplotlib.patches.Rectangle((0, 0), 1, 1, transform=fig.transFigure))
    pad = 2 * matplotlib.rcParams["savefig.pad_inches"]  # the margin "tight" saving adds
    with Image.open(plots.save(fig, tmp_path, "filled")) as image:
        assert image.size == (round((4 + pad) * plots.DPI), round((3 + pad) * plots.DPI))


def test_photo_grids_are_full_colour_and_charts_use_a_palette(tmp_path):
    photos = smooth_photos(12)
    grid = plots.image_grid(photos, [f"photo {i}" for i in range(12)], title="photos")
    with Image.open(plots.save(grid, tmp_path, "grid")) as image:
        assert image.mode == "RGB"
        assert len(image.getcolors(maxcolors=1 << 24)) > 256  # a palette would band these
    assert (tmp_path / "grid.png").stat().st_size <= plots.MAX_PNG_BYTES
    chart = chart_figures()["confusion"]
    with Image.open(plots.save(chart, tmp_path, "chart")) as image:
        assert image.mode == "P"


def test_a_photo_figure_over_the_size_limit_keeps_fewer_levels_not_a_palette(tmp_path,
                                                                            monkeypatch):
    grid = plots.image_grid(smooth_photos(6), [""] * 6)
    full = plots.save(grid, tmp_path, "full").stat().st_size
    monkeypatch.setattr(plots, "MAX_PNG_BYTES", full - 1)
    path = plots.save(grid, tmp_path, "smaller")
    assert path.stat().st_size < full
    with Image.open(path) as image:
        assert image.mode == "RGB"
        pixels = np.asarray(image)
    assert np.all((pixels % 2 == 0) | (pixels == 255))  # 7 bits per channel: even levels


def test_both_classes_have_their_one_colour():
    assert set(plots.CLASS_COLORS) == {"cat", "dog"}
    assert len({to_rgb(color) for color in plots.CLASS_COLORS.values()}) == 2


def front_faces(fig) -> dict[str, tuple[float, float]]:
    """(width, height) of the first patch drawn for each layer: a box's front face, a bar."""
    faces = {}
    for patch in fig.axes[0].patches:
        if patch.get_gid() and patch.get_gid() not in faces:
            if isinstance(patch, matplotlib.patches.Rectangle):
                faces[patch.get_gid()] = (patch.get_width(), patch.get_height())
    return faces


def test_architecture_boxes_scale_with_the_tensor_shapes():
    original, compact = build_alexnet("original"), build_alexnet("compact")
    fig = plots.architecture_diagram(original)
    faces = front_faces(fig)
    assert list(faces) == ["input", "conv1", "conv2", "conv3", "conv4", "conv5", "fc6", "fc7"]
    width, height = zip(*faces.values(), strict=True)
    sides = [227, 55, 27, 13, 13, 13]
    channels = [3, 96, 256, 384, 384, 256]
    assert np.allclose(np.array(height[:6]) / height[0], np.array(sides) / 227)
    assert np.allclose(np.array(width[:6]) / width[3], np.array(channels) / 384)
    assert faces["fc6"] == faces["fc7"]
    texts = " ".join(t.get_text() for t in fig.findobj(Text))
    for label in ("conv 11×11/4", "conv 5×5/1", "conv 3×3/1", "pool 3×3/2", "flatten 9,216",
                  "55×55×96", "4,096"):
        assert label in texts
    small = front_faces(plots.architecture_diagram(compact))
    assert small["conv1"][0] == pytest.approx(faces["conv1"][0] / 4)  # a quarter of the filters
    assert small["conv1"][1] == pytest.approx(faces["conv1"][1])
    assert small["fc6"][1] == pytest.approx(faces["fc6"][1] / 4)  # 1,024 units, not 4,096
    matplotlib.pyplot.close("all")
