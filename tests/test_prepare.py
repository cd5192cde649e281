"""helpers.prepare: cleaning the PetImages photos and the seeded, stratified split."""

import csv
import hashlib
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter, defaultdict
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
from conftest import (
    CLASSES,
    EXTRA_KINDS,
    REENCODED_KINDS,
    REJECTED_KINDS,
    ROOT,
    describe_petimages,
    duplicate_pair,
    linked_paths,
    make_petimages,
    reencoded_paths,
    rejected_paths,
)
from PIL import Image

import helpers.prepare as prepare_module
from helpers.files import Busy
from helpers.prepare import prepare

SPLITS = ("train", "val", "test")


def read_csv(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        return list(reader.fieldnames or []), list(reader)


def output_file(dest: Path, row: dict[str, str]) -> Path:
    """Where a manifest row's photo lies."""
    return dest / row["output"]


def source_files(source: Path) -> set[str]:
    return {p.relative_to(source).as_posix() for p in source.rglob("*") if p.is_file()}


def output_files(dest: Path) -> list[Path]:
    return [p for split in SPLITS for p in (dest / split).rglob("*") if p.is_file()]


def listing(folder: Path) -> dict[str, tuple[int, int, int]]:
    """Every file below `folder` -> (size, mtime_ns, inode)."""
    result = {}
    for p in folder.rglob("*"):
        if p.is_file():
            st = p.stat()
            result[p.relative_to(folder).as_posix()] = (st.st_size, st.st_mtime_ns, st.st_ino)
    return result


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def prepared(petimages, tmp_path):
    """The fixture photos prepared with the defaults: (source, dest, summary)."""
    dest = tmp_path / "processed"
    summary = prepare(petimages, dest, workers=2)
    return petimages, dest, summary


# --- cleaning ---------------------------------------------------------------------------------


def test_every_bad_kind_is_rejected_with_a_reason(prepared):
    source, dest, summary = prepared
    header, rows = read_csv(dest / "rejected.csv")
    assert header == ["path", "reason"]
    assert {r["path"] for r in rows} == rejected_paths(20)
    assert len(rows) == len(rejected_paths(20))  # each listed once
    assert all(r["reason"].strip() for r in rows), rows
    assert {"Cat/Thumbs.db", "Dog/Thumbs.db"} <= {r["path"] for r in rows}
    # the kinds are each in the list (both classes), with their own reasons
    files = describe_petimages(20)
    assert {files[r["path"]] for r in rows} == {*REJECTED_KINDS, "thumbs"}
    reasons = {files[r["path"]]: r["reason"] for r in rows}
    assert reasons["empty"] != reasons["truncated"]
    assert summary["rejected"] == len(rows)


def test_nothing_is_silently_dropped(prepared):
    source, dest, summary = prepared
    _, kept = read_csv(dest / "manifest.csv")
    _, rejected = read_csv(dest / "rejected.csv")
    listed = [r["path"] for r in kept] + [r["path"] for r in rejected]
    assert len(listed) == len(set(listed)), "a file is listed twice"
    assert set(listed) == source_files(source)
    assert len(kept) + len(rejected) == len(source_files(source))
    assert summary["kept"] == len(kept)
    assert len(output_files(dest)) == len(kept)


def test_decodable_non_rgb_jpegs_are_kept_and_reencoded(prepared):
    source, dest, summary = prepared
    _, rows = read_csv(dest / "manifest.csv")
    by_path = {r["path"]: r for r in rows}
    files = describe_petimages(20)
    expected = reencoded_paths(20)
    assert expected <= set(by_path), "a decodable PNG/GIF/BMP/gray/CMYK file was dropped"
    assert {files[p] for p in expected} == set(REENCODED_KINDS)
    for rel in expected:
        with Image.open(source / rel) as original:
            assert (original.format, original.mode) != ("JPEG", "RGB")  # the fixture is honest
        out = output_file(dest, by_path[rel])
        with Image.open(out) as image:
            assert (image.format, image.mode) == ("JPEG", "RGB"), rel
            image.load()
        assert os.stat(out).st_ino != os.stat(source / rel).st_ino
    assert summary["reencoded"] == len(expected)


def test_clean_rgb_jpegs_are_hard_links(prepared):
    source, dest, _ = prepared
    _, rows = read_csv(dest / "manifest.csv")
    by_path = {r["path"]: r for r in rows}
    linked = linked_paths(20)
    assert linked <= set(by_path)
    for rel in linked:
        assert os.stat(output_file(dest, by_path[rel])).st_ino == os.stat(source / rel).st_ino, rel


# --- manifest and split -----------------------------------------------------------------------


def test_manifest_lists_every_kept_photo_where_it_lies(prepared):
    source, dest, summary = prepared
    header, rows = read_csv(dest / "manifest.csv")
    assert header == ["path", "label", "split", "output", "bytes"]
    expected_kept = set(describe_petimages(20)) - rejected_paths(20)
    assert sorted(r["path"] for r in rows) == sorted(expected_kept)
    counts = defaultdict(Counter)
    for row in rows:
        assert row["label"] == CLASSES[row["path"].split("/")[0]], row
        assert row["split"] in SPLITS, row
        # flat source layout <Class>/<id>.<ext>: the output keeps the id
        assert row["output"] == f"{row['split']}/{row['label']}/{Path(row['path']).stem}.jpg"
        out = output_file(dest, row)
        assert out.is_file(), out
        assert out.stat().st_size == int(row["bytes"])
        counts[row["split"]][row["label"]] += 1
    for split in SPLITS:
        for label in ("cat", "dog"):
            folder = dest / split / label
            assert len(list(folder.iterdir())) == counts[split][label], folder
            assert summary["counts"][split][label] == counts[split][label]
    assert sorted(p.name for p in dest.iterdir()) == sorted(
        ["manifest.csv", "rejected.csv", "prepare.json", *SPLITS])


def split_counts(dest: Path) -> dict[str, Counter]:
    _, rows = read_csv(dest / "manifest.csv")
    counts: dict[str, Counter] = defaultdict(Counter)
    for row in rows:
        counts[row["label"]][row["split"]] += 1
    return counts


@pytest.mark.parametrize(("per_class", "val", "test"), [(20, 0.1, 0.1), (100, 0.1, 0.1),
                                                         (100, 0.2, 0.15)])
def test_split_is_stratified(tmp_path, per_class, val, test):
    source = make_petimages(tmp_path, per_class=per_class, size=32)
    dest = tmp_path / "out"
    if (val, test) == (0.1, 0.1):
        prepare(source, dest, workers=2)  # the defaults are 80/10/10
    else:
        prepare(source, dest, val_fraction=val, test_fraction=test, workers=2)
    # the largest group of byte-identical files in the source: a group may overshoot a quota
    largest = max(Counter(digest(p) for p in source.rglob("*.jpg")).values())
    slack = 0.5 + (largest - 1)  # rounding the quota, plus a group that overshoots it
    counts_by_label = split_counts(dest)
    assert set(counts_by_label) == {"cat", "dog"}
    for label, counts in counts_by_label.items():
        total = sum(counts.values())
        for split, fraction in (("val", val), ("test", test)):
            assert abs(counts[split] - total * fraction) <= slack, (label, dict(counts))
        assert abs(counts["train"] - total * (1 - val - test)) <= 2 * slack, (label, dict(counts))


def test_same_seed_same_split_other_seed_other_split(petimages, tmp_path):
    prepare(petimages, tmp_path / "a", seed=7, workers=2)
    prepare(petimages, tmp_path / "b", seed=7, workers=2)
    prepare(petimages, tmp_path / "c", seed=8, workers=2)
    manifest = {name: (tmp_path / name / "manifest.csv").read_text() for name in "abc"}
    assert manifest["a"] == manifest["b"]
    assert manifest["a"] != manifest["c"]
    assert listing(tmp_path / "a" / "val").keys() == listing(tmp_path / "b" / "val").keys()
    # the same photos, only assigned differently
    _, rows_a = read_csv(tmp_path / "a" / "manifest.csv")
    _, rows_c = read_csv(tmp_path / "c" / "manifest.csv")
    assert sorted(r["path"] for r in rows_a) == sorted(r["path"] for r in rows_c)


def test_byte_identical_files_never_straddle_splits(tmp_path):
    source = make_petimages(tmp_path, per_class=30, size=24)
    for folder in CLASSES:  # many duplicates, so a split that ignored them would straddle
        for i in range(0, 30, 2):
            shutil.copyfile(source / folder / f"{i}.jpg", source / folder / f"{100 + i}.jpg")
    dest = tmp_path / "out"
    prepare(source, dest, seed=1, workers=2)
    _, rows = read_csv(dest / "manifest.csv")
    splits_of = defaultdict(set)
    for row in rows:
        splits_of[digest(source / row["path"])].add(row["split"])
    assert len(splits_of) <= len(rows) - 30  # 30 duplicate pairs, all kept
    straddling = {d: s for d, s in splits_of.items() if len(s) > 1}
    assert not straddling
    # the fixture's own duplicate pair
    first, second = duplicate_pair(30)
    split = {r["path"]: r["split"] for r in rows}
    assert split[first] == split[second]


# --- re-runs ----------------------------------------------------------------------------------


def test_rerun_on_finished_dest_reuses_it_after_checking(prepared, capsys, monkeypatch):
    source, dest, summary = prepared
    before = listing(dest)
    capsys.readouterr()

    def no_decoding(*args, **kwargs):
        raise AssertionError("a re-run on a finished DEST decoded the photos again")

    monkeypatch.setattr(prepare_module, "ProcessPoolExecutor", no_decoding)
    monkeypatch.setattr(prepare_module, "check_file", no_decoding)
    again = prepare(source, dest, workers=2)
    n = {split: sum(summary["counts"][split].values()) for split in SPLITS}
    assert capsys.readouterr().out == (
        f"Using the prepared split in {dest}: {n['train']} train, {n['val']} val, {n['test']} "
        "test photos (checked against manifest.csv).\n")
    assert again == summary
    assert listing(dest) == before  # same files, sizes, mtimes (manifest included), inodes


def test_reuse_false_checks_every_file_again_and_verbose_false_is_silent(tmp_path, capsys,
                                                                        monkeypatch):
    source = make_petimages(tmp_path / "photos", per_class=6, size=24)
    dest = tmp_path / "out"
    first = prepare(source, dest, workers=1)
    assert first["rejected"] > 0
    prepare(source, dest, workers=1, verbose=False)
    assert capsys.readouterr().out.splitlines()[-1].startswith("Prepared ")  # the first call's
    checked = []
    real_check = prepare_module.check_file
    monkeypatch.setattr(prepare_module, "check_file",
                        lambda *args, **kwargs: checked.append(args) or real_check(*args, **kwargs))
    again = prepare(source, dest, workers=1, reuse=False)
    assert len(checked) == first["kept"] + first["rejected"]  # every file decoded again
    assert again == first
    assert capsys.readouterr().out.startswith(f"Prepared {dest}: ")
    assert (dest / "rejected.csv").read_text().count("\n") == first["rejected"] + 1


def test_rerun_with_other_inputs_redoes_the_split(prepared, capsys):
    source, dest, summary = prepared
    manifest = (dest / "manifest.csv").read_text()
    capsys.readouterr()
    prepare(source, dest, seed=1234, workers=2)
    out = capsys.readouterr().out
    assert f"{dest} was made from other photos or settings; making it again." in out
    assert "Using the prepared split" not in out
    assert (dest / "manifest.csv").read_text() != manifest
    _, rows = read_csv(dest / "manifest.csv")
    assert len(output_files(dest)) == len(rows)  # no leftovers from the first split

    shutil.copyfile(source / "Dog/0.jpg", source / "Dog/999.jpg")  # a new photo
    prepare(source, dest, seed=1234, workers=2)
    assert "Using the prepared split" not in capsys.readouterr().out
    _, rows = read_csv(dest / "manifest.csv")
    assert "Dog/999.jpg" in {r["path"] for r in rows}


# --- arguments --------------------------------------------------------------------------------


def test_source_without_class_folders_is_a_helpful_error(tmp_path):
    (tmp_path / "src" / "Cat").mkdir(parents=True)  # no Dog/
    with pytest.raises(FileNotFoundError, match=r"Cat/ and Dog/") as error:
        prepare(tmp_path / "src", tmp_path / "out")
    assert str(tmp_path / "src") in str(error.value)
    assert "download" in str(error.value)
    assert not (tmp_path / "out").exists()


def test_empty_class_folders_are_an_error(tmp_path):
    for folder in CLASSES:
        (tmp_path / "src" / folder).mkdir(parents=True)
    with pytest.raises(FileNotFoundError, match="no files"):
        prepare(tmp_path / "src", tmp_path / "out")


@pytest.mark.parametrize(("val", "test"), [(0.5, 0.5), (0.7, 0.4), (1.0, 0.0), (-0.1, 0.1)])
def test_bad_fractions_are_a_value_error(petimages, tmp_path, val, test):
    with pytest.raises(ValueError, match="fractions"):
        prepare(petimages, tmp_path / "out", val_fraction=val, test_fraction=test)
    assert not (tmp_path / "out").exists()


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "helpers", "prepare", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)


