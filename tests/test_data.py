"""helpers.data: the tf.data pipeline, the naive loader it is measured against, augmentation."""

import numpy as np
import pytest
from fixtures import make_petimages

import helpers.data as data_module
from helpers.data import (
    CLASS_NAMES,
    augmentation,
    cache_bytes,
    images_per_second,
    list_images,
    load_split,
    naive_batches,
    steps_per_epoch,
)
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


def test_shuffle_reshuffles_every_epoch(processed):
    dataset = load_split(processed / "train", SIZE, 8, shuffle=True, seed=7)
    epoch1, _, _ = collect(dataset)
    epoch2, _, _ = collect(dataset)
    assert not np.array_equal(epoch1, epoch2)


def test_cache_bytes_is_the_uint8_size(processed):
    assert cache_bytes(10, SIZE) == np.zeros((10, SIZE, SIZE, 3), np.uint8).nbytes
    assert cache_bytes(0, 227) == 0
    assert cache_bytes(2, 227) == 2 * cache_bytes(1, 227)
    assert 4 * cache_bytes(5, 64) == np.zeros((5, 64, 64, 3), np.float32).nbytes
    split = processed / "val"
    images, _, _ = collect(load_split(split, SIZE, 4))
    assert images.nbytes == cache_bytes(len(list_images(split)[0]), SIZE)


def test_auto_cache_goes_to_a_file_when_memory_is_too_small(processed, monkeypatch):
    split = processed / "test"
    in_memory, _, _ = collect(load_split(split, SIZE, 4))
    assert not list(processed.glob("cache-*"))  # fits: cached in memory, nothing written

    monkeypatch.setattr(data_module, "MEMORY_CACHE_LIMIT_BYTES", 0)
    on_disk, _, _ = collect(load_split(split, SIZE, 4))
    assert list(processed.glob(f"cache-test-{SIZE}*"))
    np.testing.assert_array_equal(in_memory, on_disk)


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
    # PIL and TensorFlow resize a little differently, but it is the same picture.
    a = np.concatenate([x for x, _ in naive]).astype(np.float32)
    b = np.concatenate([np.asarray(x) for x, _ in pipeline]).astype(np.float32)
    assert np.abs(a - b).mean() < 4


def test_images_per_second_counts_and_stops_at_the_limit():
    consumed = []

    def batches():
        for i in range(10):
            consumed.append(i)
            yield np.zeros((4, 2, 2, 3), np.uint8), np.zeros(4)

    rate = images_per_second(batches(), limit=8)
    assert rate > 0
    assert consumed == [0, 1]
    consumed.clear()
    assert images_per_second(batches()) > 0
    assert len(consumed) == 10


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
