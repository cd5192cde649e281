"""Download the PetImages photos (Cat/ and Dog/) and extract them under `data/raw`.

Plain `urllib.request` streams the archive into a temporary folder inside `dest`, counting bytes
(a cut-short transfer is retried, never extracted) and hashing as it goes (so the optional
SHA-256 check needs no second pass over 800 MB). `keras.utils.get_file` is not used: it has no
size check, no way to tell a refused connection from a dropped one, and importing Keras loads
TensorFlow, which makes the command slow to start.

The archive is checked for unsafe member names, extracted next to it and renamed into place, so
an interrupted run never leaves a half-extracted tree. The archive is deleted afterwards: it
duplicates the 800 MB tree and can be fetched again. A run killed hard (SIGKILL) may leave a
`dest/.download-*` folder behind; it is safe to delete.
"""

import hashlib
import os
import shutil
import sys
import tarfile
import tempfile
import time
import zipfile
from http.client import HTTPException
from pathlib import Path, PureWindowsPath
from urllib.error import HTTPError, URLError
from urllib.parse import urlsplit
from urllib.request import urlopen

from tqdm import tqdm

from helpers.prepare import find_source

DEFAULT_URL = (
    "https://download.microsoft.com/download/3/E/1/3E1C3F21-ECDB-4869-8368-6DEBA77B919F/"
    "kagglecatsanddogs_5340.zip"
)
DEFAULT_SIZE = 824_887_076  # bytes of DEFAULT_URL; other addresses are checked by Content-Length
BACKOFF = 1.0  # seconds before the first retry; doubled for each further one
CHUNK = 1 << 20


class DownloadError(Exception):
    """The photos could not be downloaded or extracted; the message says why and what to do."""


def manual_help(dest: str | Path) -> str:
    """How to get the photos by hand, for messages about failed downloads."""
    return (
        "To get the photos by hand, download one of:\n"
        f"  - the Microsoft zip: {DEFAULT_URL}\n"
        "    (page: https://www.microsoft.com/en-us/download/details.aspx?id=54765)\n"
        "  - the Kaggle \"dogs-vs-cats\" competition data (https://www.kaggle.com/c/dogs-vs-cats;"
        " its train/ holds cat.N.jpg and dog.N.jpg: move them into Cat/ and Dog/)\n"
        "  - TensorFlow Datasets `cats_vs_dogs` (it fetches the same zip)\n"
        f"and extract it so that {Path(dest) / 'PetImages' / 'Cat'} and "
        f"{Path(dest) / 'PetImages' / 'Dog'} exist, or point the notebooks' DATA_DIR "
        "parameter at an existing copy of the PetImages folder."
    )


def find_photos(folder: Path) -> Path | None:
    """The folder holding Cat/ and Dog/ below `folder` when both contain files, else None."""
    try:
        source = find_source(folder)
    except FileNotFoundError:
        return None
    classes = [p for p in source.iterdir() if p.is_dir() and p.name.lower() in ("cat", "dog")]
    return source if len(classes) == 2 and all(any(p.iterdir()) for p in classes) else None


def _reason(error: BaseException) -> str:
    """A short description of a network error (urllib hides the cause in `reason`)."""
    if isinstance(error, HTTPError):
        return f"HTTP {error.code} {error.reason}"
    cause = error.reason if isinstance(error, URLError) else error
    return str(cause) or type(cause).__name__


def _is_transient(error: BaseException) -> bool:
    """Whether trying again may help: dropped or cut-short transfers and server errors do; a
    refused connection, a failed name lookup or a connect timeout do not, so they fail fast."""
    if isinstance(error, HTTPError):
        return error.code >= 500 or error.code == 429
    if isinstance(error, URLError):  # raised while connecting
        return isinstance(error.reason, ConnectionResetError)
    return isinstance(error, ConnectionError | TimeoutError | HTTPException)


def _fetch_once(url: str, target: Path, timeout: float) -> str:
    """Stream `url` into `target` with a progress bar; return the SHA-256. A transfer shorter
    than expected raises ConnectionError (retried by the caller)."""
    digest = hashlib.sha256()
    with urlopen(url, timeout=timeout) as response, target.open("wb") as out:
        length = response.headers.get("Content-Length")
        expected = DEFAULT_SIZE if url == DEFAULT_URL else int(length) if length else None
        received = 0
        with tqdm(total=expected, unit="B", unit_scale=True, unit_divisor=1024, mininterval=1.0,
                  desc=target.name.removesuffix(".part")) as bar:
            while chunk := response.read(CHUNK):
                out.write(chunk)
                digest.update(chunk)
                received += len(chunk)
                bar.update(len(chunk))
    if expected is not None and received != expected:
        raise ConnectionError(f"transfer cut short: received {received:,} of {expected:,} bytes")
    return digest.hexdigest()


