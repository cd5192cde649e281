"""Training, in pieces that notebook 04 shows one by one and `train()` (the training command,
the benchmarks, the tests) runs in the same order: the run folder's state (`resume`), the data
(`datasets`), the compiled model (`build_model`) and the callbacks (`callbacks`).

A run folder holds config.json, best.keras, history.json / history.csv, and the resume state:
state.json (config, history, best epoch, finished or not) with backup/epoch-NNN.keras (the
latest epoch's weights and optimizer state, and the best epoch's). After every epoch the
snapshot is written, then state.json is replaced in one atomic rename: that rename is the
commit, so a kill at any instant loses at most the epoch in progress. best.keras and the
history files are published from the committed state (and again on resume, in case a kill
came between). Nothing is deleted that a later state still needs, and a finished run is never
cleared: starting over moves its files into previous-<UTC time>/.
"""

import contextlib
import json
import math
import os
import time
import zipfile
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import keras

from helpers.alexnet import (
    BATCH_NORM_MOMENTUM,
    INPUT_SIZE,
    build_alexnet,
    head_activation,
    head_loss,
)
from helpers.data import augmentation, list_images, load_split, steps_per_epoch
from helpers.environment import choose_precision, describe_hardware, device_report, gpus
from helpers.photos import find_photos, link_or_copy, link_subset
from helpers.workspace import Run

MONITOR = "val_accuracy"  # Keras 3's name; TensorFlow 1's "val_acc" matches nothing
STATE = "state.json"  # the commit point of the resume state
BACKUP = "backup"  # the snapshots state.json names
RUN_FILES = (STATE, BACKUP, "config.json", "best.keras", "history.json", "history.csv")
DEMO_EPOCHS, DEMO_PER_CLASS = 4, 200  # the demo model: epochs, training photos per class


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
    conv_dropout: float | None = None  # None = the variant's default (bn: 0.1)
    dense_dropout: float | None = None  # None = the variant's default (0.5, as in the paper)
    batch_norm_momentum: float = BATCH_NORM_MOMENTUM  # not Keras's 0.99, which lags
    rotation: float = 0.05
    zoom: float = 0.1
    translation: float = 0.1
    patience: int = 4
    image_size: int = INPUT_SIZE
    precision: str = "auto"
    seed: int = 42


class RunStateError(Exception):
    """A run folder that cannot be resumed as it is; the message says what to do."""


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


def write_atomic(path: Path, write) -> None:
    """Make `path` with `write(temporary)` and rename it into place: a reader (or a resumed
    run) finds the old file or the new one, never half of one."""
    temporary = path.with_name(f".tmp-{path.name}")  # keeps the suffix Keras checks
    temporary.unlink(missing_ok=True)
    write(temporary)
    os.replace(temporary, path)


def write_text(path: Path, text: str) -> None:
    write_atomic(path, lambda temporary: temporary.write_text(text))


def history_csv(rows: list[dict]) -> str:
    """The history as CSV, one row per epoch."""
    if not rows:
        return ""
    lines = [",".join(rows[-1])]
    lines += [",".join(str(row[key]) for key in rows[-1]) for row in rows]
    return "\n".join(lines) + "\n"


def read_history(path: str | Path) -> list[dict]:
    """The per-epoch rows of history.json (empty when there is no file yet)."""
    path = Path(path)
    return json.loads(path.read_text()) if path.exists() else []


def count(n: int, noun: str) -> str:
    """A number with its noun, singular or plural: 1 epoch, 12 epochs, 17,998 photos."""
    return f"{n:,} {noun}{'' if n == 1 else 's'}"


def damaged(run_dir: Path, reason: str) -> RunStateError:
    return RunStateError(
        f"{run_dir}: the resume state is damaged ({reason}); nothing was changed. Start over "
        "with restart=True (command line: --restart), which moves the old files to "
        "previous-<time>/, or train into another folder.")


