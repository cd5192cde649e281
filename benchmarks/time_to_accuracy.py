"""Time to accuracy: how long the recommended recipe takes to reach the series' validation
accuracy, on whatever machine and Keras backend runs it.

The recipe is the full profile's run (config.get_profile("full").train): AlexNet
"bn", 22 epochs: 10 at 128 px, 9 at 180 px, the last 3 at 227 px (helpers.training.stages),
batch 64, Adam 1e-3 with one warm-up epoch then cosine decay over all the epochs, no label
smoothing, augmentation inside the model, automatic precision. Training stops at the first
epoch whose val_accuracy (at that stage's size) reaches --target (0.9368), or when
--time-limit seconds have passed (checked after every batch).

It runs under any Keras backend. Under TensorFlow the photos come through
helpers.data.load_split, as in training; otherwise (e.g. KERAS_BACKEND=jax on a machine
without TensorFlow) they are decoded once into uint8 NumPy arrays by helpers.data.load_image
(resized exactly as load_split does) and fed to model.fit directly. Nothing here imports TensorFlow
unless the backend is TensorFlow.

Why: "reaches 93.7% in N minutes on X" is the number people compare; wall_time_s includes
compilation and validation, images_per_s counts training steps only.

    python -m benchmarks.time_to_accuracy --data-dir data/raw [--time-limit 10800]
    KERAS_BACKEND=jax python -m benchmarks.time_to_accuracy --data-dir data/raw
"""

import dataclasses
import math
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import keras
import numpy as np

from benchmarks.common import (
    add_config_args,
    add_data_args,
    check,
    config_from,
    new_parser,
    prepared_split,
    report,
    training_session,
)
from helpers.config import TrainConfig
from helpers.data import list_images, load_image, steps_per_epoch
from helpers.training import at_size, build_model, stages

TARGET_ACCURACY = 0.9368
DEFAULT_TIME_LIMIT_S = 3 * 3600


class StopAtAccuracy(keras.callbacks.Callback):
    """Stop once val_accuracy >= target (checked each epoch) or the time limit has passed
    (checked each batch); record training-only seconds, each epoch's seconds (validation
    included) and the images trained on, over every fit it is passed to (a run's stages)."""

    def __init__(self, target: float, time_limit_s: float, train_count: int, batch_size: int):
        super().__init__()
        self.target, self.time_limit_s = target, time_limit_s
        self.train_count, self.batch_size = train_count, batch_size
        self.started, self.train_seconds, self.images, self.epoch_seconds = None, 0.0, 0, []
        self.best, self.seconds_to_target, self.timed_out = float("nan"), None, False

    @property
    def epochs(self) -> int:
        return len(self.epoch_seconds)

    def on_train_begin(self, logs=None):  # the clock runs from the first stage's start
        self.started = self.started or time.perf_counter()

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch_started, self.batches, self.in_training = time.perf_counter(), 0, True

    def on_train_batch_end(self, batch, logs=None):
        self.batches += 1
        if time.perf_counter() - self.started > self.time_limit_s:
            self.timed_out = self.model.stop_training = True

    def on_test_begin(self, logs=None):
        self._end_training_phase()

    def on_epoch_end(self, epoch, logs=None):
        self._end_training_phase()
        self.epoch_seconds.append(time.perf_counter() - self.epoch_started)
        accuracy = float((logs or {}).get("val_accuracy", float("nan")))
        if not accuracy <= self.best:  # also replaces the initial NaN
            self.best = accuracy
        if accuracy >= self.target:
            self.seconds_to_target = time.perf_counter() - self.started
            self.model.stop_training = True
        elif time.perf_counter() - self.started > self.time_limit_s:
            self.timed_out = self.model.stop_training = True

    def on_train_end(self, logs=None):
        self.wall_seconds = time.perf_counter() - self.started

    def _end_training_phase(self):
        if self.in_training:
            self.in_training = False
            self.train_seconds += time.perf_counter() - self.epoch_started
            self.images += min(self.batches * self.batch_size, self.train_count)


def choose_loader(loader: str) -> str:
    """"tf" (helpers.data.load_split) under the TensorFlow backend, "numpy" otherwise."""
    if loader == "auto":
        return "tf" if keras.backend.backend() == "tensorflow" else "numpy"
    if loader == "tf" and keras.backend.backend() != "tensorflow":
        raise ValueError("--loader tf needs KERAS_BACKEND=tensorflow")
    return loader


