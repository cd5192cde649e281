"""helpers.training: a real (small) training run; interrupting, killing and resuming it; a
finished run left alone; starting over without losing the old run; runs of other settings and
damaged backups refused with a message; the training and summary commands; the demo model;
the learning-rate schedule.

Runs the compact variant on 99 x 99 generated photos (red-ish cats, blue-ish dogs), which the
network separates in an epoch or two. The kills at every write use a tiny dense model, since
what they check is the run folder, not the network.
"""

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import zipfile
from dataclasses import asdict, replace
from pathlib import Path

import h5py
import keras
import numpy as np
import pytest
from conftest import ROOT, make_petimages

from helpers.__main__ import main
from helpers.config import PROFILES, Profile, TrainConfig, get_profile
from helpers.data import list_images, load_split, steps_per_epoch
from helpers.evaluation import saved_or_demo_model
from helpers.files import Busy, held, save_model, shown
from helpers.prepare import prepare
from helpers.runs import (
    MONITOR,
    RunError,
    best_row,
    epochs_done,
    open_run,
    read_history,
    split_id,
)
from helpers.training import (
    at_size,
    build_model,
    callbacks,
    datasets,
    learning_rate_schedule,
    load_best_model,
    stages,
    train,
)
from helpers.workspace import Run
from tools.summary import main as summary_main

# 99 is about the smallest size AlexNet's valid 11x11/4 conv1 and three 3/2 poolings accept.
CONFIG = TrainConfig(variant="compact", classes=1, epochs=4, batch_size=16, image_size=99,
                     warmup_epochs=0.5, rotation=0, zoom=0, translation=0, patience=4,
                     precision="float32", seed=42)
CLI_CONFIG = ["--profile", "quick", "--image-size", "99", "--batch-size", "16",
              "--precision", "float32", "--seed", "3"]  # the command's tiny run
HISTORY_KEYS = {"epoch", "accuracy", "loss", "val_accuracy", "val_loss", "learning_rate",
                "image_size", "seconds"}


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
    return (np.concatenate([np.asarray(x) for x, _ in batches]),
            np.concatenate([np.asarray(y) for _, y in batches]))


class EpochLog(keras.callbacks.Callback):
    """Which epochs ran, the optimizer step when training began, and the model's inference
    outputs on a fixed batch at the end of every epoch (keyed by the 1-based epoch)."""

    def __init__(self, probe: np.ndarray):
        super().__init__()
        self.probe, self.started, self.predictions = probe, [], {}
        self.begin_step = self.begin_predictions = None

    def on_train_begin(self, logs=None):  # runs after BackupAndRestore has restored the state
        self.begin_step = int(keras.ops.convert_to_numpy(self.model.optimizer.iterations))
        self.begin_predictions = self.predict()

    def on_epoch_begin(self, epoch, logs=None):
        self.started.append(epoch + 1)

    def on_epoch_end(self, epoch, logs=None):
        self.predictions[epoch + 1] = self.predict()

    def predict(self) -> np.ndarray:
        return keras.ops.convert_to_numpy(self.model(self.probe, training=False))


class StopAfter(keras.callbacks.Callback):
    """Raise KeyboardInterrupt once epoch `epoch` (1-based) has ended, as a crash would."""

    def __init__(self, epoch: int):
        super().__init__()
        self.epoch = epoch

    def on_epoch_end(self, epoch, logs=None):
        if epoch + 1 >= self.epoch:
            raise KeyboardInterrupt


def held_epoch(model: keras.Model, log: EpochLog) -> int | None:
    """The epoch whose end-of-epoch weights `model` has (matched by its outputs on the probe)."""
    outputs = keras.ops.convert_to_numpy(model(log.probe, training=False))
    matches = [e for e, p in log.predictions.items() if np.allclose(p, outputs, atol=1e-6)]
    return matches[0] if len(matches) == 1 else None


def first_best_epoch(history: list[dict]) -> int:
    """The epoch ModelCheckpoint(save_best_only, mode="max") keeps: the first to reach the max."""
    best = max(row[MONITOR] for row in history)
    return next(row["epoch"] for row in history if row[MONITOR] == best)


def files_of(folder: Path) -> dict[str, bytes]:
    """Every file below `folder` (relative path -> bytes)."""
    return {p.relative_to(folder).as_posix(): p.read_bytes()
            for p in sorted(folder.rglob("*")) if p.is_file()}


# ------------------------------------------------------------------ a straight run


