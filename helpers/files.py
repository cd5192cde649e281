"""Files and paths: writes a kill never leaves half done (made under a temporary name, renamed
into place), paths as printed, locks, and the refusals the command line reports in one line."""

import json
import os
import shutil
import time
import zipfile
from contextlib import contextmanager, suppress
from pathlib import Path

from helpers.environment import process_alive

DRIVE_MOUNT = Path("/content/drive")  # where Colab mounts Google Drive
LOCK_WRITE_S = 5.0  # seconds an empty lock file is taken to be still in the making


def write_atomic(path: str | Path, write) -> None:
    """Make `path` with `write(temporary)`, then rename it into place."""
    path = Path(path)
    temporary = path.with_name(f".tmp-{path.name}")  # keeps the suffix Keras checks
    temporary.unlink(missing_ok=True)
    write(temporary)
    os.replace(temporary, path)


def write_text(path: str | Path, text: str) -> None:
    write_atomic(path, lambda temporary: temporary.write_text(text))


def write_json(path: str | Path, value) -> None:
    write_text(path, json.dumps(value, indent=1) + "\n")


def save_model(model, path: str | Path) -> None:
    """model.save(path) for a .keras file, but saved to a folder and zipped from disk (Keras zips
    a copy of every weight held in memory), the zip renamed into place when whole."""
    if Path(path).suffix != ".keras":
        raise ValueError(f"save_model writes a .keras file, not {Path(path).name!r}")
    folder = Path(path).with_name(f".tmp-{Path(path).stem}")
    shutil.rmtree(folder, ignore_errors=True)  # ours, left by a save that was killed
    def zip_folder(temporary: Path) -> None:
        with zipfile.ZipFile(temporary, "w") as archive:
            for file in sorted(file for file in folder.rglob("*") if file.is_file()):
                archive.write(file, file.relative_to(folder).as_posix())
    model.save(folder, zipped=False)
    write_atomic(path, zip_folder)
    shutil.rmtree(folder)


def project_root() -> Path:
    """The repository root when run from a checkout (the cwd or its parent), else the cwd."""
    cwd = Path.cwd().resolve()
    return next((root for root in (cwd, cwd.parent)
                 if (root / "helpers").is_dir() and (root / "notebooks").is_dir()), cwd)


def shown(path: str | Path) -> str:
    """A path as printed, with no machine paths: relative to the checkout when below it, else
    to the current folder when they share a parent; Drive as it is."""
    path = Path(path).resolve()
    if path.is_relative_to(DRIVE_MOUNT):
        return str(path)
    if path.is_relative_to(root := project_root()):
        return path.relative_to(root).as_posix()  # "." for the root itself
    near = os.path.commonpath([path, Path.cwd().resolve()]) != path.anchor
    return os.path.relpath(path) if near else str(path)


class Refused(Exception):
    """What was asked cannot be done as things stand; the message says why and what to do."""


class Busy(Refused):
    """Another live process (`holder`) holds the lock; the message names it and what to do."""

    def __init__(self, message: str, holder: int = 0):
        super().__init__(message)
        self.holder = holder


@contextmanager
def held(lock: Path, what: str):
    """Hold `lock` (a file naming this process) while the block runs: refuse while a live
    process holds it, take it over from a dead one, remove it afterwards."""
    while True:
        try:  # O_EXCL: of the processes making it at once, exactly one succeeds (Drive too)
            with os.fdopen(os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY), "w") as file:
                file.write(f"{os.getpid()}\n")
            break
        except FileExistsError:
            holder, age = 0, LOCK_WRITE_S  # unreadable: not one in the making
            with suppress(OSError, ValueError):
                age = time.time() - lock.stat().st_mtime
                holder = int(lock.read_text())
            if not holder and age < LOCK_WRITE_S:  # just made, its number not yet written
                time.sleep(0.1)
            elif holder and process_alive(holder):
                raise Busy(f"another {what} (process {holder}) is using {shown(lock.parent)}; "
                           f"wait for it to finish, or delete {shown(lock)} if none is running",
                           holder) from None
            else:
                lock.unlink(missing_ok=True)  # its process is gone: try again
    try:
        yield
    finally:
        lock.unlink(missing_ok=True)
