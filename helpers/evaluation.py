"""Judge a trained model on a split: P(dog), flip TTA, confusion matrix, accuracy's 95% interval,
McNemar's test of two models, calibration, precision and recall, the most confident mistakes."""

from dataclasses import replace
from pathlib import Path
from statistics import NormalDist

import keras
import numpy as np
import pandas as pd
from scipy.stats import binomtest
from sklearn.metrics import confusion_matrix

from helpers.config import INPUT_SIZE, PROFILES
from helpers.data import check_split, list_images, load_image, load_split
from helpers.files import shown
from helpers.photos import CLASS_NAMES, first_photos, link_photos
from helpers.prepare import TEST_FRACTION, VAL_FRACTION
from helpers.runs import MONITOR, RunError, best_row, read_history, split_id
from helpers.training import load_best_model, train
from helpers.workspace import Run


def load_split_arrays(split_dir: str | Path, image_size: int = INPUT_SIZE):
    """All photos of a split as one uint8 array, with labels and paths in the same order, decoded
    by the training pipeline itself; input_size(model) gives the size a model was trained on."""
    paths, labels = list_images(split_dir)
    dataset = load_split(split_dir, image_size, batch_size=256, shuffle=False, cache=None)
    return np.concatenate([np.asarray(batch) for batch, _ in dataset]), labels, paths


def dog_probability(model: keras.Model, images: np.ndarray, batch_size: int = 64) -> np.ndarray:
    """P(dog) per photo, from a 1-unit sigmoid head or the second column of a softmax head."""
    return model.predict(images, batch_size=batch_size, verbose=0)[:, -1].astype("float64")


def flip_tta_probability(model: keras.Model, images: np.ndarray, batch_size: int = 64):
    """Test-time augmentation: the mean of P(dog) for each photo and its mirror image."""
    return (dog_probability(model, images, batch_size)
            + dog_probability(model, images[:, :, ::-1, :], batch_size)) / 2


def confusion_counts(labels: np.ndarray, dog_prob: np.ndarray, threshold: float = 0.5):
    """2x2 counts, rows = true class (cat, dog), columns = predicted class."""
    return confusion_matrix(labels, (dog_prob >= threshold).astype(int), labels=[0, 1])


def accuracy(labels: np.ndarray, dog_prob: np.ndarray, threshold: float = 0.5) -> float:
    """Share of photos whose thresholded prediction equals the label."""
    return float(np.mean((dog_prob >= threshold).astype(int) == labels))


def wilson_interval(correct: int, total: int, confidence: float = 0.95) -> tuple[float, float]:
    """The Wilson score interval (scipy's binomtest(...).proportion_ci(method="wilson")), written
    out so notebook 06 shows the formula; unlike p +- z*se it stays inside [0, 1]."""
    if total <= 0 or not 0 <= correct <= total:
        raise ValueError(f"need 0 <= correct <= total and total > 0, got {correct} of {total}")
    z = NormalDist().inv_cdf(0.5 + confidence / 2)
    p = correct / total
    centre = (p + z**2 / (2 * total)) / (1 + z**2 / total)
    half = z / (1 + z**2 / total) * np.sqrt(p * (1 - p) / total + z**2 / (4 * total**2))
    return float(max(0.0, centre - half)), float(min(1.0, centre + half))


def accuracy_interval(labels: np.ndarray, dog_prob: np.ndarray, threshold: float = 0.5,
                      confidence: float = 0.95) -> tuple[float, float]:
    """The Wilson interval of the accuracy at `threshold`."""
    correct = int(np.sum((dog_prob >= threshold).astype(int) == labels))
    return wilson_interval(correct, len(labels), confidence)


def format_accuracy(labels: np.ndarray, dog_prob: np.ndarray, threshold: float = 0.5) -> str:
    """The accuracy, never printed without its interval: 'A% (95% interval L–H%)'."""
    low, high = accuracy_interval(labels, dog_prob, threshold)
    return f"{accuracy(labels, dog_prob, threshold):.2%} (95% interval {100 * low:.2f}–{high:.2%})"


def mcnemar_exact(labels, predicted_a, predicted_b) -> tuple[int, int, float]:
    """McNemar's exact test of two sets of answers to the same photos: (b, c, p), b photos only A
    gets right, c only B, p the two-sided chance of a split this uneven if each were a coin flip."""
    labels, predicted_a, predicted_b = map(np.asarray, (labels, predicted_a, predicted_b))
    if labels.ndim != 1 or not labels.shape == predicted_a.shape == predicted_b.shape:
        raise ValueError(f"need three 1-D arrays of one length, got shapes {labels.shape}, "
                         f"{predicted_a.shape} and {predicted_b.shape}")
    right_a, right_b = predicted_a == labels, predicted_b == labels
    b, c = int(np.sum(right_a & ~right_b)), int(np.sum(right_b & ~right_a))
    return b, c, float(binomtest(b, b + c).pvalue) if b + c else 1.0


