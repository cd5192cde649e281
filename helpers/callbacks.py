"""The callbacks of a run that survives interruptions: Keras's own, each extended or redone
where it falls short (notebook 04 shows and explains each); training.callbacks() orders them."""

import os
import time
from pathlib import Path

import keras

from helpers.environment import describe_hardware, device_report
from helpers.files import save_model, shown, write_json
from helpers.runs import MONITOR, START_OVER, RunError, best_row, read_history


class HistoryLog(keras.callbacks.Callback):
    """CSVLogger's job (metrics, learning rate, seconds per epoch, in history.json), but the file
    is replaced whole and cut back to the epoch a resumed fit starts from, as the weights are."""

    def __init__(self, run_dir: Path, epochs: int):
        super().__init__()
        self.path, self.rows = Path(run_dir) / "history.json", read_history(run_dir)
        self.epochs = epochs  # the run's, over all its stages

    def on_train_begin(self, logs=None):  # fit again on a finished run: it would start at epoch 1
        if self.path.with_name("finished.json").exists():
            raise RunError(f"the run in {shown(self.path.parent)} is finished: nothing to train. "
                           f"To {START_OVER}")

    def on_epoch_begin(self, epoch, logs=None):
        self.rows, self.started = self.rows[:epoch], time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        learning_rate = float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate))
        self.rows.append({"epoch": epoch + 1, **{k: float(v) for k, v in (logs or {}).items()},
                          "learning_rate": learning_rate, "image_size": self.model.input_shape[1],
                          "seconds": time.perf_counter() - self.started})
        write_json(self.path, self.rows)

    def on_train_end(self, logs=None):  # fit ended normally: a stage, all epochs or stopped early
        if len(self.rows) < self.epochs and not self.model.stop_training:
            return
        write_json(self.path.with_name("finished.json"),
                   {"epochs": len(self.rows), "precision": self.model.dtype_policy.name,
                    "hardware": describe_hardware(device_report())})


class SaveBest(keras.callbacks.Callback):
    """ModelCheckpoint(save_best_only=True) on MONITOR, but its best counts the epochs a resumed
    fit keeps at this photo size, a missing metric an error (Keras warns), saved by save_model."""

    def __init__(self, path: Path):
        super().__init__()
        self.path, self.best = Path(path), None

    def on_epoch_begin(self, epoch, logs=None):
        if self.best is None:
            best = best_row(read_history(self.path.parent)[:epoch], self.model.input_shape[1])
            self.best = best and best[MONITOR]

    def on_epoch_end(self, epoch, logs=None):
        current = (logs or {}).get(MONITOR)
        if current is None:
            raise ValueError(f"no {MONITOR!r} among the logged metrics {sorted(logs or {})}")
        if self.best is None or current > self.best:
            self.best = current
            save_model(self.model, self.path)


class Backup(keras.callbacks.BackupAndRestore):
    """BackupAndRestore resuming at the later of its epoch file and the optimizer's step count,
    explaining a backup it cannot read, kept until finished.json (not deleted after a stage)."""

    def __init__(self, run_dir: Path):
        super().__init__(Path(run_dir) / "backup", double_checkpoint=True)

    def on_train_begin(self, logs=None):
        self.model._initial_epoch = None  # Keras sets it again from its epoch file, if readable
        try:
            super().on_train_begin(logs)
        except (OSError, ValueError, KeyError) as error:
            if isinstance(error, OSError) and not any(map(os.path.exists, (
                    self._prev_weights_path, self._training_metadata_path))):
                os.remove(self._weights_path)  # cut off in the first epoch's backup: start anew
            elif isinstance(error, OSError) or not os.path.exists(self._weights_path):
                reason = " ".join(str(error).split())[:160]
                raise RunError(f"{shown(self.backup_dir)} cannot be read ({reason}). To "
                               f"{START_OVER}") from error
        steps, done = self.params.get("steps"), self.model.optimizer.iterations
        if steps and os.path.exists(self._weights_path):  # mixed_float16 skips, uncounted, the
            counted = int(keras.ops.convert_to_numpy(done)) // steps  # steps that overflow
            self.model._initial_epoch = max(counted, self.model._initial_epoch or 0)

    def on_train_end(self, logs=None):
        if (Path(self.backup_dir).parent / "finished.json").exists():
            super().on_train_end(logs)


class StopEarly(keras.callbacks.EarlyStopping):
    """EarlyStopping counting patience from the best epoch at this photo size before a resume
    (Keras's restarts)."""

    def __init__(self, run_dir: Path, **kwargs):
        super().__init__(**kwargs)
        self.run_dir = run_dir

    def on_epoch_begin(self, epoch, logs=None):
        best = best_row(read_history(self.run_dir)[:epoch], self.model.input_shape[1])
        if self.best is None and best:
            self.best, self.wait = best[MONITOR], epoch - best["epoch"]
