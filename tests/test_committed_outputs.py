"""The committed notebooks, README and results/metrics.json tell one consistent story: every
notebook is executed in order without errors or log spam, and the accuracies agree."""

import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("0*.ipynb"))
METRICS = json.loads((ROOT / "results" / "metrics.json").read_text())
SPAM = re.compile(r"Corrupt JPEG data|^[IWE]0000 |absl::InitializeLog|oneDNN custom operations",
                  re.MULTILINE)


def output_text(cell) -> str:
    """All text a code cell printed or returned."""
    parts = []
    for output in cell.get("outputs", []):
        parts.append("".join(output.get("text", "")))
        parts.append("".join(output.get("data", {}).get("text/plain", "")))
    return "".join(parts)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name[:2])
def test_notebook_was_executed_top_to_bottom_without_errors(path):
    cells = [c for c in json.loads(path.read_text())["cells"] if c["cell_type"] == "code"]
    assert [c["execution_count"] for c in cells] == list(range(1, len(cells) + 1))
    for cell in cells:
        assert all(o["output_type"] != "error" for o in cell.get("outputs", [])), path.name
        assert not SPAM.search(output_text(cell)), f"log spam in {path.name}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name[:2])
def test_notebook_ran_the_full_profile_and_ends_with_run_metadata(path):
    cells = [c for c in json.loads(path.read_text())["cells"] if c["cell_type"] == "code"]
    injected = [c for c in cells if "injected-parameters" in c["metadata"].get("tags", [])]
    assert injected and 'PROFILE = "full"' in "".join(injected[0]["source"])
    last = output_text(cells[-1])
    assert "date:" in last and "hardware:" in last and "wall time:" in last


def test_notebook_06_prints_the_accuracy_in_metrics_json():
    cells = json.loads((ROOT / "notebooks" / "06_evaluation_confusion_matrix.ipynb").read_text())
    printed = re.findall(r"test accuracy: ([\d.]+)%", "".join(
        output_text(c) for c in cells["cells"] if c["cell_type"] == "code"))
    assert printed, "notebook 06 prints no test accuracy"
    assert float(printed[0]) == pytest.approx(METRICS["test_accuracy"] * 100, abs=0.005)


def test_readme_reports_the_accuracy_in_metrics_json():
    readme = (ROOT / "README.md").read_text()
    assert f"{METRICS['test_accuracy']:.2%}" in readme
    assert f"{METRICS['val_accuracy']:.2%}" in readme
    assert f"{METRICS['train_images']:,}" in readme


def test_metrics_json_has_the_run_metadata():
    for key in ("test_accuracy", "val_accuracy", "train_images", "val_images", "test_images",
                "epochs", "wall_time_s", "seconds_per_epoch", "hardware", "precision",
                "keras_backend", "variant", "seed"):
        assert key in METRICS, key


def test_figures_are_small_pngs():
    figures = sorted((ROOT / "figures").glob("*.png"))
    assert len(figures) >= 8
    for figure in figures:
        assert figure.stat().st_size <= 150_000, figure.name