@pytest.fixture(scope="module")
def straight(processed, tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("straight") / "run"
    config = replace(CONFIG, epochs=5)
    log = EpochLog(raw_split(processed, "val")[0][:16])
    summary = train(config, processed, run_dir, verbose=0, extra_callbacks=[log])
    return config, run_dir, summary, log


def test_training_learns_the_separable_photos_and_records_each_epoch(straight, processed):
    config, run_dir, summary, log = straight
    history = read_history(run_dir)
    assert summary["val_accuracy"] >= 0.9
    assert history[-1]["accuracy"] >= 0.9 and history[-1]["loss"] < history[0]["loss"]
    assert log.started == [1, 2, 3, 4, 5] and [row["epoch"] for row in history] == log.started
    assert summary["epochs"] == 5 and summary["best_epoch"] == first_best_epoch(history)
    assert summary["precision"] == "float32"
    assert summary["seconds"] == pytest.approx(sum(row["seconds"] for row in history))
    for row in history:
        assert set(row) == HISTORY_KEYS and row["seconds"] > 0
    assert sorted(p.name for p in run_dir.iterdir()) == [
        "best.keras", "config.json", "finished.json", "history.json"]  # the backup is gone
    assert json.loads((run_dir / "config.json").read_text()) == {
        **asdict(config), "split": split_id(processed)}


def test_history_records_the_scheduled_learning_rate(straight, processed):
    config, run_dir, _, _ = straight
    steps = steps_per_epoch(len(list_images(processed / "train")[0]), config.batch_size)
    schedule = learning_rate_schedule(config, steps)
    for row in read_history(run_dir):
        expected = float(keras.ops.convert_to_numpy(schedule(row["epoch"] * steps)))
        assert row["learning_rate"] == pytest.approx(expected, rel=1e-5, abs=1e-9)


def test_best_model_reloads_and_predicts_like_the_best_epoch(straight, processed):
    _, run_dir, summary, log = straight
    images, labels = raw_split(processed, "val")
    model = load_best_model(run_dir)
    assert model.name == "alexnet_compact"
    assert held_epoch(model, log) == summary["best_epoch"]
    accuracy = float(np.mean((model.predict(images, verbose=0)[:, 0] > 0.5) == (labels == 1)))
    assert accuracy == pytest.approx(summary["val_accuracy"])
    test_images, test_labels = raw_split(processed, "test")
    test_accuracy = np.mean((model.predict(test_images, verbose=0)[:, 0] > 0.5) == test_labels)
    assert test_accuracy >= 0.85


def test_a_finished_run_is_reported_not_retrained(straight, processed, capsys):
    config, run_dir, summary, _ = straight
    before = files_of(run_dir)
    log = EpochLog(raw_split(processed, "val")[0][:4])
    again = train(config, processed, run_dir, verbose=1, extra_callbacks=[log])
    assert log.started == [] and log.begin_step is None  # fit never ran
    assert files_of(run_dir) == before and again == summary
    printed = capsys.readouterr().out
    assert printed.startswith(f"{shown(run_dir)} holds a finished run (5 epochs, best epoch ")
    assert "restart=True" in printed


def test_fitting_a_finished_run_again_is_refused_and_changes_nothing(straight, processed):
    """Notebook 04's fit cell run a second time: the backup is gone, so fit would start again at
    epoch 1 and overwrite the history and the best model."""
    config, run_dir, _, _ = straight
    before = files_of(run_dir)
    train_data, val_data, count = datasets(config, processed, config.seed)
    model = build_model(config, steps_per_epoch(count, config.batch_size))
    with pytest.raises(RunError, match="is finished: nothing to train. To start over"):
        model.fit(train_data, validation_data=val_data, epochs=config.epochs, verbose=0,
                  shuffle=False, callbacks=callbacks(config, run_dir))
    assert files_of(run_dir) == before


def test_restart_moves_the_earlier_run_aside_and_deletes_nothing(straight, processed, tmp_path):
    config, run_dir, _, _ = straight
    copy = tmp_path / "run"
    shutil.copytree(run_dir, copy)
    before = files_of(copy)
    train(replace(config, epochs=1), processed, copy, verbose=0, restart=True)
    aside = [p for p in copy.iterdir() if p.name.startswith("previous-")]
    assert len(aside) == 1 and files_of(aside[0]) == before
    assert [row["epoch"] for row in read_history(copy)] == [1]


@pytest.mark.parametrize("foreign", ["notes.txt", "config.json", "history.json", "run.lock"])
def test_a_folder_with_files_training_did_not_write_is_refused_and_left_alone(
        processed, tmp_path, foreign):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / foreign).write_text("mine, {not json")
    if foreign == "config.json":
        (run_dir / "history.json").write_text("[]")
    before = files_of(run_dir)
    for restart in (False, True):
        with pytest.raises(RunError) as error:
            train(CONFIG, processed, run_dir, verbose=0, restart=restart)
        assert "nothing was changed" in str(error.value) and "\n" not in str(error.value)
        assert files_of(run_dir) == before
    with pytest.raises(SystemExit) as exit_:
        main(["train", "--data", str(processed), "--run-dir", str(run_dir), *CLI_CONFIG])
    assert str(exit_.value).startswith("error: ") and "\n" not in str(exit_.value)


def test_a_second_training_on_the_same_folder_is_refused_while_the_first_runs(processed,
                                                                              tmp_path):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    holder = subprocess.Popen(["sleep", "60"])
    try:
        (run_dir / ".lock").write_text(f"{holder.pid}\n")
        with pytest.raises(Busy, match=rf"another training \(process {holder.pid}\) is using"):
            train(CONFIG, processed, run_dir, verbose=0)
        assert sorted(p.name for p in run_dir.iterdir()) == [".lock"]  # nothing written
    finally:
        holder.kill()
        holder.wait()
    train(replace(CONFIG, epochs=1), processed, run_dir, verbose=0)  # a dead holder's lock
    assert not (run_dir / ".lock").exists() and (run_dir / "finished.json").exists()


def test_an_empty_lock_is_in_the_making_until_it_is_old(tmp_path):
    """O_EXCL makes the lock before its process number is written: a lock that young and
    empty is waited for, not taken over; an old empty one was left by a kill."""
    lock, holder = tmp_path / ".lock", subprocess.Popen(["sleep", "60"])
    try:
        lock.touch()
        fill = threading.Timer(0.5, lambda: lock.write_text(f"{holder.pid}\n"))
        fill.start()
        with pytest.raises(Busy, match=rf"another training \(process {holder.pid}\)"):
            with held(lock, "training"):
                pass
        fill.join()
    finally:
        holder.kill()
        holder.wait()
    lock.write_text("")
    os.utime(lock, (time.time() - 60, time.time() - 60))
    with held(lock, "training"):
        assert lock.read_text() == f"{os.getpid()}\n"
    assert list(tmp_path.iterdir()) == []


