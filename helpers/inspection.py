"""What a trained CNN learned (notebook 07): filters, feature maps, Grad-CAM, 2-D features."""

import re

import keras
import numpy as np
from matplotlib import colormaps
from PIL import Image
from sklearn.decomposition import PCA
from sklearn.manifold import TSNE
from sklearn.neighbors import NearestNeighbors

FEATURES = "fc7_relu"  # the second 4096-unit dense layer, after its ReLU: what the head reads
LAST_CONV = "conv5_relu"  # the last convolution's activations: where Grad-CAM looks


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


def filter_statistics(filters: np.ndarray) -> dict[str, np.ndarray]:
    """Per filter: smoothness (correlation of neighbouring weights: ~0 for noise, ~1 for blobs and
    edges) and greyness (mean correlation of its R, G and B planes: 1 = a grey filter)."""
    def corr(a, b):
        return np.corrcoef(a.ravel(), b.ravel())[0, 1]

    smooth = [np.mean([corr(f[:, :-1], f[:, 1:]), corr(f[:-1], f[1:])]) for f in filters]
    grey = [np.mean([corr(f[..., i], f[..., j]) for i, j in ((0, 1), (0, 2), (1, 2))])
            for f in filters]
    return {"smoothness": np.nan_to_num(smooth), "greyness": np.nan_to_num(grey)}


def layer_outputs(model: keras.Model, images: np.ndarray, names: list[str],
                  batch_size: int = 64) -> dict[str, np.ndarray]:
    """What the layers called `names` output for `images` (inference mode), as float32."""
    probe = keras.Model(model.inputs, {name: model.get_layer(name).output for name in names})
    outputs = probe.predict(images, batch_size=batch_size, verbose=0)
    return {name: np.asarray(outputs[name], "float32") for name in names}


def strongest_channels(activation: np.ndarray, count: int = 8) -> np.ndarray:
    """The `count` channels of an activation (h, w, c) with the largest mean, strongest first."""
    return np.argsort(-activation.mean(axis=(0, 1)), kind="stable")[:count]


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


def pca_2d(features: np.ndarray) -> tuple[np.ndarray, float]:
    """The features on their first two principal components, and the variance share kept."""
    pca = PCA(n_components=2, random_state=0)
    return pca.fit_transform(features), float(pca.explained_variance_ratio_.sum())


def tsne_2d(features: np.ndarray, seed: int = 42) -> np.ndarray:
    """A t-SNE map of the features (after PCA to 50 dimensions, the usual speed-up)."""
    reduced = PCA(n_components=min(50, *features.shape), random_state=seed).fit_transform(features)
    return TSNE(n_components=2, perplexity=min(30.0, (len(features) - 1) / 3), init="pca",
                random_state=seed).fit_transform(reduced)


def neighbour_share(features: np.ndarray, labels: np.ndarray, which: np.ndarray,
                    of_class: np.ndarray, k: int = 10) -> np.ndarray:
    """For each photo in `which`, the share of its k nearest others labelled its `of_class`."""
    which, k = np.asarray(which), min(k, len(features) - 1)
    _, index = NearestNeighbors(n_neighbors=k + 1).fit(features).kneighbors(features[which])
    # Drop the photo itself (not always the first hit: an exact duplicate ties with it).
    others = [[j for j in row if j != me][:k] for row, me in zip(index, which, strict=True)]
    return (labels[np.array(others)] == np.asarray(of_class)[:, None]).mean(axis=1)