@dataclass
class RunState:
    """A training run as its folder records it: the config, one history row per finished
    epoch, the best epoch so far, and whether the run has finished."""

    run_dir: Path
    config: TrainConfig
    history: list[dict] = field(default_factory=list)
    best_epoch: int | None = None
    finished: bool = False
    precision: str | None = None  # of the latest session that trained
    hardware: str | None = None
    set_aside: Path | None = None  # where restart moved an earlier run's files

    @property
    def epoch(self) -> int:
        """Epochs finished and committed."""
        return len(self.history)

    @property
    def seed(self) -> int:
        """The seed of this session: a resumed run must not replay epoch 1's shuffle,
        augmentation and dropout masks."""
        return self.config.seed + self.epoch

    @property
    def best(self) -> dict | None:
        return self.history[self.best_epoch - 1] if self.best_epoch else None

    def snapshot(self, epoch: int) -> Path:
        """The model (weights and optimizer state) at the end of `epoch`."""
        return self.run_dir / BACKUP / f"epoch-{epoch:03d}.keras"

    def commit(self) -> None:
        """Replace state.json in one rename: the state on disk moves to this one at once."""
        record = {"config": asdict(self.config), "history": self.history,
                  "best_epoch": self.best_epoch, "finished": self.finished,
                  "precision": self.precision, "hardware": self.hardware}
        write_text(self.run_dir / STATE, json.dumps(record, indent=1))

    def publish(self, best: bool = True) -> None:
        """Write config.json and the history files from the committed state, and best.keras
        (a hard link to the best snapshot, or a copy) when `best`."""
        write_text(self.run_dir / "config.json", json.dumps(asdict(self.config), indent=1))
        if self.history:
            write_text(self.run_dir / "history.json", json.dumps(self.history, indent=1))
            write_text(self.run_dir / "history.csv", history_csv(self.history))
        if best and self.best_epoch and not self.finished:
            source = self.snapshot(self.best_epoch)
            write_atomic(self.run_dir / "best.keras", lambda temporary: link_or_copy(source,
                                                                                      temporary))

    def tidy(self) -> None:
        """Remove the snapshots the committed state no longer needs and leftover temporary
        files: all of them written by this module."""
        keep = set() if self.finished else {self.snapshot(self.epoch),
                                             self.snapshot(self.best_epoch or 0)}
        backup = self.run_dir / BACKUP
        for path in [*backup.glob("epoch-*.keras"), *backup.glob(".tmp-*"),
                     *self.run_dir.glob(".tmp-*")]:
            if path not in keep:
                path.unlink()
        if backup.is_dir() and not any(backup.iterdir()):
            backup.rmdir()

    def save_epoch(self, model: keras.Model, row: dict, improved: bool) -> None:
        """Snapshot the model, then commit the epoch's row (and best epoch), then publish."""
        self.snapshot(row["epoch"]).parent.mkdir(exist_ok=True)
        write_atomic(self.snapshot(row["epoch"]), model.save)
        self.history.append(row)
        if improved:
            self.best_epoch = row["epoch"]
        self.commit()
        self.publish(best=improved)
        self.tidy()

    def restore(self, model: keras.Model) -> None:
        """Load the latest snapshot's weights and optimizer state into `model` (compiled)."""
        if not self.epoch:
            return
        if model.optimizer is not None and not model.optimizer.built:
            model.optimizer.build(model.trainable_variables)
        path = self.snapshot(self.epoch)
        try:
            model.load_weights(path)
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as error:
            reason = " ".join(str(error).split())[:160]
            raise damaged(self.run_dir, f"{BACKUP}/{path.name} cannot be loaded: {reason}"
                          ) from error

    def finish(self) -> None:
        self.finished = True
        self.commit()
        self.tidy()

    def describe(self, show=str) -> str:
        """One line on what this run folder holds and what training will do with it; `show`
        turns a path into the text to print."""
        where = show(self.run_dir)
        best = (f"best epoch {self.best_epoch}, val_accuracy {self.best[MONITOR]:.2%}"
                if self.best else "")
        if self.finished:
            return (f"{where} holds a finished run ({count(self.epoch, 'epoch')}, {best}): "
                    "nothing to train. To train it again pass restart=True (command line: "
                    "--restart); its files are moved to previous-<time>/.")
        if self.epoch:
            return f"Resuming {where} after epoch {self.epoch} of {self.config.epochs} ({best})."
        aside = f"; the earlier run's files are in {show(self.set_aside)}" if self.set_aside else ""
        return f"New run in {where}{aside}."


