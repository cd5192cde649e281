"""Facts about the photos in one place: class and split names, which folder holds the photos,
and how photos are placed into a split (hard links, or copies across file systems)."""

import os
import shutil
from pathlib import Path

CLASS_NAMES = ["cat", "dog"]  # label 0, label 1; also the folder names inside a split
SPLITS = ("train", "val", "test")


def class_of(folder_name: str) -> str | None:
    """The label of a source folder ("Cat", "dog", ...), None for any other folder."""
    name = folder_name.lower()
    return name if name in CLASS_NAMES else None


def find_source(data_dir: str | Path) -> Path:
    """The folder holding Cat/ and Dog/: `data_dir` itself, or a PetImages folder below it."""
    data_dir = Path(data_dir)
    for candidate in (data_dir, data_dir / "PetImages", *sorted(data_dir.glob("*/PetImages"))):
        if candidate.is_dir() and set(CLASS_NAMES) <= {
                class_of(p.name) for p in candidate.iterdir() if p.is_dir()}:
            return candidate
    raise FileNotFoundError(
        f"No Cat/ and Dog/ folders found in {data_dir} (nor in a PetImages/ folder below it). "
        "Run `python -m helpers download`, or point DATA_DIR at the extracted PetImages folder.")


def find_photos(folder: str | Path) -> Path | None:
    """The folder holding Cat/ and Dog/ below `folder` when both contain files, else None."""
    try:
        source = find_source(folder)
    except FileNotFoundError:
        return None
    classes = [p for p in source.iterdir() if p.is_dir() and class_of(p.name)]
    return source if all(any(p.iterdir()) for p in classes) else None


def first_photos(folder: Path, count: int | None) -> list[Path]:
    """The first `count` photos (by name) of each class folder in `folder`; None: all."""
    return [path for name in CLASS_NAMES for path in sorted((folder / name).glob("*.jpg"))[:count]]


def link_photos(paths, base: Path, dest: Path) -> Path:
    """Hard-link each photo to dest/<its path below base> (a smaller split, a demo folder) once;
    built beside dest and renamed into place, so dest is whole or absent."""
    if dest.is_dir():
        return dest
    building = dest.with_name(f".tmp-{dest.name}")
    shutil.rmtree(building, ignore_errors=True)  # an unfinished one of ours
    for photo in paths:
        target = building / Path(photo).relative_to(base)
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.link(photo, target)  # no extra space
        except OSError:  # no hard links here (Google Drive) or across disks: a copy
            shutil.copyfile(photo, target)
    os.replace(building, dest)
    return dest
