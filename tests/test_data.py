"""helpers.data: the tf.data pipeline, the naive loader it is measured against, augmentation."""

import gc
import os
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest
from conftest import make_petimages
from PIL import Image

import helpers.data as data_module
from helpers.data import (
    augmentation,
    cached_in_memory,
    images_per_second,
    list_images,
    load_image,
    load_split,
    median_images_per_second,
    naive_batches,
    photo_resizer,
    steps_per_epoch,
)
from helpers.photos import CLASS_NAMES
from helpers.prepare import prepare

SIZE = 48


@pytest.fixture(scope="module")
def processed(tmp_path_factory):
    """A prepared split of 30 generated photos per class (red-ish cats, blue-ish dogs)."""
    root = tmp_path_factory.mktemp("data")
    pets = make_petimages(root, per_class=30, bad_files=False)
    prepare(pets, root / "processed", workers=1)
    return root / "processed"


def collect(dataset):
    """All (images, labels) of one pass, concatenated, plus the batch sizes seen."""
    images, labels, sizes = [], [], []
    for x, y in dataset:
        images.append(np.asarray(x))
        labels.append(np.asarray(y))
        sizes.append(len(x))
    return np.concatenate(images), np.concatenate(labels), sizes


def test_list_images_labels_follow_the_folders(processed):
    paths, labels = list_images(processed / "train")
    assert CLASS_NAMES == ["cat", "dog"]
    assert len(paths) == len(labels) > 0
    assert labels.dtype == np.int32
    for path, label in zip(paths, labels, strict=True):
        assert path.parent.name == CLASS_NAMES[label]
    assert list(labels) == sorted(labels)  # cats first, then dogs


