"""Project plumbing: pinned environments agree, Colab links agree, run paths and profiles."""

import json
import os
import platform
import re
import subprocess
import sys
import types
from pathlib import Path

import pytest
import yaml
from conftest import ROOT

from helpers import workspace
from helpers.config import DATA_DIR, PROFILE, PROFILES, SEED, get_profile
from helpers.files import project_root, shown
from helpers.workspace import work_folders
from tools.links import RELEASE, REPOSITORY, colab_badge, colab_url, install_url
from tools.sync_links import sync_links


def requirement_lines(text: str) -> list[str]:
    """Requirement specifiers, without comments, blank lines and the editable install."""
    found = []
    for line in text.splitlines():
        line = line.split("#", 1)[0].strip()
        if line and line != "-e .":
            found.append(line)
    return found


def test_environment_yml_pins_the_same_packages_as_requirements_txt():
    requirements = requirement_lines((ROOT / "requirements.txt").read_text())
    environment = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip_sections = [dep["pip"] for dep in environment["dependencies"] if isinstance(dep, dict)]
    assert len(pip_sections) == 1
    conda_pip = requirement_lines("\n".join(pip_sections[0]))
    assert conda_pip == requirements
    assert requirements, "requirements.txt lists no packages"
    assert all("==" in line for line in requirements), "every requirement is pinned"
    assert len({line.split("==")[0].lower() for line in requirements}) == len(requirements)
    assert "-e ." in pip_sections[0]  # the helpers package itself, from the checkout
    assert "pip" in environment["dependencies"]