def test_cli_missing_source_exits_with_an_error_not_a_traceback(tmp_path):
    result = run_cli("--source", str(tmp_path / "missing"), "--dest", str(tmp_path / "out"))
    assert result.returncode != 0
    assert "error:" in result.stderr
    assert "Cat/ and Dog/" in result.stderr
    assert "Traceback" not in result.stderr


def test_cli_bad_fractions_exit_with_an_error(petimages, tmp_path):
    result = run_cli("--source", str(petimages), "--dest", str(tmp_path / "out"),
                     "--val-fraction", "0.6", "--test-fraction", "0.6")
    assert result.returncode != 0
    assert "error:" in result.stderr and "Traceback" not in result.stderr


def test_cli_prepares_a_split(petimages, tmp_path):
    dest = tmp_path / "out"
    result = run_cli("--source", str(tmp_path), "--dest", str(dest), "--seed", "3",
                     "--per-class-limit", "8")  # --source may be the folder above PetImages
    assert result.returncode == 0, result.stderr
    _, kept = read_csv(dest / "manifest.csv")
    _, rejected = read_csv(dest / "rejected.csv")
    assert len(kept) + len(rejected) == 16
    assert len(output_files(dest)) == len(kept)


# --- limits and layouts -----------------------------------------------------------------------


