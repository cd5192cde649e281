"""One training entry point for notebook 04 and `make run`: data, model, precision, devices,
schedule and callbacks, all from a TrainConfig.

The callbacks are the lesson: keep the best model by `val_accuracy` (the TF2 name; the old
`val_acc` never matches and the callback silently never fires), back up every epoch so an
interrupted run resumes where it stopped, stop early with the best weights restored, and
record history with the wall time of each epoch.
"""

import contextlib
import csv
import json
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import keras

from helpers.alexnet import build_alexnet, head_activation, head_loss
from helpers.data import augmentation, list_images, load_split, steps_per_epoch
from helpers.environment import choose_precision, gpus

MONITOR = "val_accuracy"


@dataclass
class TrainConfig:
    """Everything a run depends on; saved next to the model as config.json."""

    variant: str = "bn"
    classes: int = 1
    epochs: int = 12
    batch_size: int = 64
    learning_rate: float = 1e-3
    schedule: str = "cosine"  # warm-up + cosine decay, or "plateau" (reduce on plateau)
    warmup_epochs: float = 1.0
    label_smoothing: float = 0.05
    weight_decay: float | None = None  # None = the variant's default
    rotation: float = 0.05
    zoom: float = 0.1
    translation: float = 0.1
    patience: int = 4
    image_size: int = 227
    precision: str = "auto"
    seed: int = 42


class SimulatedInterruption(Exception):
    """Raised by InterruptAfter to show that a stopped run resumes where it left off."""


class InterruptAfter(keras.callbacks.Callback):
    """Stop training with SimulatedInterruption once epoch `epoch` (1-based) has ended, as a
    crash or a Colab disconnect would."""

    def __init__(self, epoch: int):
        super().__init__()
        self.epoch = epoch

    def on_epoch_end(self, epoch, logs=None):
        if epoch + 1 >= self.epoch:
            raise SimulatedInterruption(f"interrupted after epoch {epoch + 1}")


class HistoryRecorder(keras.callbacks.Callback):
    """Write the metrics, learning rate and wall time of every epoch to history.json and
    history.csv after each epoch, so a resumed or interrupted run keeps every finished epoch."""

    def __init__(self, run_dir: Path):
        super().__init__()
        self.json_path, self.csv_path = run_dir / "history.json", run_dir / "history.csv"
        self.rows: dict[int, dict] = {}

    def on_train_begin(self, logs=None):
        self.rows = {row["epoch"]: row for row in read_history(self.json_path)}

    def on_epoch_begin(self, epoch, logs=None):
        self.started = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        row = {"epoch": epoch + 1, **{k: float(v) for k, v in (logs or {}).items()},
               "learning_rate": current_learning_rate(self.model.optimizer),
               "seconds": time.perf_counter() - self.started}
        self.rows[epoch + 1] = row
        rows = [self.rows[k] for k in sorted(self.rows)]
        self.json_path.write_text(json.dumps(rows, indent=1))
        with open(self.csv_path, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(rows[-1]))
            writer.writeheader()
            writer.writerows(rows)


def read_history(path: str | Path) -> list[dict]:
    """The per-epoch rows HistoryRecorder wrote (empty when there is no file yet)."""
    path = Path(path)
    return json.loads(path.read_text()) if path.exists() else []


def current_learning_rate(optimizer) -> float:
    """The learning rate the optimizer used for its latest step, schedule included."""
    return float(keras.ops.convert_to_numpy(optimizer.learning_rate))


def learning_rate_schedule(config: TrainConfig, steps: int):
    """Linear warm-up to `learning_rate`, then cosine decay to zero over the remaining steps;
    a constant rate for the plateau schedule (ReduceLROnPlateau lowers it)."""
    if config.schedule == "plateau":
        return config.learning_rate
    if config.schedule != "cosine":
        raise ValueError(f"unknown schedule {config.schedule!r}: use cosine or plateau")
    total = steps * config.epochs
    warmup = min(int(steps * config.warmup_epochs), total - 1)
    return keras.optimizers.schedules.CosineDecay(
        initial_learning_rate=0.0 if warmup else config.learning_rate,
        decay_steps=total - warmup, warmup_target=config.learning_rate if warmup else None,
        warmup_steps=warmup)


def device_scope():
    """Train on every visible GPU: MirroredStrategy (TensorFlow) or DataParallel (JAX) when
    there are several, the default device otherwise."""
    found = gpus()
    if len(found) < 2:
        return contextlib.nullcontext()
    if keras.backend.backend() == "jax":
        keras.distribution.set_distribution(keras.distribution.DataParallel())
        return contextlib.nullcontext()
    import tensorflow as tf

    return tf.distribute.MirroredStrategy().scope()


