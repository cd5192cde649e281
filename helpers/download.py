"""Download the PetImages photos (Cat/ and Dog/) and extract them into `data/raw`, safely; kept
over keras.utils.get_file, which lacks resume, size and archive checks, and loads TensorFlow."""

import hashlib
import json
import os
import re
import shutil
import sys
import tarfile
import time
import zipfile
import zlib
from contextlib import contextmanager, suppress
from errno import EDQUOT, EEXIST, ENOSPC, ENOTDIR
from functools import partial
from http.client import HTTPException
from pathlib import Path, PureWindowsPath
from urllib.error import HTTPError, URLError
from urllib.parse import urlsplit
from urllib.request import Request, urlopen

from tqdm import tqdm

from helpers.files import Busy, Refused, held, write_json
from helpers.photos import class_of, find_photos

DEFAULT_URL = ("https://download.microsoft.com/download/3/E/1/3E1C3F21-ECDB-4869-8368-6DEBA77B919F/"
               "kagglecatsanddogs_5340.zip")
DEFAULT_SIZE = 824_887_076  # bytes of DEFAULT_URL; other addresses are checked by Content-Length
TIMEOUT, BACKOFF = 30.0, 1.0  # seconds: the wait for each read; before a retry, doubled each time
_bytes = partial(tqdm.format_sizeof, suffix="B")  # for people, in decimal units like `df -H`
MAX_EXTRACTED, MAX_RATIO, RATIO_FLOOR = 20 * 10**9, 20, 5 * 10**6  # bytes; far beyond the photos
# JPEGs barely compress: a member, or all, growing over MAX_RATIO-fold to over RATIO_FLOOR is a bomb


class DownloadError(Refused):
    """The photos could not be downloaded or extracted; the message says why and what to do."""


class BadArchive(DownloadError):
    """The archive is unusable: this run's download of it is deleted, a kept one is named."""


@contextmanager
def _network():
    """Raise network failures inside the block as URLError; disk errors (a full disk) pass."""
    try:
        yield
    except (OSError, HTTPException, ValueError) as error:
        if isinstance(error, URLError) or getattr(error, "errno", 0) in (ENOSPC, EDQUOT):
            raise
        raise URLError(error) from error


def _explain(error: URLError, timeout: float) -> tuple[str, bool]:
    """What went wrong, and whether trying again may help (a dropped transfer, a server error)."""
    if isinstance(error, HTTPError):
        return f"HTTP {error.code} {error.reason}", error.code >= 500 or error.code == 429
    if isinstance(cause := error.reason, TimeoutError):
        return (f"no data from the server for {timeout:g} s; try again later, or allow more "
                "with --timeout SECONDS"), False
    return str(cause) or repr(cause), isinstance(cause, ConnectionResetError | HTTPException)


def _open(url: str, part: Path, record: Path, timeout: float):
    """(response, offset, total or None) for what `url` has after `part`, else start it over."""
    have, info = part.stat().st_size if part.exists() else 0, {}
    with suppress(OSError, ValueError):
        info = json.loads(record.read_text())
    why = f"it is not a download of {url}" if info.get("url") != url else ""
    if have and not why:
        headers = {"Range": f"bytes={have}-", **({"If-Range": info["validator"]}
                                                 if info.get("validator") else {})}
        try:
            with _network():
                response = urlopen(Request(url, headers=headers), timeout=timeout)
        except HTTPError as error:
            if error.code != 416:  # 416: nothing after `have`, so `part` is too long
                raise
            response = error
        size = re.fullmatch(rf"bytes {have}-\d+/(\d+)", response.headers["Content-Range"] or "")
        if response.status == 206 and size and info.get("total") in (None, int(size[1])):
            print(f"resuming {part} at {have:,} of {int(size[1]):,} bytes")
            return response, have, int(size[1])
        response.close()
        why = "the server did not send the rest"
    if have:
        print(f"cannot resume {part} ({why}); starting over")
    part.unlink(missing_ok=True)  # before its record, so that a part never lacks one
    record.unlink(missing_ok=True)
    with _network():
        response = urlopen(Request(url), timeout=timeout)
    length, etag = response.headers.get("Content-Length", ""), response.headers.get("ETag", "")
    total = DEFAULT_SIZE if url == DEFAULT_URL else int(length) if length.isdigit() else None
    validator = etag if etag and not etag.startswith("W/") else response.headers["Last-Modified"]
    write_json(record, {"url": url, "total": total, "validator": validator})
    return response, 0, total