def test_per_class_limit_takes_the_first_files_of_each_class(petimages, tmp_path):
    dest = tmp_path / "out"
    prepare(petimages, dest, per_class_limit=5, workers=2)
    _, kept = read_csv(dest / "manifest.csv")
    _, rejected = read_csv(dest / "rejected.csv")
    per_class = Counter(r["path"].split("/")[0] for r in kept + rejected)
    assert per_class == {"Cat": 5, "Dog": 5}
    for folder in CLASSES:
        first = sorted(p.name for p in (petimages / folder).iterdir())[:5]
        assert sorted(r["path"] for r in kept + rejected if r["path"].startswith(folder)) == [
            f"{folder}/{name}" for name in first]
    assert len(output_files(dest)) == len(kept)


def test_realistic_layout_with_lower_and_upper_case_class_folders(tmp_path):
    """The zip extracts to <dir>/PetImages/ beside a licence and a readme; the class folders
    may come in any case. DATA_DIR may point at the folder above PetImages."""
    raw = tmp_path / "raw"
    pets = make_petimages(raw / "kagglecatsanddogs_5340", per_class=150, size=32, seed=5)
    (pets.parent / "CDLA-Permissive-2.0.pdf").write_bytes(b"%PDF-1.4 licence")
    (pets.parent / "readme[1].txt").write_text("Microsoft PetImages\n")
    (pets / "Cat").rename(pets / "cat")
    (pets / "Dog").rename(pets / "DOG")
    dest = tmp_path / "out"
    summary = prepare(raw, dest, workers=2)
    _, kept = read_csv(dest / "manifest.csv")
    _, rejected = read_csv(dest / "rejected.csv")
    assert len(kept) + len(rejected) == len(source_files(pets))
    assert {r["path"] for r in rejected} == {
        p.replace("Cat/", "cat/").replace("Dog/", "DOG/") for p in rejected_paths(150)}
    assert Counter(r["label"] for r in kept) == {"cat": 150 + len(EXTRA_KINDS) - 3 + 1,
                                                "dog": 150 + len(EXTRA_KINDS) - 3}
    for row in kept:
        assert row["label"] == {"cat": "cat", "DOG": "dog"}[row["path"].split("/")[0]]
        assert output_file(dest, row).is_file()
    assert summary["kept"] == len(kept) == len(output_files(dest))
    assert sorted(p.name for p in (dest / "train").iterdir()) == ["cat", "dog"]


