"""The input pipeline: photos on disk -> cached uint8 batches, plus augmentation layers.

Each photo is decoded and resized once, by resize_photo (the same function that prepares a
single photo for a prediction), and its uint8 pixels (4x smaller than float32) are cached; every
epoch then shuffles, batches and prefetches them. Normalisation and augmentation are Keras
layers inside the model, so they run on the accelerator and under any Keras backend.
"""

import functools
import math
import os
import re
import shutil
import tempfile
import time
import weakref
from pathlib import Path

import keras
import numpy as np
from PIL import Image

from helpers.config import INPUT_SIZE
from helpers.environment import process_alive
from helpers.photos import CLASS_NAMES, find_photos

# A larger cache goes to a file, which the OS keeps in its page cache: that memory is not the
# process's own (the full training split is 2.8 GB at 227 px; validation, 0.35 GB, stays).
MEMORY_CACHE_LIMIT_BYTES = 1024**3
SHUFFLE_BUFFER = 4096  # photos (0.6 GB at 227 px) that each epoch's order is drawn from
FILE_CACHE_NAME = re.compile(r"-\d+px-(\d+)-\w{8}$")  # <split>-<size>px-<pid>-<random>
made_here: set[Path] = set()  # file caches of this process (a dead run may have had its pid)


def list_images(split_dir: str | Path) -> tuple[list[Path], np.ndarray]:
    """Paths and labels (0 = cat, 1 = dog) of the photos in one split folder, sorted."""
    split_dir = Path(split_dir)
    paths, labels = [], []
    for label, name in enumerate(CLASS_NAMES):
        found = sorted((split_dir / name).glob("*.jpg"))
        paths += found
        labels += [label] * len(found)
    return paths, np.array(labels, dtype="int32")


def resize_photo(image, image_size: int):
    """A decoded photo (height, width, 3), as float32 pixels, stretched to image_size squared
    with bilinear interpolation and no antialiasing: for the pipeline and for load_image alike,
    so a photo from a file is resized exactly as the model learned. A Keras preprocessing layer,
    so it also runs inside tf.data under the JAX backend."""
    return _resizer(image_size)(image)


@functools.cache
def _resizer(image_size: int) -> keras.layers.Resizing:
    """One Resizing layer per size, made once (making a layer per photo is slow)."""
    return keras.layers.Resizing(image_size, image_size, interpolation="bilinear",
                                 antialias=False)


def load_image(path: str | Path, image_size: int = INPUT_SIZE) -> np.ndarray:
    """One photo from a file as a uint8 array (image_size, image_size, 3), as the pipeline
    makes it (decoded with PIL, so it also works without TensorFlow)."""
    with Image.open(path) as image:
        pixels = np.asarray(image.convert("RGB"))
    resized = keras.ops.convert_to_numpy(resize_photo(pixels.astype("float32"), image_size))
    return np.round(resized).astype("uint8")


def cache_bytes(count: int, image_size: int) -> int:
    """Memory a uint8 cache of `count` photos at image_size x image_size x 3 takes."""
    return count * image_size * image_size * 3


def cached_in_memory(count: int, image_size: int) -> bool:
    """Whether load_split's automatic cache keeps `count` photos in memory (else in a file)."""
    return cache_bytes(count, image_size) <= MEMORY_CACHE_LIMIT_BYTES


