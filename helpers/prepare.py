"""Clean a PetImages-style folder and split it into train/val/test, losing nothing.

Every file is decoded once. Photos that decode are kept (re-encoded as RGB JPEG when they were
not RGB JPEG already, hard-linked otherwise); the rest are listed in `rejected.csv` with the
reason, as are symlink loops, broken links and unreadable files. The split is stratified by
class, seeded, and keeps byte-identical files together in one split.

DEST is built in a folder beside it (`.DEST.building-*`) and renamed into place only when
complete, under a lock file beside it (`.DEST.lock`, holding the pid). Prepare never deletes a
file it did not write: a DEST holding other files is refused. A re-run checks DEST against its
`manifest.csv` (every photo present, same size) and reuses it, or rebuilds it when damaged.
"""

import csv
import errno
import hashlib
import io
import itertools
import json
import os
import random
import secrets
import shutil
import stat
from collections import Counter, defaultdict
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from PIL import Image
from tqdm import tqdm

from helpers.environment import process_alive
from helpers.photos import CLASS_NAMES, SPLITS, class_of, find_source, link_or_copy

STAMP = "prepare.json"
MANIFEST = "manifest.csv"
REJECTED = "rejected.csv"
PROGRESS_FROM = 1000  # files: fewer decode in a second or two, and a bar would be noise
MANIFEST_HEADER = ["path", "label", "split", "output", "bytes"]


class DestinationError(FileExistsError, ValueError):
    """DEST cannot be written: it holds files prepare did not write, or another prepare is
    writing it. Also a ValueError, so callers that report bad arguments report it too."""


@dataclass(frozen=True)
class Listed:
    """One entry found below a class folder."""

    path: str  # relative to the source folder, with forward slashes (undecodable bytes escaped)
    label: str
    size: int  # -1 when it cannot be read
    problem: str  # why it cannot be read at all (e.g. "symlink loop"); empty for a regular file


@dataclass(frozen=True)
class Checked:
    """What decoding one source file found."""

    path: str  # relative to the source folder, with forward slashes
    label: str
    digest: str
    reason: str  # empty when the photo is usable
    rewrite: bool  # True when it must be re-encoded as RGB JPEG


def _reason(error: OSError) -> str:
    """The rejected.csv reason for a file or folder that cannot be read."""
    if isinstance(error, PermissionError):
        return "permission denied"
    if error.errno == errno.ELOOP:
        return "symlink loop"
    if isinstance(error, FileNotFoundError):
        return "broken symlink"
    return f"cannot read: {error.strerror or error}"


def _walk(folder: Path, rel: str, label: str, above: frozenset) -> Iterator[Listed]:
    """The entries below `folder`, depth first by name, following symlinks; a link back to a
    folder above it (`above`: their device and inode) is reported as a "symlink loop"."""
    try:
        with os.scandir(folder) as found:
            entries = sorted(found, key=lambda e: e.name)
    except OSError as error:
        yield Listed(rel, label, -1, _reason(error))
        return
    for entry in entries:
        path = f"{rel}/{entry.name}"
        try:
            info = entry.stat()
        except OSError as error:
            yield Listed(path, label, -1, _reason(error))
            continue
        key = (info.st_dev, info.st_ino)
        if stat.S_ISDIR(info.st_mode) and key in above:
            yield Listed(path, label, -1, "symlink loop")
        elif stat.S_ISDIR(info.st_mode):
            yield from _walk(Path(entry.path), path, label, above | {key})
        elif stat.S_ISREG(info.st_mode):
            yield Listed(path, label, info.st_size, "")
        else:
            yield Listed(path, label, -1, "not a regular file")


def list_source(source: Path, per_class_limit: int | None = None) -> list[Listed]:
    """Every entry below the class folders, in a stable order. With `per_class_limit`, the
    first N entries of each class folder by name (for quick runs)."""
    files = []
    for folder in sorted(p for p in source.iterdir() if p.is_dir() and class_of(p.name)):
        info = folder.stat()
        found = _walk(folder, folder.name, class_of(folder.name),
                      frozenset({(info.st_dev, info.st_ino)}))
        files += itertools.islice(found, per_class_limit)
    return files