def test_a_run_is_never_resumed_on_other_data(processed, tmp_path):
    other = tmp_path / "other"
    shutil.copytree(processed, other)
    next((other / "val" / "cat").glob("*.jpg")).unlink()  # one validation photo less
    run_dir = tmp_path / "run"
    with pytest.raises(KeyboardInterrupt):
        train(CONFIG, processed, run_dir, verbose=0, extra_callbacks=[StopAfter(1)])
    before = files_of(run_dir)
    with pytest.raises(RunError, match=r"other settings or data \(split '\w+' -> '\w+'\)"):
        train(CONFIG, other, run_dir, verbose=0)
    assert files_of(run_dir) == before


def test_a_run_of_other_settings_is_refused_and_left_alone(straight, processed):
    config, run_dir, _, _ = straight
    before = files_of(run_dir)
    with pytest.raises(RunError) as error:
        train(replace(config, epochs=7, batch_size=8), processed, run_dir, verbose=0)
    message = str(error.value)
    assert "(epochs 5 -> 7, batch_size 16 -> 8); nothing was changed" in message
    assert "--restart" in message and "\n" not in message
    assert files_of(run_dir) == before


def test_impossible_settings_are_refused_before_the_folder_is_touched(processed, tmp_path):
    for settings in ({"epochs": 0}, {"epochs": -2}, {"batch_size": 0}):
        with pytest.raises(ValueError, match="must be at least 1"):
            train(replace(CONFIG, **settings), processed, tmp_path / "run", verbose=0)
    for option in ("--epochs", "--batch-size"):
        with pytest.raises(SystemExit) as exit_:
            main(["train", "--data", str(processed), "--run-dir", str(tmp_path / "run"),
                  option, "0"])
        assert str(exit_.value).startswith("error: epochs, batch size and classes must be")
    assert not (tmp_path / "run").exists()


# ------------------------------------------------------------------ interrupt and resume


