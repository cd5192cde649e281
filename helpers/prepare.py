"""Clean a PetImages-style folder into a seeded, stratified train/val/test split, losing nothing;
SOURCE is only read, and DEST is never replaced while it holds a file prepare did not write."""

import csv
import ctypes
import errno
import hashlib
import io
import itertools
import json
import os
import random
import shutil
import sys
from collections import Counter, namedtuple
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from contextlib import nullcontext, suppress
from pathlib import Path, PurePosixPath

import numpy as np
from PIL import Image, UnidentifiedImageError
from tqdm import tqdm

from helpers.files import Busy, held, write_json
from helpers.photos import CLASS_NAMES, SPLITS, class_of, find_source

STAMP, MANIFEST, REJECTED = "prepare.json", "manifest.csv", "rejected.csv"
VAL_FRACTION = TEST_FRACTION = 0.1  # of each class's photos, by default; the rest is training
PROGRESS_FROM = 1000  # files: fewer decode in a second or two, and a bar would be noise
MAX_SIDE, MAX_ASPECT = 65500, 20  # the longest side a JPEG holds; longest over shortest side
TOPS = {"F": (1, 255, 65535), "I": (255, 65535)}  # the ranges deep pixels fill, narrowest first
# A listed file (path relative to SOURCE); why it is no photo, and its re-encoding ("" if none).
Entry = namedtuple("Entry", "path label size reason digest staged", defaults=("", ""))


class DestinationError(FileExistsError, ValueError):
    """DEST cannot be used (it holds what prepare did not write, or is busy); the CLI reports it."""


def _reason(error: OSError) -> str:
    """The rejected.csv reason for a file or folder that cannot be read."""
    return {errno.EACCES: "permission denied", errno.ELOOP: "symlink loop", errno.ENOENT:
            "broken symlink"}.get(error.errno, f"cannot read: {error.strerror or error}")


def _walk(folder: Path, rel: str, label: str, stack: tuple, fence: tuple) -> Iterator[Entry]:
    """Files below `folder` (real path stack[-1]) by name, not following symlinks back up or out."""
    try:
        entries = sorted(os.scandir(folder), key=lambda e: e.name)
    except OSError as error:
        yield Entry(rel, label, -1, _reason(error))
        return
    for entry in entries:
        path, link = f"{rel}/{entry.name}", entry.is_symlink()
        real = Path(os.path.realpath(entry.path)) if link else stack[-1] / entry.name
        try:
            size = entry.stat().st_size
            problem = "" if entry.is_dir() or entry.is_file() else "not a regular file"
        except OSError as error:
            size, problem = -1, _reason(error)
        if link and any(above.is_relative_to(real) for above in stack):
            problem = "symlink loop"
        elif link and any(map(real.is_relative_to, fence)) and not real.is_relative_to(stack[0]):
            problem = "symlink out of its class folder"
        if not problem and entry.is_dir():
            yield from _walk(Path(entry.path), path, label, (*stack, real), fence)
        else:
            yield Entry(path, label, -1 if problem else size, problem)


def _decode(data: bytes) -> tuple[str, bytes | None]:
    """(Why `data` is no photo, or ""; its RGB JPEG re-encoding, or None for a clean RGB JPEG)."""
    with Image.open(io.BytesIO(data)) as image:
        image.load()
        (width, height), jpeg = image.size, io.BytesIO()
        if max(width, height) > min(MAX_SIDE, MAX_ASPECT * min(width, height)):
            return f"{width}x{height} pixels: too large or too thin for a photo", None
        if (image.format, image.mode) == ("JPEG", "RGB") and data.rstrip(b"\0")[-2:] == b"\xff\xd9":
            return "", None
        if image.mode in ("I", "F") or image.mode.startswith("I;16"):  # PIL clips, not scales
            pixels = np.asarray(image, dtype=np.float64)
            if not np.isfinite(pixels).all():
                return "float pixels that are not numbers", None
            low, tops = min(pixels.min(), 0), TOPS.get(image.mode, (65535,))  # I;16: 65535
            top = next((t for t in tops if pixels.max() <= t), pixels.max())
            image = Image.fromarray(np.uint8(np.round((pixels - low) * 255 / (top - low or 1))))
        image.convert("RGB").save(jpeg, "JPEG", quality=95)
        return "", jpeg.getvalue()