def check_file(source: Path, rel: str, label: str) -> Checked:
    """Decode one file fully and say whether it is usable and whether it needs re-encoding."""
    try:
        data = (source / rel).read_bytes()
    except OSError as error:
        return Checked(rel, label, "", _reason(error), False)
    digest = hashlib.sha256(data).hexdigest()
    if not data:
        return Checked(rel, label, digest, "empty file", False)
    try:
        with Image.open(io.BytesIO(data)) as image:
            fmt, mode = image.format, image.mode
            image.load()
    except Image.DecompressionBombError:
        return Checked(rel, label, digest, "image too large", False)
    except (OSError, SyntaxError, ValueError) as error:
        reason = "not an image" if "cannot identify" in str(error) else f"does not decode: {error}"
        return Checked(rel, label, digest, reason, False)
    clean_jpeg = fmt == "JPEG" and mode == "RGB" and data.rstrip(b"\0").endswith(b"\xff\xd9")
    return Checked(rel, label, digest, "", not clean_jpeg)


def _check_all(source: Path, files: list[Listed], workers: int | None) -> list[Checked]:
    """check_file on every listed file that can be read, in listing order, with a progress bar
    when there are enough to wait for; in worker processes, or in this process when `workers`
    is 1."""
    readable = [f for f in files if not f.problem]
    args = ([source] * len(readable), [f.path for f in readable], [f.label for f in readable])
    bar = {"total": len(readable), "desc": "decoding", "unit": "file", "mininterval": 5,
           "disable": len(readable) < PROGRESS_FROM}
    if workers == 1:
        checked = iter(list(tqdm(map(check_file, *args), **bar)))
    else:
        with ProcessPoolExecutor(max_workers=workers or os.cpu_count()) as pool:
            checked = iter(list(tqdm(pool.map(check_file, *args, chunksize=64), **bar)))
    return [Checked(f.path, f.label, "", f.problem, False) if f.problem else next(checked)
            for f in files]


def split_groups(kept: list[Checked], val_fraction: float, test_fraction: float, seed: int
                 ) -> dict[str, str]:
    """Map each kept file's path to a split: stratified by label, seeded, byte-identical files
    kept together so a duplicate never lands in both train and test."""
    groups: dict[str, list[Checked]] = defaultdict(list)
    for item in kept:
        groups[item.digest].append(item)
    by_label: dict[str, list[list[Checked]]] = defaultdict(list)
    for digest in sorted(groups):
        members = groups[digest]
        by_label[members[0].label].append(members)
    rng = random.Random(seed)
    assignment = {}
    for label in sorted(by_label):
        label_groups = by_label[label]
        rng.shuffle(label_groups)
        total = sum(len(g) for g in label_groups)
        quota = {"test": round(total * test_fraction), "val": round(total * val_fraction)}
        filled = {"test": 0, "val": 0}
        for members in label_groups:
            split = next((s for s in ("test", "val") if filled[s] < quota[s]), "train")
            if split != "train":
                filled[split] += len(members)
            for item in members:
                assignment[item.path] = split
    return assignment


def _shown(rel: str) -> str:
    """A source path as text for the CSV files: undecodable bytes written as \\xNN."""
    return os.fsencode(rel).decode("utf-8", "backslashreplace")


def _output(folder: str, rel: str, taken: set[str]) -> str:
    """The output path (relative to DEST) of source file `rel` in `folder` (<split>/<label>):
    the source path below the class folder joined with "_", ending in .jpg, undecodable bytes
    replaced by "_"; a short hash of `rel` is added when the name is taken already (Cat/1.jpg
    and cat/1.jpg, 1.png and 1.jpg; compared case-blind for case-insensitive disks) or long."""
    text = os.fsencode(rel).decode("utf-8", "replace").replace("\ufffd", "_")
    name = "_".join(PurePosixPath(text).with_suffix(".jpg").parts[1:])
    if f"{folder}/{name}".casefold() in taken or len(name.encode()) > 200:
        stem = name.removesuffix(".jpg").encode()[:150].decode("utf-8", "ignore")
        name = f"{stem}_{hashlib.sha256(os.fsencode(rel)).hexdigest()[:8]}.jpg"
    taken.add(f"{folder}/{name}".casefold())
    return f"{folder}/{name}"


