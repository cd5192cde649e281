"""Broken files made from real photos, for notebook 01's cleaning lesson when the photos at hand
are already clean (the shared 180 px copy is): the problems the original download really has."""

import io
from pathlib import Path

from PIL import Image


def make_broken_files(photo: str | Path, folder: str | Path) -> dict[str, str]:
    """Write a broken file of each kind, made from the real `photo`, into `folder`: {name: what}."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    with Image.open(photo) as image:
        rgb = image.convert("RGB")
    jpeg = io.BytesIO()
    rgb.save(jpeg, "JPEG", quality=90)
    (folder / "empty.jpg").write_bytes(b"")
    (folder / "truncated.jpg").write_bytes(jpeg.getvalue()[: len(jpeg.getvalue()) // 2])
    rgb.save(folder / "png_named.jpg", "PNG")
    rgb.convert("CMYK").save(folder / "cmyk.jpg", "JPEG")
    rgb.convert("L").save(folder / "grayscale.jpg", "JPEG")
    (folder / "Thumbs.db").write_bytes(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(504))
    return {
        "empty.jpg": "0 bytes, like Cat/666.jpg in the original download",
        "truncated.jpg": "a JPEG cut off halfway, as an interrupted copy leaves it",
        "png_named.jpg": "a PNG inside, with a .jpg name",
        "cmyk.jpg": "a CMYK JPEG (decodes, but not as RGB)",
        "grayscale.jpg": "a one-channel JPEG",
        "Thumbs.db": "Windows' thumbnail cache, not a photo",
    }