@pytest.fixture(scope="module")
def resumed(processed, tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("resumed") / "run"
    probe = raw_split(processed, "val")[0][:16]
    before, after = EpochLog(probe), EpochLog(probe)
    with pytest.raises(KeyboardInterrupt):
        train(CONFIG, processed, run_dir, verbose=0, extra_callbacks=[before, StopAfter(1)])
    interrupted = {"history": read_history(run_dir), "files": sorted(files_of(run_dir))}
    summary = train(CONFIG, processed, run_dir, verbose=0, extra_callbacks=[after])
    return run_dir, interrupted, summary, before, after


def test_an_interrupted_run_keeps_its_epoch_backup_and_best_model(resumed):
    _, interrupted, _, before, _ = resumed
    assert [row["epoch"] for row in interrupted["history"]] == [1] and before.started == [1]
    assert {"backup/latest.weights.h5", "best.keras", "history.json"} <= set(interrupted["files"])
    assert "finished.json" not in interrupted["files"]


def test_resume_runs_only_the_remaining_epochs_from_the_saved_state(resumed, processed):
    run_dir, interrupted, summary, before, after = resumed
    history = read_history(run_dir)
    assert [row["epoch"] for row in history] == [1, 2, 3, 4] and after.started == [2, 3, 4]
    assert history[0] == interrupted["history"][0]  # epoch 1's row is kept as it was
    # The resumed model starts as epoch 1 ended (batch-norm statistics included), and the
    # optimizer carries on from step `steps`, so the schedule does too.
    np.testing.assert_array_equal(after.begin_predictions, before.predictions[1])
    steps = steps_per_epoch(len(list_images(processed / "train")[0]), CONFIG.batch_size)
    assert after.begin_step == steps
    assert summary["epochs"] == 4 and not (run_dir / "backup").exists()


def test_best_checkpoint_survives_a_resume(resumed):
    run_dir, _, summary, before, after = resumed
    assert summary["best_epoch"] == first_best_epoch(read_history(run_dir))
    log = EpochLog(before.probe)
    log.predictions = {**before.predictions, **after.predictions}
    assert held_epoch(keras.saving.load_model(run_dir / "best.keras"), log) == \
        summary["best_epoch"]


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


def test_a_resumed_epoch_is_not_a_replay_of_epoch_one(shuffled_labels, tmp_path):
    config = replace(CONFIG, epochs=2)
    train(config, shuffled_labels, tmp_path / "straight", verbose=0)
    straight = read_history(tmp_path / "straight")
    assert straight[1]["accuracy"] < 0.8  # control: epoch 2 is at chance level
    run_dir = tmp_path / "resumed"
    with pytest.raises(KeyboardInterrupt):
        train(config, shuffled_labels, run_dir, verbose=0, extra_callbacks=[StopAfter(1)])
    train(config, shuffled_labels, run_dir, verbose=0)
    history = read_history(run_dir)
    assert [{k: v for k, v in row.items() if k != "seconds"} for row in (history[0], straight[0])
            ][0] == {k: v for k, v in straight[0].items() if k != "seconds"}
    assert history[1]["accuracy"] < 0.8, "the resumed epoch replayed epoch 1's batches"


@pytest.fixture(scope="module")
def stopped_after_two(processed, tmp_path_factory) -> Path:
    run_dir = tmp_path_factory.mktemp("stopped") / "run"
    with pytest.raises(KeyboardInterrupt):
        train(CONFIG, processed, run_dir, verbose=0, extra_callbacks=[StopAfter(2)])
    return run_dir


def test_an_unreadable_backup_says_what_to_do_and_keeps_the_run(stopped_after_two, processed,
                                                                 tmp_path):
    run_dir = tmp_path / "run"
    shutil.copytree(stopped_after_two, run_dir)
    for path in (run_dir / "backup").glob("*.h5*"):  # the latest weights and their copy
        path.write_bytes(path.read_bytes()[:100])
    before = {k: v for k, v in files_of(run_dir).items() if not k.startswith("backup/")}
    with pytest.raises(RunError) as error:
        train(CONFIG, processed, run_dir, verbose=0)
    message = str(error.value)
    assert message.startswith(f"{shown(run_dir / 'backup')} cannot be read (")
    assert "--restart" in message and "previous-<time>/" in message and "\n" not in message
    assert {k: v for k, v in files_of(run_dir).items() if not k.startswith("backup/")} == before
    train(CONFIG, processed, run_dir, verbose=0, restart=True)  # what the message says to do
    aside = next(p for p in run_dir.iterdir() if p.name.startswith("previous-"))
    assert {k: v for k, v in files_of(aside).items() if not k.startswith("backup/")} == before


@pytest.mark.parametrize("damage", ["cut-off weights", "cut-off epoch number"])
def test_a_cut_off_backup_file_resumes_without_losing_a_finished_epoch(stopped_after_two,
                                                                      processed, tmp_path,
                                                                      damage):
    run_dir = tmp_path / "run"
    shutil.copytree(stopped_after_two, run_dir)
    if damage == "cut-off weights":  # Keras falls back on the copy of the epoch before
        latest, started = run_dir / "backup" / "latest.weights.h5", [2, 3, 4]
        latest.write_bytes(latest.read_bytes()[:100])
    else:  # the weights are whole: their optimizer step count says which epoch they end
        latest, started = run_dir / "backup" / "training_metadata.json", [3, 4]
        latest.write_text('{"epoch": ')
    log = EpochLog(raw_split(processed, "val")[0][:4])
    train(CONFIG, processed, run_dir, verbose=0, extra_callbacks=[log])
    assert log.started == started
    assert [row["epoch"] for row in read_history(run_dir)] == [1, 2, 3, 4]


def test_a_resume_trusts_the_epoch_file_when_steps_went_uncounted(stopped_after_two, processed,
                                                                  tmp_path):
    """Under mixed_float16 the loss-scaling optimizer skips, uncounted, a step that overflows:
    the step count then says one epoch fewer than the weights have trained."""
    run_dir = tmp_path / "run"
    shutil.copytree(stopped_after_two, run_dir)
    with h5py.File(run_dir / "backup" / "latest.weights.h5", "r+") as weights:
        iterations = weights["optimizer/vars/0"]  # the optimizer's step count, saved first
        iterations[...] = iterations[()] - 1
    log = EpochLog(raw_split(processed, "val")[0][:4])
    train(CONFIG, processed, run_dir, verbose=0, extra_callbacks=[log])
    assert log.started == [3, 4]
    assert [row["epoch"] for row in read_history(run_dir)] == [1, 2, 3, 4]


# ------------------------------------------------------------------ progressive resizing


@pytest.mark.parametrize(("profile", "epochs", "expected"), [
    ("full", None, [(128, 10), (180, 19), (227, 22)]),
    ("full", 3, [(128, 1), (180, 2), (227, 3)]), ("full", 2, [(128, 1), (227, 2)]),
    ("full", 1, [(227, 1)]), ("quick", None, [(112, 12)])])
def test_stages_give_the_smaller_sizes_their_shares_and_the_last_size_at_least_one_epoch(
        profile, epochs, expected):
    config = get_profile(profile).train
    assert stages(replace(config, epochs=epochs or config.epochs)) == expected


def test_at_size_shares_the_weights_and_the_schedule(tmp_path):
    """Training the resized model moves the original's weights and its optimizer's step count,
    so the learning-rate schedule runs on across the sizes; its saved weights load into the
    original (the backup and the best model are saved from either)."""
    config = replace(get_profile("quick").train, image_size=180, epochs=2)
    model = build_model(config, steps=1)  # conv5's map: 4x4 at 180 px, 2x2 at 128
    smaller = at_size(model, 128)
    before = keras.ops.convert_to_numpy(model.get_layer("fc6").kernel).copy()
    images = keras.random.randint((2, 128, 128, 3), 0, 255, seed=1)
    smaller.fit(images, keras.ops.ones((2, 1)), epochs=1, verbose=0)
    assert smaller.optimizer is model.optimizer and int(model.optimizer.iterations) == 1
    assert (keras.ops.convert_to_numpy(model.get_layer("fc6").kernel) != before).any()
    assert "pool_to_fc6" in [layer.name for layer in smaller.layers]
    assert at_size(model, 180).count_params() == model.count_params()
    smaller.save_weights(tmp_path / "smaller.weights.h5")
    fresh = build_model(config, steps=1)
    fresh.optimizer.build(fresh.trainable_variables)
    fresh.load_weights(tmp_path / "smaller.weights.h5")
    for layer in ("conv1", "fc6", "output"):
        np.testing.assert_array_equal(
            keras.ops.convert_to_numpy(fresh.get_layer(layer).kernel),
            keras.ops.convert_to_numpy(model.get_layer(layer).kernel))
    assert int(fresh.optimizer.iterations) == 1


class Stages(keras.callbacks.Callback):
    """Which epochs ran, the input size of each fit, and its optimizer step when it began;
    after the first batch of epoch `stop_in` (1-based), a KeyboardInterrupt, as a crash."""

    def __init__(self, stop_in: int | None = None):
        super().__init__()
        self.stop_in, self.started, self.sizes, self.begin_steps = stop_in, [], [], []

    def on_train_begin(self, logs=None):  # after Backup has restored the state
        self.sizes.append(self.model.input_shape[1])
        self.begin_steps.append(int(keras.ops.convert_to_numpy(self.model.optimizer.iterations)))

    def on_epoch_begin(self, epoch, logs=None):
        self.started.append(epoch + 1)

    def on_train_batch_end(self, batch, logs=None):
        if self.started[-1] == self.stop_in:
            raise KeyboardInterrupt


PROGRESSIVE = replace(CONFIG, image_size=131, first_size=99, first_share=0.25, middle_size=115,
                      middle_share=0.25)  # conv5's map: 3x3 at 131 px, 2x2 at 99 and 115


def test_a_progressive_run_trains_small_photos_first_and_resumes_across_the_change(processed,
                                                                                  tmp_path):
    run_dir, steps = tmp_path / "run", steps_per_epoch(len(list_images(processed / "train")[0]),
                                                       PROGRESSIVE.batch_size)
    killed = Stages(stop_in=2)  # in epoch 2, the middle stage's, before its backup
    with pytest.raises(KeyboardInterrupt):
        train(PROGRESSIVE, processed, run_dir, verbose=0, extra_callbacks=[killed])
    assert killed.started == [1, 2] and killed.sizes == [99, 115]
    assert epochs_done(run_dir) == 1 and not (run_dir / "finished.json").exists()
    resumed = Stages()
    summary = train(PROGRESSIVE, processed, run_dir, verbose=0, extra_callbacks=[resumed])
    assert resumed.started == [2, 3, 4] and resumed.sizes == [115, 131]
    assert resumed.begin_steps == [steps, 2 * steps]  # the schedule runs on from the backup
    history = read_history(run_dir)
    assert [(row["epoch"], row["image_size"]) for row in history] == [(1, 99), (2, 115),
                                                                       (3, 131), (4, 131)]
    assert summary["epochs"] == 4 and summary["best_epoch"] in (3, 4)  # judged at full size
    assert not (run_dir / "backup").exists()
    model = load_best_model(run_dir)
    batches = list(load_split(processed / "val", 131, 64))
    images, labels = (np.concatenate([np.asarray(part) for part in parts])
                      for parts in zip(*batches, strict=True))
    accuracy = np.mean((model.predict(images, verbose=0)[:, 0] > 0.5) == labels)
    assert accuracy == pytest.approx(summary["val_accuracy"])  # best.keras: the best epoch


def test_a_run_killed_before_it_wrote_finished_json_finishes_without_training(processed,
                                                                               tmp_path):
    """Every epoch backed up, finished.json not yet written: the next call only finishes."""
    run_dir = tmp_path / "run"
    with pytest.raises(KeyboardInterrupt):  # after epoch 4's backup, the last epoch
        train(CONFIG, processed, run_dir, verbose=0, extra_callbacks=[StopAfter(4)])
    assert epochs_done(run_dir) == 4 and not (run_dir / "finished.json").exists()
    log = Stages()
    summary = train(CONFIG, processed, run_dir, verbose=0, extra_callbacks=[log])
    assert log.started == [] and summary["epochs"] == 4
    assert (run_dir / "finished.json").exists() and not (run_dir / "backup").exists()


def test_the_best_epoch_is_judged_among_the_last_stages_photo_size():
    rows = [{"epoch": epoch, MONITOR: accuracy, "image_size": size} for epoch, accuracy, size
            in [(1, 0.90, 128), (2, 0.95, 128), (3, 0.80, 180), (4, 0.85, 180)]]
    assert best_row(rows)["epoch"] == 4 and best_row(rows, 128)["epoch"] == 2
    assert best_row(rows[:2], 180) is None
    legacy = [{key: value for key, value in row.items() if key != "image_size"} for row in rows]
    assert best_row(legacy)["epoch"] == 2  # a history written before sizes were logged


def test_a_run_saved_before_a_setting_existed_resumes(stopped_after_two, processed, tmp_path):
    """config.json written before the progressive settings: their defaults are what it used."""
    run_dir = tmp_path / "run"
    shutil.copytree(stopped_after_two, run_dir)
    saved = json.loads((run_dir / "config.json").read_text())
    for key in ("first_size", "first_share", "middle_size", "middle_share"):
        saved.pop(key)
    (run_dir / "config.json").write_text(json.dumps(saved))
    assert open_run(CONFIG, run_dir, split_id(processed)).startswith("Resuming")


# ------------------------------------------------------------------ kills at every write


class Killed(BaseException):
    """A kill -9, simulated: nothing after it runs, and nothing catches it."""


VAL_ACCURACY = [0.5, 0.7, 0.6]  # epoch 2 is the best; epoch 3 writes no best.keras
TINY = replace(CONFIG, epochs=3)
STEPS = 4  # batches per epoch of the tiny run


class Scripted(keras.callbacks.Callback):
    """Sets the logged val_accuracy to VAL_ACCURACY[epoch] and the output bias to the epoch
    number, so every saved file says which epoch's end it holds."""

    def on_epoch_end(self, epoch, logs=None):
        self.model.layers[-1].bias.assign([epoch + 1.0])
        logs[MONITOR] = VAL_ACCURACY[epoch]


def tiny_fit(run_dir: Path) -> None:
    """What train() does, with a tiny dense model whose weights name their epoch."""
    open_run(TINY, run_dir)
    if (run_dir / "finished.json").exists():
        return
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1, name="out")])
    model.compile(optimizer=keras.optimizers.SGD(0.0), loss="mse")
    x, y = np.ones((STEPS * 2, 4), "float32"), np.zeros((STEPS * 2, 1), "float32")
    model.fit(x, y, batch_size=2, epochs=TINY.epochs, verbose=0, shuffle=False,
              callbacks=[Scripted(), *callbacks(TINY, run_dir)])