def with_targets(dataset, classes: int):
    """Labels shaped for the head: (batch, 1) floats for a sigmoid, one-hot for a softmax."""
    if classes == 1:
        return dataset.map(lambda x, y: (x, keras.ops.cast(keras.ops.expand_dims(y, -1),
                                                            "float32")))
    return dataset.map(lambda x, y: (x, keras.ops.one_hot(y, classes)))


def build_model(config: TrainConfig, steps: int, seed: int | None = None) -> keras.Model:
    """The compiled model: augmentation inside, optimizer with the schedule, matching loss.
    `seed` drives the augmentation (default: config.seed)."""
    activation = head_activation(config.classes)
    model = build_alexnet(
        config.variant, classes=config.classes, image_size=config.image_size,
        weight_decay=config.weight_decay,
        augmentation=augmentation(rotation=config.rotation, zoom=config.zoom,
                                  translation=config.translation,
                                  seed=config.seed if seed is None else seed))
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate_schedule(config, steps)),
        loss=head_loss(config.classes, activation, config.label_smoothing),
        metrics=["accuracy"])
    return model


def callbacks(config: TrainConfig, run_dir: Path, best_so_far: float | None = None
              ) -> list[keras.callbacks.Callback]:
    """Best checkpoint, per-epoch backup, early stopping, history (and plateau schedule).
    On a resumed run, `best_so_far` keeps the checkpoint from overwriting a better epoch."""
    found = [
        keras.callbacks.ModelCheckpoint(run_dir / "best.keras", monitor=MONITOR, mode="max",
                                        save_best_only=True,
                                        initial_value_threshold=best_so_far),
        keras.callbacks.BackupAndRestore(run_dir / "backup"),
        keras.callbacks.EarlyStopping(monitor=MONITOR, mode="max", patience=config.patience,
                                      restore_best_weights=True),
        HistoryRecorder(run_dir),
    ]
    if config.schedule == "plateau":
        found.append(keras.callbacks.ReduceLROnPlateau(monitor=MONITOR, mode="max", factor=0.3,
                                                       patience=max(1, config.patience // 2)))
    return found


def resolve_precision(config: TrainConfig) -> str:
    """The precision policy this run uses: the configured one, or the automatic choice."""
    return choose_precision() if config.precision == "auto" else config.precision


def train(config: TrainConfig, processed_dir: str | Path, run_dir: str | Path,
          verbose: int | str = "auto", extra_callbacks=()) -> dict:
    """Train on processed_dir/train, validate on processed_dir/val, save into run_dir.

    Returns a summary: paths, epochs run, best val accuracy, seconds per epoch. Calling it
    again on the same run_dir after an interruption resumes at the next epoch.
    """
    processed_dir, run_dir = Path(processed_dir), Path(run_dir)
    if not (run_dir / "backup").exists():  # a new run, not a resumed one: drop old history
        for name in ("history.json", "history.csv", "best.keras"):
            (run_dir / name).unlink(missing_ok=True)
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "config.json").write_text(json.dumps(asdict(config), indent=1))
    done = read_history(run_dir / "history.json")
    # A resumed run must not replay epoch 1's shuffle, augmentation and dropout masks.
    seed = config.seed + len(done)
    keras.utils.set_random_seed(seed)
    precision = resolve_precision(config)
    keras.mixed_precision.set_dtype_policy(precision)

    train_count = len(list_images(processed_dir / "train")[0])
    if train_count == 0:
        raise FileNotFoundError(f"no training photos in {processed_dir / 'train'}: run prepare")
    steps = steps_per_epoch(train_count, config.batch_size)
    train_data = with_targets(load_split(processed_dir / "train", config.image_size,
                                         config.batch_size, shuffle=True, seed=seed),
                              config.classes)
    val_data = with_targets(load_split(processed_dir / "val", config.image_size,
                                       config.batch_size), config.classes)
    with device_scope():
        model = build_model(config, steps, seed)
    started = time.perf_counter()
    model.fit(train_data, validation_data=val_data, epochs=config.epochs, verbose=verbose,
              shuffle=False,  # the pipeline shuffles
              callbacks=callbacks(config, run_dir, max((r[MONITOR] for r in done), default=None))
              + list(extra_callbacks))
    history = read_history(run_dir / "history.json")
    best = max(history, key=lambda row: row[MONITOR])
    return {
        "run_dir": str(run_dir), "model_path": str(run_dir / "best.keras"),
        "precision": precision, "epochs": len(history), "best_epoch": best["epoch"],
        "val_accuracy": best[MONITOR], "train_images": train_count,
        "seconds_per_epoch": sum(r["seconds"] for r in history) / len(history),
        "wall_time_s": sum(r["seconds"] for r in history),
        "this_call_s": time.perf_counter() - started,
        "stopped_early": len(history) < config.epochs and not math.isnan(best[MONITOR]),
    }
