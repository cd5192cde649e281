"""What a trained CNN learned (notebook 07): filters, feature maps, Grad-CAM, 2-D features."""

import re

import keras
import numpy as np
from matplotlib import colormaps
from PIL import Image
from scipy import ndimage
from sklearn.neighbors import NearestNeighbors

FEATURES = "fc7_relu"  # the second 4096-unit dense layer, after its ReLU: what the head reads
LAST_CONV = "conv5_relu"  # the last convolution's activations: where Grad-CAM looks
OPPONENT = -0.5  # colour correlation below it: opponent (two random 11x11 planes: 0 ± 0.09)


def conv_activation_names(model: keras.Model) -> list[str]:
    """The ReLU output of every convolution, in order (conv1_relu ... conv5_relu)."""
    return [layer.name for layer in model.layers if re.fullmatch(r"conv\d+_relu", layer.name)]


def receptive_field(model: keras.Model, layer: str) -> tuple[int, int]:
    """(size, stride) in input pixels of a unit of `layer`: the patch it sees, the step between."""
    size, stride = 1, 1
    for current in model.layers:
        window = getattr(current, "kernel_size", None) or getattr(current, "pool_size", None)
        if window is not None and hasattr(current, "strides"):
            size, stride = size + (window[0] - 1) * stride, stride * current.strides[0]
        if current.name == layer:
            return size, stride
    raise ValueError(f"no layer {layer!r} in {model.name}")


def conv_filters(model: keras.Model, layer: str = "conv1") -> np.ndarray:
    """The kernels of an RGB convolution as (filters, k, k, 3) pictures, each stretched to 0-1."""
    kernel = keras.ops.convert_to_numpy(model.get_layer(layer).kernel).astype("float64")
    if kernel.shape[2] != 3:
        raise ValueError(f"{layer} reads {kernel.shape[2]} channels, not RGB: pick the first "
                         "convolution")
    filters = np.moveaxis(kernel, -1, 0)  # (k, k, 3, filters) -> (filters, k, k, 3)
    low = filters.min(axis=(1, 2, 3), keepdims=True)
    span = filters.max(axis=(1, 2, 3), keepdims=True) - low
    return (filters - low) / np.where(span > 0, span, 1)