def fetch(url: str, part: Path, record: Path, retries: int, timeout: float, dest: Path) -> None:
    """Download `url` into `part` with a progress bar, resuming it and retrying brief failures."""
    for wait in [*(BACKOFF * 2**n for n in range(retries)), None]:  # None: the last try
        try:
            response, offset, total = _open(url, part, record, timeout)
            with response, part.open("ab") as file, _network(), tqdm.wrapattr(
                    file, "write", total, initial=offset, mininterval=1, desc=part.stem) as out:
                while chunk := response.read1(1 << 20):  # what has come, not a full 1 MiB
                    out.write(chunk)
            if total is not None and (received := part.stat().st_size) > total:
                raise BadArchive(f"{url} sent {received:,} bytes, more than the {total:,} expected "
                                 "(has the file changed?); check --url")
            if total is not None and received < total:
                raise URLError(ConnectionResetError(f"transfer cut short: received {received:,} "
                                                    f"of {total:,} bytes"))
            return
        except URLError as error:
            reason, transient = _explain(error, timeout)
            if wait is None or not transient:
                kept = part.stat().st_size if part.exists() else 0
                resume = f"{kept:,} bytes are kept in {part}: run again to resume.\n"
                pets = Path(dest) / "PetImages"
                raise DownloadError(
                    f"could not download {url}: {reason}\n{resume if kept else ''}To get the "
                    f"photos by hand, download {DEFAULT_URL}, TensorFlow Datasets' cats_vs_dogs "
                    "(the same zip) or Kaggle's \"dogs-vs-cats\" (https://www.kaggle.com/c/"
                    "dogs-vs-cats; move its train/cat.*.jpg into Cat/, dog.*.jpg into Dog/), so "
                    f"that {pets / 'Cat'} and {pets / 'Dog'} exist, or point DATA_DIR at an "
                    "existing copy of the PetImages folder.") from error
            print(f"download failed ({reason}); retrying in {wait:g} s", file=sys.stderr)
            time.sleep(wait)


def extract(archive: Path, target: Path, url: str) -> None:
    """Extract a zip or tar archive into `target`, first refusing it whole if unsafe or a bomb."""
    try:
        if zipfile.is_zipfile(archive):
            bundle, options = zipfile.ZipFile(archive), {}
        elif tarfile.is_tarfile(archive):
            bundle, options = tarfile.open(archive), {"filter": "data"}
        else:
            with archive.open("rb") as file:
                page = file.read(512).lstrip().lower().startswith((b"<!doctype html", b"<html"))
            hint = " (it is a web page: the address may lead to a download page)" if page else ""
            raise BadArchive(f"{url} is not a zip or tar archive{hint}; check --url, or get the "
                             "photos by hand (README, \"Getting the photos\")")
        with bundle:
            members = ([(m.filename, m.file_size, m.compress_size, True) for m in bundle.infolist()]
                       if not options else  # a tar: its members are not packed one by one
                       [(m.name, m.size, m.size, m.isfile() or m.isdir()) for m in bundle])
            total = sum(member[1] for member in members)
            for name, size, packed, plain in [*members, ("", total, archive.stat().st_size, True)]:
                path = PureWindowsPath(name)  # so that both / and \ separate
                if path.drive or path.root or ".." in path.parts or not plain:
                    raise BadArchive(f"refusing the archive: member {name!r} has an unsafe path "
                                     "or is a link; check --url")
                if size > RATIO_FLOOR and size > MAX_RATIO * packed:
                    raise BadArchive(f"refusing the archive: {f'member {name!r}' if name else 'it'}"
                                     f" would expand {size / max(packed, 1):,.0f}-fold to "
                                     f"{_bytes(size)} (an archive bomb?); check --url")
            if total > MAX_EXTRACTED:
                raise BadArchive(f"refusing the archive: it would expand to {_bytes(total)}, more "
                                 f"than the {_bytes(MAX_EXTRACTED)} limit; check --url")
            if total > (free := shutil.disk_usage(target.parent).free):
                raise DownloadError(f"the archive expands to {_bytes(total)}, but only "
                                    f"{_bytes(free)} is free in {target.parent}: free some space "
                                    "(the download is kept) or choose another folder (--dest)")
            bundle.extractall(target, **options)
    except (zipfile.BadZipFile, tarfile.TarError, EOFError, zlib.error, OSError) as error:
        if isinstance(error, OSError) and error.errno is not None:
            raise
        raise BadArchive(f"could not extract the archive from {url}: {error}; run again to "
                         "download it anew, or check --url") from error


