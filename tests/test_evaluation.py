"""helpers.evaluation and helpers.references: predictions, confusion matrix, the accuracy's
interval, McNemar's test, calibration, precision and recall per threshold, mistakes, flip TTA,
single-file prediction, and the comparison table."""

import math
import os
import re

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras
import numpy as np
import pytest
from conftest import make_petimages
from scipy.stats import binomtest
from sklearn.metrics import confusion_matrix, precision_score, recall_score

from helpers.data import load_image
from helpers.evaluation import (
    accuracy,
    accuracy_interval,
    confusion_counts,
    dog_probability,
    expected_calibration_error,
    flip_tta_probability,
    format_accuracy,
    load_split_arrays,
    mcnemar_exact,
    most_confident_mistakes,
    precision_recall_by_threshold,
    predict_file,
    reliability_bins,
    wilson_interval,
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


@pytest.mark.parametrize(("correct", "total"), [(8, 10), (2101, 2250), (0, 20), (20, 20)])
def test_wilson_interval_equals_scipy(correct, total):
    expected = binomtest(correct, total).proportion_ci(confidence_level=0.95, method="wilson")
    assert wilson_interval(correct, total) == pytest.approx((expected.low, expected.high))


def test_wilson_interval_refuses_impossible_counts():
    for correct, total in ((3, 0), (-1, 10), (11, 10)):
        with pytest.raises(ValueError, match="correct <= total"):
            wilson_interval(correct, total)


def test_accuracy_is_printed_with_an_interval_of_about_one_point_at_2250_photos():
    labels = np.r_[np.zeros(1125, int), np.ones(1125, int)]
    p_dog = labels.astype(float)
    p_dog[:149] = 0.9  # 149 cats called dogs: 2,101 of 2,250 right, 93.38%
    low, high = accuracy_interval(labels, p_dog)
    assert low < accuracy(labels, p_dog) < high
    assert 0.009 < (high - low) / 2 < 0.011
    line = f"test accuracy: {format_accuracy(labels, p_dog)}"
    assert line == "test accuracy: 93.38% (95% interval 92.27–94.33%)"
    assert float(re.findall(r"test accuracy: ([\d.]+)%", line)[0]) == 93.38


def paired_answers(both: int, only_a: int, only_b: int, neither: int):
    """Labels and two models' answers with the given counts of right/wrong pairs (all dogs)."""
    labels = np.ones(both + only_a + only_b + neither, int)
    a = np.r_[np.ones(both + only_a, int), np.zeros(only_b + neither, int)]
    b = np.r_[np.ones(both, int), np.zeros(only_a, int), np.ones(only_b, int),
              np.zeros(neither, int)]
    return labels, a, b


def two_sided_binomial_p(b: int, c: int) -> float:
    """The exact two-sided p of b successes in b + c fair coin flips, counted by hand."""
    n = b + c
    return min(1.0, 2 * sum(math.comb(n, k) for k in range(min(b, c) + 1)) / 2**n)


@pytest.mark.parametrize(("only_a", "only_b", "p"), [(18, 15, 0.728), (20, 2, 0.00012),
                                                     (15, 18, 0.728), (5, 5, 1.0)])
def test_mcnemar_counts_the_changed_answers_and_gives_the_exact_p(only_a, only_b, p):
    labels, a, b = paired_answers(2000, only_a, only_b, 100)
    assert mcnemar_exact(labels, a, b) == pytest.approx(
        (only_a, only_b, two_sided_binomial_p(only_a, only_b)))
    assert mcnemar_exact(labels, a, b)[2] == pytest.approx(p, abs=5e-4)
    assert mcnemar_exact(labels, b, a)[:2] == (only_b, only_a)
    assert (mcnemar_exact(labels, a, b)[2] < 0.05) == (only_a == 20)


def test_mcnemar_without_changed_answers_and_with_unpaired_answers():
    labels, a, _ = paired_answers(30, 0, 0, 5)
    assert mcnemar_exact(labels, a, a) == (0, 0, 1.0)
    with pytest.raises(ValueError, match="one length"):
        mcnemar_exact(labels, a, a[:-1])
    with pytest.raises(ValueError, match="1-D"):
        mcnemar_exact(labels[None], a[None], a[None])


def test_a_calibrated_model_has_an_ece_near_zero():
    rng = np.random.default_rng(0)
    confidence = rng.uniform(0.5, 1.0, 200_000)
    right = rng.random(confidence.size) < confidence  # right as often as it is confident
    labels = rng.integers(0, 2, confidence.size)
    predicted = np.where(right, labels, 1 - labels)
    p_dog = np.where(predicted == 1, confidence, 1 - confidence)
    table = reliability_bins(labels, p_dog, bins=10)
    assert table["photos"].sum() == confidence.size
    assert np.allclose(table["low"], np.arange(0.5, 1.0, 0.05))
    assert (table["accuracy"] - table["confidence"]).abs().max() < 0.01
    assert expected_calibration_error(table) < 0.005


def test_an_overconfident_model_has_the_gap_as_its_ece():
    labels = np.array([1] * 7 + [0] * 3)
    p_dog = np.full(10, 0.95)  # 95% sure of "dog" every time, right 70% of the time
    table = reliability_bins(labels, p_dog)
    used = table[table["photos"] > 0]
    assert used["photos"].tolist() == [10] and used["low"].item() == pytest.approx(0.95)
    assert used["accuracy"].item() == pytest.approx(0.7)
    assert expected_calibration_error(table) == pytest.approx(0.25)
    certain = reliability_bins(np.array([0, 1]), np.array([0.0, 1.0]))  # confidence 1.0
    assert certain["photos"].iloc[-1] == 2 and expected_calibration_error(certain) == 0


def test_precision_and_recall_by_threshold_equal_scikit_learn():
    rng = np.random.default_rng(1)
    labels = rng.integers(0, 2, 300)
    p_dog = np.clip(labels * 0.3 + rng.random(300) * 0.7, 0, 1)
    table = precision_recall_by_threshold(labels, p_dog, thresholds=[0.2, 0.5, 0.8])
    for row in table.itertuples():
        called = (p_dog >= row.threshold).astype(int)
        assert row.precision == pytest.approx(precision_score(labels, called))
        assert row.recall == pytest.approx(recall_score(labels, called))
        assert row.accuracy == pytest.approx(accuracy(labels, p_dog, row.threshold))
    nobody = precision_recall_by_threshold(labels, p_dog, thresholds=[1.5])
    assert np.isnan(nobody["precision"].item()) and nobody["recall"].item() == 0


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


def test_predict_file_resizes_to_the_models_input_size(split):
    path = next((split / "test" / "dog").glob("*.jpg"))
    inputs = keras.Input((64, 64, 3))
    model = keras.Model(inputs, LeftHalfBrightness()(inputs))
    answer = predict_file(model, path)
    pixels = load_image(path, 64)  # what the training pipeline makes of the photo at 64 px
    assert answer["p_dog"] == pytest.approx(pixels[:, :32].mean() / 255, abs=1e-6)
    assert answer["label"] == ("dog" if answer["p_dog"] >= 0.5 else "cat")
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