def test_cat_and_cat_folders_side_by_side_lose_no_photo(tmp_path):
    """"Cat" and "cat" both present (a case-sensitive file system): same file names in both, so
    the outputs must not overwrite each other."""
    pets = make_petimages(tmp_path / "a", per_class=40, size=24, bad_files=False, seed=1)
    other = make_petimages(tmp_path / "b", per_class=40, size=24, bad_files=False, seed=2)
    shutil.move(other / "Cat", pets / "cat")
    dest = tmp_path / "out"
    summary = prepare(pets, dest, workers=2)
    _, kept = read_csv(dest / "manifest.csv")
    assert Counter(r["label"] for r in kept) == {"cat": 80, "dog": 40}
    assert summary["kept"] == 120
    outputs = output_files(dest)
    assert len(outputs) == 120, "photos with the same name overwrote each other"
    assert len({digest(p) for p in outputs}) == 120


def test_same_name_with_other_extension_loses_no_photo(tmp_path):
    """Cat/3.png next to Cat/3.jpg: both become <split>/cat/3.jpg-ish, and both must survive."""
    pets = make_petimages(tmp_path, per_class=30, size=24, bad_files=False)
    for i in range(30):
        with Image.open(pets / "Cat" / f"{(i + 1) % 30}.jpg") as image:
            image.save(pets / "Cat" / f"{i}.png")
    dest = tmp_path / "out"
    prepare(pets, dest, workers=2)
    _, kept = read_csv(dest / "manifest.csv")
    assert len(kept) == 90
    outputs = output_files(dest)
    assert len(outputs) == 90, "photos with the same stem overwrote each other"
    for path in outputs:
        with Image.open(path) as image:
            assert (image.format, image.mode) == ("JPEG", "RGB")


# --- losing nothing ---------------------------------------------------------------------------


def small_petimages(tmp_path: Path) -> Path:
    """A quick source: 6 good photos per class plus the problem files."""
    return make_petimages(tmp_path, per_class=6, size=24)


def beside(dest: Path) -> list[str]:
    """The names in DEST's parent other than DEST and the source (scratch folders, lock)."""
    return sorted(p.name for p in dest.parent.iterdir() if p.name not in (dest.name, "PetImages"))


def test_foreign_files_in_dest_are_refused_and_left_alone(tmp_path, capsys):
    source = small_petimages(tmp_path)
    dest = tmp_path / "D"
    (dest / "train" / "train").mkdir(parents=True)  # Kaggle's own train/ folder
    (dest / "train" / "train" / "cat.1.jpg").write_bytes((source / "Cat/0.jpg").read_bytes())
    (dest / "train" / "model_v1.h5").write_bytes(b"weights")
    before = listing(dest)
    with pytest.raises(FileExistsError, match="did not write") as error:
        prepare(source, dest, workers=1)
    message = str(error.value)
    assert isinstance(error.value, ValueError)  # the CLI reports it as `error: ...`
    assert "\n" not in message and message.startswith(f"{dest} holds files")
    assert str(dest / "train") in message
    assert listing(dest) == before
    assert beside(dest) == []  # no lock, no half-built split left

    result = run_cli("--source", str(source), "--dest", str(dest))
    assert result.returncode != 0
    assert result.stderr.startswith(f"error: {dest} holds files that prepare did not write")
    assert "Traceback" not in result.stderr
    assert listing(dest) == before

    (dest / "file").write_text("not a folder")
    with pytest.raises(FileExistsError, match="is a file"):
        prepare(source, dest / "file", workers=1)


def test_a_file_added_to_a_prepared_dest_is_not_deleted(tmp_path):
    source = small_petimages(tmp_path)
    dest = tmp_path / "out"
    prepare(source, dest, workers=1)
    mine = dest / "train" / "cat" / "my_own_cat.jpg"
    mine.write_bytes((source / "Cat/1.jpg").read_bytes())
    with pytest.raises(FileExistsError, match=r"did not write \(e\.g\. .*my_own_cat\.jpg\)"):
        prepare(source, dest, seed=5, workers=1)  # other inputs: DEST would be replaced
    assert mine.is_file()
    prepare(source, dest, workers=1)  # same inputs: reused, nothing deleted
    assert mine.is_file()


def test_an_empty_dest_folder_is_used(tmp_path):
    source = small_petimages(tmp_path)
    (tmp_path / "out" / "train").mkdir(parents=True)
    summary = prepare(source, tmp_path / "out", workers=1)
    assert len(output_files(tmp_path / "out")) == summary["kept"]


def test_a_killed_build_leaves_the_previous_split_intact(tmp_path, monkeypatch):
    source = small_petimages(tmp_path)
    dest = tmp_path / "out"
    prepare(source, dest, workers=1)
    before = listing(dest)
    placed = []
    link = os.link

    def killed_midway(source, target, *args, **kwargs):
        if len(placed) == 5:
            raise KeyboardInterrupt
        placed.append(target)
        link(source, target, *args, **kwargs)

    monkeypatch.setattr(os, "link", killed_midway)
    with pytest.raises(KeyboardInterrupt):
        prepare(source, dest, seed=3, workers=1)
    assert placed and all(not str(p).startswith(str(dest)) for p in placed)  # built beside
    assert listing(dest) == before  # the complete split is still there, untouched
    assert beside(dest) == []

    placed.clear()  # no split yet: a killed first build leaves no DEST at all
    with pytest.raises(KeyboardInterrupt):
        prepare(source, tmp_path / "new", workers=1)
    assert not (tmp_path / "new").exists()

    # a run killed for good (no clean-up) leaves its scratch folder: the next run removes it
    leftover = tmp_path / ".new.building-dead1234" / "train" / "cat"
    leftover.mkdir(parents=True)
    (leftover / "0.jpg").write_bytes(b"half")
    monkeypatch.undo()
    prepare(source, tmp_path / "new", workers=1)
    assert beside(tmp_path / "new") == ["out"]