def bias(path: Path) -> float:
    return float(keras.ops.convert_to_numpy(keras.saving.load_model(path).layers[-1].bias)[0])


WRITERS = {  # what writes a file -> how to patch it
    "os.replace": (os, "replace"),
    "Model.save": (keras.Model, "save"),
    "Model.save_weights": (keras.Model, "save_weights"),
}


def killing(monkeypatch, at: int | None, how: str) -> list[str]:
    """Patch every writer to die at the `at`-th write overall: before it, halfway (the file
    cut short), or just after. Returns the writes seen, in order."""
    seen = []
    for name, (owner, attribute) in WRITERS.items():
        real = getattr(owner, attribute)

        def write(*args, _real=real, _name=name, **kwargs):
            target = Path(args[1] if _name == "os.replace" else kwargs.get("filepath", args[-1]))
            seen.append(f"{_name} {target.name}")
            if len(seen) == at and how == "before":
                raise Killed
            if len(seen) == at and how == "halfway" and _name == "os.replace":
                source = Path(args[0])  # the temporary file, cut short before its rename
                source.write_bytes(source.read_bytes()[: source.stat().st_size // 2])
                raise Killed
            result = _real(*args, **kwargs)
            if len(seen) == at:
                if how == "halfway":  # a file, or the weights of a model saved to a folder
                    for file in [target] if target.is_file() else target.rglob("*.h5"):
                        file.write_bytes(file.read_bytes()[: file.stat().st_size // 2])
                raise Killed
            return result

        monkeypatch.setattr(owner, attribute, write)
    return seen


def test_a_kill_at_any_write_loses_at_most_the_epoch_in_progress(tmp_path, monkeypatch):
    writes = killing(monkeypatch, None, "before")
    tiny_fit(tmp_path / "uninterrupted")
    assert {w.split()[1] for w in writes} >= {"config.json", "history.json", "best.keras",
                                              "latest.weights.h5", "finished.json"}
    monkeypatch.undo()
    for at in range(1, len(writes) + 1):
        for how in ("before", "halfway", "after"):
            run_dir = tmp_path / f"kill-{at}-{how}"
            killing(monkeypatch, at, how)
            with pytest.raises(Killed):
                tiny_fit(run_dir)
            monkeypatch.undo()
            logged = read_history(run_dir)
            assert [row["epoch"] for row in logged] == list(range(1, len(logged) + 1))
            committed = 3 if (run_dir / "finished.json").exists() else epochs_done(run_dir)
            in_progress = sum(w.startswith("os.replace history") for w in writes[:at])
            assert committed >= in_progress - 1, (at, how)  # at most the epoch in progress
            if (run_dir / "best.keras").exists():  # the best committed, or the one in progress
                assert bias(run_dir / "best.keras") in {
                    first_best_epoch(logged[:committed] or logged), first_best_epoch(logged)}
            tiny_fit(run_dir)  # and the run completes, with the history of every epoch
            assert [row["epoch"] for row in read_history(run_dir)] == [1, 2, 3], (at, how)
            assert [row[MONITOR] for row in read_history(run_dir)] == VAL_ACCURACY
            assert bias(run_dir / "best.keras") == 2, (at, how)
            assert (run_dir / "finished.json").exists() and not (run_dir / "backup").exists()
            assert not list(run_dir.rglob(".tmp-*")), (at, how)


@pytest.mark.slow  # a training process of its own
def test_kill_9_while_training_then_resume_with_the_command(processed, tmp_path, capsys):
    run_dir = tmp_path / "run"
    command = ["train", "--data", str(processed), "--run-dir", str(run_dir), *CLI_CONFIG,
               "--epochs", "4"]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    with open(tmp_path / "log.txt", "w") as log:
        child = subprocess.Popen([sys.executable, "-m", "helpers", *command], cwd=ROOT, env=env,
                                 stdout=log, stderr=subprocess.STDOUT)
    try:
        for _ in range(6000):  # at most 5 minutes
            if (run_dir / "backup" / "training_metadata.json").exists():  # epoch 1 backed up
                break
            assert child.poll() is None, (tmp_path / "log.txt").read_text()[-2000:]
            time.sleep(0.05)
        seen = read_history(run_dir)  # always whole: replaced atomically
        assert seen and child.poll() is None
        child.send_signal(signal.SIGKILL)
    finally:
        child.kill()
        child.wait()
    assert child.returncode == -signal.SIGKILL
    main(command)
    printed = capsys.readouterr().out
    assert f"Resuming {shown(run_dir)} after epoch " in printed
    history = read_history(run_dir)
    assert [row["epoch"] for row in history] == [1, 2, 3, 4]
    assert history[0] == seen[0]  # epoch 1, as it was before the kill
    assert (run_dir / "finished.json").exists() and not (run_dir / "backup").exists()
    keras.saving.load_model(run_dir / "best.keras")
    assert "epochs:      4 of 4" in printed


# ------------------------------------------------------------------ the commands


def test_train_command_trains_then_reports_then_restarts(processed, tmp_path, capsys,
                                                         monkeypatch):
    monkeypatch.chdir(tmp_path)
    command = ["train", "--data", str(processed), "--run-dir", "run", *CLI_CONFIG,
               "--epochs", "1"]
    main(command)
    first = capsys.readouterr().out
    assert first.startswith("New run in run.\n") and "model:       run/best.keras" in first
    config = replace(get_profile("quick").train, image_size=99, batch_size=16,
                     precision="float32", seed=3, epochs=1)
    assert json.loads(Path("run/config.json").read_text()) == {
        **asdict(config), "split": split_id(processed)}
    before = files_of(Path("run"))
    main(command)
    assert capsys.readouterr().out.startswith("run holds a finished run (1 epochs, best epoch 1")
    assert files_of(Path("run")) == before
    main([*command, "--restart"])
    third = capsys.readouterr().out
    aside = [p for p in Path("run").iterdir() if p.name.startswith("previous-")]
    assert len(aside) == 1 and files_of(aside[0]) == before
    assert third.startswith(f"New run in run; the earlier run is in run/{aside[0].name}.")


def test_train_command_errors_are_one_line(petimages, processed, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    cases = {
        ("--data", "PetImages"): "error: PetImages holds the photos themselves (Cat/ and Dog/), "
                                 "not a prepared split: run `python -m helpers prepare --source "
                                 "PetImages --dest SPLIT` and train on SPLIT",
        ("--data", "nowhere"): "error: no train or val photos in nowhere (expected train/ and "
                               "val/, each with cat/ and dog/): make the split with `python -m "
                               "helpers prepare`",
        ("--data", "PetImages", "--profile", "slow"): "error: unknown PROFILE 'slow'; choose one "
                                                      "of ['auto', 'full', 'quick']",
    }
    for arguments, expected in cases.items():
        with pytest.raises(SystemExit) as exit_:
            main(["train", "--run-dir", "run", *arguments])
        assert str(exit_.value).startswith(expected), arguments
        assert "\n" not in str(exit_.value)
    assert not Path("run").exists()  # refused before the run folder was touched
    Path("notes").write_text("mine")  # a file where the run folder would go
    with pytest.raises(SystemExit) as exit_:
        main(["train", "--data", str(processed), "--run-dir", "notes", *CLI_CONFIG])
    assert str(exit_.value).startswith("error: ") and "this is a bug" not in str(exit_.value)
    assert "\n" not in str(exit_.value) and Path("notes").read_text() == "mine"


def test_the_run_summary_shows_paths_from_the_current_folder(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as exit_:
        summary_main(["--profile", "quick", "--work-dir", str(tmp_path / "work")])
    assert str(exit_.value) == ("error: work/results/metrics.json does not exist yet: run "
                                "notebook 04 (training) first")
    (tmp_path / "work" / "results").mkdir(parents=True)
    (tmp_path / "work" / "results" / "metrics.json").write_text(json.dumps(
        {"train_images": 17998, "val_accuracy": 0.93}))
    summary_main(["--profile", "quick", "--work-dir", str(tmp_path / "work")])
    assert capsys.readouterr().out == (
        "Run summary (quick profile, work/results/metrics.json):\n"
        "              train_images: 17,998\n"
        "              val_accuracy: 0.93\n"
        "Figures: work/figures\n")


# ------------------------------------------------------------------ the demo model


def test_saved_or_demo_model(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    work = tmp_path / "work"
    quick = PROFILES["quick"]  # its recipe, on 10 photos per class for one epoch
    monkeypatch.setitem(PROFILES, "quick", Profile("quick", 10, replace(quick.train, epochs=1)))
    run = Run(get_profile("full"), work, work, None, seed=42)
    pets = make_petimages(tmp_path / "photos", per_class=20, bad_files=False)
    prepare(pets, run.processed, workers=1)
    model, about = saved_or_demo_model(run)
    assert about.startswith("No trained model in this work folder: using a demo model "
                            "(compact AlexNet, 1 epochs, 18 photos, validation accuracy ")
    assert about.endswith("), saved as work/models/demo/best.keras — its numbers are not the "
                          "reference run's")
    size = quick.train.image_size
    assert model.name == "alexnet_compact" and model.input_shape == (None, size, size, 3)
    before = files_of(run.models / "demo")
    again, _ = saved_or_demo_model(run)
    assert files_of(run.models / "demo") == before  # reused, not trained again
    probe = np.zeros((1, size, size, 3), "uint8")
    np.testing.assert_array_equal(model.predict(probe, verbose=0), again.predict(probe, verbose=0))

    shutil.rmtree(run.processed)  # split again with another seed: the old demo's training photos
    prepare(pets, run.processed, seed=7, workers=1)  # may be test photos now
    saved_or_demo_model(run)
    used = json.loads((run.models / "demo" / "config.json").read_text())["split"]
    (demo,) = [d for d in (run.local / "data").glob("demo-*") if split_id(d) == used]
    for split in ("train", "val"):
        assert ({p.name for p in (demo / split).rglob("*.jpg")}
                <= {p.name for p in (run.processed / split).rglob("*.jpg")})

    run = Run(get_profile("quick"), work, work, None, seed=42)  # as if 04 trained it
    run.model_dir.mkdir(parents=True)
    for name in ("best.keras", "config.json"):
        shutil.copy(run.models / "demo" / name, run.model_dir / name)
    rows = [{"epoch": 1, MONITOR: 0.8}, {"epoch": 2, MONITOR: 0.9324}, {"epoch": 3, MONITOR: 0.9}]
    (run.model_dir / "history.json").write_text(json.dumps(rows))
    _, about = saved_or_demo_model(run)
    assert about == ("Using the saved model work/models/alexnet_compact/best.keras (best epoch "
                     "2, validation accuracy 93.24%)")


def test_a_best_model_without_its_config_is_refused(tmp_path):
    (tmp_path / "best.keras").write_bytes(b"")
    with pytest.raises(RunError, match="config.json is missing: best.keras is loaded into"):
        load_best_model(tmp_path)


# ------------------------------------------------------------------ schedule and monitor


def lr_at(schedule, step: int) -> float:
    return float(keras.ops.convert_to_numpy(schedule(step)))


def test_cosine_schedule_warms_up_then_decays_to_zero():
    schedule = learning_rate_schedule(replace(CONFIG, epochs=4, warmup_epochs=1.0,
                                              learning_rate=1e-3), 10)
    warmup, total = 10, 40
    assert lr_at(schedule, 0) == pytest.approx(0.0, abs=1e-12)
    rising = [lr_at(schedule, s) for s in range(warmup + 1)]
    np.testing.assert_allclose(np.diff(rising), 1e-4, rtol=1e-4)  # linear
    assert max(lr_at(schedule, s) for s in range(total + 1)) == pytest.approx(1e-3, rel=1e-6)
    falling = [lr_at(schedule, s) for s in range(warmup, total + 1)]
    assert all(b < a for a, b in zip(falling, falling[1:], strict=False))
    assert lr_at(schedule, (warmup + total) // 2) == pytest.approx(5e-4, rel=1e-4)  # cosine
    assert lr_at(schedule, total) == pytest.approx(0.0, abs=1e-9)
    flat = learning_rate_schedule(replace(CONFIG, epochs=3, warmup_epochs=0,
                                          learning_rate=2e-3), 5)
    assert lr_at(flat, 0) == pytest.approx(2e-3, rel=1e-6)  # no warm-up: starts at the peak


def test_the_best_model_checkpoint_refuses_a_metric_name_that_is_not_logged(tmp_path):
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)])
    model.compile(optimizer="sgd", loss="mse", metrics=["mae"])
    with pytest.raises(ValueError, match=r"no 'val_accuracy' among the logged metrics"):
        model.fit(np.ones((4, 4)), np.ones(4), validation_data=(np.ones((4, 4)), np.ones(4)),
                  verbose=0, callbacks=callbacks(TINY, tmp_path))
    assert not (tmp_path / "best.keras").exists()


def test_save_model_writes_the_keras_file_model_save_writes_without_leaving_files(tmp_path):
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)])
    model.compile(optimizer="adam", loss="mse")
    model.train_on_batch(np.ones((2, 4)), np.ones((2, 1)))  # an optimizer state to save too
    (tmp_path / ".tmp-best").mkdir()  # what a save killed halfway leaves
    (tmp_path / ".tmp-best" / "model.weights.h5").write_bytes(b"cut short")
    (tmp_path / ".tmp-best.keras").write_bytes(b"cut short")
    save_model(model, tmp_path / "best.keras")
    model.save(tmp_path / "keras.keras")
    with zipfile.ZipFile(tmp_path / "best.keras") as ours, \
            zipfile.ZipFile(tmp_path / "keras.keras") as theirs:
        assert sorted(ours.namelist()) == sorted(theirs.namelist())
        assert ours.read("config.json") == theirs.read("config.json")
    loaded = keras.saving.load_model(tmp_path / "best.keras")
    probe = np.arange(8, dtype="float32").reshape(2, 4)
    assert np.allclose(loaded.predict(probe, verbose=0), model.predict(probe, verbose=0))
    assert int(loaded.optimizer.iterations) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["best.keras", "keras.keras"]
    with pytest.raises(ValueError, match="writes a .keras file"):
        save_model(model, tmp_path / "best.h5")


@pytest.mark.slow  # a training process of its own, under JAX
def test_the_training_command_runs_under_the_jax_backend(processed, tmp_path):
    """Keras on JAX (e.g. a GPU machine with JAX and no TensorFlow): the tf.data maps must
    not call keras.ops, which would be JAX's there."""
    env = {**os.environ, "KERAS_BACKEND": "jax", "TF_CPP_MIN_LOG_LEVEL": "3"}
    done = subprocess.run(
        [sys.executable, "-m", "helpers", "train", "--data", str(processed), "--run-dir",
         str(tmp_path / "run"), "--profile", "quick", "--epochs", "1", "--image-size", "96"],
        env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    assert [row["epoch"] for row in read_history(tmp_path / "run")] == [1]


def test_early_stopping_counts_its_patience_across_a_resume(tmp_path):
    config = replace(TINY, epochs=6, patience=2)
    scores = [0.9, 0.5, 0.5, 0.5, 0.5, 0.5]  # epoch 1 is the best; patience runs out after 3

    class Scores(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            logs[MONITOR] = scores[epoch]

    def fit(extra=()):
        open_run(config, tmp_path)
        model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)])
        model.compile(optimizer=keras.optimizers.SGD(0.0), loss="mse")
        model.fit(np.ones((8, 4)), np.zeros(8), batch_size=2, epochs=config.epochs, verbose=0,
                  callbacks=[Scores(), *callbacks(config, tmp_path), *extra])

    with pytest.raises(KeyboardInterrupt):
        fit([StopAfter(2)])
    fit()
    assert [row["epoch"] for row in read_history(tmp_path)] == [1, 2, 3]


def test_commands_answer_bad_input_and_bad_files_in_one_line(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "work" / "results").mkdir(parents=True)
    for text in ("{not json", "[1, 2]"):
        (tmp_path / "work" / "results" / "metrics.json").write_text(text)
        with pytest.raises(SystemExit) as exit_:
            summary_main(["--work-dir", "work"])
        assert str(exit_.value) == ("error: work/results/metrics.json is not a metrics file "
                                    "notebook 04 wrote" + (" (Expecting property name enclosed "
                                    "in double quotes: line 1 column 2 (char 1))"
                                    if text.startswith("{") else ""))
    for arguments in (["--image-size", "20"], ["--image-size", "100000"], ["--classes", "0"],
                      ["--variant", "huge"]):
        with pytest.raises(SystemExit) as exit_:
            main(["params", *arguments])
        assert str(exit_.value).startswith("error: ") and "\n" not in str(exit_.value)


def test_a_bug_ends_with_its_traceback_and_a_request_to_report_it(monkeypatch, capsys):
    import helpers.params

    def broken(*args, **kwargs):
        raise ZeroDivisionError("a bug")

    monkeypatch.setattr(helpers.params, "parameter_table", broken)
    with pytest.raises(SystemExit) as exit_:
        main(["params"])
    assert "please report it" in str(exit_.value)
    assert "ZeroDivisionError: a bug" in capsys.readouterr().err


@pytest.mark.parametrize("emptied", ["train/dog", "val/cat"])
def test_a_split_without_one_class_is_refused(processed, tmp_path, emptied):
    split = tmp_path / "split"
    shutil.copytree(processed, split)
    for photo in (split / emptied).glob("*.jpg"):
        photo.unlink()
    with pytest.raises(SystemExit) as exit_:
        main(["train", "--data", str(split), "--run-dir", str(tmp_path / "run"), *CLI_CONFIG])
    assert str(exit_.value) == (f"error: no photos in {split}/{emptied}: every split needs both "
                                "classes; make the split with `python -m helpers prepare`")
    assert not (tmp_path / "run").exists()
