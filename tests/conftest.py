"""Shared test fixtures and constants: the repository's root, the warning pattern outputs must
not show, and small generated PetImages-style datasets.

`make_petimages(root)` writes `root/PetImages/{Cat,Dog}/<id>.jpg`. The good photos are trivially
separable by colour (cats red-ish, dogs blue-ish, with noise and a few shapes, sizes varying by
about +-20%), so a small CNN learns them in a few epochs. With `bad_files=True` the folders also
hold the problems of the real Kaggle download: files that must be rejected, files that decode but
must be re-encoded as RGB JPEG, a `Thumbs.db` in each class and one byte-identical duplicate pair.
`describe_petimages(per_class, bad_files)` says, without touching the disk, what each file is.
Test files import these with `from conftest import ...` (tests/ has no __init__.py).
"""


import io
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
# Python and library warnings and tracebacks, which no notebook output may show.
WARNING = re.compile(r"\w+Warning\b|WARNING|Traceback|^Error", re.MULTILINE)
CLASSES = {"Cat": "cat", "Dog": "dog"}  # source folder -> label
BASE_COLOUR = {"Cat": (200, 50, 45), "Dog": (45, 60, 200)}  # red-ish cats, blue-ish dogs

# Kinds of extra file, in the order their ids follow the good ones (same order in each class).
REJECTED_KINDS = ("empty", "truncated", "junk")  # plus "thumbs" (Thumbs.db, not a numbered id)
REENCODED_KINDS = ("png", "gif", "bmp", "gray", "cmyk")  # decodable, kept, rewritten as RGB JPEG
EXTRA_KINDS = REJECTED_KINDS + REENCODED_KINDS
THUMBS = "Thumbs.db"
# Every kind a file can have, and what `prepare` must do with it.
OUTCOME = {"good": "link", "duplicate": "link", "thumbs": "reject",
           **{kind: "reject" for kind in REJECTED_KINDS},
           **{kind: "reencode" for kind in REENCODED_KINDS}}


def describe_petimages(per_class: int = 20, bad_files: bool = True) -> dict[str, str]:
    """Relative path (e.g. "Cat/666.jpg", relative to the PetImages folder) -> kind of file.

    Kinds: "good" (clean RGB JPEG), "duplicate" (a byte copy of Cat/0.jpg), one of
    REJECTED_KINDS or REENCODED_KINDS, or "thumbs". OUTCOME maps each kind to what must happen.
    """
    files = {}
    for folder in CLASSES:
        files.update({f"{folder}/{i}.jpg": "good" for i in range(per_class)})
        if not bad_files:
            continue
        files.update({f"{folder}/{per_class + k}.jpg": kind for k, kind in enumerate(EXTRA_KINDS)})
        files[f"{folder}/{THUMBS}"] = "thumbs"
    if bad_files and per_class:
        files[f"Cat/{per_class + len(EXTRA_KINDS)}.jpg"] = "duplicate"
    return files


def duplicate_pair(per_class: int = 20) -> tuple[str, str]:
    """The two relative paths holding the same bytes (present when bad_files=True)."""
    return "Cat/0.jpg", f"Cat/{per_class + len(EXTRA_KINDS)}.jpg"


def rejected_paths(per_class: int = 20) -> set[str]:
    """Relative paths `prepare` must list in rejected.csv."""
    return {p for p, kind in describe_petimages(per_class).items() if OUTCOME[kind] == "reject"}


def reencoded_paths(per_class: int = 20) -> set[str]:
    """Relative paths `prepare` must keep but re-encode as RGB JPEG."""
    return {p for p, kind in describe_petimages(per_class).items() if OUTCOME[kind] == "reencode"}


def linked_paths(per_class: int = 20, bad_files: bool = True) -> set[str]:
    """Relative paths of clean RGB JPEGs, which `prepare` must hard-link rather than copy."""
    files = describe_petimages(per_class, bad_files)
    return {p for p, kind in files.items() if OUTCOME[kind] == "link"}