def check_file(source: Path, entry: Entry, staged: str) -> Entry:
    """Decode a listed file (re-encoded into `staged` if need be); what fails is rejected."""
    try:
        data = (source / entry.path).read_bytes()
    except OSError as error:
        return entry._replace(reason=_reason(error))
    try:
        reason, jpeg = _decode(data) if data else ("empty file", None)
    except Exception as error:  # PIL's plugins raise many kinds of error
        reason, jpeg = {Image.DecompressionBombError: "image too large",
                        UnidentifiedImageError: "not an image"}.get(
            type(error), f"does not decode: {error or type(error).__name__}"), None
    if jpeg:
        Path(staged).write_bytes(jpeg)  # a new file in prepare's own new folder
    return entry._replace(reason=reason, digest=hashlib.sha256(data).hexdigest(),
                          staged=staged if jpeg else "")


def _die_with_parent() -> None:
    """In a decoding worker: be killed when prepare's process dies, even by SIGKILL (Linux)."""
    if sys.platform == "linux":
        ctypes.CDLL(None).prctl(1, 9)  # PR_SET_PDEATHSIG, SIGKILL


def _place(source: Path, build: Path, split: str, item: Entry, taken: set[str]) -> tuple:
    """Hard-link (or copy) a kept photo into `build` under a new, unique name; its manifest row."""
    folder = f"{split}/{item.label}"
    text = os.fsencode(item.path).decode("utf-8", "replace").replace("\ufffd", "_")
    name = "_".join(PurePosixPath(text).with_suffix(".jpg").parts[1:])  # path below the class
    stem = name.removesuffix(".jpg").encode()[:150].decode("utf-8", "ignore")
    for n in itertools.count():  # case-blind, for case-insensitive disks
        if f"{folder}/{name}".casefold() not in taken and len(name.encode()) <= 200:
            break
        name = f"{stem}_{hashlib.sha256(os.fsencode(item.path) + bytes(n)).hexdigest()[:8]}.jpg"
    taken.add(f"{folder}/{name}".casefold())
    real = item.staged or (source / item.path).resolve()
    try:
        os.link(real, build / folder / name)
    except OSError:  # across file systems; "x": never into a file, which may link to SOURCE
        with open(real, "rb") as old, open(build / folder / name, "xb") as new:
            shutil.copyfileobj(old, new)
    return item.path, item.label, split, f"{folder}/{name}", os.lstat(build / folder / name).st_size


def _digest(lines: Iterator[str]) -> str:
    """SHA-256 of text lines, whatever bytes the file names in them hold."""
    return hashlib.sha256(b"".join(os.fsencode(f"{line}\n") for line in lines)).hexdigest()


def _damage(dest: Path, stamp: dict, rows: list[dict] | None) -> str:
    """What is wrong with DEST against its manifest, one stat per photo; empty when nothing."""
    if rows is None or rows and "output" not in rows[0]:
        return f"{MANIFEST} is missing" if rows is None else "made by an older version of prepare"
    if len(rows) != stamp["summary"].get("kept") or not (dest / REJECTED).is_file():
        return f"{MANIFEST}, {REJECTED} and {STAMP} disagree"
    bad = [row["output"] for row in rows if not (dest / row["output"]).is_file()
           or str((dest / row["output"]).stat().st_size) != row["bytes"]]
    return f"{len(bad):,} of {len(rows):,} photos missing or changed, e.g. {bad[0]}" if bad else ""


def _foreign_file(dest: Path, stamp: dict | None, rows: list[dict] | None) -> str | None:
    """A file or symlink below DEST that prepare did not write, or None; unreadable ones raise."""
    def unreadable(error: OSError) -> None:  # what prepare cannot read, it does not own
        raise error
    found = sorted(Path(root, name).relative_to(dest).as_posix()
                   for root, folders, names in os.walk(dest, onerror=unreadable)
                   for name in names + [f for f in folders if os.path.islink(Path(root, f))])
    rest = [rel for rel in found if not stamp or rel not in (STAMP, MANIFEST, REJECTED)]
    outputs = {row.get("output") for row in rows or [{}]}  # None: an older or a lost manifest
    if stamp and None in outputs and stamp.get("outputs") == _digest(
            sorted(f"{rel}\t{os.lstat(dest / rel).st_size}" for rel in rest)):
        outputs = set(rest)  # what the stamp lists
    return next((rel for rel in rest if not stamp or rel not in outputs), None)


