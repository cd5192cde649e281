"""Every notebook, executed headless in order on a small generated dataset (quick profile), as
`make run` executes them. Each notebook starts in a folder of its own, like a fresh Colab
runtime; they share only WORK_DIR, a stand-in for the Google Drive work folder."""

import json

import pytest
from conftest import ROOT, WARNING, make_petimages

from helpers.config import get_profile
from tools.notebooks import execute

pytestmark = pytest.mark.slow

NOTEBOOKS = sorted((ROOT / "notebooks").glob("0*.ipynb"))


def text_of(notebook: dict) -> str:
    """Everything the notebook's code cells printed or returned, as one string."""
    return "".join(
        "".join(output.get("text", "")) + "".join(output.get("data", {}).get("text/plain", ""))
        for cell in notebook["cells"] for output in cell.get("outputs", []))


@pytest.fixture(scope="module")
def executed(tmp_path_factory):
    """Run 01 -> 07 once with PROFILE=quick on generated photos, then 04 once more in yet
    another fresh folder (a recycled runtime): it must find its finished run on "Drive"."""
    tmp = tmp_path_factory.mktemp("run")
    photos = make_petimages(tmp / "photos", per_class=40, size=120, bad_files=True)
    drive = tmp / "drive"
    values = {"DATA_DIR": str(photos), "PROFILE": "quick", "WORK_DIR": str(drive),
              "VERBOSE": 2, "SEED": 7}
    results = {}
    for notebook in NOTEBOOKS:
        output = tmp / "out" / notebook.name
        execute(notebook, output, values, cwd=tmp / f"runtime-{notebook.name[:2]}")
        results[notebook.name[:2]] = json.loads(output.read_text())
    again = tmp / "out" / "04-again.ipynb"
    execute(NOTEBOOKS[3], again, values, cwd=tmp / "runtime-04-again")
    results["04-again"] = json.loads(again.read_text())
    return drive, results, photos


def test_seven_notebooks_in_order():
    assert [n.name[:2] for n in NOTEBOOKS] == ["01", "02", "03", "04", "05", "06", "07"]


def test_every_notebook_runs_without_errors_or_machine_paths(executed):
    drive, results, photos = executed
    for name, notebook in results.items():
        for cell in notebook["cells"]:
            for output in cell.get("outputs", []):
                assert output["output_type"] != "error", f"{name}: {output.get('evalue')}"
                assert not WARNING.search("".join(output.get("text", ""))), name
        assert str(drive) not in text_of(notebook), name
        assert str(photos) not in text_of(notebook), name


def test_the_run_leaves_model_history_figures_and_metrics(executed):
    drive, _, photos = executed
    metrics = json.loads((drive / "results" / "metrics.json").read_text())
    for key in ("test_accuracy", "val_accuracy", "train_images", "val_images", "test_images",
                "epochs", "wall_time_s", "seconds_per_epoch", "hardware", "precision",
                "keras_backend", "variant", "seed"):
        assert key in metrics, key
    assert metrics["seed"] == 7 and metrics["variant"] == "compact"
    assert 0 <= metrics["test_accuracy"] <= 1
    files = sum(1 for p in photos.rglob("*") if p.is_file())
    rejected = 8  # empty, truncated, junk and Thumbs.db in each class folder
    split = metrics["train_images"] + metrics["val_images"] + metrics["test_images"]
    assert split == files - rejected
    assert (drive / "models" / "alexnet_compact" / "best.keras").exists()
    figures = {p.stem for p in (drive / "figures").glob("*.png")}
    assert {"01_class_balance", "03_params_vs_compute", "05_learning_curves",
            "06_confusion_matrix", "06_roc_curve"} <= figures


def test_later_notebooks_use_the_run_from_the_shared_work_folder(executed):
    _, results, _ = executed
    assert "your run in ../drive/models/alexnet_compact" in text_of(results["05"])
    for name in ("06", "07"):
        assert "saved model" in text_of(results[name]), name
        assert "demo model" not in text_of(results[name]), name


def test_a_recycled_runtime_finds_the_finished_training_and_keeps_it(executed):
    drive, results, _ = executed
    text = text_of(results["04-again"])
    history = json.loads((drive / "models" / "alexnet_compact" / "history.json").read_text())
    epochs = [row["epoch"] for row in history]  # early stopping may end it before the last
    assert epochs == list(range(1, len(epochs) + 1))
    assert len(epochs) <= get_profile("quick").train.epochs
    assert f"holds a finished run ({len(epochs)} epochs" in text  # found, not trained again


def test_notebook_01_reports_the_rejected_files(executed):
    _, results, _ = executed
    text = text_of(results["01"])
    assert "rejected 8" in text  # empty, truncated, junk and Thumbs.db in each class folder
    assert "empty file" in text
