"""The input pipeline (photos decoded once, cached as uint8, batched) and augmentation layers."""

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

MEMORY_CACHE_LIMIT_BYTES = 1024**3  # a larger cache goes to a file, kept in the OS's page cache
SHUFFLE_BUFFER = 4096  # photos that each epoch's order is drawn from
FILE_CACHE_NAME = re.compile(r"-\d+px-(\d+)-\w{8}$")  # <split>-<size>px-<pid>-<random>
made_here: set[Path] = set()  # file caches of this process (a dead run may have had its pid)


def list_images(split_dir: str | Path) -> tuple[list[Path], np.ndarray]:
    """Paths and labels (0 = cat, 1 = dog) of the photos in one split folder, sorted."""
    found = [sorted((Path(split_dir) / name).glob("*.jpg")) for name in CLASS_NAMES]
    labels = np.repeat(np.arange(len(found), dtype="int32"), [len(paths) for paths in found])
    return [path for paths in found for path in paths], labels


@functools.cache
def photo_resizer(image_size: int) -> keras.layers.Resizing:
    """The one resize of the pipeline and load_image, so both resize alike, under any backend
    and in float32 whatever the precision policy (bfloat16 pixels would be off by one)."""
    return keras.layers.Resizing(image_size, image_size, interpolation="bilinear", antialias=False,
                                 dtype="float32")


def load_image(path: str | Path, image_size: int = INPUT_SIZE) -> np.ndarray:
    """One photo file as uint8 pixels exactly as the pipeline makes them, but without TensorFlow."""
    with Image.open(path) as image:
        pixels = np.asarray(image.convert("RGB"), dtype="float32")
    return np.round(keras.ops.convert_to_numpy(photo_resizer(image_size)(pixels))).astype("uint8")


def cached_in_memory(count: int, image_size: int) -> bool:
    """Whether load_split's automatic cache of `count` photos (uint8) fits in memory, not a file."""
    return count * image_size * image_size * 3 <= MEMORY_CACHE_LIMIT_BYTES


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
    """A JPEG (a tf.string path) as resized uint8 pixels in tf.data, decoded as PIL decodes it."""
    import tensorflow as tf

    image = tf.io.decode_jpeg(tf.io.read_file(path), channels=3, dct_method="INTEGER_ACCURATE")
    return tf.cast(tf.round(photo_resizer(image_size)(tf.cast(image, tf.float32))), tf.uint8)


def cache_in_file(dataset, split_dir: Path, image_size: int):
    """`dataset` cached in a folder of this process beside the split, removed with the dataset."""
    split_dir = split_dir.resolve()
    root = split_dir.parent.parent / "cache"
    root.mkdir(exist_ok=True)
    for folder in root.iterdir():  # a killed run's: named as below, not ours, its process gone
        match = FILE_CACHE_NAME.search(folder.name)
        if (match and folder not in made_here and folder.is_dir()
                and (int(match[1]) == os.getpid() or not process_alive(int(match[1])))):
            shutil.rmtree(folder, ignore_errors=True)
    prefix = f"{split_dir.parent.name}-{split_dir.name}-{image_size}px-{os.getpid()}-"
    folder = Path(tempfile.mkdtemp(prefix=prefix, dir=root))
    made_here.add(folder)
    cached = dataset.cache(str(folder / "photos"))
    weakref.finalize(cached, shutil.rmtree, folder, ignore_errors=True)
    return cached


def augmentation(flip: bool = True, rotation: float = 0.05, zoom: float = 0.1,
                 translation: float = 0.1, seed: int | None = None) -> keras.Sequential:
    """Random flip / rotation / zoom / translation, active only while training. Rotation is a
    fraction of a full turn (0.05 = +-18 degrees); zoom and translation fractions of the size."""
    layers = [keras.layers.RandomFlip("horizontal", seed=seed)] if flip else []
    reflect = {"fill_mode": "reflect", "seed": seed}  # edges mirrored, not filled with black
    if rotation:
        layers.append(keras.layers.RandomRotation(rotation, **reflect))
    if zoom:
        layers.append(keras.layers.RandomZoom(zoom, **reflect))
    if translation:
        layers.append(keras.layers.RandomTranslation(translation, translation, **reflect))
    return keras.Sequential([keras.Input((None, None, 3)), *layers],  # photos of any size
                            name="augmentation")


def naive_batches(paths: list[Path], labels: np.ndarray, image_size: int = INPUT_SIZE,
                  batch_size: int = 64):
    """The pipeline's yardstick: every photo opened, decoded and resized again, one at a time."""
    for start in range(0, len(paths), batch_size):
        chunk = paths[start:start + batch_size]
        yield np.stack([load_image(p, image_size) for p in chunk]), labels[start:start + batch_size]


def images_per_second(batches) -> float:
    """Iterate over `batches` and return images read per second."""
    seen, start = 0, time.perf_counter()
    for images, _ in batches:
        seen += len(images)
    return seen / (time.perf_counter() - start)


def median_images_per_second(make_batches, repeats: int = 5) -> float:
    """Median images/s of `repeats` passes over make_batches(), after one untimed pass."""
    images_per_second(make_batches())  # the warm-up: files cached, the pipeline traced
    return float(np.median([images_per_second(make_batches()) for _ in range(repeats)]))


def steps_per_epoch(count: int, batch_size: int) -> int:
    """Batches in one pass over `count` photos (the last one may be short)."""
    return math.ceil(count / batch_size)


def check_split(processed_dir: Path) -> None:
    """Refuse a folder that is not a prepared split, saying what it is and what to run."""
    labels = {split: set(list_images(processed_dir / split)[1]) for split in ("train", "val")}
    missing = [split for split, found in labels.items() if not found]
    lacking = [f"{split}/{name}" for split, found in labels.items() if found
               for label, name in enumerate(CLASS_NAMES) if label not in found]
    if lacking:  # a model judged on one class only would look right and learn nothing
        raise FileNotFoundError(f"no photos in {processed_dir}/{' or '.join(lacking)}: every "
                                "split needs both classes; make the split with `python -m "
                                "helpers prepare`")
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
