"""A run's setup: its profile, the *work folder* (what must outlive a Colab runtime; on Drive in
Colab), the *local folder* (the split, quick to remake), the metrics, each notebook's last cell."""

import json
import os
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from helpers.config import DATA_DIR, PROFILE, SEED, Profile, get_profile, saved_settings
from helpers.download import download
from helpers.environment import describe_hardware, device_report, is_colab, peak_memory_gb
from helpers.files import DRIVE_MOUNT, project_root, shown, write_text
from helpers.photos import find_photos
from helpers.prepare import prepare

DRIVE_FOLDER = "MyDrive/alexnet-cats-vs-dogs"  # the work folder on Drive, per profile below it


def from_root(path: str | Path) -> Path:
    """`path`, relative to the repository root when relative: a notebook and a command agree."""
    path = Path(path).expanduser()
    return path if path.is_absolute() else project_root() / path


@dataclass(frozen=True)
class Run:
    """What a notebook needs to know about the run it belongs to."""

    profile: Profile
    work: Path  # models, history, metrics, figures, the archive: what must be kept
    local: Path  # the cleaned split: quick to remake, slow to read through Drive
    source: Path | None  # the PetImages folder with Cat/ and Dog/ (None: not needed)
    seed: int
    started: float = field(default_factory=time.time)

    @property
    def processed(self) -> Path:
        """The cleaned split, relative to the current folder so messages show no machine paths."""
        return Path(os.path.relpath(self.local / "data" / "processed"))

    @property
    def models(self) -> Path:
        return self.work / "models"

    @property
    def figures(self) -> Path:
        return self.work / "figures"

    @property
    def model_dir(self) -> Path:
        """The folder of this profile's training run: best.keras, history.json, backup/."""
        return self.models / f"alexnet_{self.profile.train.variant}"

    @property
    def metrics_file(self) -> Path:
        return self.work / "results" / "metrics.json"

    def split_counts(self) -> dict:
        """Photos per split and class in the cleaned split; empty before it is made."""
        stamp = self.processed / "prepare.json"
        return json.loads(stamp.read_text())["summary"]["counts"] if stamp.exists() else {}


def work_folders(profile: str, work_dir: str | Path = "", drive: bool = False) -> tuple[Path, Path]:
    """(work, local) folders: both build/<profile>/, or WORK_DIR; with `drive` the split stays in
    build/<profile>/ and the work folder is WORK_DIR or, in Colab, on Google Drive."""
    local = project_root() / "build" / profile
    if work_dir:
        work = from_root(work_dir)
        local = local if drive else work
    elif drive and is_colab():
        from google.colab import drive as google_drive
        google_drive.mount(str(DRIVE_MOUNT))  # it asks for permission once
        work = DRIVE_MOUNT / DRIVE_FOLDER / profile
    else:
        work = local
    return work.resolve(), local.resolve()


def start(profile: str = PROFILE, data_dir: str | Path | None = DATA_DIR, seed: int = SEED,
          work_dir: str | Path = "", drive: bool = False, prepare_split: bool = True) -> Run:
    """Resolve the profile and folders, find the photos (downloading them when missing, unless
    data_dir is None: a notebook that needs none) and make sure the cleaned split exists."""
    chosen = get_profile(profile)
    work, local = work_folders(chosen.name, work_dir, drive)
    for folder in (work / "models", work / "figures", work / "results", local):
        folder.mkdir(parents=True, exist_ok=True)
    if drive and not is_colab() and not work_dir:
        print("DRIVE is for Colab; here the work folder is local.")
    source = None if data_dir is None else find_photos(from_root(data_dir))
    if data_dir is not None and source is None:  # downloaded; on Drive the archive is kept
        source = download(dest=from_root(data_dir),
                          keep_archive=work / "archive" if work != local else None)
    run = Run(chosen, work, local, source, seed)
    if source is not None and prepare_split:
        prepare(source, run.processed, seed=seed, per_class_limit=chosen.per_class_limit,
                verbose=False)
    why = {"full": "a GPU was found", "quick": "no GPU, so the short run"}[chosen.name]
    named = chosen.name + (f' (PROFILE = "auto": {why})' if profile == "auto" else "")
    where = "the repository's root" if work == project_root() else shown(work)
    print(describe(run, profile=named) + f"\nwork folder: {where}"
          + ("" if work == local else f", split on local disk {shown(local)}"))
    if is_colab() and not str(work).startswith(str(DRIVE_MOUNT)):
        print("Not on Drive: the model and results go when this Colab runtime is recycled "
              "(set DRIVE = True to keep them).")
    return run


def update_metrics(path: str | Path, **fields) -> dict:
    """Merge `fields` into the JSON at `path`, made if missing, replaced atomically; return it."""
    path = Path(path)
    metrics = json.loads(path.read_text()) if path.exists() else {}
    metrics.update(fields)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_text(path, json.dumps(metrics, indent=2, sort_keys=True) + "\n")
    return metrics


def reference_file(name: str) -> Path:
    """A file of the series' reference run (metrics.json, history.json): helpers/reference/ in
    an installed package, results/ in a checkout."""
    package = Path(__file__).parent
    for folder in (package / "reference", package.parent / "results"):
        if (folder / name).exists():
            return folder / name
    raise FileNotFoundError(f"the reference run's {name} is not in this installation")


def run_record(run: Run) -> tuple[list[dict], dict, dict, str]:
    """(history rows, metrics, training config, label) of this run's training when notebook 04
    has trained in this work folder, else of the series' reference run, labelled as such."""
    files = [run.model_dir / "history.json", run.model_dir / "config.json", run.metrics_file]
    label = f"your run in {shown(run.model_dir)}"
    if not all(path.exists() for path in files):  # the reference run's have the same names
        files = [reference_file(path.name) for path in files]
        label = "the series' reference run (no training of yours in this work folder yet)"
    history, config, metrics = (json.loads(path.read_text()) for path in files)
    return history, metrics, saved_settings(config), label


def describe(run: Run, **first: str) -> str:
    """Lines naming what made a notebook's outputs: `first` (label: text), the profile, the
    photos, the hardware and the versions."""
    report = device_report()
    counts = {split: sum(c.values()) for split, c in run.split_counts().items()}
    photos = ", ".join(f"{n:,} {split}" for split, n in counts.items()) or (
        f"{run.source.name}, not split yet" if run.source else "none used")
    versions = ", ".join(f"{name} {report[name]}" for name in ("python", "keras", "tensorflow")
                         if name in report)
    profile = first.pop("profile", run.profile.name)
    lines = {**first, "profile": f"{profile}, seed {run.seed}", "photos": photos,
             "hardware": f"{describe_hardware(report)}, {report['precision']}",
             "versions": f"{versions} (backend {report['keras_backend']})"}
    return "\n".join(f"{label + ':':<10} {text}" for label, text in lines.items())


def print_run_metadata(run: Run) -> None:
    """The closing cell of every notebook: when, on what, versions, time, memory and photos."""
    peak = peak_memory_gb()
    print(describe(run, date=datetime.now(UTC).replace(microsecond=0).isoformat())
          + f"\nwall time: {time.time() - run.started:,.0f} s for this notebook"
          + ("" if peak is None else f"\npeak memory: {peak:.2f} GB for this notebook's kernel"))