def fetch(url: str, target: Path, retries: int, timeout: float, dest: Path) -> str:
    """Download `url` into `target`, retrying transient failures with a short backoff; return
    the SHA-256. Raise DownloadError with how-to-get-it-by-hand advice when it cannot."""
    attempts = max(retries, 0) + 1
    for attempt in range(attempts):
        try:
            return _fetch_once(url, target, timeout)
        except (OSError, HTTPException, ValueError) as error:
            if attempt == attempts - 1 or not _is_transient(error):
                raise DownloadError(
                    f"could not download {url}: {_reason(error)}\n{manual_help(dest)}"
                ) from error
            delay = BACKOFF * 2**attempt
            print(f"download failed ({_reason(error)}); retrying in {delay:.0f} s",
                  file=sys.stderr)
            time.sleep(delay)
    raise AssertionError("unreachable")


def _is_unsafe(name: str) -> bool:
    """Whether an archive member would land outside the extraction folder (absolute path,
    drive letter or `..`); Windows rules so that both / and \\ count as separators."""
    path = PureWindowsPath(name)
    return bool(path.drive or path.root) or ".." in path.parts


def extract(archive: Path, target: Path) -> None:
    """Extract a zip or tar archive into `target`; a corrupt archive or a full disk becomes a
    DownloadError (the caller removes the partial extraction)."""
    try:
        _extract(archive, target)
    except (zipfile.BadZipFile, tarfile.TarError, OSError) as error:
        raise DownloadError(f"could not extract {archive.name}: {error}") from error


def _extract(archive: Path, target: Path) -> None:
    """Extract a zip or tar archive into `target`, after refusing it whole when any member
    has an unsafe path (or, in a tar, is a link or device)."""
    if zipfile.is_zipfile(archive):
        with zipfile.ZipFile(archive) as bundle:
            for name in bundle.namelist():
                if _is_unsafe(name):
                    raise DownloadError(f"refusing the archive: member {name!r} has an unsafe path")
            bundle.extractall(target)
    elif tarfile.is_tarfile(archive):
        with tarfile.open(archive) as bundle:
            for member in bundle.getmembers():
                if _is_unsafe(member.name) or not (member.isfile() or member.isdir()):
                    raise DownloadError(
                        f"refusing the archive: member {member.name!r} has an unsafe path "
                        "or is a link")
            bundle.extractall(target, filter="data")
    else:
        raise DownloadError(f"{archive.name} is neither a zip nor a tar archive")


def move_into_place(staging: Path, dest: Path) -> Path:
    """Rename everything extracted in `staging` into `dest` (same file system, so each rename
    is atomic) and return the photos' new folder; that folder goes last, so its presence
    means the extraction completed."""
    photos = find_photos(staging)
    if photos is None:
        raise DownloadError("the archive holds no Cat/ and Dog/ folders with files")
    top = photos.relative_to(staging).parts[:1]
    entries = sorted(staging.iterdir(), key=lambda p: (p.name,) == top)
    for entry in entries:
        if (dest / entry.name).is_dir():
            raise DownloadError(f"{dest / entry.name} already exists; move it away and retry")
    for entry in entries:
        os.replace(entry, dest / entry.name)
    return dest / photos.relative_to(staging)


def download(url: str = DEFAULT_URL, dest: str | Path = "data/raw", sha256: str | None = None,
             retries: int = 3, timeout: float = 30.0) -> Path:
    """Download and extract the photos into `dest`; return the folder holding Cat/ and Dog/.
    Does nothing (and touches no network) when `dest` already holds them."""
    dest = Path(dest)
    found = find_photos(dest)
    if found is not None:
        print(f"{found} already holds the photos; skipping the download.")
        return found
    if (dest / "PetImages").exists():
        raise DownloadError(f"{dest / 'PetImages'} exists but has no photos in Cat/ and Dog/; "
                            "move it away and retry")
    dest.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=".download-", dir=dest))
    try:
        archive = work / ((Path(urlsplit(url).path).name or "archive") + ".part")
        got = fetch(url, archive, retries, timeout, dest)
        if sha256 and got != sha256.strip().lower():
            raise DownloadError(f"SHA-256 checksum did not match for {url}: "
                                f"expected {sha256.strip().lower()}, got {got}")
        print(f"downloaded {archive.stat().st_size:,} bytes, SHA-256 {got}; extracting")
        staging = work / "extracted"
        extract(archive, staging)
        archive.unlink()
        result = move_into_place(staging, dest)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"photos extracted to {result}")
    return result