def load_split(split_dir: str | Path, image_size: int = INPUT_SIZE, batch_size: int = 64,
               shuffle: bool = False, seed: int = 42, cache: str | Path | None = "auto"):
    """A tf.data pipeline over one split: decode + resize once, cache uint8, shuffle, batch,
    prefetch. `cache="auto"` caches in memory when cached_in_memory, else in a file of this
    process (cache_in_file); "" caches in memory, a path in that file, None not at all."""
    import tensorflow as tf

    paths, labels = list_images(split_dir)
    if not paths:
        raise FileNotFoundError(f"no photos in {split_dir}/cat or {split_dir}/dog: run prepare")
    if shuffle:  # one seeded random order: the cache keeps it, so cats and dogs come mixed
        order = np.random.default_rng(seed).permutation(len(paths))
        paths, labels = [paths[i] for i in order], labels[order]
    dataset = tf.data.Dataset.from_tensor_slices(([str(path) for path in paths], labels))
    # Decode and resize: once per photo, several photos at a time.
    dataset = dataset.map(lambda path, label: (decode_photo(path, image_size), label),
                          num_parallel_calls=tf.data.AUTOTUNE)
    # Cache the uint8 pixels: every later epoch reads them back instead of decoding again. A
    # split too large for memory goes to a file, which the OS keeps in its page cache instead.
    if cache == "auto" and not cached_in_memory(len(paths), image_size):
        dataset = cache_in_file(dataset, Path(split_dir), image_size)
    elif cache is not None:
        dataset = dataset.cache("" if cache == "auto" else str(cache))
    # Shuffle: a new order every epoch, each photo drawn at random from a buffer.
    if shuffle:
        dataset = dataset.shuffle(min(len(paths), SHUFFLE_BUFFER), seed=seed)
    # Batch, and prefetch: the next batches are made while the model trains on this one.
    return dataset.batch(batch_size).prefetch(tf.data.AUTOTUNE)


def decode_photo(path, image_size: int):
    """A JPEG file (a tf.string path) as resized uint8 pixels, inside a tf.data pipeline.
    INTEGER_ACCURATE is the decoder PIL uses, so load_image gets the same pixels."""
    import tensorflow as tf

    image = tf.io.decode_jpeg(tf.io.read_file(path), channels=3, dct_method="INTEGER_ACCURATE")
    return tf.cast(tf.round(resize_photo(tf.cast(image, tf.float32), image_size)), tf.uint8)


def cache_in_file(dataset, split_dir: Path, image_size: int):
    """`dataset` cached in a new folder of this process beside the prepared split (outside it:
    prepare owns that folder), cache/<prepared>-<split>-<size>px-<pid>-<random>/. The folder
    goes when the dataset does; a killed run's (a partial cache and tf.data's lockfile in it)
    is removed by the next call, so it never blocks a run."""
    split_dir = split_dir.resolve()
    root = split_dir.parent.parent / "cache"
    root.mkdir(exist_ok=True)
    for folder in root.iterdir():
        if is_stale_cache(folder):
            shutil.rmtree(folder, ignore_errors=True)
    prefix = f"{split_dir.parent.name}-{split_dir.name}-{image_size}px-{os.getpid()}-"
    folder = Path(tempfile.mkdtemp(prefix=prefix, dir=root))
    made_here.add(folder)
    cached = dataset.cache(str(folder / "photos"))
    weakref.finalize(cached, shutil.rmtree, folder, ignore_errors=True)
    return cached


def is_stale_cache(folder: Path) -> bool:
    """True for a file cache folder (cache_in_file's name) whose process has ended."""
    match = FILE_CACHE_NAME.search(folder.name)
    if not match or folder in made_here or not folder.is_dir():
        return False
    pid = int(match[1])
    return pid == os.getpid() or not process_alive(pid)


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


def naive_batches(paths: list[Path], labels: np.ndarray, image_size: int = INPUT_SIZE,
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


def check_split(processed_dir: Path) -> None:
    """Refuse a folder that is not a prepared split, saying what it is and what to run."""
    missing = [split for split in ("train", "val") if not list_images(processed_dir / split)[0]]
    if not missing:
        return
    if find_photos(processed_dir) is not None:
        raise FileNotFoundError(
            f"{processed_dir} holds the photos themselves (Cat/ and Dog/), not a prepared "
            f"split: run `python -m helpers prepare --source {processed_dir} --dest SPLIT` and "
            "train on SPLIT")
    raise FileNotFoundError(
        f"no {' or '.join(missing)} photos in {processed_dir} (expected train/ and val/, each "
        "with cat/ and dog/): make the split with `python -m helpers prepare`")