def download(url: str = DEFAULT_URL, dest: str | Path = "data/raw", sha256: str | None = None,
             retries: int = 3, timeout: float = TIMEOUT, keep_archive: Path | None = None) -> Path:
    """Download and extract the photos into `dest` unless there; return the folder of Cat/, Dog/.
    `keep_archive`: a folder (e.g. on Drive) where the archive is kept for later runtimes."""
    if not (isinstance(timeout, int | float) and 0 < timeout < float("inf")):
        raise DownloadError(f"--timeout must be a positive number of seconds, not {timeout}")
    dest = Path(dest)
    try:
        if (found := find_photos(dest)) is None:
            work = dest / ".download"  # this module's own folder
            work.mkdir(parents=True, exist_ok=True)
            try:
                with held(work / "lock", "download"):
                    return find_photos(dest) or _download(url, dest, work, sha256, retries,
                                                          timeout, keep_archive)
            finally:
                with suppress(OSError):
                    work.rmdir()  # when empty
    except Busy as error:
        raise DownloadError(str(error)) from None
    except OSError as error:  # one line, with what to do
        where = Path(error.filename or dest)
        if error.errno in (ENOTDIR, EEXIST):  # a file where a folder should be
            blocker = next(p for p in (where, *where.parents) if p.exists())
            problem = (f"{blocker} is a file, not a folder: choose another folder (--dest) or "
                       "move the file away")
        elif error.errno == ENOSPC:
            problem = (f"no space left in {dest}: free some space and run again (a partial "
                       "download resumes), or choose another folder (--dest)")
        else:
            problem = (f"cannot write to {where} ({error.strerror or error}): choose another "
                       "folder (--dest)")
        raise DownloadError(problem) from error
    print(f"{found} already holds the photos; skipping the download.")
    return found


def _download(url: str, dest: Path, work: Path, sha256: str | None, retries: int,
              timeout: float, keep_archive: Path | None) -> Path:
    """download() under the lock: fetch the archive (or take one kept), verify it, extract it."""
    if (dest / "PetImages").exists():
        raise DownloadError(f"{dest / 'PetImages'} exists but has no photos in Cat/ and Dog/; "
                            "move it away and run again")
    name, store = Path(urlsplit(url).path).name or "archive", Path(keep_archive or work)
    store.mkdir(parents=True, exist_ok=True)
    archive, part, record = store / name, store / f"{name}.part", store / f"{name}.json"
    staging = work / "extracted"
    ours = not (keep_archive and archive.exists())  # a kept archive is the user's: left alone
    try:
        if archive.exists():
            print(f"extracting the archive kept in {archive} (downloaded by an earlier run)")
        else:
            fetch(url, part, record, retries, timeout, dest)
            part.replace(archive)  # whole: a later run takes it as it is
            record.unlink(missing_ok=True)
        with archive.open("rb") as file:
            got = hashlib.file_digest(file, "sha256").hexdigest() if sha256 else None
        if sha256 and got != sha256.strip().lower():
            then = "check --sha256 and --url, or delete it and run again to download it anew"
            if ours:  # set aside, so that no later run extracts it
                archive, then = archive.replace(f"{archive}.suspect"), "check --sha256 and --url"
            raise DownloadError(f"SHA-256 checksum did not match for {url}: expected "
                                f"{sha256.strip().lower()}, got {got}; {archive} is left aside, "
                                f"unused: {then}")
        shutil.rmtree(staging, ignore_errors=True)  # left by a killed run
        extract(archive, staging, url)
        if (photos := find_photos(staging)) is None:
            raise BadArchive("the archive holds no Cat/ and Dog/ folders with files; check --url")
        inside = photos.relative_to(staging)  # the top entries are renamed into `dest`
        needed = set(inside.parts[:1]) or {p.name for p in staging.iterdir() if class_of(p.name)}
        if clash := sorted(str(dest / top) for top in needed if (dest / top).exists()):
            raise DownloadError(f"{', '.join(clash)} already exists; move it away and run again")
        for top in sorted(os.listdir(staging), key=lambda n: n in needed):  # photos last
            if top not in needed and (dest / top).exists():
                print(f"kept the existing {dest / top} (the archive's copy is not extracted)")
            else:
                os.replace(staging / top, dest / top)
    except BadArchive as error:
        if not ours:
            raise BadArchive(f"{error} ({archive} is left as it is: delete it and run again to "
                             "download it anew)") from error
        for leftover in (part, record, archive):
            leftover.unlink(missing_ok=True)
        raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    if not keep_archive:
        archive.unlink()
    print(f"photos extracted to {dest / inside}")
    return dest / inside
