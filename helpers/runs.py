"""The run folder training writes: opening it to train, resume or report a finished run, refusing
what is not its own, and what the run came to (the Keras pieces: training.py, callbacks.py)."""

import hashlib
import json
import os
import shutil
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path

from helpers.config import TrainConfig
from helpers.data import list_images
from helpers.files import Refused, shown, write_json

MONITOR = "val_accuracy"  # Keras 3's name; TensorFlow 1's "val_acc" matches nothing
RUN_FILES = ("config.json", "history.json", "best.keras", "backup", "finished.json")
START_OVER = ("start over with restart=True (command line: --restart), which moves the run's "
              "files to previous-<time>/, or train into another folder.")


class RunError(Refused):
    """A run folder that training cannot use as it is; the message says what to do."""


def read_json(path: Path, default=None):
    """A file of the run folder, read; a one-line RunError when it is not what training wrote."""
    if not path.exists():
        return default
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as error:
        raise RunError(f"{shown(path)} cannot be read ({error}); nothing was changed. To "
                       f"{START_OVER}") from error


def read_history(run_dir: str | Path) -> list[dict]:
    """The rows of run_dir/history.json (empty when there is none yet)."""
    rows = read_json(Path(run_dir) / "history.json", [])
    if not (isinstance(rows, list) and all(isinstance(r, dict) and MONITOR in r for r in rows)):
        raise RunError(f"{shown(Path(run_dir) / 'history.json')} is not a history training "
                       f"wrote; nothing was changed. To {START_OVER}")
    return rows


def epochs_done(run_dir: str | Path) -> int:
    """Epochs the run's backup holds, which a resumed run starts after (0 without one)."""
    try:
        return int(json.loads((Path(run_dir) / "backup" / "training_metadata.json").read_text()
                              )["epoch"])
    except (OSError, ValueError, KeyError, TypeError):
        return 0


def split_id(processed_dir: str | Path) -> str:
    """A fingerprint of the train and val photos (names, sizes): no run resumes on other data."""
    digest = hashlib.sha256()
    for split in ("train", "val"):
        for path in list_images(Path(processed_dir) / split)[0]:
            digest.update(f"{split}/{path.parent.name}/{path.name}:{path.stat().st_size}\n"
                          .encode())
    return digest.hexdigest()[:12]


def open_run(config: TrainConfig, run_dir: str | Path, split: str = "",
             restart: bool = False) -> str:
    """Make run_dir ready to train `config` on `split` (split_id) and say if the run is new, resumed
    or finished (left as it is); RunError, changing nothing, if not a run of these settings."""
    run_dir = Path(run_dir)
    if run_dir.is_dir():  # files training did not write (a user's notes) are never touched
        foreign = sorted(p.name for p in run_dir.iterdir() if p.name not in (*RUN_FILES, ".lock")
                         and not p.name.startswith((".tmp-", "previous-")))
        if foreign:
            raise RunError(f"{shown(run_dir)} holds files training did not write ("
                           f"{', '.join(foreign)}); nothing was changed. Train into a new or "
                           "empty folder.")
    saved, settings = run_dir / "config.json", {**asdict(config), "split": split}
    history, old = read_history(run_dir), read_json(saved)  # unreadable: refused, none moved
    found = [run_dir / name for name in RUN_FILES if (run_dir / name).exists()]
    aside = run_dir / f"previous-{datetime.now(UTC):%Y%m%dT%H%M%S%fZ}" if found else None
    if restart and aside:  # the earlier run's files move aside, none is deleted
        aside.mkdir()
        for path in found:
            os.replace(path, aside / path.name)
        history, old = [], None
    if old is not None and (history or (run_dir / "backup").exists()):
        # A setting added since the run was made counts at its default.
        before = {**asdict(TrainConfig()), **old} if isinstance(old, dict) else {}
        changed = [f"{key} {before.get(key)!r} -> {value!r}" for key, value in settings.items()
                   if before.get(key) != value] if isinstance(old, dict) else ["not a config"]
        if changed:
            raise RunError(f"{shown(run_dir)} holds a run trained with other settings or data "
                           f"({', '.join(changed)}); nothing was changed. Resume it with the "
                           f"same settings and --data, or: {START_OVER}")
    if (run_dir / "finished.json").exists():
        shutil.rmtree(run_dir / "backup", ignore_errors=True)  # ours, left by a kill at the end
        best = best_row(history)
        return (f"{shown(run_dir)} holds a finished run ({len(history)} epochs, best epoch "
                f"{best['epoch']}, val_accuracy {best[MONITOR]:.2%}): nothing to train. To train "
                "it again pass restart=True (command line: --restart).")
    run_dir.mkdir(parents=True, exist_ok=True)
    write_json(saved, settings)
    if history:
        return f"Resuming {shown(run_dir)} after epoch {epochs_done(run_dir)} of {config.epochs}."
    return f"New run in {shown(run_dir)}" + (f"; the earlier run is in {shown(aside)}."
                                             if restart and aside else ".")


def best_row(history: list[dict], image_size: int | None = None) -> dict | None:
    """The best epoch's row (val accuracy) among those at image_size, by default the last
    epoch's: a progressive run's first epochs are judged on smaller photos."""
    size = image_size or (history[-1].get("image_size") if history else None)
    return max((row for row in history if row.get("image_size", size) == size),
               key=lambda row: row[MONITOR], default=None)


def summary(run_dir: str | Path) -> dict:
    """What the run in run_dir came to: epochs, best epoch and its val accuracy, time."""
    history = read_history(run_dir)
    best = best_row(history)
    seconds = sum(row["seconds"] for row in history)
    return {"epochs": len(history), "best_epoch": best["epoch"], "val_accuracy": best[MONITOR],
            "seconds": seconds, "seconds_per_epoch": seconds / len(history),
            **read_json(Path(run_dir) / "finished.json", {})}
