"""Where a run reads photos and writes its outputs, per profile."""

from dataclasses import dataclass
from pathlib import Path


def project_root() -> Path:
    """The repository root when run from a checkout (the cwd or its parent), else the cwd."""
    cwd = Path.cwd().resolve()
    for candidate in (cwd, cwd.parent):
        if (candidate / "helpers").is_dir() and (candidate / "notebooks").is_dir():
            return candidate
    return cwd


def from_root(path: str | Path) -> Path:
    """`path` as given, read relative to the repository root when it is relative (so a
    notebook in notebooks/ and a command in the root mean the same folder)."""
    path = Path(path).expanduser()
    return path if path.is_absolute() else project_root() / path


@dataclass(frozen=True)
class RunPaths:
    """Folders of one run: cleaned split, trained models, figures and metrics."""

    root: Path
    processed: Path
    models: Path
    figures: Path
    results: Path

    def make(self) -> "RunPaths":
        """Create the output folders (not `processed`, which `prepare` owns) and return self."""
        for folder in (self.models, self.figures, self.results):
            folder.mkdir(parents=True, exist_ok=True)
        return self


def run_paths(profile: str, work_dir: str | Path | None = None) -> RunPaths:
    """Paths for a profile: the full run writes into the repository (figures/, results/ are
    committed); other profiles write under build/<profile>/ so they never overwrite those."""
    if work_dir:
        root = from_root(work_dir)
    elif profile == "full":
        root = project_root()
    else:
        root = project_root() / "build" / profile
    root = root.resolve()
    return RunPaths(
        root=root,
        processed=root / "data" / "processed",
        models=root / "models",
        figures=root / "figures",
        results=root / "results",
    ).make()
