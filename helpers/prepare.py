"""Clean a PetImages-style folder and split it into train/val/test.

Every file is decoded once. Photos that decode are kept (re-encoded as RGB JPEG when they were
not RGB JPEG already); the rest are listed in `rejected.csv` with the reason. The split is
stratified by class, seeded, and keeps byte-identical files together in one split.
"""

import csv
import hashlib
import io
import json
import os
import random
import shutil
from collections import defaultdict
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from PIL import Image
from tqdm import tqdm

CLASS_FOLDERS = {"cat": "cat", "dog": "dog"}  # folder name (lower-cased) -> label
SPLITS = ("train", "val", "test")
STAMP = "prepare.json"


@dataclass(frozen=True)
class Checked:
    """What decoding one source file found."""

    path: str  # relative to the source folder, with forward slashes
    label: str
    digest: str
    reason: str  # empty when the photo is usable
    rewrite: bool  # True when it must be re-encoded as RGB JPEG


def find_source(data_dir: str | Path) -> Path:
    """The folder holding Cat/ and Dog/: `data_dir` itself, or a PetImages folder below it."""
    data_dir = Path(data_dir)
    for candidate in (data_dir, data_dir / "PetImages", *data_dir.glob("*/PetImages")):
        if candidate.is_dir() and {"cat", "dog"} <= {p.name.lower() for p in candidate.iterdir()}:
            return candidate
    raise FileNotFoundError(
        f"No Cat/ and Dog/ folders found in {data_dir} (nor in a PetImages/ folder below it). "
        "Run `python -m helpers download`, or point DATA_DIR at the extracted PetImages folder."
    )


def list_source(source: Path, per_class_limit: int | None = None) -> list[tuple[str, str]]:
    """(relative path, label) of every file under the class folders, in a stable order.
    With `per_class_limit`, the first N files of each class by name (for quick runs)."""
    files = []
    for folder in sorted(p for p in source.iterdir() if p.is_dir()):
        label = CLASS_FOLDERS.get(folder.name.lower())
        if label is None:
            continue
        names = sorted(p for p in folder.rglob("*") if p.is_file())
        files += [(p.relative_to(source).as_posix(), label) for p in names[:per_class_limit]]
    return files


def check_file(source: Path, rel: str, label: str) -> Checked:
    """Decode one file fully and say whether it is usable and whether it needs re-encoding."""
    data = (source / rel).read_bytes()
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


def _output_name(rel: str) -> str:
    """The file name inside DEST/<split>/<label>/: the source path below the class folder."""
    return "_".join(Path(rel).with_suffix(".jpg").parts[1:])


def _place(source: Path, target: Path, item: Checked) -> None:
    """Hard-link a clean JPEG (copy across file systems); re-encode anything else as RGB JPEG."""
    if item.rewrite:
        with Image.open(source / item.path) as image:
            image.convert("RGB").save(target, "JPEG", quality=95)
        return
    try:
        os.link(source / item.path, target)
    except OSError:
        shutil.copyfile(source / item.path, target)


def _stamp(source: Path, files: list[tuple[str, str]], seed, val_fraction, test_fraction) -> dict:
    """What a finished DEST was made from; a re-run with the same stamp has nothing to do."""
    listing = hashlib.sha256()
    for rel, label in files:
        listing.update(f"{rel}\t{label}\t{(source / rel).stat().st_size}\n".encode())
    return {"source": str(source.resolve()), "listing": listing.hexdigest(), "seed": seed,
            "val_fraction": val_fraction, "test_fraction": test_fraction}


def prepare(source: str | Path, dest: str | Path, seed: int = 42, val_fraction: float = 0.1,
            test_fraction: float = 0.1, per_class_limit: int | None = None,
            workers: int | None = None) -> dict:
    """Clean SOURCE into DEST/{train,val,test}/{cat,dog}/ with manifest.csv and rejected.csv.

    Returns the summary (counts per split and class, kept, rejected). Re-running on a finished
    DEST with the same inputs only reads the summary back.
    """
    if not 0 <= val_fraction < 1 or not 0 <= test_fraction < 1 or val_fraction + test_fraction >= 1:
        raise ValueError("val and test fractions must be in [0, 1) and add up to less than 1")
    source, dest = find_source(source), Path(dest)
    files = list_source(source, per_class_limit)
    if not files:
        raise FileNotFoundError(f"{source} has Cat/ and Dog/ folders but no files in them")
    stamp = _stamp(source, files, seed, val_fraction, test_fraction)
    stamp_file = dest / STAMP
    if stamp_file.exists():
        previous = json.loads(stamp_file.read_text())
        if previous.get("inputs") == stamp:
            print(f"{dest} is already prepared from the same photos and seed; nothing to do.")
            return previous["summary"]

    for split in SPLITS:
        shutil.rmtree(dest / split, ignore_errors=True)
    stamp_file.unlink(missing_ok=True)
    dest.mkdir(parents=True, exist_ok=True)

    with ProcessPoolExecutor(max_workers=workers or os.cpu_count()) as pool:
        checked = list(tqdm(
            pool.map(check_file, [source] * len(files), *zip(*files, strict=True), chunksize=64),
            total=len(files), desc="decoding", unit="file", mininterval=5))
    kept = [c for c in checked if not c.reason]
    rejected = [c for c in checked if c.reason]
    assignment = split_groups(kept, val_fraction, test_fraction, seed)

    labels = sorted(set(CLASS_FOLDERS.values()))
    counts = {split: dict.fromkeys(labels, 0) for split in SPLITS}
    for split in SPLITS:
        for label in counts[split]:
            (dest / split / label).mkdir(parents=True, exist_ok=True)
    placed: set[Path] = set()
    for item in kept:
        split = assignment[item.path]
        target = dest / split / item.label / _output_name(item.path)
        if target in placed:  # e.g. Cat/1.jpg and cat/1.jpg, or 1.png and 1.jpg: keep both
            tag = hashlib.sha256(item.path.encode()).hexdigest()[:8]
            target = target.with_stem(f"{target.stem}_{tag}")
        placed.add(target)
        _place(source, target, item)
        counts[split][item.label] += 1

    with open(dest / "manifest.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["path", "label", "split"])
        writer.writerows((c.path, c.label, assignment[c.path]) for c in kept)
    with open(dest / "rejected.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["path", "reason"])
        writer.writerows((c.path, c.reason) for c in rejected)

    summary = {"kept": len(kept), "rejected": len(rejected),
               "reencoded": sum(c.rewrite for c in kept), "counts": counts}
    stamp_file.write_text(json.dumps({"inputs": stamp, "summary": summary}, indent=2))
    print(f"kept {len(kept)}, rejected {len(rejected)} (see {dest / 'rejected.csv'}), "
          f"re-encoded {summary['reencoded']} as RGB JPEG")
    return summary
