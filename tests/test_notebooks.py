"""Every notebook, executed headless in order on a small generated dataset (quick profile)."""

import json
from pathlib import Path

import papermill
import pytest
from fixtures import make_petimages

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("0*.ipynb"))


@pytest.fixture(scope="module")
def executed(tmp_path_factory):
    """Run 01 -> 06 once with PROFILE=quick on generated photos; outputs go to a temp dir."""
    tmp = tmp_path_factory.mktemp("run")
    photos = make_petimages(tmp / "photos", per_class=40, size=120, bad_files=True)
    work = tmp / "work"
    results = {}
    for notebook in NOTEBOOKS:
        output = tmp / notebook.name
        papermill.execute_notebook(
            notebook, output, cwd=ROOT / "notebooks", progress_bar=False, kernel_name="python3",
            parameters={"DATA_DIR": str(photos), "PROFILE": "quick", "WORK_DIR": str(work),
                        "VERBOSE": 2, "SEED": 7})
        results[notebook.name] = json.loads(output.read_text())
    return work, results, photos


def test_six_notebooks_in_order():
    names = [n.name[:2] for n in NOTEBOOKS]
    assert names == ["01", "02", "03", "04", "05", "06"]


def test_every_notebook_runs_without_errors(executed):
    _, results, _ = executed
    for name, notebook in results.items():
        for cell in notebook["cells"]:
            for output in cell.get("outputs", []):
                assert output["output_type"] != "error", f"{name}: {output.get('evalue')}"


def test_the_run_leaves_model_history_figures_and_metrics(executed):
    work, _, photos = executed
    metrics = json.loads((work / "results" / "metrics.json").read_text())
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
    assert (work / "models" / "alexnet_compact" / "best.keras").exists()
    figures = {p.stem for p in (work / "figures").glob("*.png")}
    assert {"01_class_balance", "03_params_vs_compute", "05_learning_curves",
            "06_confusion_matrix", "06_roc_curve"} <= figures


def test_notebook_01_reports_the_rejected_files(executed):
    _, results, _ = executed
    text = "".join(
        "".join(output.get("text", "")) + "".join(output.get("data", {}).get("text/plain", ""))
        for cell in results["01_data_loading_and_exploration.ipynb"]["cells"]
        for output in cell.get("outputs", []))
    assert "rejected 8" in text  # empty, truncated, junk and Thumbs.db in each class folder
    assert "empty file" in text