def _place(source: Path, target: Path, item: Checked) -> None:
    """Re-encode anything that is not a clean RGB JPEG; hard-link (or copy) the rest, the real
    file behind any symlink, so that nothing in DEST can dangle."""
    if item.rewrite:
        with Image.open(source / item.path) as image:
            image.convert("RGB").save(target, "JPEG", quality=95)
    else:
        link_or_copy((source / item.path).resolve(), target)


def _write_csv(path: Path, header: list[str], rows) -> None:
    """One CSV file, UTF-8."""
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        writer.writerows(rows)


def _read_manifest(dest: Path) -> list[dict[str, str]]:
    """The rows of DEST's manifest.csv."""
    with open(dest / MANIFEST, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def counts_line(counts: dict[str, int]) -> str:
    """Photos per split as words: "17,998 train, 2,250 val, 2,250 test photos"."""
    return ", ".join(f"{counts.get(split, 0):,} {split}" for split in SPLITS) + " photos"


def _inputs(source: Path, files: list[Listed], seed, val_fraction, test_fraction) -> dict:
    """What a DEST is made from (the source listing with sizes, seed, fractions); a DEST made
    from other inputs is made again."""
    listing = hashlib.sha256()
    for f in files:
        listing.update(os.fsencode(f"{f.path}\t{f.label}\t{f.size}\n"))
    return {"source": str(source.resolve()), "listing": listing.hexdigest(), "seed": seed,
            "val_fraction": val_fraction, "test_fraction": test_fraction}


def _stamp_of(dest: Path) -> dict | None:
    """DEST's prepare.json when prepare made DEST, else None."""
    try:
        stamp = json.loads((dest / STAMP).read_text())
    except (OSError, ValueError):
        return None
    made = isinstance(stamp, dict) and isinstance(stamp.get("summary"), dict) and "inputs" in stamp
    return stamp if made else None


def _damage(dest: Path, stamp: dict) -> str:
    """What is wrong with a DEST against its manifest (a missing or resized photo, a missing
    CSV file), cheaply: one stat per photo. Empty when nothing is."""
    try:
        rows = _read_manifest(dest)
    except OSError:
        return f"{MANIFEST} is missing"
    if rows and "output" not in rows[0]:
        return "made by an older version of prepare"
    if len(rows) != stamp["summary"].get("kept") or not (dest / REJECTED).is_file():
        return f"{MANIFEST}, {REJECTED} and {STAMP} disagree"
    bad = []
    for row in rows:
        try:
            if (dest / row["output"]).stat().st_size != int(row["bytes"]):
                bad.append(row["output"])
        except (OSError, ValueError):
            bad.append(row["output"])
    return f"{len(bad):,} of {len(rows):,} photos missing or changed, e.g. {bad[0]}" if bad else ""


def _foreign_file(dest: Path) -> str | None:
    """A file below DEST (relative to it) that prepare did not write, or None: the files of
    its manifest and its CSV and stamp files are prepare's (when the manifest cannot say, any
    file in a split's class folder is), any other file is not."""
    ours: set[str] | None = set()
    if _stamp_of(dest):
        try:
            rows = _read_manifest(dest)
            ours = {STAMP, MANIFEST, REJECTED, *(row["output"] for row in rows)}
        except (OSError, KeyError):
            ours = None
    for root, _, names in os.walk(dest):
        for name in sorted(names):
            rel = Path(root, name).relative_to(dest).as_posix()
            parts = rel.split("/")
            if ours is None:
                mine = rel in (STAMP, MANIFEST, REJECTED) or (
                    len(parts) == 3 and parts[0] in SPLITS and parts[1] in CLASS_NAMES)
            else:
                mine = rel in ours
            if not mine:
                return rel
    return None


def _refuse_foreign(dest: Path, shown: Path) -> None:
    """Refuse to replace a DEST that holds a file prepare did not write (it would be deleted)."""
    if dest.exists() and not dest.is_dir():
        raise DestinationError(f"{shown} is a file, not a folder made by prepare; "
                               "prepare never deletes it. Choose another destination folder.")
    rel = _foreign_file(dest) if dest.is_dir() else None
    if rel is not None:
        raise DestinationError(
            f"{shown} holds files that prepare did not write (e.g. {shown / rel}); prepare never "
            "deletes them. Move them away, or choose another destination folder.")

    return True


@contextmanager
def _locked(dest: Path, shown: Path) -> Iterator[None]:
    """Hold `.DEST.lock` beside DEST (holding our pid) while the block runs. Refuse while a
    live process holds it; take over a lock whose process is gone."""
    lock = dest.parent / f".{dest.name}.lock"
    while True:
        try:
            fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
            break
        except FileExistsError:
            try:
                pid = int(lock.read_text())
            except (OSError, ValueError):
                pid = None  # being written this instant, or garbled
            if pid is None or process_alive(pid):
                raise DestinationError(
                    f"Another prepare{f' (process {pid})' if pid else ''} is writing {shown}; "
                    f"wait for it to finish, or delete {shown.parent / lock.name} if none is "
                    "running.") from None
            lock.unlink(missing_ok=True)  # its process is gone
    with os.fdopen(fd, "w") as f:
        f.write(f"{os.getpid()}\n")
    try:
        yield
    finally:
        lock.unlink(missing_ok=True)


def _scratch_prefixes(dest: Path) -> tuple[str, str]:
    """Name prefixes of the folders beside DEST that prepare makes: a split being built, and
    the previous split on its way out."""
    return f".{dest.name}.building-", f".{dest.name}.old-"


def _remove_leftovers(dest: Path) -> None:
    """Delete the scratch folders a killed run left beside DEST (we hold DEST's lock)."""
    for path in dest.parent.iterdir():
        if path.name.startswith(_scratch_prefixes(dest)) and path.is_dir():
            shutil.rmtree(path)


def _move_into_place(build: Path, dest: Path) -> None:
    """Rename the complete split `build` to DEST; an old DEST is renamed aside first and deleted
    only once the new one is in place."""
    if not dest.exists():
        build.rename(dest)
        return
    old = dest.parent / build.name.replace(*_scratch_prefixes(dest))
    dest.rename(old)
    try:
        build.rename(dest)
    except BaseException:
        old.rename(dest)
        raise
    shutil.rmtree(old, ignore_errors=True)  # if that fails, the next run removes it


def _refuse_empty_class(source: Path, files: list[Listed]) -> None:
    """Refuse a class folder with no files: a split without cats (or dogs) is no split."""
    for label in CLASS_NAMES:
        if not any(f.label == label for f in files):
            folders = [f"{p.name}/" for p in source.iterdir() if class_of(p.name) == label]
            raise FileNotFoundError(
                f"{source} has no {label} photos: no files in {' or '.join(folders)}. Download "
                "the photos again, or point to a complete PetImages folder.")


def _build(source: Path, build: Path, files: list[Listed], seed: int, val_fraction: float,
           test_fraction: float, workers: int | None, inputs: dict) -> dict:
    """Decode, split and place every photo into the empty folder `build`, with manifest.csv,
    rejected.csv and (last, as the sign of a complete split) prepare.json. Returns the summary."""
    checked = _check_all(source, files, workers)
    kept = [c for c in checked if not c.reason]
    rejected = [c for c in checked if c.reason]
    for label in CLASS_NAMES:
        if not any(c.label == label for c in kept):
            reasons = Counter(c.reason for c in rejected if c.label == label).most_common(3)
            raise ValueError(f"None of the {label} files in {source} is a usable photo ("
                             + ", ".join(f"{n:,} {why}" for why, n in reasons)
                             + "); nothing was prepared.")
    assignment = split_groups(kept, val_fraction, test_fraction, seed)

    counts = {split: dict.fromkeys(CLASS_NAMES, 0) for split in SPLITS}
    for split in SPLITS:
        for label in CLASS_NAMES:
            (build / split / label).mkdir(parents=True)
    taken: set[str] = set()
    manifest = []
    for item in kept:
        split = assignment[item.path]
        output = _output(f"{split}/{item.label}", item.path, taken)
        _place(source, build / output, item)
        counts[split][item.label] += 1
        size = (build / output).stat().st_size
        manifest.append((_shown(item.path), item.label, split, output, size))

    _write_csv(build / MANIFEST, MANIFEST_HEADER, manifest)
    _write_csv(build / REJECTED, ["path", "reason"], ((_shown(c.path), c.reason) for c in rejected))
    summary = {"kept": len(kept), "rejected": len(rejected),
               "reencoded": sum(c.rewrite for c in kept), "counts": counts}
    (build / STAMP).write_text(json.dumps({"inputs": inputs, "summary": summary}, indent=2))
    return summary


def prepare(source: str | Path, dest: str | Path, seed: int = 42, val_fraction: float = 0.1,
            test_fraction: float = 0.1, per_class_limit: int | None = None,
            workers: int | None = None, reuse: bool = True, verbose: bool = True) -> dict:
    """Clean SOURCE into DEST/{train,val,test}/{cat,dog}/ with manifest.csv and rejected.csv.

    Returns the summary (counts per split and class, kept, rejected). A DEST made from the same
    inputs that still matches its manifest is reused (with `reuse` False, made again: the
    checker runs every time). `workers`: decoding processes (default: one per CPU; 1 decodes
    in this process). `verbose` False: no line when a DEST is reused.
    """
    if not 0 <= val_fraction < 1 or not 0 <= test_fraction < 1 or val_fraction + test_fraction >= 1:
        raise ValueError("val and test fractions must be in [0, 1) and add up to less than 1")
    source, shown = find_source(source), Path(dest)
    dest = shown.resolve() if shown.is_symlink() else shown
    files = list_source(source, per_class_limit)
    _refuse_empty_class(source, files)
    inputs = _inputs(source, files, seed, val_fraction, test_fraction)
    dest.parent.mkdir(parents=True, exist_ok=True)
    with _locked(dest, shown):
        _remove_leftovers(dest)
        stamp = _stamp_of(dest)
        if stamp and stamp["inputs"] == inputs:
            damage = _damage(dest, stamp)
            if not damage and reuse:
                split_sizes = Counter(row["split"] for row in _read_manifest(dest))
                if verbose:
                    print(f"Using the prepared split in {shown}: {counts_line(split_sizes)} "
                          f"(checked against {MANIFEST}).")
                return stamp["summary"]
            if damage:
                print(f"{shown} does not match its {MANIFEST} ({damage}); rebuilding it.")
        elif stamp:
            print(f"{shown} was made from other photos or settings; making it again.")
        _refuse_foreign(dest, shown)
        build = dest.parent / f"{_scratch_prefixes(dest)[0]}{secrets.token_hex(4)}"
        build.mkdir()
        try:
            summary = _build(source, build, files, seed, val_fraction, test_fraction, workers,
                             inputs)
            _move_into_place(build, dest)
        except BaseException:
            shutil.rmtree(build, ignore_errors=True)
            raise
    split_sizes = {split: sum(n.values()) for split, n in summary["counts"].items()}
    print(f"Prepared {shown}: {counts_line(split_sizes)}; {summary['rejected']:,} files "
          f"rejected (see {shown / REJECTED}), {summary['reencoded']:,} re-encoded as RGB JPEG.")
    return summary
