"""helpers.download against a local HTTP server on 127.0.0.1 serving archives built here."""

import hashlib
import io
import socket
import subprocess
import sys
import tarfile
import threading
import time
import zipfile
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from PIL import Image

from helpers import download as dl
from helpers.download import DownloadError, download

ROOT = Path(__file__).resolve().parents[1]


def jpeg(color: str) -> bytes:
    """A tiny real JPEG."""
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8), color).save(buffer, "JPEG")
    return buffer.getvalue()


PHOTOS = {"PetImages/Cat/1.jpg": jpeg("orange"), "PetImages/Dog/1.jpg": jpeg("brown")}


def make_zip(entries: dict[str, bytes]) -> bytes:
    """A zip holding `entries` under exactly the given names (writestr keeps `..` and `/`)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as bundle:
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


class Server:
    """Routes path -> (body, mode); mode "ok", "truncate" (announce more bytes than sent, then
    close), "truncate-once" (truncate the first request only) or "404". Counts hits per path."""

    def __init__(self) -> None:
        self.routes: dict[str, tuple[bytes, str]] = {}
        self.hits: Counter[str] = Counter()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (http.server's name)
                server.hits[self.path] += 1
                body, mode = server.routes.get(self.path, (b"", "404"))
                if mode == "truncate-once":
                    mode = "truncate" if server.hits[self.path] == 1 else "ok"
                if mode == "404":
                    self.send_error(404)
                    return
                self.send_response(200)
                extra = 1000 if mode == "truncate" else 0
                self.send_header("Content-Length", str(len(body) + extra))
                self.end_headers()
                self.wfile.write(body[: len(body) // 2] if mode == "truncate" else body)
                self.close_connection = True

            def log_message(self, *args) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base = f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def serve(self, name: str, body: bytes, mode: str = "ok") -> str:
        """Serve `body` at /name; return its URL."""
        self.routes[f"/{name}"] = (body, mode)
        return f"{self.base}/{name}"


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


def test_good_archive_then_skip(server, tmp_path, capsys):
    url = server.serve("pets.zip", make_zip(PHOTOS))
    dest = tmp_path / "raw"
    result = download(url, dest, retries=0)
    assert result == dest / "PetImages"
    assert (result / "Cat" / "1.jpg").read_bytes() == PHOTOS["PetImages/Cat/1.jpg"]
    assert (result / "Dog" / "1.jpg").read_bytes() == PHOTOS["PetImages/Dog/1.jpg"]
    assert sorted(p.name for p in dest.iterdir()) == ["PetImages"]  # archive deleted
    assert server.hits["/pets.zip"] == 1

    capsys.readouterr()
    assert download(url, dest, retries=0) == result
    assert server.hits["/pets.zip"] == 1
    assert "skipping" in capsys.readouterr().out


def test_correct_checksum_and_extra_files(server, tmp_path):
    body = make_zip({**PHOTOS, "readme.txt": b"hello"})
    url = server.serve("pets.zip", body)
    digest = hashlib.sha256(body).hexdigest().upper()  # case does not matter
    result = download(url, tmp_path, sha256=digest, retries=0)
    assert result == tmp_path / "PetImages"
    assert (tmp_path / "readme.txt").read_bytes() == b"hello"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["PetImages", "readme.txt"]


def test_tar_gz(server, tmp_path):
    url = server.serve("pets.tar.gz", make_tar_gz(PHOTOS))
    result = download(url, tmp_path / "raw", retries=0)
    assert sorted(p.name for p in result.iterdir()) == ["Cat", "Dog"]


def test_wrong_checksum(server, tmp_path):
    url = server.serve("pets.zip", make_zip(PHOTOS))
    dest = tmp_path / "raw"
    with pytest.raises(DownloadError, match="checksum did not match") as info:
        download(url, dest, sha256="0" * 64, retries=0)
    assert "0" * 64 in str(info.value)
    assert_empty(dest)


def test_truncated_transfer_is_retried_then_reported(server, tmp_path):
    url = server.serve("pets.zip", make_zip(PHOTOS), mode="truncate")
    dest = tmp_path / "raw"
    with pytest.raises(DownloadError, match="cut short"):
        download(url, dest, retries=1)
    assert server.hits["/pets.zip"] == 2
    assert_empty(dest)


def test_truncated_once_then_succeeds(server, tmp_path):
    url = server.serve("pets.zip", make_zip(PHOTOS), mode="truncate-once")
    result = download(url, tmp_path, retries=2)
    assert server.hits["/pets.zip"] == 2
    assert (result / "Cat" / "1.jpg").is_file()


def test_default_url_size_is_checked(server, tmp_path, monkeypatch):
    body = make_zip(PHOTOS)
    url = server.serve("pets.zip", body)
    monkeypatch.setattr(dl, "DEFAULT_URL", url)
    monkeypatch.setattr(dl, "DEFAULT_SIZE", len(body) + 1)
    with pytest.raises(DownloadError, match=f"{len(body):,} of {len(body) + 1:,} bytes"):
        download(url, tmp_path / "raw", retries=0)
    assert_empty(tmp_path / "raw")


def test_http_404_is_not_retried(server, tmp_path):
    url = f"{server.base}/missing.zip"
    with pytest.raises(DownloadError, match="HTTP 404"):
        download(url, tmp_path / "raw", retries=3)
    assert server.hits["/missing.zip"] == 1


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


def test_cli_reports_error_without_traceback(tmp_path):
    dest = tmp_path / "raw"
    done = subprocess.run(
        [sys.executable, "-m", "helpers", "download", "--url", closed_port_url(),
         "--dest", str(dest)],
        cwd=ROOT, capture_output=True, text=True, timeout=60,
    )
    assert done.returncode != 0
    assert "error:" in done.stderr
    assert "Traceback" not in done.stderr
    assert_empty(dest)


def test_corrupt_archive(server, tmp_path):
    body = bytearray(make_zip(PHOTOS))
    start = body.index(b"PetImages/Cat/1.jpg") + len("PetImages/Cat/1.jpg")
    body[start + 10: start + 40] = b"\0" * 30  # damage the first photo's compressed data
    url = server.serve("pets.zip", bytes(body))
    with pytest.raises(DownloadError, match="could not extract"):
        download(url, tmp_path / "raw", retries=0)
    assert_empty(tmp_path / "raw")