def test_links_check_passes_on_the_repository():
    assert sync_links(root=ROOT, check=True) == []
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    result = subprocess.run([sys.executable, "-m", "tools.sync_links", "--check"], cwd=ROOT,
                            env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "error:" not in result.stderr
    for notebook in sorted((ROOT / "notebooks").glob("0*.ipynb")):  # each pins the release
        cells = json.loads(notebook.read_text())["cells"]
        assert f"%pip install -q --no-deps {install_url()}\n" in "".join(
            "".join(cell["source"]) for cell in cells), notebook.name


OLD = "someone-else/old-name"
OLD_BADGE = ("[![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)]"
             f"(https://colab.research.google.com/github/{OLD}/blob/dev/notebooks/x.ipynb)")
OLD_INSTALL = f"%pip install -q --no-deps git+https://github.com/{OLD}"


def write_stale_project(root: Path) -> tuple[Path, Path]:
    (root / "notebooks").mkdir(parents=True)
    readme = root / "README.md"
    readme.write_text(f"# Title\n\n{OLD_BADGE}\n\nInstall: `pip install git+https://github.com/"
                      f"{OLD}@v0.0.1`\n\nUnrelated: https://github.com/{OLD}/issues\n")
    notebook = root / "notebooks" / "x.ipynb"
    notebook.write_text(json.dumps({
        "cells": [
            {"cell_type": "markdown", "metadata": {}, "source": [f"{OLD_BADGE}\n", "Intro\n"]},
            {"cell_type": "code", "metadata": {}, "outputs": [], "execution_count": None,
             "source": ["import sys\n", f"{OLD_INSTALL}\n"]},
            {"cell_type": "code", "metadata": {}, "outputs": [], "execution_count": None,
             "source": ["x = 1\n"]},
        ],
        "metadata": {}, "nbformat": 4, "nbformat_minor": 5,
    }, indent=1))
    return readme, notebook


def test_sync_links_rewrites_badges_and_install_cells(tmp_path):
    readme, notebook = write_stale_project(tmp_path)
    before = notebook.read_text(), readme.read_text()

    assert sync_links(root=tmp_path, check=True) == [readme, notebook]
    assert (notebook.read_text(), readme.read_text()) == before  # check only reports

    assert sync_links(root=tmp_path) == [readme, notebook]
    text = readme.read_text()
    assert colab_badge("x.ipynb") in text
    assert f"`pip install {install_url()}`" in text  # the old release replaced too
    assert f"https://github.com/{OLD}/issues" in text  # other links are left alone
    assert f"github/{OLD}" not in text and f"git+https://github.com/{OLD}" not in text

    cells = json.loads(notebook.read_text())["cells"]
    assert "".join(cells[0]["source"]) == f"{colab_badge('x.ipynb')}\nIntro\n"
    assert colab_url("x.ipynb").startswith(f"https://colab.research.google.com/github/{REPOSITORY}/")
    assert "".join(cells[1]["source"]) == (
        f"import sys\n%pip install -q --no-deps git+https://github.com/{REPOSITORY}@{RELEASE}\n")
    assert cells[2]["source"] == ["x = 1\n"]

    assert sync_links(root=tmp_path, check=True) == []  # now in line
    assert sync_links(root=tmp_path) == []


def fake_checkout(root: Path) -> Path:
    (root / "helpers").mkdir(parents=True)
    (root / "notebooks").mkdir()
    return root.resolve()


def test_project_root_is_found_from_the_checkout_or_its_notebooks_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(ROOT)
    assert project_root() == ROOT
    root = fake_checkout(tmp_path / "checkout")
    monkeypatch.chdir(root / "notebooks")  # where papermill and Jupyter run the notebooks
    assert project_root() == root
    elsewhere = tmp_path / "colab"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    assert project_root() == elsewhere.resolve()


def test_work_folders_per_profile(tmp_path, monkeypatch):
    root = fake_checkout(tmp_path / "checkout")
    monkeypatch.chdir(root)
    assert work_folders("quick") == (root / "build" / "quick", root / "build" / "quick")
    assert work_folders("full") == (root / "build" / "full", root / "build" / "full")
    elsewhere = (tmp_path / "elsewhere").resolve()
    assert work_folders("quick", work_dir=tmp_path / "elsewhere") == (elsewhere, elsewhere)
    assert work_folders("full", work_dir=".") == (root, root)  # make publish


def test_drive_keeps_the_work_folder_there_and_the_split_on_local_disk(tmp_path, monkeypatch):
    root = fake_checkout(tmp_path / "content")
    monkeypatch.chdir(root)
    drive = tmp_path / "drive"
    mounted, colab = [], types.ModuleType("google.colab")
    colab.drive = types.SimpleNamespace(mount=mounted.append)
    monkeypatch.setitem(sys.modules, "google.colab", colab)  # so is_colab() is True too
    monkeypatch.setattr(workspace, "DRIVE_MOUNT", drive)
    work, local = work_folders("full", drive=True)
    assert mounted == [str(drive)]
    assert work == (drive / workspace.DRIVE_FOLDER / "full").resolve()
    assert local == root / "build" / "full"
    run = workspace.start("full", data_dir=None, drive=True)
    assert run.model_dir == work / "models" / "alexnet_bn"
    assert run.metrics_file == work / "results" / "metrics.json"
    assert run.processed.resolve() == local / "data" / "processed"
    assert run.models.is_dir() and run.figures.is_dir()
    assert not (drive / "data").exists()  # photos and split never go through Drive


def test_without_drive_colab_says_what_is_lost(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(fake_checkout(tmp_path / "content"))
    monkeypatch.setattr(workspace, "is_colab", lambda: True)
    workspace.start("quick", data_dir=None)
    assert "go when this Colab runtime is recycled" in capsys.readouterr().out


def test_the_first_output_names_the_run(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(fake_checkout(tmp_path / "checkout"))
    photos = tmp_path / "my-pets"
    for name, count in (("Cat", 3), ("Dog", 2)):
        (photos / name).mkdir(parents=True)
        for i in range(count):
            (photos / name / f"{i}.jpg").write_bytes(b"")
    run = workspace.start("auto", data_dir=photos, prepare_split=False)
    lines = dict(line.split(":", 1) for line in capsys.readouterr().out.splitlines())
    assert lines["profile"].split()[0] == run.profile.name
    assert '(PROFILE = "auto": ' in lines["profile"]
    assert lines["photos"].strip() == "my-pets, not split yet"
    assert lines["hardware"].strip().startswith(("CPU only (", "1 GPU(s)"))
    assert "keras " in lines["versions"]


def test_run_record_falls_back_on_the_reference_run(tmp_path, monkeypatch):
    monkeypatch.chdir(fake_checkout(tmp_path / "checkout"))
    run = workspace.start("full", data_dir=None)
    history, metrics, config, about = workspace.run_record(run)
    assert "reference run" in about
    assert [row["epoch"] for row in history] == list(range(1, metrics["epochs"] + 1))
    # metrics.json keeps 4 digits (notebook 04 rounds), the history every digit
    assert max(row["val_accuracy"] for row in history) == pytest.approx(metrics["val_accuracy"],
                                                                        abs=1e-4)
    assert config["epochs"] == metrics["epochs"] and config["variant"] == metrics["variant"]
    run.model_dir.mkdir(parents=True)
    (run.model_dir / "history.json").write_text(json.dumps(history[:2]))
    (run.model_dir / "config.json").write_text(json.dumps(config))
    workspace.update_metrics(run.metrics_file, train_images=10)
    own, _, _, about = workspace.run_record(run)
    assert len(own) == 2 and about == "your run in build/full/models/alexnet_bn"


def test_one_default_profile_data_folder_and_seed_everywhere(capsys):
    from helpers.__main__ import main

    makefile = (ROOT / "Makefile").read_text()
    assert f"PROFILE ?= {PROFILE}" in makefile and f"DATA_DIR ?= {DATA_DIR}" in makefile
    assert f"SEED ?= {SEED}" in makefile
    for notebook in sorted((ROOT / "notebooks").glob("0*.ipynb")):
        cells = json.loads(notebook.read_text())["cells"]
        parameters = "".join(next(c for c in cells if "parameters" in c["metadata"].get(
            "tags", []))["source"])
        assert f'PROFILE = "{PROFILE}"' in parameters and f"SEED = {SEED}" in parameters
        if "DATA_DIR" in parameters:
            assert f'DATA_DIR = "{DATA_DIR}"' in parameters
    for command, default in (("train", PROFILE), ("download", DATA_DIR)):
        with pytest.raises(SystemExit):
            main([command, "--help"])
        assert f"(default: {default})" in " ".join(capsys.readouterr().out.split())


def test_paths_are_shown_without_machine_paths(tmp_path, monkeypatch):
    monkeypatch.chdir(ROOT / "notebooks")
    assert shown(ROOT / "models" / "best.keras") == "models/best.keras"  # from the checkout
    assert shown(ROOT) == "."
    work = tmp_path / "runtime"
    work.mkdir()
    monkeypatch.chdir(work)
    assert shown(tmp_path / "drive" / "models") == "../drive/models"  # near the current folder
    assert shown("/content/drive/MyDrive/x") == "/content/drive/MyDrive/x"  # Drive as it is


def test_the_package_declares_no_test_or_build_tools():
    import tomllib

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    names = {re.split(r"[<>=!;\[ ]", dep, maxsplit=1)[0].lower()
             for dep in project["dependencies"]}
    assert {"keras", "tensorflow", "pillow", "jinja2"} <= names
    assert not names & {"pytest", "ruff", "jax", "jaxlib", "jupyterlab", "papermill"}
    assert all(">=" in dep for dep in project["dependencies"]), "lower bounds, not pins"


def test_the_readme_stays_one_page_for_learners():
    lines = (ROOT / "README.md").read_text().splitlines()
    assert len(lines) <= 200, f"README.md has {len(lines)} lines: engineering detail goes to docs/"


def test_the_helpers_package_stays_small():
    lines = sum(len(path.read_text().splitlines()) for path in (ROOT / "helpers").glob("*.py"))
    assert lines <= 2500, f"helpers/ has {lines} lines: repository tooling goes to tools/"


def test_colab_versions_meet_the_declared_lower_bounds():
    colab = dict(line.split("==") for line in requirement_lines(
        (ROOT / "requirements-colab.txt").read_text()))
    project = tomllib_project()
    for dep in project["dependencies"]:
        name, bound = dep.split(">=")
        version = colab.get(name.lower())
        if version is not None:
            assert tuple(map(int, version.split("."))) >= tuple(map(int, bound.split("."))), dep


def tomllib_project() -> dict:
    import tomllib

    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


def test_get_profile_and_unknown_profiles():
    assert get_profile("quick") is PROFILES["quick"]
    assert get_profile("full").per_class_limit is None
    assert get_profile("quick").train.variant == "compact"
    assert get_profile("full").train.epochs > get_profile("quick").train.epochs
    from helpers.environment import gpus

    assert get_profile("auto") is PROFILES["full" if gpus() else "quick"]
    with pytest.raises(ValueError) as error:
        get_profile("nope")
    message = str(error.value)
    assert "'nope'" in message
    for name in PROFILES:
        assert repr(name) in message


def test_hardware_line_names_the_cpu_model():
    from helpers.environment import cpu_model, describe_hardware

    report = {"gpus": [], "cpu": cpu_model(), "cpu_cores": 2, "cpu_bf16": False}
    assert cpu_model() and cpu_model() in describe_hardware(report)
    assert describe_hardware({**report, "cpu_bf16": True}).endswith("2 cores, bf16)")


# After load_keras, free one 1 MB block and ask for another: glibc's own rule raises its mmap
# threshold past 1 MB on that free, so the second block comes from an arena; fixed, it is mapped.
MAPPED_AFTER_FREE = """
import ctypes
from helpers.environment import load_keras
load_keras()
class Info(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in ("arena", "ordblks", "smblks", "hblks",
                "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks", "keepcost")]
libc = ctypes.CDLL("libc.so.6")
libc.malloc.restype, libc.mallinfo2.restype = ctypes.c_void_p, Info
libc.free(ctypes.c_void_p(libc.malloc(1 << 20)))
before = libc.mallinfo2().hblkhd
block = libc.malloc(1 << 20)
print("mapped" if libc.mallinfo2().hblkhd - before >= 1 << 20 else "arena")
"""


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="glibc's malloc only")
@pytest.mark.parametrize("given, expected", [(None, "mapped"), ("glibc", "arena")])
def test_load_keras_fixes_mallocs_mmap_threshold_unless_told_not_to(given, expected):
    assert last_line_printed(MAPPED_AFTER_FREE, "HELPERS_MALLOC", given,
                             unset=("MALLOC_MMAP_THRESHOLD_",)) == expected


RELEASED_AFTER_FREE = """
import ctypes, os
from helpers.environment import release_memory
libc = ctypes.CDLL("libc.so.6")
libc.malloc.restype = ctypes.c_void_p
def resident():
    return int(open("/proc/self/statm").read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
blocks = [libc.malloc(1000) for _ in range(100_000)]
for block in blocks:
    ctypes.memset(block, 1, 1000)
last = libc.malloc(1000)  # so that the freed blocks lie inside the heap, not at its top
for block in blocks:
    libc.free(ctypes.c_void_p(block))
before = resident()
print(release_memory(), before - resident() > 50_000_000)
"""


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="glibc's malloc only")
@pytest.mark.parametrize("given, expected", [(None, "True True"), ("glibc", "False False")])
def test_release_memory_hands_freed_heap_memory_back_unless_told_not_to(given, expected):
    assert last_line_printed(RELEASED_AFTER_FREE, "HELPERS_MALLOC", given) == expected


def last_line_printed(script: str, key: str, value: str | None, unset=()) -> str:
    """The last line `script` prints in a fresh interpreter with environment variable `key`
    set to `value` (None: unset), and the variables in `unset` unset."""
    env = {name: given for name, given in os.environ.items() if name not in (key, *unset)}
    if value is not None:
        env[key] = value
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout.strip().splitlines()[-1]


LOADED_ONEDNN = ("from helpers.environment import device_report, load_keras; load_keras(); "
                 "print(device_report()['onednn'])")


@pytest.mark.parametrize("given, expected", [(None, "True"), ("0", "False")])
def test_load_keras_turns_onednn_on_unless_the_user_chose(given, expected):
    assert last_line_printed(LOADED_ONEDNN, "TF_ENABLE_ONEDNN_OPTS", given) == expected


def test_the_full_profile_trains_the_progressive_128_180_227_recipe():
    from benchmarks.tuning import RECIPES

    full = get_profile("full").train
    for name, value in RECIPES["progressive-128-180-227"].overrides.items():
        assert getattr(full, name) == value, name


def test_peak_memory_counts_what_the_process_touched():
    code = ("import numpy as np; from helpers.environment import peak_memory_gb; "
            "before = peak_memory_gb(); block = np.ones(300_000_000, dtype=np.uint8); "
            "print(before, peak_memory_gb())")
    # A child's peak starts at its parent's size when forked: measure in a small process's child.
    outer = f"import subprocess, sys; subprocess.run([sys.executable, '-c', {code!r}], check=True)"
    before, after = map(float, subprocess.run([sys.executable, "-c", outer], cwd=ROOT, check=True,
                                              capture_output=True, text=True).stdout.split())
    assert after > 0.3 and after - before > 0.2  # 300 MB touched: the peak rose by that much
