"""The input pipeline: photos on disk -> cached uint8 batches, plus augmentation layers.

`image_dataset_from_directory` decodes and resizes each photo once; the decoded uint8 pixels
are cached (4x smaller than float32), then shuffled, batched and prefetched every epoch.
Normalisation and augmentation are Keras layers inside the model, so they run on the
accelerator and under any Keras backend.
"""

import math
import time
from pathlib import Path

import keras
import numpy as np
from PIL import Image

CLASS_NAMES = ["cat", "dog"]
MEMORY_CACHE_LIMIT_BYTES = 4 * 1024**3


def list_images(split_dir: str | Path) -> tuple[list[Path], np.ndarray]:
    """Paths and labels (0 = cat, 1 = dog) of the photos in one split folder, sorted."""
    split_dir = Path(split_dir)
    paths, labels = [], []
    for label, name in enumerate(CLASS_NAMES):
        found = sorted((split_dir / name).glob("*.jpg"))
        paths += found
        labels += [label] * len(found)
    return paths, np.array(labels, dtype="int32")


def cache_bytes(count: int, image_size: int) -> int:
    """Memory a uint8 cache of `count` photos at image_size x image_size x 3 takes."""
    return count * image_size * image_size * 3


def load_split(split_dir: str | Path, image_size: int = 227, batch_size: int = 64,
               shuffle: bool = False, seed: int = 42, cache: str | Path | None = "auto"):
    """A tf.data pipeline over one split: decode + resize once, cache uint8, shuffle, batch,
    prefetch. `cache="auto"` caches in memory when it fits MEMORY_CACHE_LIMIT_BYTES and in a
    file next to the split otherwise; None turns caching off (for measuring the first epoch)."""
    import tensorflow as tf

    split_dir = Path(split_dir)
    count = len(list_images(split_dir)[0])
    dataset = keras.utils.image_dataset_from_directory(
        split_dir, labels="inferred", label_mode="int", class_names=CLASS_NAMES,
        image_size=(image_size, image_size), batch_size=None, shuffle=shuffle, seed=seed,
        verbose=False)
    dataset = dataset.map(lambda image, label: (tf.cast(tf.round(image), tf.uint8), label),
                          num_parallel_calls=tf.data.AUTOTUNE)
    if cache == "auto":
        fits = cache_bytes(count, image_size) <= MEMORY_CACHE_LIMIT_BYTES
        cache = "" if fits else str(split_dir.parent / f"cache-{split_dir.name}-{image_size}")
    if cache is not None:
        dataset = dataset.cache(str(cache))
    if shuffle:
        dataset = dataset.shuffle(min(count, 4096), seed=seed, reshuffle_each_iteration=True)
    return dataset.batch(batch_size).prefetch(tf.data.AUTOTUNE)


def augmentation(flip: bool = True, rotation: float = 0.05, zoom: float = 0.1,
                 translation: float = 0.1, seed: int | None = None) -> keras.Sequential:
    """Random flip / rotation / zoom / translation, active only while training. Rotation is a
    fraction of a full turn (0.05 = +-18 degrees); zoom and translation fractions of the size."""
    layers = []
    if flip:
        layers.append(keras.layers.RandomFlip("horizontal", seed=seed))
    if rotation:
        layers.append(keras.layers.RandomRotation(rotation, fill_mode="reflect", seed=seed))
    if zoom:
        layers.append(keras.layers.RandomZoom(zoom, fill_mode="reflect", seed=seed))
    if translation:
        layers.append(keras.layers.RandomTranslation(translation, translation,
                                                     fill_mode="reflect", seed=seed))
    return keras.Sequential(layers, name="augmentation")


def load_image(path: str | Path, image_size: int = 227) -> np.ndarray:
    """One photo as a uint8 array (image_size, image_size, 3), resized like the pipeline does."""
    with Image.open(path) as image:
        image = image.convert("RGB").resize((image_size, image_size), Image.Resampling.BILINEAR)
        return np.asarray(image, dtype="uint8")


def naive_batches(paths: list[Path], labels: np.ndarray, image_size: int = 227,
                  batch_size: int = 64):
    """The ImageDataGenerator way: open, decode and resize every photo again in every epoch,
    one at a time, in Python. Kept only to measure the pipeline against."""
    for start in range(0, len(paths), batch_size):
        chunk = paths[start:start + batch_size]
        yield np.stack([load_image(p, image_size) for p in chunk]), labels[start:start + batch_size]


def images_per_second(batches, limit: int | None = None) -> float:
    """Iterate over `batches` (at most `limit` images) and return images read per second."""
    seen, start = 0, time.perf_counter()
    for images, _ in batches:
        seen += len(images)
        if limit is not None and seen >= limit:
            break
    return seen / (time.perf_counter() - start)


def steps_per_epoch(count: int, batch_size: int) -> int:
    """Batches in one pass over `count` photos (the last one may be short)."""
    return math.ceil(count / batch_size)