def reliability_bins(labels: np.ndarray, dog_prob: np.ndarray, bins: int = 10) -> pd.DataFrame:
    """A reliability diagram's data: photos in equal-width bins of P(predicted class) over
    [0.5, 1], with each bin's mean confidence and accuracy (equal when calibrated)."""
    labels, dog_prob = np.asarray(labels), np.asarray(dog_prob, dtype="float64")
    predicted = (dog_prob >= 0.5).astype(int)
    confidence = np.where(predicted == 1, dog_prob, 1 - dog_prob)
    edges = np.linspace(0.5, 1.0, bins + 1)
    index = np.clip(np.searchsorted(edges, confidence, side="right") - 1, 0, bins - 1)
    correct = predicted == labels
    groups = [index == b for b in range(bins)]
    return pd.DataFrame({
        "low": edges[:-1], "high": edges[1:], "photos": [int(g.sum()) for g in groups],
        "confidence": [confidence[g].mean() if g.any() else np.nan for g in groups],
        "accuracy": [correct[g].mean() if g.any() else np.nan for g in groups]})


def expected_calibration_error(table: pd.DataFrame) -> float:
    """ECE: the photo-weighted mean gap between confidence and accuracy in `reliability_bins`."""
    used = table[table["photos"] > 0]
    gaps = (used["accuracy"] - used["confidence"]).abs()
    return float((used["photos"] * gaps).sum() / used["photos"].sum())


def precision_recall_by_threshold(labels: np.ndarray, dog_prob: np.ndarray,
                                  thresholds=None) -> pd.DataFrame:
    """Precision and recall of "dog", and accuracy, when a photo is called a dog at
    P(dog) >= threshold; precision is NaN where no photo is called a dog."""
    labels, dog_prob = np.asarray(labels), np.asarray(dog_prob)
    thresholds = np.linspace(0.01, 0.99, 99) if thresholds is None else np.asarray(thresholds)
    called = dog_prob[None, :] >= thresholds[:, None]
    is_dog = labels[None, :] == 1
    true_positives = (called & is_dog).sum(axis=1)
    called_dogs = called.sum(axis=1)
    precision = np.where(called_dogs > 0, true_positives / np.maximum(called_dogs, 1), np.nan)
    return pd.DataFrame({"threshold": thresholds, "precision": precision,
                         "recall": true_positives / max(int(is_dog.sum()), 1),
                         "accuracy": (called == is_dog).mean(axis=1)})


def most_confident_mistakes(labels: np.ndarray, dog_prob: np.ndarray, count: int = 12):
    """Indices of wrongly classified photos, the most confident mistake first."""
    wrong = np.flatnonzero((dog_prob >= 0.5).astype(int) != labels)
    return wrong[np.argsort(-np.abs(dog_prob[wrong] - 0.5))][:count]


def input_size(model: keras.Model) -> int:
    """The photo size (height = width) a model takes, read from its input shape."""
    return int(model.input_shape[1])


def predict_file(model: keras.Model, path: str | Path) -> dict:
    """Classify one photo file, resized to the model's input size as in training."""
    image = load_image(path, input_size(model))
    p_dog = float(dog_probability(model, image[None])[0])
    label = CLASS_NAMES[int(p_dog >= 0.5)]
    return {"path": str(path), "label": label, "p_dog": p_dog,
            "confidence": p_dog if label == "dog" else 1 - p_dog}


def saved_or_demo_model(run: Run) -> tuple[keras.Model, str]:
    """This run's best model when notebook 04 or `train` saved one, else a demo model trained
    here with the quick profile's recipe (kept for next time); with a line saying which."""
    best = run.model_dir / "best.keras"
    if best.exists():
        top = best_row(read_history(run.model_dir))
        numbers = (f" (best epoch {top['epoch']}, validation accuracy {top[MONITOR]:.2%})"
                   if top else "")
        return load_best_model(run.model_dir), f"Using the saved model {shown(best)}{numbers}"
    check_split(run.processed)
    quick = PROFILES["quick"]
    per_class = quick.per_class_limit  # as many as the quick profile's split holds, per class
    val = round(per_class * VAL_FRACTION)
    limit = per_class - val - round(per_class * TEST_FRACTION)
    photos = first_photos(run.processed / "train", limit) + first_photos(run.processed / "val", val)
    demo_photos = link_photos(photos, run.processed,  # a new split (another seed) gets its own
                              run.local / "data" / f"demo-{limit}-{split_id(run.processed)}")
    config, demo_dir = replace(quick.train, seed=run.seed), run.models / "demo"
    try:
        summary = train(config, demo_photos, demo_dir, verbose=0)
    except RunError:  # a demo from other settings, or damaged: keep it aside, train anew
        summary = train(config, demo_photos, demo_dir, verbose=0, restart=True)
    what = (f"compact AlexNet, {summary['epochs']} epochs, {len(photos):,} photos, validation "
            f"accuracy {summary['val_accuracy']:.2%}")
    return (load_best_model(demo_dir),
            f"No trained model in this work folder: using a demo model ({what}), saved as "
            f"{shown(demo_dir / 'best.keras')} — its numbers are not the reference run's")