def test_a_second_concurrent_prepare_is_refused(tmp_path, monkeypatch):
    source = small_petimages(tmp_path)
    dest = tmp_path / "out"
    lock = tmp_path / ".out.lock"
    refused = []
    check_file = prepare_module.check_file

    def second_run_meanwhile(*args):
        if not refused:
            with pytest.raises(FileExistsError) as error:
                prepare(source, dest, workers=1)
            refused.append(str(error.value))
        return check_file(*args)

    monkeypatch.setattr(prepare_module, "check_file", second_run_meanwhile)
    prepare(source, dest, workers=1)  # the first run goes on and finishes
    assert refused == [f"Another prepare (process {os.getpid()}) is writing {dest}; wait for it "
                       f"to finish, or delete {lock} if none is running."]
    assert not lock.exists()
    assert len(output_files(dest)) == len(read_csv(dest / "manifest.csv")[1])


def test_a_lock_let_go_while_refusing_still_names_its_holder(tmp_path, monkeypatch):
    source, dest = small_petimages(tmp_path), tmp_path / "out"

    @contextmanager
    def gone_by_now(lock, what):  # the other prepare finished after it refused this one
        raise Busy("another prepare (process 4321) is using it", 4321)
        yield

    monkeypatch.setattr(prepare_module, "held", gone_by_now)
    with pytest.raises(FileExistsError, match=r"Another prepare \(process 4321\) is writing"):
        prepare(source, dest, workers=1)
    assert not dest.exists()


def test_a_lock_is_respected_while_its_process_lives_and_taken_over_after(tmp_path):
    source = small_petimages(tmp_path)
    dest = tmp_path / "out"
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        (tmp_path / ".out.lock").write_text(f"{other.pid}\n")
        with pytest.raises(FileExistsError, match=f"Another prepare \\(process {other.pid}\\)"):
            prepare(source, dest, workers=1)
        assert not dest.exists()
    finally:
        other.kill()
        other.wait()
    prepare(source, dest, workers=1)  # the lock of a process that is gone is taken over
    assert (dest / "prepare.json").is_file()
    assert not (tmp_path / ".out.lock").exists()


def test_a_damaged_dest_is_rebuilt_and_says_so(tmp_path, capsys):
    source = small_petimages(tmp_path)
    dest = tmp_path / "out"
    summary = prepare(source, dest, workers=1)
    outputs = sorted(output_files(dest))
    for path in outputs[::2]:
        path.unlink()
    outputs[1].unlink()  # replaced by a file of another size (not written through: a hard link)
    outputs[1].write_bytes(b"changed")
    capsys.readouterr()
    assert prepare(source, dest, workers=1) == summary
    first_line = capsys.readouterr().out.splitlines()[0]
    assert re.fullmatch(
        rf"{re.escape(str(dest))} does not match its manifest\.csv \({len(outputs[::2]) + 1} of "
        rf"{len(outputs)} photos missing or changed, e\.g\. (train|val|test)/(cat|dog)/\d+\.jpg\); "
        r"rebuilding it\.", first_line), first_line
    assert len(output_files(dest)) == summary["kept"]
    for row in read_csv(dest / "manifest.csv")[1]:
        assert output_file(dest, row).stat().st_size == int(row["bytes"])
    prepare(source, dest, workers=1)
    assert capsys.readouterr().out.startswith("Using the prepared split")

    (dest / "manifest.csv").unlink()
    prepare(source, dest, workers=1)
    assert "(manifest.csv is missing); rebuilding it." in capsys.readouterr().out
    assert (dest / "manifest.csv").is_file()