def read_state(run_dir: Path) -> RunState | None:
    """The state committed in run_dir/state.json; None when there is none."""
    path = run_dir / STATE
    if not path.exists():
        return None
    try:
        record = json.loads(path.read_text())
        state = RunState(run_dir, TrainConfig(**record["config"]), record["history"],
                         record["best_epoch"], record["finished"], record["precision"],
                         record["hardware"])
    except (ValueError, KeyError, TypeError) as error:
        raise damaged(run_dir, f"{STATE} cannot be read: {error}") from error
    if [row.get("epoch") for row in state.history] != list(range(1, state.epoch + 1)):
        raise damaged(run_dir, f"{STATE} does not list epochs 1 to {state.epoch}")
    needed = [] if state.finished or not state.epoch else {state.epoch, state.best_epoch}
    for epoch in sorted(needed):
        problem = snapshot_problem(state.snapshot(epoch))
        if problem:
            raise damaged(run_dir, f"{BACKUP}/{state.snapshot(epoch).name} {problem}")
    return state


def snapshot_problem(path: Path) -> str | None:
    """Why the snapshot at `path` cannot be used (missing, truncated, corrupt), or None; it
    reads the whole file once to check it."""
    try:
        with zipfile.ZipFile(path) as archive:
            bad = archive.testzip()
    except FileNotFoundError:
        return "is missing"
    except (OSError, zipfile.BadZipFile) as error:
        return f"cannot be read: {error}"
    return f"is corrupt ({bad})" if bad else None


def set_aside(run_dir: Path) -> Path | None:
    """Move the files of an earlier run in run_dir into run_dir/previous-<UTC time>/, never
    deleting any; None when there was nothing to move."""
    found = [run_dir / name for name in RUN_FILES if (run_dir / name).exists()]
    found += sorted(run_dir.glob(".tmp-*"))
    if not found:
        return None
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    aside, n = run_dir / f"previous-{stamp}", 1
    while aside.exists():
        n += 1
        aside = run_dir / f"previous-{stamp}-{n}"
    aside.mkdir()
    for path in found:
        os.replace(path, aside / path.name)
    return aside


def resume(config: TrainConfig, run_dir: str | Path, restart: bool = False) -> RunState:
    """The run in run_dir, ready to continue: a new one, an interrupted one (resumed from its
    last committed epoch) or a finished one (left as it is). `restart` starts a new run, after
    moving an earlier one's files aside. Raises RunStateError, changing nothing, for a state
    that cannot be resumed: damaged, made with another config, or missing."""
    run_dir = Path(run_dir)
    aside = set_aside(run_dir) if restart and run_dir.is_dir() else None
    state = read_state(run_dir)
    if state is None:
        leftovers = [name for name in RUN_FILES[1:] if (run_dir / name).exists()]
        if "best.keras" in leftovers or "history.json" in leftovers or BACKUP in leftovers:
            raise RunStateError(
                f"{run_dir} holds a run without resume state ({', '.join(leftovers)}, but no "
                f"{STATE}); nothing was changed. Start over with restart=True (command line: "
                "--restart), which moves those files to previous-<time>/, or train into "
                "another folder.")
    elif state.config != config and state.epoch:
        changed = ", ".join(f"{key} {value!r} -> {asdict(config)[key]!r}"
                            for key, value in asdict(state.config).items()
                            if asdict(config)[key] != value)
        raise RunStateError(
            f"{run_dir} holds a run trained with another config ({changed}); nothing was "
            "changed. Use the same settings to resume it, or start over with restart=True "
            "(command line: --restart), which moves its files to previous-<time>/.")
    if state is None or state.config != config:
        state = RunState(run_dir, config, set_aside=aside)
        run_dir.mkdir(parents=True, exist_ok=True)
        state.commit()
    state.publish()  # again, in case a kill came between a commit and its publication
    if not state.finished and state.epoch >= config.epochs:
        state.finish()
    state.tidy()
    return state


class RunCheckpoint(keras.callbacks.Callback):
    """Keep the best model, back up the run and record its history, after every epoch and in
    one atomic commit (see RunState.save_epoch); restore the backup when training starts.

    Keras's own ModelCheckpoint, BackupAndRestore and CSVLogger each write their file on their
    own: a kill between two of them leaves a backup a step ahead of the history, and a kill
    halfway through one leaves a file that cannot be read.
    """

    def __init__(self, state: RunState, monitor: str = MONITOR):
        super().__init__()
        self.state, self.monitor = state, monitor

    def on_train_begin(self, logs=None):
        if self.state.finished:
            raise ValueError(f"{self.state.run_dir} holds a finished run: nothing to train")
        self.state.restore(self.model)
        self.state.precision = self.model.dtype_policy.name
        self.state.hardware = describe_hardware(device_report())

    def on_epoch_begin(self, epoch, logs=None):
        if epoch != self.state.epoch:
            raise ValueError(f"fit starts at epoch {epoch + 1}, the run has finished "
                             f"{self.state.epoch}: pass initial_epoch=state.epoch")
        self.started = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        if self.monitor not in logs:  # Keras's ModelCheckpoint only warns, and never saves
            raise ValueError(f"no {self.monitor!r} among the logged metrics {sorted(logs)}")
        row = {"epoch": epoch + 1, **{k: float(v) for k, v in logs.items()},
               "learning_rate": current_learning_rate(self.model.optimizer),
               "seconds": time.perf_counter() - self.started}
        best = self.state.best
        self.state.save_epoch(self.model, row, best is None or logs[self.monitor] > best[
            self.monitor])

    def on_train_end(self, logs=None):  # not called when fit is interrupted by an exception
        self.state.finish()