def _photo(rng: np.random.Generator, folder: str, size: int) -> Image.Image:
    """A noisy red-ish (Cat) or blue-ish (Dog) picture with a few darker/lighter shapes."""
    h, w = (max(8, int(size * rng.uniform(0.8, 1.2))) for _ in range(2))
    base = np.array(BASE_COLOUR[folder], dtype=np.float32) + rng.normal(0, 12, 3)
    pixels = np.broadcast_to(base, (h, w, 3)) + rng.normal(0, 20, (h, w, 3))
    for _ in range(rng.integers(1, 4)):  # rectangles and discs, same hue, other brightness
        y0, x0 = rng.integers(0, h // 2), rng.integers(0, w // 2)
        y1, x1 = y0 + rng.integers(h // 6, h // 2), x0 + rng.integers(w // 6, w // 2)
        shade = rng.uniform(0.5, 1.25)
        if rng.random() < 0.5:
            pixels[y0:y1, x0:x1] *= shade
        else:
            yy, xx = np.ogrid[:h, :w]
            cy, cx, r = (y0 + y1) / 2, (x0 + x1) / 2, max(2, (y1 - y0) / 2)
            pixels[(yy - cy) ** 2 + (xx - cx) ** 2 <= r * r] *= shade
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8), "RGB")


def _encode(image: Image.Image, fmt: str, **params) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **params)
    return buffer.getvalue()


def _extra(kind: str, rng: np.random.Generator, folder: str, size: int) -> bytes:
    """The bytes of one problem file."""
    if kind == "empty":
        return b""
    if kind == "truncated":  # first half of a real JPEG: header fine, scan data cut off
        data = _encode(_photo(rng, folder, size * 2), "JPEG", quality=90)
        return data[: len(data) // 2]
    if kind == "junk":  # e.g. an HTML error page saved under a .jpg name
        return b"<!DOCTYPE html>\n" + rng.bytes(2048)
    if kind == "thumbs":  # Windows thumbnail cache: OLE compound-file magic, then garbage
        return b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + rng.bytes(1024)
    photo = _photo(rng, folder, size)
    if kind == "png":
        return _encode(photo, "PNG")
    if kind == "gif":
        return _encode(photo.convert("P", palette=Image.Palette.ADAPTIVE), "GIF")
    if kind == "bmp":
        return _encode(photo, "BMP")
    if kind == "gray":
        return _encode(photo.convert("L"), "JPEG", quality=90)
    if kind == "cmyk":
        return _encode(photo.convert("CMYK"), "JPEG", quality=90)
    raise ValueError(f"unknown kind of file: {kind}")


def make_petimages(root: Path, per_class: int = 20, size: int = 64, bad_files: bool = True,
                   seed: int = 0) -> Path:
    """Write a PetImages-style folder under `root` and return `root/PetImages`.

    Good photos are `<folder>/<i>.jpg` for i in 0..per_class-1; with `bad_files`, the files of
    `describe_petimages(per_class)` follow (ids per_class, per_class+1, ... in EXTRA_KINDS order,
    `Thumbs.db` in each class, and a byte copy of Cat/0.jpg under the next free Cat id).
    """
    rng = np.random.default_rng(seed)
    pets = Path(root) / "PetImages"
    files = describe_petimages(per_class, bad_files)
    for folder in CLASSES:
        (pets / folder).mkdir(parents=True, exist_ok=True)
    for rel, kind in files.items():
        folder = rel.split("/")[0]
        if kind == "good":
            data = _encode(_photo(rng, folder, size), "JPEG", quality=90)
        elif kind == "duplicate":
            data = (pets / duplicate_pair(per_class)[0]).read_bytes()
        else:
            data = _extra(kind, rng, folder, size)
        (pets / rel).write_bytes(data)
    return pets


@pytest.fixture
def petimages(tmp_path):
    """A generated PetImages folder (20 good photos per class plus the problem files)."""
    return make_petimages(tmp_path, per_class=20)
