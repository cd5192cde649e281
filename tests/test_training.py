"""helpers.training: a real (small) training run, interrupting and resuming it, the history
files, the saved best model, the learning-rate schedule and the callbacks' monitor name.

Runs the compact variant on 99 x 99 generated photos (red-ish cats, blue-ish dogs), which the
network separates in an epoch or two; the whole file takes about 1.5 minutes on two busy
CPU cores.
"""

import csv
import json
import os
from dataclasses import asdict, replace
from pathlib import Path

import keras
import numpy as np
import pytest
from fixtures import make_petimages

from helpers.data import list_images, load_split, steps_per_epoch
from helpers.prepare import prepare
from helpers.training import (
    MONITOR,
    HistoryRecorder,
    InterruptAfter,
    SimulatedInterruption,
    TrainConfig,
    callbacks,
    learning_rate_schedule,
    read_history,
    train,
)

# 99 is about the smallest size AlexNet's valid 11x11/4 conv1 and three 3/2 poolings accept.
CONFIG = TrainConfig(variant="compact", classes=1, epochs=4, batch_size=16, image_size=99,
                     warmup_epochs=0.5, rotation=0, zoom=0, translation=0, patience=4,
                     precision="float32", seed=42)
HISTORY_KEYS = {"epoch", "accuracy", "loss", "val_accuracy", "val_loss", "learning_rate",
                "seconds"}


@pytest.fixture(scope="module", autouse=True)
def float32_policy():
    """train() sets the global dtype policy; leave it as the other test files expect."""
    yield
    keras.mixed_precision.set_dtype_policy("float32")