def callbacks(state: RunState) -> list[keras.callbacks.Callback]:
    """The run's callbacks: best checkpoint, backup and history (one atomic commit per
    epoch), early stopping (and the plateau schedule's learning-rate cuts)."""
    config = state.config
    found = [
        RunCheckpoint(state, monitor=MONITOR),
        keras.callbacks.EarlyStopping(monitor=MONITOR, mode="max", patience=config.patience,
                                      restore_best_weights=True),
    ]
    if config.schedule == "plateau":
        found.append(keras.callbacks.ReduceLROnPlateau(monitor=MONITOR, mode="max", factor=0.3,
                                                       patience=max(1, config.patience // 2)))
    return found


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
    import tensorflow as tf  # tf.data maps run TensorFlow ops, whatever the Keras backend

    if classes == 1:
        return dataset.map(lambda x, y: (x, tf.cast(tf.expand_dims(y, -1), tf.float32)))
    return dataset.map(lambda x, y: (x, tf.one_hot(y, classes)))


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


def datasets(config: TrainConfig, processed_dir: str | Path, seed: int):
    """(training batches shuffled with `seed`, validation batches, number of training photos),
    with targets shaped for the head."""
    processed_dir = Path(processed_dir)
    check_split(processed_dir)
    train_count = len(list_images(processed_dir / "train")[0])
    train_data = load_split(processed_dir / "train", config.image_size, config.batch_size,
                            shuffle=True, seed=seed)
    val_data = load_split(processed_dir / "val", config.image_size, config.batch_size)
    return (with_targets(train_data, config.classes), with_targets(val_data, config.classes),
            train_count)


def build_model(config: TrainConfig, steps: int, seed: int | None = None) -> keras.Model:
    """The compiled model: augmentation inside, optimizer with the schedule, matching loss.
    `seed` drives the augmentation (default: config.seed)."""
    activation = head_activation(config.classes)
    model = build_alexnet(
        config.variant, classes=config.classes, image_size=config.image_size,
        weight_decay=config.weight_decay, batch_norm_momentum=config.batch_norm_momentum,
        conv_dropout=config.conv_dropout, dense_dropout=config.dense_dropout,
        augmentation=augmentation(rotation=config.rotation, zoom=config.zoom,
                                  translation=config.translation,
                                  seed=config.seed if seed is None else seed))
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate_schedule(config, steps)),
        loss=head_loss(config.classes, activation, config.label_smoothing),
        metrics=["accuracy"])
    return model


def resolve_precision(config: TrainConfig) -> str:
    """The precision policy this run uses: the configured one, or the automatic choice."""
    return choose_precision() if config.precision == "auto" else config.precision


def summarize(state: RunState, train_images: int | None = None, this_call_s: float = 0.0
              ) -> dict:
    """What a run came to: epochs, best epoch and its val accuracy, time, precision."""
    seconds = sum(row["seconds"] for row in state.history)
    per_epoch = seconds / max(1, state.epoch)
    return {
        "run_dir": str(state.run_dir), "model_path": str(state.run_dir / "best.keras"),
        "precision": state.precision, "hardware": state.hardware, "epochs": state.epoch,
        "planned_epochs": state.config.epochs, "best_epoch": state.best_epoch,
        "val_accuracy": state.best[MONITOR] if state.best else math.nan,
        "train_images": train_images, "seconds_per_epoch": per_epoch,
        "images_per_s": train_images / per_epoch if train_images and seconds else None,
        "wall_time_s": seconds, "this_call_s": this_call_s, "finished": state.finished,
        "stopped_early": state.finished and state.epoch < state.config.epochs,
    }


def describe_summary(summary: dict, show=str) -> str:
    """A few readable lines for the end of a training run; `show` turns a path into text."""
    speed = (f", {summary['images_per_s']:,.0f} training photos/s (validation included)"
             if summary["images_per_s"] else "")
    stopped = " (stopped early)" if summary["stopped_early"] else ""
    return "\n".join([
        f"epochs:          {summary['epochs']} of {summary['planned_epochs']}{stopped}",
        f"best epoch:      {summary['best_epoch']}, val accuracy {summary['val_accuracy']:.2%}",
        f"time:            {summary['seconds_per_epoch']:,.0f} s per epoch, "
        f"{summary['wall_time_s']:,.0f} s in all{speed}",
        f"precision:       {summary['precision']}",
        f"hardware:        {summary['hardware']}",
        f"model:           {show(Path(summary['model_path']))}",
    ])


def train(config: TrainConfig, processed_dir: str | Path, run_dir: str | Path,
          verbose: int | str = "auto", extra_callbacks=(), restart: bool = False) -> dict:
    """Train on processed_dir/train, validate on processed_dir/val, save into run_dir; the
    steps of notebook 04. An interrupted run resumes at its next epoch, a finished one is
    returned as it is (`restart` starts over, keeping the old files aside). Returns
    `summarize`'s summary."""
    started = time.perf_counter()
    keras.mixed_precision.set_dtype_policy(resolve_precision(config))
    check_split(Path(processed_dir))  # before the run folder is touched
    state = resume(config, run_dir, restart)
    if verbose:
        print(state.describe())
    if state.finished:
        return summarize(state, len(list_images(Path(processed_dir) / "train")[0]))
    keras.utils.set_random_seed(state.seed)
    train_data, val_data, train_count = datasets(config, processed_dir, state.seed)
    with device_scope():
        model = build_model(config, steps_per_epoch(train_count, config.batch_size), state.seed)
    model.fit(train_data, validation_data=val_data, epochs=config.epochs,
              initial_epoch=state.epoch, shuffle=False,  # the pipeline shuffles
              verbose=verbose, callbacks=callbacks(state) + list(extra_callbacks))
    return summarize(state, train_count, time.perf_counter() - started)


def demo_split(run: Run, per_class: int) -> Path:
    """The first `per_class` training photos of each class (and a quarter as many validation
    photos) of the run's split, hard-linked into a folder next to it; made once, then reused."""
    processed_dir, dest = run.processed, run.local / "data" / f"demo-{per_class}"
    if dest.is_dir():
        return dest
    check_split(processed_dir)
    return link_subset(processed_dir, dest, {"train": per_class, "val": max(1, per_class // 4)})


def saved_or_demo_model(run: Run, epochs: int = DEMO_EPOCHS, per_class: int = DEMO_PER_CLASS
                        ) -> tuple[keras.Model, str]:
    """This run's best model when notebook 04 (or the training command) saved one, else a
    small demo model trained here on part of the run's split (saved, and reused next time);
    with a line saying which."""
    best = run.model_dir / "best.keras"
    if best.exists():
        rows = read_history(run.model_dir / "history.json")
        top = max(rows, key=lambda row: row[MONITOR]) if rows else None
        numbers = (f" (best epoch {top['epoch']}, validation accuracy {top[MONITOR]:.2%})"
                   if top else "")
        return (keras.saving.load_model(best),
                f"Using the saved model {run.show_path(best)}{numbers}")
    photos = demo_split(run, per_class)
    config = run.profile.train_config(variant="compact", epochs=epochs, batch_size=32,
                                      warmup_epochs=0.5)
    demo_dir = run.models / "demo"
    try:
        summary = train(config, photos, demo_dir, verbose=0)
    except RunStateError:  # a demo from other settings, or damaged: keep it aside, train anew
        summary = train(config, photos, demo_dir, verbose=0, restart=True)
    what = (f"compact AlexNet, {count(summary['epochs'], 'epoch')}, "
            f"{count(summary['train_images'], 'photo')}, validation accuracy "
            f"{summary['val_accuracy']:.2%}")
    where = run.show_path(demo_dir / "best.keras")
    done = (f"trained a demo model ({what}), saved as {where}" if summary["this_call_s"]
            else f"using the demo model {where} ({what})")
    return (keras.saving.load_model(demo_dir / "best.keras"),
            f"No trained model in this work folder: {done} — its numbers are not the "
            "reference run's")