def _build(source: Path, build: Path, files: list[Entry], inputs: dict, workers: int | None):
    """Make the split in the new folder `build`, prepare.json last; returns the summary."""
    readable, staged = [f for f in files if not f.reason], build / ".staged"
    staged.mkdir(parents=True)
    args = [source] * len(readable), readable, [f"{staged}/{i}" for i in range(len(readable))]
    with nullcontext() if workers == 1 else ProcessPoolExecutor(
            workers or os.cpu_count(), initializer=_die_with_parent) as pool:
        done = pool.map(check_file, *args, chunksize=64) if pool else map(check_file, *args)
        decoded = iter(list(tqdm(done, total=len(readable), desc="decoding", unit="file",
                                 mininterval=5, disable=len(readable) < PROGRESS_FROM)))
    checked = [f if f.reason else next(decoded) for f in files]
    kept = [c for c in checked if not c.reason]
    for label in sorted(set(CLASS_NAMES) - {c.label for c in kept}):
        reasons = Counter(c.reason for c in checked if c.label == label).most_common(3)
        raise ValueError(f"None of the {label} files in {source} is a usable photo ("
                         + ", ".join(f"{n:,} {why}" for why, n in reasons) + "); nothing was "
                         "prepared.")
    by_digest = sorted(kept, key=lambda item: item.digest)  # duplicates: one group, one split
    groups = [list(group) for _, group in itertools.groupby(by_digest, lambda item: item.digest)]
    rng, assignment = random.Random(inputs["seed"]), {}
    for label in sorted({item.label for item in kept}):  # stratified by label, seeded
        ordered = [group for group in groups if group[0].label == label]
        rng.shuffle(ordered)
        total = sum(map(len, ordered))
        quota = {split: round(total * inputs[f"{split}_fraction"]) for split in ("test", "val")}
        for members in ordered:
            split = next((s for s in ("test", "val") if quota[s] > 0), "train")
            quota[split] = quota.get(split, 0) - len(members)
            assignment.update((item.path, split) for item in members)
    for split, label in itertools.product(SPLITS, CLASS_NAMES):
        (build / split / label).mkdir(parents=True)
    manifest, taken = [("path", "label", "split", "output", "bytes")], set()
    manifest.extend(_place(source, build, assignment[item.path], item, taken) for item in kept)
    shutil.rmtree(staged)
    rejected = [("path", "reason"), *((c.path, c.reason) for c in checked if c.reason)]
    for name, rows in ((MANIFEST, manifest), (REJECTED, rejected)):
        with open(build / name, "w", newline="", encoding="utf-8") as f:  # paths as text: \xNN
            csv.writer(f).writerows((os.fsencode(row[0]).decode("utf-8", "backslashreplace"),
                                     *row[1:]) for row in rows)
    counts = {s: {label: sum(row[1:3] == (label, s) for row in manifest) for label in CLASS_NAMES}
              for s in SPLITS}
    summary = {"kept": len(kept), "rejected": len(checked) - len(kept),
               "reencoded": sum(bool(c.staged) for c in kept), "counts": counts}
    outputs = _digest(sorted(f"{row[3]}\t{row[4]}" for row in manifest[1:]))
    write_json(build / STAMP, {"inputs": inputs, "outputs": outputs, "summary": summary})
    return summary


def _report(head: str, tail: str, summary: dict, inputs: dict) -> dict:
    """Print the photos per split between `head` and `tail`, and warn of a class a split lacks."""
    counts = summary["counts"]
    photos = ", ".join(f"{sum(counts.get(s, {}).values()):,} {s}" for s in SPLITS)
    print(f"{head}{photos} photos{tail}")
    for label in CLASS_NAMES:
        if empty := [s for s in SPLITS if inputs.get(f"{s}_fraction", 1) and not counts[s][label]]:
            print(f"Warning: no {label} photos in {' or '.join(empty)}: too few for the fractions.")
    return summary