@pytest.fixture(scope="module")
def processed(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("petimages")
    pets = make_petimages(root, per_class=80, bad_files=False)
    prepare(pets, root / "processed", workers=1)
    return root / "processed"


def raw_split(processed: Path, split: str) -> tuple[np.ndarray, np.ndarray]:
    """All photos of a split as raw uint8 pixels (what the saved model takes), and labels."""
    batches = list(load_split(processed / split, CONFIG.image_size, 64))
    images = np.concatenate([np.asarray(x) for x, _ in batches])
    labels = np.concatenate([np.asarray(y) for _, y in batches])
    assert images.dtype == np.uint8
    return images, labels


class EpochLog(keras.callbacks.Callback):
    """Which epochs ran, the optimizer step when training began, and the model's inference
    outputs on a fixed batch at the end of every epoch (keyed by the 1-based epoch)."""

    def __init__(self, probe: np.ndarray):
        super().__init__()
        self.probe = probe
        self.started: list[int] = []
        self.predictions: dict[int, np.ndarray] = {}
        self.begin_step = None
        self.begin_predictions = None

    def on_train_begin(self, logs=None):  # runs after BackupAndRestore has restored the state
        self.begin_step = int(keras.ops.convert_to_numpy(self.model.optimizer.iterations))
        self.begin_predictions = self.predict()

    def on_epoch_begin(self, epoch, logs=None):
        self.started.append(epoch + 1)

    def on_epoch_end(self, epoch, logs=None):
        self.predictions[epoch + 1] = self.predict()

    def predict(self) -> np.ndarray:
        return keras.ops.convert_to_numpy(self.model(self.probe, training=False))


def held_epoch(model: keras.Model, log: EpochLog) -> int | None:
    """The epoch whose end-of-epoch weights `model` has (matched by its outputs on the probe)."""
    outputs = keras.ops.convert_to_numpy(model(log.probe, training=False))
    matches = [e for e, p in log.predictions.items() if np.allclose(p, outputs, atol=1e-6)]
    return matches[0] if len(matches) == 1 else None


def first_best_epoch(history: list[dict]) -> int:
    """The epoch ModelCheckpoint(save_best_only, mode="max") keeps: the first to reach the max."""
    best = max(row[MONITOR] for row in history)
    return next(row["epoch"] for row in history if row[MONITOR] == best)


# ------------------------------------------------------------------ a straight run


@pytest.fixture(scope="module")
def straight(processed, tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("straight") / "run"
    config = replace(CONFIG, epochs=5)
    log = EpochLog(raw_split(processed, "val")[0][:16])
    summary = train(config, processed, run_dir, verbose=0, extra_callbacks=[log])
    return config, run_dir, summary, log


def test_training_learns_the_separable_photos(straight, processed):
    config, run_dir, summary, log = straight
    history = read_history(run_dir / "history.json")
    assert summary["val_accuracy"] >= 0.9
    assert max(row["val_accuracy"] for row in history) == summary["val_accuracy"]
    assert history[-1]["accuracy"] >= 0.9  # training accuracy too
    assert history[-1]["loss"] < history[0]["loss"]
    assert log.started == [1, 2, 3, 4, 5]
    assert summary["epochs"] == len(history) == 5
    assert summary["best_epoch"] == first_best_epoch(history)
    assert summary["train_images"] == len(list_images(processed / "train")[0])
    assert summary["precision"] == "float32"
    assert summary["wall_time_s"] == pytest.approx(sum(r["seconds"] for r in history))
    assert not summary["stopped_early"]
    assert Path(summary["model_path"]) == run_dir / "best.keras"
    assert not (run_dir / "backup").exists()  # a finished run removes its backup
    assert json.loads((run_dir / "config.json").read_text()) == asdict(config)


def test_history_json_and_csv_agree(straight):
    _, run_dir, _, _ = straight
    rows = read_history(run_dir / "history.json")
    with open(run_dir / "history.csv", newline="") as f:
        reader = csv.DictReader(f)
        assert set(reader.fieldnames) == HISTORY_KEYS
        csv_rows = list(reader)
    assert [row["epoch"] for row in rows] == [1, 2, 3, 4, 5]
    assert [int(row["epoch"]) for row in csv_rows] == [1, 2, 3, 4, 5]
    for row, csv_row in zip(rows, csv_rows, strict=True):
        assert set(row) == HISTORY_KEYS
        for key in HISTORY_KEYS - {"epoch"}:
            assert float(csv_row[key]) == row[key], key
        assert 0 <= row["accuracy"] <= 1 and 0 <= row["val_accuracy"] <= 1
        assert row["seconds"] > 0
    assert read_history(run_dir / "missing.json") == []


def test_history_records_the_scheduled_learning_rate(straight, processed):
    config, run_dir, _, _ = straight
    steps = steps_per_epoch(len(list_images(processed / "train")[0]), config.batch_size)
    schedule = learning_rate_schedule(config, steps)
    for row in read_history(run_dir / "history.json"):
        expected = float(keras.ops.convert_to_numpy(schedule(row["epoch"] * steps)))
        assert row["learning_rate"] == pytest.approx(expected, rel=1e-5, abs=1e-9)


def test_best_model_reloads_and_predicts_like_the_best_epoch(straight, processed):
    _, run_dir, summary, log = straight
    history = read_history(run_dir / "history.json")
    images, labels = raw_split(processed, "val")
    first = keras.saving.load_model(run_dir / "best.keras")
    second = keras.saving.load_model(run_dir / "best.keras")
    assert first.name == "alexnet_compact"
    p1, p2 = first.predict(images, verbose=0), second.predict(images, verbose=0)
    assert p1.shape == (len(labels), 1)
    assert np.all((p1 >= 0) & (p1 <= 1))
    np.testing.assert_array_equal(p1, p2)
    # The checkpoint is the model as it was at the end of the best epoch...
    assert held_epoch(first, log) == summary["best_epoch"]
    np.testing.assert_allclose(p1[:16], log.predictions[summary["best_epoch"]], atol=1e-6)
    # ...so its accuracy on the val split is the val_accuracy recorded for that epoch.
    accuracy = float(np.mean((p1[:, 0] > 0.5) == (labels == 1)))
    assert accuracy >= 0.85
    assert accuracy == pytest.approx(history[summary["best_epoch"] - 1]["val_accuracy"])
    # And it generalises to the untouched test split.
    test_images, test_labels = raw_split(processed, "test")
    test_accuracy = np.mean((first.predict(test_images, verbose=0)[:, 0] > 0.5) == test_labels)
    assert test_accuracy >= 0.85


# ------------------------------------------------------------------ interrupt and resume


@pytest.fixture(scope="module")
def resumed(processed, tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("resumed") / "run"
    probe = raw_split(processed, "val")[0][:16]
    before, after = EpochLog(probe), EpochLog(probe)
    with pytest.raises(SimulatedInterruption, match="after epoch 1"):
        train(CONFIG, processed, run_dir, verbose=0, extra_callbacks=[before, InterruptAfter(1)])
    interrupted = {
        "history": read_history(run_dir / "history.json"),
        "backup": sorted(p.name for p in (run_dir / "backup").iterdir()),
        "metadata": json.loads((run_dir / "backup" / "training_metadata.json").read_text()),
        "best_exists": (run_dir / "best.keras").exists(),
    }
    summary = train(CONFIG, processed, run_dir, verbose=0, extra_callbacks=[after])
    return run_dir, interrupted, summary, before, after


def test_interrupted_run_keeps_its_epoch_and_backup(resumed):
    _, interrupted, _, before, _ = resumed
    assert [row["epoch"] for row in interrupted["history"]] == [1]
    assert before.started == [1]
    assert "latest.weights.h5" in interrupted["backup"]
    assert interrupted["metadata"]["epoch"] == 1
    assert interrupted["best_exists"]


def test_resume_runs_only_the_remaining_epochs(resumed, processed):
    run_dir, interrupted, summary, before, after = resumed
    history = read_history(run_dir / "history.json")
    assert [row["epoch"] for row in history] == [1, 2, 3, 4]
    assert after.started == [2, 3, 4]  # epochs 2..N only
    assert history[0] == interrupted["history"][0]  # epoch 1's row is kept as it was
    assert summary["epochs"] == 4
    assert not (run_dir / "backup").exists()
    with open(run_dir / "history.csv", newline="") as f:
        assert [int(row["epoch"]) for row in csv.DictReader(f)] == [1, 2, 3, 4]


def test_resume_restores_weights_and_optimizer_state(resumed, processed):
    run_dir, _, _, before, after = resumed
    steps = steps_per_epoch(len(list_images(processed / "train")[0]), CONFIG.batch_size)
    # The model the resumed run starts from is the one epoch 1 ended with (batch-norm
    # statistics included, since the outputs are compared in inference mode)...
    np.testing.assert_array_equal(after.begin_predictions, before.predictions[1])
    # ...and the optimizer carries on from step `steps`, so the schedule does too.
    assert after.begin_step == steps
    schedule = learning_rate_schedule(CONFIG, steps)
    for row in read_history(run_dir / "history.json"):
        expected = float(keras.ops.convert_to_numpy(schedule(row["epoch"] * steps)))
        assert row["learning_rate"] == pytest.approx(expected, rel=1e-5, abs=1e-9)


class WrongCheckpoint(AssertionError):
    """best.keras is not the model of the best epoch."""


def test_best_checkpoint_survives_a_resume(resumed):
    run_dir, _, summary, before, after = resumed
    history = read_history(run_dir / "history.json")
    # Precondition of the scenario: the first resumed epoch does not beat epoch 1, so it must
    # not replace epoch 1's checkpoint.
    assert history[1]["val_accuracy"] <= history[0]["val_accuracy"]
    assert summary["best_epoch"] == first_best_epoch(history)
    log = EpochLog(before.probe)
    log.predictions = {**before.predictions, **after.predictions}
    found = held_epoch(keras.saving.load_model(run_dir / "best.keras"), log)
    if found != summary["best_epoch"]:
        raise WrongCheckpoint(f"best.keras holds epoch {found}, the summary says epoch "
                              f"{summary['best_epoch']} (val_accuracy per epoch: "
                              f"{[round(r['val_accuracy'], 3) for r in history]})")


@pytest.fixture(scope="module")
def shuffled_labels(tmp_path_factory) -> Path:
    """Photos whose folder says nothing about their colour: a cat or dog label is a coin toss,
    so no model can beat chance on them except by remembering the exact batches it saw."""
    root = tmp_path_factory.mktemp("noise")
    pets = make_petimages(root, per_class=60, bad_files=False, seed=1)
    processed = root / "processed"
    for i in range(60):
        for folder in ("Cat", "Dog"):
            split = "val" if i % 5 == 4 else "train"
            dest = processed / split / ("cat" if i % 2 == 0 else "dog")
            dest.mkdir(parents=True, exist_ok=True)
            os.link(pets / folder / f"{i}.jpg", dest / f"{folder}{i}.jpg")
    return processed


class ReplayedEpoch(AssertionError):
    """The resumed epoch scored far above chance on labels that carry no information."""


def test_resumed_epoch_is_not_a_replay_of_epoch_one(shuffled_labels, tmp_path):
    config = replace(CONFIG, epochs=2)
    straight = train(config, shuffled_labels, tmp_path / "straight", verbose=0)
    straight_history = read_history(Path(straight["run_dir"]) / "history.json")
    # Control: without an interruption, epoch 2 is at chance level, as it must be.
    assert straight_history[1]["accuracy"] < 0.8

    run_dir = tmp_path / "resumed"
    with pytest.raises(SimulatedInterruption):
        train(config, shuffled_labels, run_dir, verbose=0, extra_callbacks=[InterruptAfter(1)])
    train(config, shuffled_labels, run_dir, verbose=0)
    history = read_history(run_dir / "history.json")
    assert [row["epoch"] for row in history] == [1, 2]
    same_seed = [{k: v for k, v in row.items() if k != "seconds"}  # the same epoch 1 in both
                 for row in (history[0], straight_history[0])]
    assert same_seed[0] == same_seed[1]
    if history[1]["accuracy"] >= 0.8:
        raise ReplayedEpoch(f"resumed epoch 2: training accuracy {history[1]['accuracy']:.3f} "
                            f"on coin-toss labels (uninterrupted run: "
                            f"{straight_history[1]['accuracy']:.3f})")


# ------------------------------------------------------------------ starting over


def test_a_run_dir_without_backup_starts_over(processed, tmp_path):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    stale = [{"epoch": e, "accuracy": 0.123, "loss": 9.0, "val_accuracy": 0.123,
              "val_loss": 9.0, "learning_rate": 1.0, "seconds": 1.0} for e in range(1, 6)]
    (run_dir / "history.json").write_text(json.dumps(stale))
    (run_dir / "history.csv").write_text("epoch\n1\n2\n3\n4\n5\n")
    (run_dir / "best.keras").write_bytes(b"not a model")
    log = EpochLog(raw_split(processed, "val")[0][:4])

    summary = train(replace(CONFIG, epochs=2), processed, run_dir, verbose=0,
                    extra_callbacks=[log])
    history = read_history(run_dir / "history.json")
    assert log.started == [1, 2]
    assert [row["epoch"] for row in history] == [1, 2]
    assert all(row["accuracy"] != 0.123 and row["loss"] != 9.0 for row in history)
    assert summary["epochs"] == 2
    with open(run_dir / "history.csv", newline="") as f:
        assert [int(row["epoch"]) for row in csv.DictReader(f)] == [1, 2]
    keras.saving.load_model(run_dir / "best.keras")  # replaced by a real model


def test_train_without_photos_says_so(tmp_path):
    (tmp_path / "processed" / "train" / "cat").mkdir(parents=True)
    with pytest.raises(FileNotFoundError, match="run prepare"):
        train(CONFIG, tmp_path / "processed", tmp_path / "run", verbose=0)


# ------------------------------------------------------------------ schedule and callbacks


def lr_at(schedule, step: int) -> float:
    return float(keras.ops.convert_to_numpy(schedule(step)))


def test_cosine_schedule_warms_up_then_decays_to_zero():
    config = replace(CONFIG, epochs=4, warmup_epochs=1.0, learning_rate=1e-3)
    steps = 10
    schedule = learning_rate_schedule(config, steps)
    warmup, total = 10, 40
    assert lr_at(schedule, 0) == pytest.approx(0.0, abs=1e-12)
    assert lr_at(schedule, warmup // 2) == pytest.approx(5e-4, rel=1e-5)
    rising = [lr_at(schedule, s) for s in range(warmup + 1)]
    np.testing.assert_allclose(np.diff(rising), 1e-4, rtol=1e-4)  # linear
    assert lr_at(schedule, warmup) == pytest.approx(1e-3, rel=1e-6)  # the peak
    assert max(lr_at(schedule, s) for s in range(total + 1)) == pytest.approx(1e-3, rel=1e-6)
    falling = [lr_at(schedule, s) for s in range(warmup, total + 1)]
    assert all(b < a for a, b in zip(falling, falling[1:], strict=False))
    # cosine: half way through the decay the rate is half the peak
    assert lr_at(schedule, (warmup + total) // 2) == pytest.approx(5e-4, rel=1e-4)
    assert lr_at(schedule, total) == pytest.approx(0.0, abs=1e-9)


def test_cosine_schedule_without_warmup_starts_at_the_peak():
    config = replace(CONFIG, epochs=3, warmup_epochs=0, learning_rate=2e-3)
    schedule = learning_rate_schedule(config, 5)
    assert lr_at(schedule, 0) == pytest.approx(2e-3, rel=1e-6)
    assert lr_at(schedule, 15) == pytest.approx(0.0, abs=1e-9)


def test_plateau_schedule_is_a_constant_and_unknown_schedules_are_refused():
    rate = learning_rate_schedule(replace(CONFIG, schedule="plateau", learning_rate=3e-4), 10)
    assert isinstance(rate, float)
    assert rate == 3e-4
    with pytest.raises(ValueError, match="unknown schedule 'linear'"):
        learning_rate_schedule(replace(CONFIG, schedule="linear"), 10)


def test_callbacks_monitor_val_accuracy(tmp_path):
    assert MONITOR == "val_accuracy"
    found = callbacks(CONFIG, tmp_path)
    by_type = {type(c).__name__: c for c in found}
    assert set(by_type) == {"ModelCheckpoint", "BackupAndRestore", "EarlyStopping",
                            "HistoryRecorder"}
    checkpoint, stopping = by_type["ModelCheckpoint"], by_type["EarlyStopping"]
    assert checkpoint.monitor == stopping.monitor == "val_accuracy"
    assert checkpoint.save_best_only
    assert Path(checkpoint.filepath) == tmp_path / "best.keras"
    assert stopping.restore_best_weights and stopping.patience == CONFIG.patience
    assert Path(by_type["BackupAndRestore"].backup_dir) == tmp_path / "backup"
    assert isinstance(by_type["HistoryRecorder"], HistoryRecorder)
    assert checkpoint.mode == stopping.mode == "max"  # a higher val_accuracy is better

    plateau = callbacks(replace(CONFIG, schedule="plateau"), tmp_path)
    reducer = [c for c in plateau if isinstance(c, keras.callbacks.ReduceLROnPlateau)]
    assert len(reducer) == 1 and reducer[0].monitor == "val_accuracy"
    assert reducer[0].mode == "max"
