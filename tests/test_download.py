"""helpers.download against a local HTTP server on 127.0.0.1 serving archives built here."""

import errno
import hashlib
import io
import json
import os
import re
import socket
import subprocess
import sys
import tarfile
import threading
import time
import zipfile
from collections import defaultdict
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import SimpleNamespace

import pytest
from conftest import ROOT
from PIL import Image

from helpers import download as dl
from helpers.download import DownloadError, download
from helpers.files import shown


def jpeg(color: str) -> bytes:
    """A tiny real JPEG."""
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8), color).save(buffer, "JPEG")
    return buffer.getvalue()


PHOTOS = {"PetImages/Cat/1.jpg": jpeg("orange"), "PetImages/Dog/1.jpg": jpeg("brown")}


def make_zip(entries: dict[str, bytes], compression: int = zipfile.ZIP_STORED) -> bytes:
    """A zip holding `entries` under exactly the given names (writestr keeps `..` and `/`)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression) as bundle:
        for name, data in entries.items():
            bundle.writestr(name, data)
    return buffer.getvalue()


def make_tar_gz(entries: dict[str, bytes]) -> bytes:
    """A gzipped tar holding `entries`."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as bundle:
        for name, data in entries.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            bundle.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


ETAG = '"v1"'


class Server:
    """Routes path -> (body, mode). Modes: "ok" (a Range request gets 206, or 416 past the end),
    "no-range" (ignores Range), "truncate" (announces the full length, sends half, closes),
    "chunked-cut" (chunked encoding, closes mid-body), "no-length-cut" (no Content-Length, sends
    half, closes), "stall-headers" / "stall-body" (sends nothing / half the body, then waits for
    the client to hang up), "404". A mode ending in "-once" applies to the first request only.
    Records each request's headers, and sets `hung_up` when a stalled client went away."""

    def __init__(self) -> None:
        self.routes: dict[str, tuple[bytes, str]] = {}
        self.requests: defaultdict[str, list[Message]] = defaultdict(list)
        self.hung_up = threading.Event()
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # chunked encoding needs it

            def do_GET(self) -> None:  # noqa: N802 (http.server's name)
                server.requests[self.path].append(self.headers)
                body, mode = server.routes.get(self.path, (b"", "404"))
                if mode.endswith("-once"):
                    first = len(server.requests[self.path]) == 1
                    mode = mode.removesuffix("-once") if first else "ok"
                self.close_connection = True
                if mode == "404":
                    self.send_error(404)
                elif mode.startswith("stall"):
                    self.stall(body, send_half=mode == "stall-body")
                else:
                    self.answer(body, mode)

            def answer(self, body: bytes, mode: str) -> None:
                match = re.fullmatch(r"bytes=(\d+)-", self.headers.get("Range", ""))
                start = int(match[1]) if match and mode != "no-range" else 0
                if start and start >= len(body):
                    self.send_response(416)
                    self.send_header("Content-Range", f"bytes */{len(body)}")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                rest = body[start:]
                cut = mode in ("truncate", "chunked-cut", "no-length-cut")
                self.send_response(206 if start else 200)
                self.send_header("ETag", ETAG)
                self.send_header("Connection", "close")
                if start:
                    self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
                if mode == "chunked-cut":
                    self.send_header("Transfer-Encoding", "chunked")
                elif mode != "no-length-cut":
                    self.send_header("Content-Length", str(len(rest)))
                self.end_headers()
                sent = rest[: len(rest) // 2] if cut else rest
                if mode == "chunked-cut":
                    sent = f"{len(sent):x}\r\n".encode() + sent + b"\r\n"
                self.wfile.write(sent)

            def stall(self, body: bytes, send_half: bool) -> None:
                if send_half:
                    self.send_response(200)
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body[: len(body) // 2])
                self.connection.settimeout(20)
                try:
                    hung_up = self.connection.recv(1) == b""
                except ConnectionResetError:
                    hung_up = True
                except TimeoutError:
                    hung_up = False
                if hung_up:
                    server.hung_up.set()

            def log_message(self, *args) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base = f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def serve(self, name: str, body: bytes, mode: str = "ok") -> str:
        """Serve `body` at /name; return its URL."""
        self.routes[f"/{name}"] = (body, mode)
        return f"{self.base}/{name}"

    def ranges(self, name: str) -> list[str | None]:
        """The Range header of each request for /name so far (None: a plain request)."""
        return [headers.get("Range") for headers in self.requests[f"/{name}"]]


@pytest.fixture
def server():
    srv = Server()
    thread = threading.Thread(target=srv.httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield srv
    srv.httpd.shutdown()
    srv.httpd.server_close()


@pytest.fixture(autouse=True)
def no_backoff(monkeypatch):
    monkeypatch.setattr(dl, "BACKOFF", 0.0)


def closed_port_url() -> str:
    """An address on 127.0.0.1 where nothing listens."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/pets.zip"


def assert_empty(dest: Path) -> None:
    """Nothing extracted and no archive, partial file or temporary folder left."""
    assert not dest.exists() or sorted(p.name for p in dest.iterdir()) == []


def assert_part_kept(dest: Path, name: str = "pets.zip") -> Path:
    """Only the partial download and its record are left, for the next run to resume."""
    work = dest / ".download"
    assert sorted(p.name for p in dest.iterdir()) == [".download"]
    assert sorted(p.name for p in work.iterdir()) == [f"{name}.json", f"{name}.part"]
    return work / f"{name}.part"


def test_good_archive_then_skip(server, tmp_path, capsys):
    url = server.serve("pets.zip", make_zip(PHOTOS))
    dest = tmp_path / "raw"
    result = download(url, dest, retries=0)
    assert result == dest / "PetImages"
    assert (result / "Cat" / "1.jpg").read_bytes() == PHOTOS["PetImages/Cat/1.jpg"]
    assert (result / "Dog" / "1.jpg").read_bytes() == PHOTOS["PetImages/Dog/1.jpg"]
    assert sorted(p.name for p in dest.iterdir()) == ["PetImages"]  # archive deleted
    assert server.ranges("pets.zip") == [None]

    capsys.readouterr()
    assert download(url, dest, retries=0) == result
    assert server.ranges("pets.zip") == [None]
    assert "skipping" in capsys.readouterr().out


def test_kept_archive_is_downloaded_once_and_extracted_in_a_new_runtime(server, tmp_path,
                                                                       capsys):
    url = server.serve("pets.zip", make_zip(PHOTOS))
    drive = tmp_path / "drive" / "archive"
    first = download(url, tmp_path / "runtime1" / "raw", retries=0, keep_archive=drive)
    assert sorted(p.name for p in drive.iterdir()) == ["pets.zip"]  # complete, no part left
    capsys.readouterr()
    again = download(url, tmp_path / "runtime2" / "raw", retries=0, keep_archive=drive)
    assert server.ranges("pets.zip") == [None]  # one download for both runtimes
    assert "kept in" in capsys.readouterr().out
    assert (again / "Cat" / "1.jpg").read_bytes() == (first / "Cat" / "1.jpg").read_bytes()


def test_correct_checksum_and_extra_files(server, tmp_path):
    body = make_zip({**PHOTOS, "readme.txt": b"hello"})
    url = server.serve("pets.zip", body)
    digest = hashlib.sha256(body).hexdigest().upper()  # case does not matter
    result = download(url, tmp_path, sha256=digest, retries=0)
    assert result == tmp_path / "PetImages"
    assert (tmp_path / "readme.txt").read_bytes() == b"hello"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["PetImages", "readme.txt"]


def test_class_folders_at_the_top_of_the_archive(server, tmp_path):
    url = server.serve("pets.zip", make_zip({"Cat/1.jpg": PHOTOS["PetImages/Cat/1.jpg"],
                                             "Dog/1.jpg": PHOTOS["PetImages/Dog/1.jpg"]}))
    assert download(url, tmp_path, retries=0) == tmp_path
    assert sorted(p.name for p in tmp_path.iterdir()) == ["Cat", "Dog"]


def test_files_already_in_dest_are_kept(server, tmp_path, capsys):
    url = server.serve("pets.zip", make_zip({**PHOTOS, "readme.txt": b"from the archive"}))
    (tmp_path / "readme.txt").write_text("mine")
    download(url, tmp_path, retries=0)
    assert (tmp_path / "readme.txt").read_text() == "mine"
    assert f"kept the existing {tmp_path / 'readme.txt'}" in capsys.readouterr().out


def test_tar_gz(server, tmp_path):
    url = server.serve("pets.tar.gz", make_tar_gz(PHOTOS))
    result = download(url, tmp_path / "raw", retries=0)
    assert sorted(p.name for p in result.iterdir()) == ["Cat", "Dog"]


def test_wrong_checksum_sets_the_download_aside(server, tmp_path):
    body = make_zip(PHOTOS)
    url = server.serve("pets.zip", body)
    dest = tmp_path / "raw"
    with pytest.raises(DownloadError, match="checksum did not match") as info:
        download(url, dest, sha256="0" * 64, retries=0)
    suspect = dest / ".download" / "pets.zip.suspect"
    message = str(info.value)
    assert "0" * 64 in message and str(suspect) in message and "\n" not in message
    assert sorted(p.name for p in dest.iterdir()) == [".download"]
    assert sorted(p.name for p in suspect.parent.iterdir()) == ["pets.zip.suspect"]
    assert suspect.read_bytes() == body  # nothing extracted, nothing deleted

    download(url, dest, sha256=hashlib.sha256(body).hexdigest(), retries=0)
    assert server.ranges("pets.zip") == [None, None]  # the suspect file is not resumed
    assert suspect.read_bytes() == body


def test_wrong_checksum_leaves_the_kept_archive(server, tmp_path):
    body = make_zip(PHOTOS)
    url = server.serve("pets.zip", body)
    drive = tmp_path / "drive"
    download(url, tmp_path / "runtime1", retries=0, keep_archive=drive)
    with pytest.raises(DownloadError, match="checksum did not match") as info:
        download(url, tmp_path / "runtime2", sha256="0" * 64, retries=0, keep_archive=drive)
    kept = drive / "pets.zip"
    message = str(info.value)
    assert str(kept) in message and "delete" in message and "\n" not in message
    assert kept.read_bytes() == body
    assert server.ranges("pets.zip") == [None]


def test_refused_kept_archive_is_left_in_place(server, tmp_path):
    url = server.serve("pets.zip", make_zip(PHOTOS))
    drive = tmp_path / "drive"
    drive.mkdir()
    (drive / "pets.zip").write_bytes(b"my own notes, not an archive")
    with pytest.raises(DownloadError, match="is not a zip or tar archive") as info:
        download(url, tmp_path / "raw", retries=0, keep_archive=drive)
    assert str(drive / "pets.zip") in str(info.value) and "delete" in str(info.value)
    assert (drive / "pets.zip").read_bytes() == b"my own notes, not an archive"


def test_truncated_transfer_is_retried_then_reported(server, tmp_path):
    body = make_zip(PHOTOS)
    url = server.serve("pets.zip", body, mode="truncate")
    dest = tmp_path / "raw"
    with pytest.raises(DownloadError, match="cut short") as info:
        download(url, dest, retries=1)
    assert server.ranges("pets.zip") == [None, f"bytes={len(body) // 2}-"]
    part = assert_part_kept(dest)
    assert f"kept in {part}: run again to resume" in str(info.value)
    half = len(body) // 2
    assert part.read_bytes() == body[: half + (len(body) - half) // 2]


@pytest.mark.parametrize("mode", ["truncate-once", "chunked-cut-once", "no-length-cut-once"])
def test_cut_short_then_resumed(server, tmp_path, monkeypatch, mode):
    """Told by Content-Length, by a broken chunked encoding, or (no length) by DEFAULT_SIZE."""
    body = make_zip(PHOTOS)
    url = server.serve("pets.zip", body, mode=mode)
    if mode == "no-length-cut-once":
        monkeypatch.setattr(dl, "DEFAULT_URL", url)
        monkeypatch.setattr(dl, "DEFAULT_SIZE", len(body))
    sha256 = hashlib.sha256(body).hexdigest()
    result = download(url, tmp_path, sha256=sha256, retries=2)
    assert server.ranges("pets.zip") == [None, f"bytes={len(body) // 2}-"]
    assert (result / "Cat" / "1.jpg").is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["PetImages"]


def test_default_url_size_is_checked(server, tmp_path, monkeypatch):
    body = make_zip(PHOTOS)
    url = server.serve("pets.zip", body)
    monkeypatch.setattr(dl, "DEFAULT_URL", url)
    monkeypatch.setattr(dl, "DEFAULT_SIZE", len(body) + 1)
    with pytest.raises(DownloadError, match=f"{len(body):,} of {len(body) + 1:,} bytes"):
        download(url, tmp_path / "raw", retries=0)
    assert_part_kept(tmp_path / "raw")


def test_interrupted_download_is_resumed(server, tmp_path, capsys):
    body = make_zip(PHOTOS)
    url = server.serve("pets.zip", body, mode="truncate")
    dest = tmp_path / "raw"
    with pytest.raises(DownloadError):
        download(url, dest, retries=0)
    part = assert_part_kept(dest)
    half = len(body) // 2
    assert part.read_bytes() == body[:half]

    server.serve("pets.zip", body)
    capsys.readouterr()
    download(url, dest, sha256=hashlib.sha256(body).hexdigest(), retries=0)
    assert server.ranges("pets.zip") == [None, f"bytes={half}-"]
    assert server.requests["/pets.zip"][1]["If-Range"] == ETAG
    assert f"resuming {part} at {half:,} of {len(body):,} bytes" in capsys.readouterr().out
    assert sorted(p.name for p in dest.iterdir()) == ["PetImages"]


def test_server_without_range_support_starts_over(server, tmp_path, capsys):
    body = make_zip(PHOTOS)
    url = server.serve("pets.zip", body, mode="truncate")
    dest = tmp_path / "raw"
    with pytest.raises(DownloadError):
        download(url, dest, retries=0)
    part = assert_part_kept(dest)

    server.serve("pets.zip", body, mode="no-range")
    capsys.readouterr()
    download(url, dest, sha256=hashlib.sha256(body).hexdigest(), retries=0)
    assert server.ranges("pets.zip") == [None, f"bytes={len(body) // 2}-", None]
    assert (f"cannot resume {part} (the server did not send the rest); starting over"
            in capsys.readouterr().out)
    assert sorted(p.name for p in dest.iterdir()) == ["PetImages"]


def test_part_of_another_address_is_discarded(server, tmp_path, capsys):
    body = make_zip(PHOTOS)
    url = server.serve("pets.zip", body)
    work = tmp_path / ".download"
    work.mkdir()
    (work / "pets.zip.part").write_bytes(b"x" * 100)
    (work / "pets.zip.json").write_text(json.dumps({"url": f"{server.base}/old/pets.zip"}))
    download(url, tmp_path, sha256=hashlib.sha256(body).hexdigest(), retries=0)
    assert server.ranges("pets.zip") == [None]
    assert f"it is not a download of {url}" in capsys.readouterr().out


def test_part_longer_than_the_file_is_started_over(server, tmp_path, capsys):
    body = make_zip(PHOTOS)
    url = server.serve("pets.zip", body)
    work = tmp_path / ".download"
    work.mkdir()
    (work / "pets.zip.part").write_bytes(body + b"x" * 100)
    (work / "pets.zip.json").write_text(json.dumps({"url": url}))
    download(url, tmp_path, sha256=hashlib.sha256(body).hexdigest(), retries=0)
    assert server.ranges("pets.zip") == [f"bytes={len(body) + 100}-", None]  # 416, then all
    assert "starting over" in capsys.readouterr().out
    assert sorted(p.name for p in tmp_path.iterdir()) == ["PetImages"]


def test_whole_download_is_kept_when_the_disk_is_full(server, tmp_path, monkeypatch, capsys):
    body = make_zip(PHOTOS)
    url = server.serve("pets.zip", body)
    dest = tmp_path / "raw"
    with monkeypatch.context() as patch:
        patch.setattr(dl.shutil, "disk_usage", lambda path: SimpleNamespace(free=10))
        with pytest.raises(DownloadError, match="only 10.0B is free") as info:
            download(url, dest, retries=0)
    assert "\n" not in str(info.value)
    archive = dest / ".download" / "pets.zip"
    assert sorted(p.relative_to(dest).as_posix() for p in dest.rglob("*")) == [
        ".download", ".download/pets.zip"]
    assert archive.read_bytes() == body

    capsys.readouterr()
    download(url, dest, retries=0)
    assert server.ranges("pets.zip") == [None]  # the whole archive is taken as it is
    assert f"kept in {archive}" in capsys.readouterr().out
    assert sorted(p.name for p in dest.iterdir()) == ["PetImages"]


@pytest.mark.parametrize("mode", ["stall-headers", "stall-body"])
def test_stalled_server_fails_at_once(server, tmp_path, mode):
    url = server.serve("pets.zip", make_zip(PHOTOS), mode=mode)
    dest = tmp_path / "raw"
    with pytest.raises(DownloadError, match="no data from the server for 0.5 s") as info:
        download(url, dest, retries=3, timeout=0.5)
    assert "--timeout" in str(info.value)
    assert server.ranges("pets.zip") == [None]  # not retried
    assert server.hung_up.wait(10)
    if mode == "stall-body":
        assert "run again to resume" in str(info.value)
        assert_part_kept(dest)
    else:
        assert_empty(dest)


@pytest.mark.parametrize("pack", [make_zip, make_tar_gz])
def test_archive_bomb_is_refused(server, tmp_path, pack):
    zeros = {"PetImages/Cat/2.jpg": bytes(dl.RATIO_FLOOR + 1)}
    body = (pack({**PHOTOS, **zeros}, zipfile.ZIP_DEFLATED) if pack is make_zip
            else pack({**PHOTOS, **zeros}))
    assert len(body) < dl.RATIO_FLOOR // dl.MAX_RATIO
    url = server.serve("pets.bin", body)
    dest = tmp_path / "raw"
    with pytest.raises(DownloadError, match=r"would expand [\d,]+-fold .* archive bomb"):
        download(url, dest, retries=0)
    assert_empty(dest)


def test_archive_of_many_small_members_that_expands_too_much_is_refused(server, tmp_path):
    zeros = {f"PetImages/Cat/{i}.jpg": bytes(dl.RATIO_FLOOR // 10) for i in range(2, 32)}
    body = make_zip({**PHOTOS, **zeros}, zipfile.ZIP_DEFLATED)
    assert sum(map(len, zeros.values())) > 100 * len(body)  # each member is under the floor
    url = server.serve("pets.zip", body)
    dest = tmp_path / "raw"
    with pytest.raises(DownloadError, match=r"it would expand [\d,]+-fold .* archive bomb"):
        download(url, dest, retries=0)
    assert_empty(dest)


def test_too_big_archive_is_refused(server, tmp_path, monkeypatch):
    monkeypatch.setattr(dl, "MAX_EXTRACTED", 100)
    url = server.serve("pets.zip", make_zip(PHOTOS))
    with pytest.raises(DownloadError, match="more than the 100B limit"):
        download(url, tmp_path / "raw", retries=0)
    assert_empty(tmp_path / "raw")


def test_not_an_archive(server, tmp_path):
    url = server.serve("pets.zip", b"<!DOCTYPE html><html><body>Download page</body></html>")
    with pytest.raises(DownloadError, match="is not a zip or tar archive") as info:
        download(url, tmp_path / "raw", retries=0)
    message = str(info.value)
    assert url in message and "web page" in message and "--url" in message
    assert "\n" not in message
    assert_empty(tmp_path / "raw")


@pytest.mark.parametrize("where", ["file", "under a file"])
def test_dest_that_is_or_lies_under_a_file(server, tmp_path, where):
    url = server.serve("pets.zip", make_zip(PHOTOS))
    blocker = tmp_path / "raw"
    blocker.write_text("mine")
    dest = blocker if where == "file" else blocker / "sub" / "dir"
    with pytest.raises(DownloadError, match=f"{re.escape(str(blocker))} is a file") as info:
        download(url, dest, retries=0)
    assert "\n" not in str(info.value) and "--dest" in str(info.value)
    assert blocker.read_text() == "mine"
    assert server.ranges("pets.zip") == []


def test_read_only_dest(server, tmp_path, monkeypatch):
    url = server.serve("pets.zip", make_zip(PHOTOS))
    dest = tmp_path / "raw"
    dest.mkdir()
    dest.chmod(0o555)
    if os.access(dest, os.W_OK):  # root ignores the mode bits: refuse folders in dest instead
        mkdir = os.mkdir

        def refuse(path, *args, **kwargs):
            if Path(path).parent == dest:
                raise PermissionError(errno.EACCES, "Permission denied", str(path))
            return mkdir(path, *args, **kwargs)

        monkeypatch.setattr(os, "mkdir", refuse)
    try:
        expected = r"cannot write to .* \(Permission denied\)"
        with pytest.raises(DownloadError, match=expected) as info:
            download(url, dest, retries=0)
    finally:
        dest.chmod(0o755)
    assert "\n" not in str(info.value) and "--dest" in str(info.value)
    assert server.ranges("pets.zip") == []
    assert_empty(dest)


def test_http_404_is_not_retried(server, tmp_path):
    url = f"{server.base}/missing.zip"
    with pytest.raises(DownloadError, match="HTTP 404"):
        download(url, tmp_path / "raw", retries=3)
    assert server.ranges("missing.zip") == [None]
    assert_empty(tmp_path / "raw")


@pytest.mark.parametrize("evil", ["../evil.txt", "ABSOLUTE"])
@pytest.mark.parametrize("pack", [make_zip, make_tar_gz])
def test_path_traversal_is_refused(server, tmp_path, evil, pack):
    outside = tmp_path / "outside"
    outside.mkdir()
    if evil == "ABSOLUTE":
        evil = str(outside / "abs-evil.txt")
    body = pack({**PHOTOS, evil: b"gotcha"})
    url = server.serve("pets.bin", body)
    dest = tmp_path / "raw"
    with pytest.raises(DownloadError, match="unsafe path") as info:
        download(url, dest, retries=0)
    assert evil in str(info.value)
    assert list(tmp_path.rglob("*evil*")) == []
    assert_empty(dest)


def test_archive_without_photos(server, tmp_path):
    url = server.serve("other.zip", make_zip({"stuff/readme.txt": b"no pets"}))
    with pytest.raises(DownloadError, match="no Cat/ and Dog/"):
        download(url, tmp_path / "raw", retries=0)
    assert_empty(tmp_path / "raw")


def test_closed_port_fails_fast_with_advice(tmp_path):
    start = time.monotonic()
    with pytest.raises(DownloadError) as info:
        download(closed_port_url(), tmp_path / "raw", retries=3, timeout=5)
    assert time.monotonic() - start < 15
    message = str(info.value)
    assert "Kaggle" in message and "DATA_DIR" in message and "cats_vs_dogs" in message
    assert dl.DEFAULT_URL in message
    assert_empty(tmp_path / "raw")


@pytest.mark.parametrize("problem", ["closed port", "dest is a file"])
def test_cli_reports_error_without_traceback(tmp_path, problem):
    dest = tmp_path / "raw"
    if problem == "dest is a file":
        dest.write_text("mine")
    done = subprocess.run(
        [sys.executable, "-m", "helpers", "download", "--url", closed_port_url(),
         "--dest", str(dest)],
        cwd=ROOT, capture_output=True, text=True, timeout=60,
    )
    assert done.returncode != 0
    assert "error:" in done.stderr
    assert "Traceback" not in done.stderr
    if problem == "dest is a file":
        assert done.stderr == f"error: {dest} is a file, not a folder: choose another folder " \
                              "(--dest) or move the file away\n"
    else:
        assert_empty(dest)


def test_corrupt_archive(server, tmp_path):
    body = bytearray(make_zip(PHOTOS))
    start = body.index(b"PetImages/Cat/1.jpg") + len("PetImages/Cat/1.jpg")
    body[start + 10: start + 40] = b"\0" * 30  # damage the first photo's compressed data
    url = server.serve("pets.zip", bytes(body))
    with pytest.raises(DownloadError, match="could not extract"):
        download(url, tmp_path / "raw", retries=0)
    assert_empty(tmp_path / "raw")


def dead_pid() -> int:
    """The id of a process that has ended."""
    child = subprocess.Popen([sys.executable, "-c", ""])
    child.wait()
    return child.pid


def test_second_download_into_the_same_dest_is_refused(server, tmp_path):
    url = server.serve("pets.zip", make_zip(PHOTOS), mode="stall-body")
    dest = tmp_path / "raw"
    errors = []

    def first() -> None:
        try:
            download(url, dest, retries=0, timeout=3)
        except DownloadError as error:
            errors.append(error)

    thread = threading.Thread(target=first)
    thread.start()
    part, deadline = dest / ".download" / "pets.zip.part", time.monotonic() + 10
    while not part.exists() and time.monotonic() < deadline:
        time.sleep(0.01)
    busy = r"another download \(process \d+\) is using .*\.download"
    with pytest.raises(DownloadError, match=busy) as info:
        download(url, dest, retries=0, timeout=3)
    thread.join()
    assert "\n" not in str(info.value) and str(os.getpid()) in str(info.value)
    assert server.ranges("pets.zip") == [None]  # the second run asked for nothing
    assert "no data from the server" in str(errors[0])  # the first one was left alone
    assert_part_kept(dest)


@pytest.mark.parametrize("owner", ["alive", "dead"])
def test_lock_is_taken_over_only_from_a_dead_process(server, tmp_path, owner):
    url = server.serve("pets.zip", make_zip(PHOTOS))
    lock = tmp_path / ".download" / "lock"
    lock.parent.mkdir()
    lock.write_text(str(os.getpid() if owner == "alive" else dead_pid()))
    if owner == "alive":
        with pytest.raises(DownloadError, match=f"delete {re.escape(shown(lock))}"):
            download(url, tmp_path, retries=0)
        assert server.ranges("pets.zip") == []
        assert lock.exists()
    else:
        download(url, tmp_path, retries=0)
        assert sorted(p.name for p in tmp_path.iterdir()) == ["PetImages"]


@pytest.mark.parametrize("timeout", [float("inf"), float("nan"), 0, -1.0])
def test_timeout_must_be_a_positive_finite_number(server, tmp_path, timeout):
    url = server.serve("pets.zip", make_zip(PHOTOS))
    with pytest.raises(DownloadError, match="timeout must be a positive number") as info:
        download(url, tmp_path / "raw", retries=0, timeout=timeout)
    assert "\n" not in str(info.value)
    assert server.ranges("pets.zip") == []
    assert_empty(tmp_path / "raw")


def refuse_writes_in(monkeypatch, name: str) -> None:
    """Make creating anything in folders called `name` fail as in a read-only folder (root
    ignores the mode bits)."""
    for function in ("mkdir", "open"):
        original = getattr(os, function)

        def refuse(path, *args, original=original, **kwargs):
            if Path(path).parent.name == name:
                raise PermissionError(errno.EACCES, "Permission denied", str(path))
            return original(path, *args, **kwargs)

        monkeypatch.setattr(os, function, refuse)


@pytest.mark.parametrize("folder", [".download", "extracted"])
def test_unwritable_work_folders_give_one_line(server, tmp_path, monkeypatch, folder):
    url = server.serve("pets.zip", make_zip(PHOTOS))
    dest = tmp_path / "raw"
    refuse_writes_in(monkeypatch, folder)
    with pytest.raises(DownloadError, match=rf"cannot write to .*{folder}.* \(Permission denied\)"
                       ) as info:
        download(url, dest, retries=0)
    assert "\n" not in str(info.value)
    assert not (dest / "PetImages").exists()


@pytest.mark.parametrize("where", ["name too long", "keep_archive under a file"])
def test_impossible_paths_give_one_line(server, tmp_path, where):
    url = server.serve("pets.zip", make_zip(PHOTOS))
    blocker = tmp_path / "drive"
    blocker.write_text("mine")
    if where == "name too long":
        dest, keep, named = tmp_path / ("x" * 300) / "raw", None, "x" * 300
    else:
        dest, keep, named = tmp_path / "raw", blocker / "archive", f"{blocker} is a file"
    with pytest.raises(DownloadError, match="choose another folder") as info:
        download(url, dest, retries=0, keep_archive=keep)
    assert named in str(info.value) and "\n" not in str(info.value)
    assert blocker.read_text() == "mine"
    assert server.ranges("pets.zip") == []


@pytest.mark.parametrize("options", [
    ["--timeout", "inf"], ["--timeout", "nan"], ["--timeout", "0"], ["--timeout=-5"],
    ["--dest", "FILE/sub"], ["--dest", "x" * 300 + "/raw"],
])
def test_cli_refuses_bad_options_in_one_line(tmp_path, monkeypatch, options):
    from helpers.__main__ import main

    monkeypatch.chdir(tmp_path)
    Path("FILE").write_text("mine")
    with pytest.raises(SystemExit) as info:
        main(["download", "--url", closed_port_url(), "--dest", "raw", *options])
    message = str(info.value.code)
    assert message.startswith("error: ") and "\n" not in message
    assert Path("FILE").read_text() == "mine" and not Path("raw").exists()
