"""helpers.evaluation and helpers.references: predictions, confusion matrix, mistakes, flip TTA,
single-file prediction, and the comparison table."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras
import numpy as np
import pytest
from fixtures import make_petimages
from sklearn.metrics import confusion_matrix

from helpers.evaluation import (
    accuracy,
    confusion_counts,
    dog_probability,
    flip_tta_probability,
    load_split_arrays,
    most_confident_mistakes,
    predict_file,
)
from helpers.prepare import prepare
from helpers.references import REFERENCE_ARTICLES, comparison_table


class LeftHalfBrightness(keras.Model):
    """A fixed 'model': P(dog) = mean brightness of the left half, so mirroring changes it."""

    def call(self, images):
        left = keras.ops.cast(images[:, :, : images.shape[2] // 2, :], "float32")
        return keras.ops.mean(left, axis=(1, 2, 3))[:, None] / 255.0


@pytest.fixture(scope="module")
def split(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("eval")
    prepare(make_petimages(tmp / "photos", per_class=20, bad_files=False), tmp / "processed")
    return tmp / "processed"


def test_confusion_counts_equal_scikit_learn_and_a_hand_count():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, 200)
    p_dog = rng.random(200)
    counts = confusion_counts(labels, p_dog)
    predicted = (p_dog >= 0.5).astype(int)
    assert (counts == confusion_matrix(labels, predicted)).all()
    by_hand = [[np.sum((labels == t) & (predicted == p)) for p in (0, 1)] for t in (0, 1)]
    assert counts.tolist() == by_hand
    assert accuracy(labels, p_dog) == pytest.approx(np.trace(counts) / 200)


def test_most_confident_mistakes_come_first_and_are_all_wrong():
    labels = np.array([0, 0, 1, 1, 0, 1])
    p_dog = np.array([0.99, 0.6, 0.1, 0.45, 0.2, 0.9])
    worst = most_confident_mistakes(labels, p_dog, count=10)
    assert worst.tolist() == [0, 2, 1, 3]
    assert most_confident_mistakes(labels, np.array([0.1, 0.1, 0.9, 0.9, 0.1, 0.9])).size == 0


def test_split_arrays_keep_labels_and_paths_in_the_same_order(split):
    images, labels, paths = load_split_arrays(split / "test", image_size=64)
    assert images.dtype == np.uint8 and images.shape[1:] == (64, 64, 3)
    assert len(images) == len(labels) == len(paths) > 0
    assert [p.parent.name for p in paths] == ["cat" if y == 0 else "dog" for y in labels]
    # the generated cats are red-ish and the dogs blue-ish, so the order can be checked by colour
    red_minus_blue = images[..., 0].mean(axis=(1, 2)) - images[..., 2].mean(axis=(1, 2))
    assert ((red_minus_blue > 0) == (labels == 0)).all()


def test_dog_probability_reads_both_heads_and_flip_tta_averages_the_mirror():
    images = np.zeros((2, 8, 8, 3), dtype="uint8")
    images[0, :, :4] = 255  # left half white: 1.0 as is, 0.0 mirrored
    model = LeftHalfBrightness()
    assert dog_probability(model, images).tolist() == pytest.approx([1.0, 0.0])
    assert flip_tta_probability(model, images).tolist() == pytest.approx([0.5, 0.0])
    two_units = keras.Sequential([keras.Input((8, 8, 3)), keras.layers.Flatten(),
                                  keras.layers.Dense(2, activation="softmax")])
    probabilities = two_units.predict(images, verbose=0)
    assert dog_probability(two_units, images) == pytest.approx(probabilities[:, 1])


def test_predict_file_answers_for_one_photo(split):
    path = next((split / "test" / "dog").glob("*.jpg"))
    answer = predict_file(LeftHalfBrightness(), path, image_size=64)
    assert answer["label"] in ("cat", "dog")
    assert 0 <= answer["p_dog"] <= 1
    assert answer["confidence"] == pytest.approx(max(answer["p_dog"], 1 - answer["p_dog"]))


def test_comparison_table_puts_this_run_after_the_articles():
    metrics = {"variant": "bn", "precision": "mixed_bfloat16", "test_accuracy": 0.9512,
               "train_images": 17998, "epochs": 12, "seconds_per_epoch": 300.0,
               "wall_time_s": 3600.0, "hardware": "CPU only (2 cores, bf16)"}
    table = comparison_table(metrics)
    assert len(table) == len(REFERENCE_ARTICLES) + 1
    assert table.iloc[-1]["accuracy"] == "95.12%"
    assert "17,998" in table.iloc[-1]["data"] and "1.00 h" in table.iloc[-1]["time"]
    assert table.iloc[0]["accuracy"] == "93.68%"