def load_arrays(split_dir: Path, image_size: int, classes: int = 1, workers: int = 8):
    """Every photo of a split as uint8 (N, size, size, 3) and targets shaped for the head."""
    paths, labels = list_images(split_dir)
    if not paths:
        raise FileNotFoundError(f"no photos in {split_dir}")
    images = np.empty((len(paths), image_size, image_size, 3), dtype=np.uint8)
    with ThreadPoolExecutor(workers) as pool:  # PIL releases the GIL while decoding
        for i, pixels in enumerate(pool.map(lambda p: load_image(p, image_size), paths)):
            images[i] = pixels
    if classes == 1:
        return images, labels[:, None].astype("float32")
    return images, np.eye(classes, dtype="float32")[labels]


def fit_data(processed: Path, config: TrainConfig, loader: str) -> tuple[dict, dict]:
    """Keyword arguments for model.fit: training data and validation data."""
    if loader == "tf":
        from helpers.training import datasets

        train, val, _ = datasets(config, processed, config.seed)
        return {"x": train, "shuffle": False}, {"validation_data": val}
    x, y = load_arrays(processed / "train", config.image_size, config.classes)
    val = load_arrays(processed / "val", config.image_size, config.classes)
    return ({"x": x, "y": y, "batch_size": config.batch_size, "shuffle": True},
            {"validation_data": val, "validation_batch_size": config.batch_size})


def run(processed: Path, config: TrainConfig, target: float = TARGET_ACCURACY,
        time_limit_s: float = DEFAULT_TIME_LIMIT_S, loader: str = "auto",
        verbose: int | str = 2) -> dict:
    """Train `config` on processed/train until val accuracy >= target or the time limit."""
    loader = choose_loader(loader)
    with training_session(processed, config) as (train_count, precision):
        model = build_model(config, steps_per_epoch(train_count, config.batch_size))
        stop = StopAtAccuracy(target, time_limit_s, train_count, config.batch_size)
        loading, done = 0.0, 0
        for size, until in stages(config):  # a progressive profile: smaller photos first
            started = time.perf_counter()
            train_kwargs, val_kwargs = fit_data(processed, dataclasses.replace(
                config, image_size=size), loader)
            loading += time.perf_counter() - started
            stage = model if size == config.image_size else at_size(model, size)
            stage.fit(**train_kwargs, **val_kwargs, initial_epoch=done, epochs=until,
                      verbose=verbose, callbacks=[stop])
            if stop.seconds_to_target is not None or stop.timed_out:
                break
            done = until
    return {
        "wall_time_s": stop.wall_seconds, "epochs": stop.epochs,
        "images_per_s": stop.images / stop.train_seconds if stop.train_seconds else 0.0,
        "reached": stop.seconds_to_target is not None, "seconds_to_target": stop.seconds_to_target,
        "best_val_accuracy": None if math.isnan(stop.best) else stop.best, "target": target,
        "timed_out": stop.timed_out, "time_limit_s": time_limit_s, "max_epochs": config.epochs,
        "train_images": train_count, "images_trained": stop.images, "loading_s": loading,
        "backend": keras.backend.backend(), "loader": loader, "precision": precision,
        "variant": config.variant, "image_size": config.image_size,
        "batch_size": config.batch_size,
    }


def rows(result: dict) -> list[tuple[str, str, str]]:
    """Table rows for this benchmark's result."""
    best = result["best_val_accuracy"]
    return [
        (f"time to val accuracy {result['target']} ({result['backend']}, "
         f"{result['precision']}, s)",
         f"{result['seconds_to_target']:.0f}" if result["reached"] else "not reached",
         f"limit {result['time_limit_s']:g} s"),
        ("epochs run", str(result["epochs"]), f"at most {result['max_epochs']}"),
        ("best val accuracy", "n/a" if best is None else f"{best:.4f}",
         "" if best is None else check(best, result["target"])),
        ("training images/s", f"{result['images_per_s']:.1f}", ""),
        ("wall time (s)", f"{result['wall_time_s']:.0f}", ""),
    ]


def main(argv: list[str] | None = None) -> dict:
    parser = new_parser("benchmarks.time_to_accuracy", __doc__)
    add_data_args(parser)
    parser.add_argument("--time-limit", type=float, default=DEFAULT_TIME_LIMIT_S,
                        help="seconds before training stops anyway (default: 3 hours)")
    parser.add_argument("--target", type=float, default=TARGET_ACCURACY)
    add_config_args(parser, "epochs", "variant", "image_size", "batch_size", "precision")
    parser.add_argument("--loader", choices=("auto", "tf", "numpy"), default="auto",
                        help="auto: load_split under TensorFlow, NumPy arrays otherwise")
    parser.add_argument("--verbose", type=int, default=2, help="model.fit verbosity")
    args = parser.parse_args(argv)
    processed = prepared_split(args.data_dir, args.work_dir, args.max_photos, args.seed)
    result = run(processed, config_from(args), args.target, args.time_limit, args.loader,
                 args.verbose)
    report(rows(result), result)
    return result


if __name__ == "__main__":
    main()
