"""The setup every notebook starts with: profile, paths, photos found (or downloaded in
Colab) and the cleaned split in place."""

import json
import time
from dataclasses import dataclass, field
from pathlib import Path

from helpers.environment import is_colab
from helpers.paths import RunPaths, from_root, run_paths
from helpers.prepare import find_source, prepare
from helpers.profiles import Profile, get_profile


@dataclass(frozen=True)
class Run:
    """What a notebook needs to know about the run it belongs to."""

    profile: Profile
    paths: RunPaths
    source: Path | None  # the PetImages folder with Cat/ and Dog/ (None: not needed)
    seed: int
    started: float = field(default_factory=time.time)

    def split_counts(self) -> dict:
        """Photos per split and class in the cleaned split (from prepare's summary); empty
        before notebook 01 has made it."""
        stamp = self.paths.processed / "prepare.json"
        return json.loads(stamp.read_text())["summary"]["counts"] if stamp.exists() else {}


def locate_photos(data_dir: str | Path) -> Path:
    """The PetImages folder under DATA_DIR; in Colab it is downloaded there when missing."""
    data_dir = from_root(data_dir)
    try:
        return find_source(data_dir)
    except FileNotFoundError:
        if not is_colab():
            raise
    from helpers.download import download

    return download(dest=data_dir)


def start(profile: str, data_dir: str | Path | None, seed: int = 42, work_dir: str | Path = "",
          prepare_split: bool = True) -> Run:
    """Resolve the profile and paths, find the photos (unless data_dir is None: a notebook
    that needs none), and by default make sure the cleaned split exists - a quick no-op when
    notebook 01 already made it."""
    chosen = get_profile(profile)
    paths = run_paths(chosen.name, work_dir or None)
    source = None if data_dir is None else locate_photos(data_dir)
    if source is not None and prepare_split:
        prepare(source, paths.processed, seed=seed, per_class_limit=chosen.per_class_limit)
    return Run(chosen, paths, source, seed)


def print_run_metadata(run: Run) -> None:
    """The closing cell of every notebook: when, on what, with which versions, how long, and
    on how many photos this notebook ran."""
    from helpers.environment import describe_hardware, device_report
    from helpers.results import now

    report = device_report()
    counts = {split: sum(c.values()) for split, c in run.split_counts().items()
              if run.source is not None}
    photos = ", ".join(f"{n:,} {split}" for split, n in counts.items()) or "none used"
    versions = ", ".join(f"{name} {report[name]}" for name in ("python", "keras", "tensorflow")
                         if name in report)
    print(f"date:      {now()}\n"
          f"hardware:  {describe_hardware(report)}\n"
          f"versions:  {versions} (backend {report['keras_backend']})\n"
          f"profile:   {run.profile.name}, seed {run.seed}\n"
          f"photos:    {photos}\n"
          f"wall time: {time.time() - run.started:,.0f} s for this notebook")