def _correlations(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pearson correlation of a[i] with b[i] for each i, flattened; 0 where either is constant."""
    a, b = (x.reshape(len(x), -1) for x in (a, b))
    a, b = a - a.mean(axis=1, keepdims=True), b - b.mean(axis=1, keepdims=True)
    scale = np.sqrt((a * a).sum(axis=1) * (b * b).sum(axis=1))
    return np.divide((a * b).sum(axis=1), scale, out=np.zeros(len(a)), where=scale > 0)


def smoothness(filters: np.ndarray) -> np.ndarray:
    """Per filter (count, k, k, 3): the correlation of neighbouring weights, ~0 for random
    weights, towards 1 for blobs, gradients and broad edges."""
    return (_correlations(filters[:, :, :-1], filters[:, :, 1:])
            + _correlations(filters[:, :-1], filters[:, 1:])) / 2


def colour_correlation(filters: np.ndarray) -> np.ndarray:
    """Per filter (count, k, k, 3): the lowest Pearson correlation between two of its colour
    planes. ~1: a grey filter; ~0: random weights; below OPPONENT: colour-opponent (R against G)."""
    pairs = ((0, 1), (0, 2), (1, 2))
    return np.min([_correlations(filters[..., i], filters[..., j]) for i, j in pairs], axis=0)


def layer_outputs(model: keras.Model, images: np.ndarray, names: list[str],
                  batch_size: int = 64) -> dict[str, np.ndarray]:
    """What the layers called `names` output for `images` (inference mode), as float32."""
    probe = keras.Model(model.inputs, {name: model.get_layer(name).output for name in names})
    outputs = probe.predict(images, batch_size=batch_size, verbose=0)
    return {name: np.asarray(outputs[name], "float32") for name in names}


def spatial_contrast(activation: np.ndarray, top: float = 0.1) -> np.ndarray:
    """Per channel of maps (..., h, w, c), after a 3x3 mean that evens out speckle: the share of a
    map's sum in its `top` share of places; `top` if flat, 1 for a lone spot, 0 if all zero."""
    blurred = ndimage.uniform_filter(np.asarray(activation, "float64"),
                                     size=(1,) * (activation.ndim - 3) + (3, 3, 1))
    flat = blurred.reshape(*activation.shape[:-3], -1, activation.shape[-1])
    k = max(1, round(top * flat.shape[-2]))
    total = flat.sum(axis=-2)
    peak = np.sort(flat, axis=-2)[..., -k:, :].sum(axis=-2)
    return np.divide(peak, total, out=np.zeros_like(total), where=total > 0)


def localised_channels(activation: np.ndarray, count: int = 4, top: float = 0.1) -> np.ndarray:
    """Of the channels of an activation (h, w, c) that fire strongly (peak at least the median
    channel's, and not flat), the `count` with the highest spatial contrast, highest first."""
    peaks = activation.max(axis=(0, 1))
    strong = np.flatnonzero((peaks >= np.median(peaks)) & (peaks > activation.min(axis=(0, 1))))
    return strong[np.argsort(-spatial_contrast(activation, top)[strong], kind="stable")][:count]


def grad_cam(model: keras.Model, images: np.ndarray, classes=None,
             layer: str = LAST_CONV) -> np.ndarray:
    """Grad-CAM heat maps (photos, height, width; 0-1) on `layer`'s grid: how much each place
    raised the score of the class (default: the predicted one; 0 = cat, 1 = dog). Uses
    tf.GradientTape, so it needs the TensorFlow backend."""
    if keras.backend.backend() != "tensorflow":
        raise RuntimeError("grad_cam records gradients with tf.GradientTape: run it with "
                           "KERAS_BACKEND=tensorflow")
    import tensorflow as tf

    head = model.get_layer("output")
    # 1. One model, two outputs: the conv activations and the features the head reads.
    grad_model = keras.Model(model.inputs, [model.get_layer(layer).output, head.input])
    images = keras.ops.convert_to_tensor(images)
    with tf.GradientTape() as tape:
        activations, features = grad_model(images, training=False)
        # 2. The class score before the sigmoid/softmax squashes it: the logit.
        logits = keras.ops.matmul(keras.ops.cast(features, "float32"), head.kernel) + head.bias
        score = keras.ops.sum(class_logits(logits, classes))  # photos do not mix: one sum
    # 3. How the score changes with each activation; 4. the mean over the grid weighs each
    # channel; 5. the weighted sum of the channels, ReLU (only what speaks for the class),
    # scaled to 0-1 per photo.
    gradients = keras.ops.cast(tape.gradient(score, activations), "float32")
    weights = keras.ops.mean(gradients, axis=(1, 2))
    heat = keras.ops.relu(keras.ops.einsum("nhwc,nc->nhw",
                                           keras.ops.cast(activations, "float32"), weights))
    heat = keras.ops.convert_to_numpy(heat)
    peak = heat.max(axis=(1, 2), keepdims=True)
    return heat / np.where(peak > 0, peak, 1)


def class_logits(logits, classes=None):
    """Per photo, the logit of `classes` (default: the predicted); cat's is -z for a sigmoid's z."""
    if logits.shape[-1] == 1:
        z = logits[:, 0]
        dog = z >= 0 if classes is None else keras.ops.convert_to_tensor(classes) == 1
        return keras.ops.where(dog, z, -z)
    chosen = keras.ops.argmax(logits, axis=-1) if classes is None else classes
    index = keras.ops.cast(chosen, "int32")[:, None]
    return keras.ops.take_along_axis(logits, index, axis=-1)[:, 0]


def overlay(image: np.ndarray, heat: np.ndarray, alpha: float = 0.45) -> np.ndarray:
    """A 0-1 heat map stretched over the uint8 photo in jet colours (blue = 0, red = 1)."""
    levels = Image.fromarray(np.uint8(255 * np.clip(heat, 0, 1)))
    stretched = np.asarray(levels.resize(image.shape[1::-1], Image.Resampling.BILINEAR)) / 255
    coloured = colormaps["jet"](stretched)[..., :3] * 255
    return np.uint8(np.round((1 - alpha) * image + alpha * coloured))


def centre_share(heat: np.ndarray, border: float = 0.25) -> tuple[np.ndarray, float]:
    """Per heat map (photos, h, w): the share of its heat in the centre, the map less a `border`
    of its height and width on each side; and the share of the area that centre covers."""
    height, width = heat.shape[1:]
    rows, cols = round(border * height), round(border * width)
    total = heat.sum(axis=(1, 2), dtype="float64")
    inside = heat[:, rows:height - rows, cols:width - cols].sum(axis=(1, 2), dtype="float64")
    area = max(height - 2 * rows, 0) * max(width - 2 * cols, 0) / (height * width)
    return np.divide(inside, total, out=np.zeros_like(total), where=total > 0), area


def class_separation(features: np.ndarray, labels: np.ndarray) -> float:
    """How far apart the means of classes 0 and 1 are, in within-class standard deviations along
    the line through them (d': 0 for one cloud; Gaussian clouds at 4: 2% past the midpoint)."""
    features, labels = np.asarray(features, "float64"), np.asarray(labels)
    means = [features[labels == c].mean(axis=0) for c in (0, 1)]
    gap = np.linalg.norm(means[1] - means[0])
    if gap == 0:
        return 0.0
    along = features @ ((means[1] - means[0]) / gap)
    return float(gap / np.sqrt(np.mean([along[labels == c].var() for c in (0, 1)])))


def neighbour_share(features: np.ndarray, labels: np.ndarray, which: np.ndarray,
                    of_class: np.ndarray, k: int = 10) -> np.ndarray:
    """For each photo in `which`, the share of its k nearest others labelled its `of_class`."""
    which, k = np.asarray(which), min(k, len(features) - 1)
    _, index = NearestNeighbors(n_neighbors=k + 1).fit(features).kneighbors(features[which])
    # Drop the photo itself (not always the first hit: an exact duplicate ties with it).
    others = [[j for j in row if j != me][:k] for row, me in zip(index, which, strict=True)]
    return (labels[np.array(others)] == np.asarray(of_class)[:, None]).mean(axis=1)