def test_load_split_yields_uint8_batches_with_folder_labels(processed):
    split = processed / "train"
    paths, expected = list_images(split)
    dataset = load_split(split, image_size=SIZE, batch_size=8)
    assert dataset.element_spec[0].dtype.name == "uint8"
    assert tuple(dataset.element_spec[0].shape) == (None, SIZE, SIZE, 3)

    images, labels, sizes = collect(dataset)
    assert images.dtype == np.uint8 and images.shape == (len(paths), SIZE, SIZE, 3)
    assert sizes == [8] * (len(paths) // 8) + ([len(paths) % 8] if len(paths) % 8 else [])
    assert len(sizes) == steps_per_epoch(len(paths), 8)
    assert np.issubdtype(labels.dtype, np.integer)
    assert set(labels.tolist()) == {0, 1}
    assert labels.tolist() == expected.tolist()  # unshuffled: the sorted folder order
    # The labels really belong to the pixels: cats (0) are red-ish, dogs (1) blue-ish.
    red, blue = images[..., 0].mean(axis=(1, 2)), images[..., 2].mean(axis=(1, 2))
    assert np.all(red[labels == 0] > blue[labels == 0])
    assert np.all(blue[labels == 1] > red[labels == 1])


def test_shuffle_is_reproducible_with_a_seed(processed):
    split = processed / "train"
    first, first_labels, _ = collect(load_split(split, SIZE, 8, shuffle=True, seed=7))
    again, again_labels, _ = collect(load_split(split, SIZE, 8, shuffle=True, seed=7))
    np.testing.assert_array_equal(first, again)
    np.testing.assert_array_equal(first_labels, again_labels)

    other, _, _ = collect(load_split(split, SIZE, 8, shuffle=True, seed=8))
    unshuffled, _, _ = collect(load_split(split, SIZE, 8))
    assert not np.array_equal(first, other)
    assert not np.array_equal(first, unshuffled)
    # Same photos, only reordered.
    key = lambda batch: sorted(image.tobytes() for image in batch)  # noqa: E731
    assert key(first) == key(unshuffled) == key(other)


def test_shuffle_mixes_the_classes_even_with_a_small_buffer(processed, monkeypatch):
    """The cache holds the photos in a seeded random order, so a buffer far smaller than the
    split (as for the full training split) still mixes cats and dogs."""
    monkeypatch.setattr(data_module, "SHUFFLE_BUFFER", 1)
    _, labels, _ = collect(load_split(processed / "train", SIZE, 8, shuffle=True, seed=7))
    assert sorted(labels.tolist()) == list_images(processed / "train")[1].tolist()
    assert labels.tolist() != sorted(labels.tolist())
    assert 0 < labels[:len(labels) // 2].mean() < 1


def test_shuffle_reshuffles_every_epoch(processed):
    dataset = load_split(processed / "train", SIZE, 8, shuffle=True, seed=7)
    epoch1, _, _ = collect(dataset)
    epoch2, _, _ = collect(dataset)
    assert not np.array_equal(epoch1, epoch2)


def test_the_cache_goes_to_memory_while_its_uint8_pixels_fit(processed, monkeypatch):
    split = processed / "val"
    images, _, _ = collect(load_split(split, SIZE, 4))
    count = len(list_images(split)[0])
    assert images.nbytes == np.zeros((count, SIZE, SIZE, 3), np.uint8).nbytes
    monkeypatch.setattr(data_module, "MEMORY_CACHE_LIMIT_BYTES", images.nbytes)
    assert cached_in_memory(count, SIZE) and cached_in_memory(0, 227)
    assert not cached_in_memory(count + 1, SIZE)
    monkeypatch.setattr(data_module, "MEMORY_CACHE_LIMIT_BYTES", images.nbytes - 1)
    assert not cached_in_memory(count, SIZE)


def test_auto_cache_goes_to_a_file_when_memory_is_too_small(processed, monkeypatch):
    split, cache_root = processed / "test", processed.parent / "cache"
    in_memory, _, _ = collect(load_split(split, SIZE, 4))
    assert not cache_root.exists()  # fits: cached in memory, nothing written

    monkeypatch.setattr(data_module, "MEMORY_CACHE_LIMIT_BYTES", 0)
    dataset = load_split(split, SIZE, 4)
    on_disk, _, _ = collect(dataset)
    folders = list(cache_root.glob(f"processed-test-{SIZE}px-{os.getpid()}-*"))
    assert len(folders) == 1 and (folders[0] / "photos.index").is_file()  # complete
    np.testing.assert_array_equal(in_memory, on_disk)
    np.testing.assert_array_equal(collect(dataset)[0], on_disk)  # read back from the file
    del dataset
    gc.collect()
    assert not folders[0].exists()  # the cache goes with its dataset


def dead_pid() -> int:
    """The id of a process that has ended."""
    done = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)
    return int(done.stdout)


def test_a_killed_runs_partial_file_cache_never_blocks_the_next_run(processed, monkeypatch):
    """A killed run leaves a partial cache and tf.data's lockfile; the next run caches in its
    own folder and removes that one, but nothing of a live process and nothing not ours."""
    cache_root = processed.parent / "cache"
    folders = {name: cache_root / f"processed-val-{SIZE}px-{pid}-abcd_123"
               for name, pid in (("killed", dead_pid()), ("live", os.getppid()))}
    folders["foreign"] = cache_root / "notes"
    for folder in folders.values():
        folder.mkdir(parents=True)
        (folder / "photos_0.lockfile").write_text("Created at: 0")
        (folder / "photos_0.data-00000-of-00001.tempstate1").write_bytes(b"partial")
    monkeypatch.setattr(data_module, "MEMORY_CACHE_LIMIT_BYTES", 0)
    images, _, _ = collect(load_split(processed / "val", SIZE, 4))
    assert len(images) == len(list_images(processed / "val")[0])
    assert not folders["killed"].exists()
    assert (folders["live"] / "photos_0.lockfile").exists()
    assert (folders["foreign"] / "photos_0.lockfile").exists()


def test_load_split_refuses_an_empty_split(tmp_path):
    with pytest.raises(FileNotFoundError, match="no photos"):
        load_split(tmp_path, SIZE)


@pytest.fixture(scope="module")
def odd_photos(tmp_path_factory) -> Path:
    """A split of two non-square noisy photos: 300 x 170 (shrunk) and 40 x 25 (enlarged)."""
    split = tmp_path_factory.mktemp("odd") / "train"
    rng = np.random.default_rng(1)
    for name, (width, height) in zip(CLASS_NAMES, [(300, 170), (40, 25)], strict=True):
        (split / name).mkdir(parents=True)
        pixels = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(split / name / "photo.jpg", quality=95)
    return split


def test_load_image_resizes_a_photo_exactly_as_the_pipeline(odd_photos):
    paths, _ = list_images(odd_photos)
    pipeline, _, _ = collect(load_split(odd_photos, SIZE, 2))
    for path, expected in zip(paths, pipeline, strict=True):
        image = load_image(path, SIZE)
        assert image.dtype == np.uint8 and image.shape == (SIZE, SIZE, 3)
        assert np.abs(image.astype(int) - expected).max() <= 1
        assert image.std() > 10  # a real picture, not a blank one


def test_photos_are_resized_in_float32_under_mixed_precision(odd_photos):
    """train() sets the precision policy before the pipeline first resizes: bfloat16 pixels
    would be off by one in places, and the photos would differ from load_image's."""
    path = list_images(odd_photos)[0][0]
    expected = load_image(path, SIZE)
    previous = keras.mixed_precision.dtype_policy()
    photo_resizer.cache_clear()
    try:
        keras.mixed_precision.set_dtype_policy("mixed_bfloat16")
        assert photo_resizer(SIZE).compute_dtype == "float32"
        assert np.array_equal(load_image(path, SIZE), expected)
    finally:
        keras.mixed_precision.set_dtype_policy(previous)
        photo_resizer.cache_clear()


def test_load_image_gives_the_same_pixels_under_jax(odd_photos, tmp_path):
    """The JAX time-to-accuracy benchmark feeds load_image's pixels: same as under TensorFlow."""
    path, out = list_images(odd_photos)[0][0], tmp_path / "jax.npy"
    code = (f"import numpy as np; from helpers.data import load_image; "
            f"np.save({str(out)!r}, load_image({str(path)!r}, {SIZE}))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env={**os.environ, "KERAS_BACKEND": "jax"}, timeout=300)
    assert done.returncode == 0, done.stderr
    assert np.abs(np.load(out).astype(int) - load_image(path, SIZE)).max() <= 1


def test_naive_batches_match_the_pipeline(processed):
    split = processed / "train"
    paths, labels = list_images(split)
    naive = list(naive_batches(paths, labels, image_size=SIZE, batch_size=8))
    pipeline = list(load_split(split, SIZE, 8))
    assert len(naive) == len(pipeline)
    for (x_naive, y_naive), (x_pipe, y_pipe) in zip(naive, pipeline, strict=True):
        assert x_naive.shape == tuple(x_pipe.shape)
        assert x_naive.dtype == np.uint8
        np.testing.assert_array_equal(y_naive, np.asarray(y_pipe))
        assert np.abs(x_naive.astype(int) - np.asarray(x_pipe)).max() <= 1  # the same resize


def test_images_per_second_reads_every_batch():
    consumed = []

    def batches():
        for i in range(10):
            consumed.append(i)
            yield np.zeros((4, 2, 2, 3), np.uint8), np.zeros(4)

    assert images_per_second(batches()) > 0
    assert consumed == list(range(10))


def test_median_images_per_second_leaves_out_the_warm_up_and_takes_the_median(monkeypatch):
    rates = iter([1000.0, 5.0, 1.0, 3.0])  # the warm-up pass first: fastest, and not counted
    made = []
    monkeypatch.setattr(data_module, "images_per_second", lambda batches: next(rates))
    assert median_images_per_second(lambda: made.append(1), repeats=3) == 3.0
    assert len(made) == 4  # a fresh set of batches for every pass


def test_augmentation_changes_training_batches_only(processed):
    images, _, _ = collect(load_split(processed / "train", SIZE, 16))
    batch = images[:16].astype(np.float32)
    layer = augmentation(seed=3)
    assert [type(x).__name__ for x in layer.layers] == [
        "RandomFlip", "RandomRotation", "RandomZoom", "RandomTranslation"]
    inference = np.asarray(layer(batch, training=False))
    np.testing.assert_array_equal(inference, batch)
    trained = np.asarray(layer(batch, training=True))
    assert trained.shape == batch.shape
    assert np.abs(trained - batch).mean() > 1
    # Flip only: each image is either unchanged or its mirror image.
    flip = augmentation(rotation=0, zoom=0, translation=0, seed=3)
    assert [type(x).__name__ for x in flip.layers] == ["RandomFlip"]
    flipped = np.asarray(flip(batch, training=True))
    mirrored = [np.array_equal(f, b[:, ::-1]) for f, b in zip(flipped, batch, strict=True)]
    same = [np.array_equal(f, b) for f, b in zip(flipped, batch, strict=True)]
    assert all(m or s for m, s in zip(mirrored, same, strict=True))
    assert any(mirrored)
    np.testing.assert_array_equal(np.asarray(flip(batch, training=False)), batch)
