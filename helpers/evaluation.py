"""Judge a trained model on a split: probabilities, flip test-time augmentation, the
confusion matrix and the most confidently wrong photos."""

from pathlib import Path

import keras
import numpy as np
from sklearn.metrics import confusion_matrix

from helpers.data import CLASS_NAMES, load_image


def load_split_arrays(split_dir: str | Path, image_size: int = 227):
    """All photos of a split as one uint8 array, with labels and file paths in the same order,
    decoded and resized exactly as in training."""
    dataset = keras.utils.image_dataset_from_directory(
        split_dir, label_mode="int", class_names=CLASS_NAMES, image_size=(image_size, image_size),
        batch_size=256, shuffle=False, verbose=False)
    images, labels = [], []
    for batch, batch_labels in dataset:
        images.append(np.round(np.asarray(batch)).astype("uint8"))
        labels.append(np.asarray(batch_labels))
    return np.concatenate(images), np.concatenate(labels), [Path(p) for p in dataset.file_paths]


def dog_probability(model: keras.Model, images: np.ndarray, batch_size: int = 64) -> np.ndarray:
    """P(dog) per photo, from a 1-unit sigmoid head or the second column of a softmax head."""
    scores = model.predict(images, batch_size=batch_size, verbose=0)
    return scores[:, -1].astype("float64")


def flip_tta_probability(model: keras.Model, images: np.ndarray, batch_size: int = 64):
    """Test-time augmentation: the mean of P(dog) for each photo and its mirror image."""
    mirrored = images[:, :, ::-1, :]
    return (dog_probability(model, images, batch_size)
            + dog_probability(model, mirrored, batch_size)) / 2


def confusion_counts(labels: np.ndarray, dog_prob: np.ndarray, threshold: float = 0.5):
    """2x2 counts, rows = true class (cat, dog), columns = predicted class."""
    return confusion_matrix(labels, (dog_prob >= threshold).astype(int), labels=[0, 1])


def accuracy(labels: np.ndarray, dog_prob: np.ndarray, threshold: float = 0.5) -> float:
    """Share of photos whose thresholded prediction equals the label."""
    return float(np.mean((dog_prob >= threshold).astype(int) == labels))


def most_confident_mistakes(labels: np.ndarray, dog_prob: np.ndarray, count: int = 12):
    """Indices of wrongly classified photos, the most confident mistake first."""
    wrong = np.flatnonzero((dog_prob >= 0.5).astype(int) != labels)
    confidence = np.abs(dog_prob[wrong] - 0.5)
    return wrong[np.argsort(-confidence)][:count]


def predict_file(model: keras.Model, path: str | Path, image_size: int = 227) -> dict:
    """Classify one photo from disk: the end-to-end use of a saved model."""
    image = load_image(path, image_size)
    p_dog = float(dog_probability(model, image[None])[0])
    label = "dog" if p_dog >= 0.5 else "cat"
    return {"path": str(path), "label": label, "p_dog": p_dog,
            "confidence": p_dog if label == "dog" else 1 - p_dog}