def _update(source: Path, dest: Path, shown: Path, files: list[Entry], inputs: dict,
            workers: int | None, reuse: bool, verbose: bool) -> dict:
    """Reuse DEST, or make it beside it and rename it into place (we hold DEST's lock)."""
    for path in dest.parent.iterdir():  # what a killed run left
        if path.name.startswith((f".{dest.name}.building-", f".{dest.name}.old-")):
            shutil.rmtree(path)
    stamp = rows = None  # DEST's prepare.json when prepare made it; its manifest's rows
    with suppress(OSError, ValueError, TypeError, KeyError):
        made = json.loads((dest / STAMP).read_text())
        stamp = made if made["inputs"] and isinstance(made["summary"]["counts"], dict) else None
    with suppress(OSError), open(dest / MANIFEST, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    damage = _damage(dest, stamp, rows) if stamp and stamp["inputs"] == inputs else None
    if damage == "" and reuse:
        return _report(f"Using the prepared split in {shown}: ", f" (checked against {MANIFEST}).",
                       stamp["summary"], inputs) if verbose else stamp["summary"]
    if dest.exists() and not dest.is_dir():
        raise DestinationError(f"{shown} is a file, not a folder made by prepare; prepare never "
                               "deletes it. Choose another destination folder.")
    if dest.exists() and (rel := _foreign_file(dest, stamp, rows)) is not None:
        raise DestinationError(
            f"{shown} holds files that prepare did not write (e.g. {shown / rel}); prepare never "
            "deletes them. Move them away, or choose another destination folder.")
    if stamp and damage != "":
        print(f"{shown} does not match its {MANIFEST} ({damage}); rebuilding it." if damage else
              f"{shown} was made from other photos or settings; making it again.")
    build, old = (dest.parent / f".{dest.name}.{k}-{os.getpid()}" for k in ("building", "old"))
    try:
        summary = _build(source, build, files, inputs, workers)
        if dest.exists():
            dest.rename(old)  # deleted once the new split is in place
        build.rename(dest)
    except BaseException:
        if old.exists() and not dest.exists():
            old.rename(dest)
        shutil.rmtree(build, ignore_errors=True)
        raise
    shutil.rmtree(old, ignore_errors=True)  # if that fails, the next run deletes it
    return _report(f"Prepared {shown}: ", f"; {summary['rejected']:,} files rejected (see "
                   f"{shown / REJECTED}), {summary['reencoded']:,} re-encoded as RGB JPEG.",
                   summary, inputs)


def prepare(source: str | Path, dest: str | Path, seed: int = 42,
            val_fraction: float = VAL_FRACTION, test_fraction: float = TEST_FRACTION,
            per_class_limit: int | None = None,
            workers: int | None = None, reuse: bool = True, verbose: bool = True) -> dict:
    """Clean SOURCE into DEST/{train,val,test}/{cat,dog}/ (+ manifest, rejects); return the summary.
    A DEST still matching the same inputs is reused if `reuse`; `workers`: decoders (1: in here)."""
    if not 0 <= val_fraction < 1 or not 0 <= test_fraction < 1 or val_fraction + test_fraction >= 1:
        raise ValueError("val and test fractions must be in [0, 1) and add up to less than 1")
    source, shown = find_source(source), Path(dest)
    dest = shown.resolve() if shown.is_symlink() else shown
    fence = (source.resolve(), dest.resolve())
    if fence[1].is_relative_to(fence[0]) or fence[0].is_relative_to(fence[1]):
        raise DestinationError(f"{shown} overlaps the photos folder {source}; prepare never reads "
                               "its output as photos. Choose a destination folder outside it.")
    files = [f for folder in sorted(source.iterdir()) if class_of(folder.name) and folder.is_dir()
             for f in itertools.islice(_walk(folder, folder.name, class_of(folder.name),
                                             (folder.resolve(),), fence), per_class_limit)]
    for label in sorted(set(CLASS_NAMES) - {f.label for f in files}):
        folders = " or ".join(f"{p.name}/" for p in source.iterdir() if class_of(p.name) == label)
        raise FileNotFoundError(f"{source} has no {label} photos: no files in {folders}. Download "
                                "the photos again, or point to a complete PetImages folder.")
    inputs = {"source": str(fence[0]), "seed": seed, "val_fraction": val_fraction,
              "listing": _digest(f"{f.path}\t{f.label}\t{f.size}" for f in files),
              "test_fraction": test_fraction}
    lock = dest.parent / f".{dest.name}.lock"
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        with held(lock, "prepare"):
            return _update(source, dest, shown, files, inputs, workers, reuse, verbose)
    except Busy as error:
        raise DestinationError(
            f"Another prepare (process {error.holder}) is writing {shown}; wait for it "
            f"to finish, or delete {shown.parent / lock.name} if none is running.") from None
    except DestinationError:
        raise
    except OSError as error:
        blocked = isinstance(error, FileExistsError | NotADirectoryError)
        why = "a file is in the way" if blocked else error.strerror or error
        raise DestinationError(f"Cannot use {shown}: {error.filename or shown}: {why}. Choose a "
                               "destination folder prepare can read and write.") from error