def test_a_dest_from_an_older_prepare_is_rebuilt_not_refused(tmp_path, capsys):
    """An older prepare wrote manifest.csv without the output and bytes columns."""
    source = small_petimages(tmp_path)
    dest = tmp_path / "out"
    prepare(source, dest, workers=1)
    _, rows = read_csv(dest / "manifest.csv")
    with open(dest / "manifest.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["path", "label", "split"])
        writer.writerows((r["path"], r["label"], r["split"]) for r in rows)
    capsys.readouterr()
    prepare(source, dest, workers=1)
    assert (f"{dest} does not match its manifest.csv (made by an older version of prepare); "
            "rebuilding it.") in capsys.readouterr().out
    assert read_csv(dest / "manifest.csv")[1] == rows


def test_reuse_message_shows_counts_and_dest_as_given(tmp_path, capsys, monkeypatch):
    source = small_petimages(tmp_path)
    monkeypatch.chdir(tmp_path)
    prepare(source, "data/processed", workers=1)
    out = capsys.readouterr().out
    assert out.startswith("Prepared data/processed: ")
    assert "(see data/processed/rejected.csv)" in out
    summary = prepare(source, "data/processed", workers=1)
    n = {split: sum(summary["counts"][split].values()) for split in SPLITS}
    assert n["val"] and n["test"]
    assert capsys.readouterr().out == (
        f"Using the prepared split in data/processed: {n['train']} train, {n['val']} val, "
        f"{n['test']} test photos (checked against manifest.csv).\n")


def test_symlinks_are_followed_into_real_files_and_loops_reported(tmp_path):
    source = make_petimages(tmp_path, per_class=6, size=24, bad_files=False)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    shutil.copyfile(source / "Dog/0.jpg", elsewhere / "far.jpg")
    (source / "Dog/0.jpg").unlink()
    os.symlink("1.jpg", source / "Cat/link.jpg")  # relative file link
    os.symlink("../../elsewhere", source / "Dog/more")  # relative folder link, outside
    os.symlink("nowhere.jpg", source / "Cat/gone.jpg")
    os.symlink("self.jpg", source / "Cat/self.jpg")
    (source / "Dog/sub").mkdir()
    os.symlink("..", source / "Dog/sub/up")  # a folder loop
    dest = tmp_path / "out"
    prepare(source, dest, workers=1)
    _, kept = read_csv(dest / "manifest.csv")
    by_path = {r["path"]: output_file(dest, r) for r in kept}
    for rel, real in (("Cat/link.jpg", source / "Cat/1.jpg"), ("Dog/more/far.jpg",
                                                               elsewhere / "far.jpg")):
        out = by_path[rel]
        assert out.is_file() and not out.is_symlink()
        assert out.read_bytes() == real.read_bytes()
        assert os.stat(out).st_ino == os.stat(real).st_ino  # the real file, hard-linked
    assert not [p for p in dest.rglob("*") if p.is_symlink()]
    _, rejected = read_csv(dest / "rejected.csv")
    assert {r["path"]: r["reason"] for r in rejected} == {
        "Cat/gone.jpg": "broken symlink", "Cat/self.jpg": "symlink loop",
        "Dog/sub/up": "symlink loop"}


def test_any_file_name_is_kept_with_a_safe_output_name(tmp_path):
    source = make_petimages(tmp_path, per_class=4, size=24, bad_files=False)
    photo = (source / "Cat/0.jpg").read_bytes()
    names = {b"Cat/caf\xe9.jpg": "Cat/caf\\xe9.jpg", b"Cat/caf_.jpg": "Cat/caf_.jpg",
             b"Cat/my cat 1.jpg": "Cat/my cat 1.jpg",
             "Dog/чёрный пёс 🐶.jpg".encode(): "Dog/чёрный пёс 🐶.jpg",
             b"Dog/new\nline.jpg": "Dog/new\nline.jpg"}
    for name in names:
        with open(os.path.join(os.fsencode(source), name), "wb") as f:
            f.write(photo)
    with open(os.path.join(os.fsencode(source), b"Dog/bad\xff.jpg"), "wb") as f:
        f.write(b"")
    dest = tmp_path / "out"
    summary = prepare(source, dest, workers=1)
    _, kept = read_csv(dest / "manifest.csv")
    by_path = {r["path"]: r for r in kept}
    assert set(names.values()) <= set(by_path)
    outputs = [by_path[shown]["output"] for shown in names.values()]
    assert len(set(outputs)) == len(outputs)  # caf\xe9.jpg and caf_.jpg both survive
    for output in outputs:
        assert (dest / output).is_file()
        os.fsencode(dest / output).decode("utf-8")  # valid UTF-8, whatever the source name
    assert by_path["Cat/my cat 1.jpg"]["output"].endswith("/my cat 1.jpg")
    assert by_path["Dog/чёрный пёс 🐶.jpg"]["output"].endswith("/чёрный пёс 🐶.jpg")
    assert read_csv(dest / "rejected.csv")[1] == [{"path": "Dog/bad\\xff.jpg",
                                                   "reason": "empty file"}]
    assert len(output_files(dest)) == summary["kept"] == 8 + len(names)


def test_an_unreadable_file_is_rejected_as_permission_denied(tmp_path, monkeypatch):
    source = make_petimages(tmp_path, per_class=6, size=24, bad_files=False)
    read_bytes = Path.read_bytes

    def no_permission(self):
        if self.name == "3.jpg" and self.parent.name == "Cat":
            raise PermissionError(13, "Permission denied", str(self))
        return read_bytes(self)

    monkeypatch.setattr(Path, "read_bytes", no_permission)
    dest = tmp_path / "out"
    summary = prepare(source, dest, workers=1)  # workers=1: decoded in this process
    assert read_csv(dest / "rejected.csv")[1] == [{"path": "Cat/3.jpg",
                                                   "reason": "permission denied"}]
    assert summary["kept"] == 11


def test_an_empty_class_is_refused(tmp_path):
    source = make_petimages(tmp_path, per_class=6, size=24)
    for path in (source / "Cat").iterdir():
        path.unlink()
    with pytest.raises(FileNotFoundError, match=r"no cat photos: no files in Cat/"):
        prepare(source, tmp_path / "out", workers=1)
    assert not (tmp_path / "out").exists()
    result = run_cli("--source", str(source), "--dest", str(tmp_path / "out"))
    assert result.returncode != 0 and "error:" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_class_without_one_usable_photo_is_refused(tmp_path):
    source = make_petimages(tmp_path, per_class=6, size=24)
    for path in (source / "Dog").iterdir():
        path.write_bytes(b"<html>not found</html>")
    with pytest.raises(ValueError, match=r"None of the dog files .* is a usable photo \(\d+ not "
                                         r"an image\); nothing was prepared"):
        prepare(source, tmp_path / "out", workers=1)
    assert not (tmp_path / "out").exists()
    assert beside(tmp_path / "out") == []


# --- what a careless or hostile user can do ---------------------------------------------------


def path_hash(rel: str) -> str:
    """The short hash prepare adds to an output name that is taken."""
    return hashlib.sha256(rel.encode()).hexdigest()[:8]


def test_colliding_output_names_never_write_into_source(tmp_path):
    """cat/x.jpg meets Cat/x.jpg, and its hashed name meets a photo of Cat/ by that name: the
    output names collide, and the second photo must not go through the link into the first."""
    source = make_petimages(tmp_path, per_class=4, size=24, bad_files=False)
    (source / "cat").mkdir()
    dogs = sorted((source / "Dog").iterdir())
    shutil.copyfile(dogs[0], source / "Cat/x.jpg")
    shutil.copyfile(dogs[1], source / f"Cat/x_{path_hash('cat/x.jpg')}.jpg")
    shutil.copyfile(dogs[2], source / "cat/x.jpg")  # a clean JPEG: hard-linked
    shutil.copyfile(dogs[3], source / "Cat/y.jpg")
    shutil.copyfile(dogs[0], source / f"Cat/y_{path_hash('cat/y.png')}.jpg")
    with Image.open(dogs[1]) as image:
        image.save(source / "cat/y.png")  # re-encoded
    before = {rel: digest(source / rel) for rel in source_files(source)}
    dest = tmp_path / "out"
    prepare(source, dest, val_fraction=0, test_fraction=0, workers=1)  # all in train/cat
    assert {rel: digest(source / rel) for rel in source_files(source)} == before
    _, kept = read_csv(dest / "manifest.csv")
    assert len(kept) == len(before) == len({row["output"].casefold() for row in kept})
    for row in kept:
        if not row["path"].endswith(".png"):
            assert digest(output_file(dest, row)) == before[row["path"]], row


def refuse_reading(monkeypatch, folder: Path) -> None:
    """Make `folder` unreadable, as permissions do for users other than root."""
    scandir, listdir = os.scandir, os.listdir

    def guarded(call):
        def read(path="."):
            if isinstance(path, str | os.PathLike) and Path(path) == folder:
                raise PermissionError(13, "Permission denied", os.fspath(path))
            return call(path)
        return read

    monkeypatch.setattr(os, "scandir", guarded(scandir))
    monkeypatch.setattr(os, "listdir", guarded(listdir))


@pytest.mark.parametrize("prepared_first", [False, True])
def test_a_dest_folder_prepare_cannot_read_is_refused_not_deleted(tmp_path, monkeypatch,
                                                                  prepared_first):
    source = small_petimages(tmp_path)
    dest = tmp_path / "out"
    if prepared_first:
        prepare(source, dest, workers=1)
    private = dest / "train" / "private"
    private.mkdir(parents=True)
    (private / "notes.txt").write_text("mine")
    refuse_reading(monkeypatch, private)
    with pytest.raises(FileExistsError, match="Cannot use .*: Permission denied") as error:
        prepare(source, dest, seed=5, workers=1)
    assert isinstance(error.value, ValueError) and "\n" not in str(error.value)
    assert str(private) in str(error.value)
    monkeypatch.undo()
    assert (private / "notes.txt").read_text() == "mine"
    assert beside(dest) == []


def test_a_dest_that_lost_its_manifest_keeps_a_users_photo(tmp_path):
    source = small_petimages(tmp_path)
    dest = tmp_path / "out"
    prepare(source, dest, workers=1)
    (dest / "manifest.csv").unlink()
    mine = dest / "train" / "cat" / "my_cat.jpg"
    mine.write_bytes((source / "Cat/1.jpg").read_bytes())
    for seed in (42, 5):  # the same inputs (a damaged DEST), and others
        with pytest.raises(FileExistsError, match="did not write") as error:
            prepare(source, dest, seed=seed, workers=1)
        assert "\n" not in str(error.value)
        assert mine.read_bytes() == (source / "Cat/1.jpg").read_bytes()


@pytest.mark.parametrize("inside", ["Cat/out", "Dog/deep/er", "processed", "."])
def test_a_dest_inside_source_is_refused(tmp_path, inside):
    source = small_petimages(tmp_path)
    before = listing(source)
    with pytest.raises(ValueError, match="overlaps the photos folder") as error:
        prepare(source, source / inside, workers=1)
    assert "\n" not in str(error.value)
    assert listing(source) == before
    result = run_cli("--source", str(source), "--dest", str(source / inside))
    assert result.returncode != 0 and result.stderr.startswith("error: ")
    assert "Traceback" not in result.stderr and listing(source) == before


def test_symlinks_out_of_the_class_folder_are_rejected_not_followed(tmp_path):
    source = make_petimages(tmp_path, per_class=6, size=24, bad_files=False)
    os.symlink("..", source / "Cat/up")  # all of SOURCE, as cats
    os.symlink("../..", source / "Cat/above")  # the folder holding SOURCE
    os.symlink("../Dog", source / "Cat/dogs")  # the other class, as cats
    os.symlink("../Dog/0.jpg", source / "Cat/dog.jpg")
    dest = tmp_path / "out"
    prepare(source, dest, workers=1)
    _, kept = read_csv(dest / "manifest.csv")
    assert sorted(r["path"] for r in kept) == sorted(f"{c}/{i}.jpg" for c in CLASSES
                                                     for i in range(6))
    _, rejected = read_csv(dest / "rejected.csv")
    assert {r["path"]: r["reason"] for r in rejected} == {
        "Cat/up": "symlink loop", "Cat/above": "symlink loop",
        "Cat/dogs": "symlink out of its class folder",
        "Cat/dog.jpg": "symlink out of its class folder"}
    prepare(source, dest, workers=1)  # the same listing: reused, nothing of DEST read as photos


def halves(left, right, dtype) -> np.ndarray:
    """A 32x48 picture: `left` in its left half, `right` in the other."""
    pixels = np.full((32, 48), left, dtype=dtype)
    pixels[:, 24:] = right
    return pixels


def test_deep_and_float_pixels_are_scaled_to_8_bits(tmp_path):
    """16-bit PNGs turned white and float TIFFs black when PIL clipped them to 8 bits."""
    source = make_petimages(tmp_path, per_class=6, size=24, bad_files=False)
    Image.fromarray(halves(0x4040, 0xC0C0, np.uint16)).save(source / "Cat/deep.png")
    Image.fromarray(halves(0x4040, 0xC0C0, np.int32)).save(source / "Cat/int.tif")
    Image.fromarray(halves(0.25, 0.75, np.float32)).save(source / "Dog/float.tif")
    Image.fromarray(halves(0.5, np.nan, np.float32)).save(source / "Dog/nan.tif")
    for name, mode in (("Cat/deep.png", "I;16"), ("Cat/int.tif", "I"), ("Dog/float.tif", "F")):
        with Image.open(source / name) as image:
            assert image.mode == mode  # the fixture is honest
    dest = tmp_path / "out"
    prepare(source, dest, workers=1)
    _, kept = read_csv(dest / "manifest.csv")
    outputs = {r["path"]: output_file(dest, r) for r in kept}
    for name in ("Cat/deep.png", "Cat/int.tif", "Dog/float.tif"):
        with Image.open(outputs[name]) as image:
            pixels = np.asarray(image.convert("L"), dtype=float)
        assert abs(pixels[:, :20].mean() - 64) < 3 and abs(pixels[:, 28:].mean() - 191) < 3, name
    rejected = {r["path"]: r["reason"] for r in read_csv(dest / "rejected.csv")[1]}
    assert rejected == {"Dog/nan.tif": "float pixels that are not numbers"}


def test_an_image_no_photo_has_the_shape_of_is_rejected_and_the_rest_prepared(tmp_path):
    source = make_petimages(tmp_path, per_class=6, size=24, bad_files=False)
    Image.new("RGB", (70000, 2), "red").save(source / "Cat/wide.png")
    Image.new("RGB", (2, 3000), "blue").save(source / "Dog/tall.png")
    dest = tmp_path / "out"
    summary = prepare(source, dest, workers=2)
    rejected = {r["path"]: r["reason"] for r in read_csv(dest / "rejected.csv")[1]}
    assert set(rejected) == {"Cat/wide.png", "Dog/tall.png"}
    assert rejected["Cat/wide.png"].startswith("70000x2 pixels")
    assert rejected["Dog/tall.png"].startswith("2x3000 pixels")
    assert summary["kept"] == 12 and summary["rejected"] == 2


def test_an_unwritable_or_impossible_dest_is_a_one_line_error(tmp_path, monkeypatch):
    source = small_petimages(tmp_path)
    (tmp_path / "file").write_text("not a folder")
    for dest in (tmp_path / "file" / "out", tmp_path / "file" / "a" / "out"):
        with pytest.raises(ValueError, match="Cannot use") as error:
            prepare(source, dest, workers=1)
        assert "\n" not in str(error.value) and str(tmp_path / "file") in str(error.value)
        result = run_cli("--source", str(source), "--dest", str(dest))
        assert result.returncode != 0 and result.stderr.startswith("error: Cannot use")
        assert "Traceback" not in result.stderr
    readonly = tmp_path / "readonly"
    readonly.mkdir()
    readonly.chmod(0o555)
    if os.geteuid() == 0:  # root writes anyway: refuse as the system would refuse others
        def refused(call):
            def write(path, *args, **kwargs):
                if Path(os.fsdecode(path)).parent == readonly:
                    raise PermissionError(13, "Permission denied", os.fsdecode(path))
                return call(path, *args, **kwargs)
            return write

        monkeypatch.setattr(os, "mkdir", refused(os.mkdir))
        monkeypatch.setattr(os, "open", refused(os.open))
    with pytest.raises(ValueError, match="Cannot use .*Permission denied") as error:
        prepare(source, readonly / "out", workers=1)
    assert "\n" not in str(error.value)
    monkeypatch.undo()
    readonly.chmod(0o755)
    assert list(readonly.iterdir()) == []


def children(pid: int) -> list[int]:
    """The live child processes of `pid`, from /proc."""
    found = []
    for status in Path("/proc").glob("[0-9]*/status"):
        try:
            fields = dict(line.split(":", 1) for line in status.read_text().splitlines())
        except (OSError, ValueError):
            continue
        if fields["PPid"].strip() == str(pid) and not fields["State"].strip().startswith("Z"):
            found.append(int(status.parent.name))
    return found


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/status").read_text().split("State:")[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads /proc")
def test_decoding_workers_die_with_a_killed_prepare(tmp_path):
    source = make_petimages(tmp_path, per_class=2, size=24, bad_files=False)
    noise = np.random.default_rng(0).integers(0, 256, (3000, 3000, 3), dtype=np.uint8)
    Image.fromarray(noise).save(tmp_path / "big.jpg", quality=95)  # slow to decode
    for folder in CLASSES:
        for i in range(60):
            os.link(tmp_path / "big.jpg", source / folder / f"big{i}.jpg")
    cli = subprocess.Popen([sys.executable, "-m", "helpers", "prepare", "--source", str(source),
                            "--dest", str(tmp_path / "out")], cwd=ROOT,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    workers = []
    try:
        deadline = time.monotonic() + 60
        while not workers and time.monotonic() < deadline and cli.poll() is None:
            time.sleep(0.05)
            workers = children(cli.pid)
        time.sleep(1)  # all of them started and busy
        workers = children(cli.pid)
        assert workers and cli.poll() is None, "prepare finished before it could be killed"
        cli.kill()
        cli.wait()
        deadline = time.monotonic() + 5
        while any(map(alive, workers)) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not [pid for pid in workers if alive(pid)], "workers outlived prepare"
    finally:
        cli.kill()
        for pid in workers:
            if alive(pid):
                os.kill(pid, signal.SIGKILL)


def test_a_class_too_small_for_a_split_is_warned(tmp_path, capsys):
    source = make_petimages(tmp_path, per_class=10, size=24, bad_files=False)
    for path in sorted((source / "Cat").iterdir())[1:]:
        path.unlink()
    dest = tmp_path / "out"
    summary = prepare(source, dest, workers=1)
    warning = "Warning: no cat photos in val or test: too few for the fractions."
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith(f"Prepared {dest}: ") and out[1:] == [warning]
    assert summary["counts"]["train"]["cat"] == 1
    assert summary["counts"]["val"]["dog"] and summary["counts"]["test"]["dog"]
    prepare(source, dest, workers=1)
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("Using the prepared split") and out[1:] == [warning]
