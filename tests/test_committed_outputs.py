"""The committed notebooks, README and results/ tell one consistent story: each notebook keeps
one parameters cell with the defaults (what Colab runs), shows no machine paths, and, once the
reference run has executed it, carries its outputs top to bottom without errors or log spam;
helper source it displays is the current source; the accuracies agree."""

import importlib
import inspect
import json
import re
from pathlib import Path

import pytest
from conftest import ROOT, WARNING

from helpers.runs import best_row

NOTEBOOKS = sorted((ROOT / "notebooks").glob("0*.ipynb"))
METRICS = json.loads((ROOT / "results" / "metrics.json").read_text())
SPAM = re.compile(r"Corrupt JPEG data|^[IWE]0000 |absl::InitializeLog|oneDNN custom operations",
                  re.MULTILINE)
MACHINE_PATH = re.compile(r"(^|[^a-zA-Z0-9_.])/(work|home|root|tmp|content)/[a-zA-Z]")


def code_cells(path: Path) -> list[dict]:
    return [c for c in json.loads(path.read_text())["cells"] if c["cell_type"] == "code"]


def output_text(cell) -> str:
    """All text a code cell printed or returned."""
    parts = []
    for output in cell.get("outputs", []):
        parts.append("".join(output.get("text", "")))
        parts.append("".join(output.get("data", {}).get("text/plain", "")))
    return "".join(parts)


def executed(path: Path) -> bool:
    return any(c["execution_count"] for c in code_cells(path))


EXECUTED = [p for p in NOTEBOOKS if executed(p)]
PENDING = [p for p in NOTEBOOKS if not executed(p)]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name[:2])
def test_one_parameters_cell_and_no_machine_paths(path):
    cells = code_cells(path)
    tags = [tag for c in cells for tag in c["metadata"].get("tags", [])]
    assert tags.count("parameters") == 1 and "injected-parameters" not in tags
    assert not MACHINE_PATH.search(path.read_text()), path.name


@pytest.mark.parametrize("path", EXECUTED, ids=lambda p: p.name[:2])
def test_executed_notebook_ran_top_to_bottom_in_the_full_profile(path):
    cells = code_cells(path)
    assert [c["execution_count"] for c in cells] == list(range(1, len(cells) + 1))
    for cell in cells:
        for output in cell.get("outputs", []):
            assert output["output_type"] != "error", path.name
            assert not WARNING.search("".join(output.get("text", ""))), path.name
        assert not SPAM.search(output_text(cell)), f"log spam in {path.name}"
        assert "already prepared" not in output_text(cell)
    last = output_text(cells[-1])
    assert "date:" in last and "hardware:" in last and "profile:   full" in last


def test_notebooks_awaiting_the_reference_run_are_named_in_the_readme():
    listed = ", ".join(path.name[:2] for path in PENDING)
    line = f"Notebooks awaiting the reference run: {listed}."
    assert (line in (ROOT / "README.md").read_text()) == bool(PENDING), line


@pytest.mark.parametrize("path", EXECUTED, ids=lambda p: p.name[:2])
def test_helper_source_shown_in_a_notebook_is_the_current_source(path):
    for cell in code_cells(path):
        for name in re.findall(r"show_source\((\w+)\)", "".join(cell["source"])):
            imports = re.findall(rf"from (helpers\.\w+) import [^\n]*\b{name}\b",
                                 path.read_text().replace("\\n", "\n"))
            source = inspect.getsource(getattr(importlib.import_module(imports[0]), name))
            assert source.strip() in output_text(cell), f"{path.name}: {name} is stale"


def test_run_metadata_dates_ascend_in_notebook_order():
    dates = [re.search(r"date:\s+(\S+)", output_text(code_cells(p)[-1]))[1] for p in EXECUTED]
    assert dates == sorted(dates)


def test_notebook_06_prints_the_accuracy_in_metrics_json():
    path = ROOT / "notebooks" / "06_evaluation_confusion_matrix.ipynb"
    if path in PENDING:  # README says so (test above)
        return
    printed = re.findall(r"test accuracy: ([\d.]+)%", "".join(map(output_text,
                                                                  code_cells(path))))
    assert printed, "notebook 06 prints no test accuracy"
    assert float(printed[0]) == pytest.approx(METRICS["test_accuracy"] * 100, abs=0.005)


def test_readme_reports_the_accuracy_in_metrics_json():
    readme = (ROOT / "README.md").read_text()
    assert f"{METRICS['test_accuracy']:.2%}" in readme
    assert f"{METRICS['val_accuracy']:.2%}" in readme
    assert f"{METRICS['train_images']:,}" in readme


def test_reference_history_agrees_with_metrics_json():
    history = json.loads((ROOT / "results" / "history.json").read_text())
    assert [row["epoch"] for row in history] == list(range(1, METRICS["epochs"] + 1))
    best = best_row(history)  # as the run judges it: at its last photo size
    assert best["epoch"] == METRICS["best_epoch"]
    assert best["val_accuracy"] == pytest.approx(METRICS["val_accuracy"], abs=1e-4)
    assert sum(row["seconds"] for row in history) == pytest.approx(METRICS["wall_time_s"], abs=1)


def test_metrics_json_has_the_run_metadata():
    for key in ("test_accuracy", "val_accuracy", "train_images", "val_images", "test_images",
                "epochs", "wall_time_s", "seconds_per_epoch", "hardware", "precision",
                "keras_backend", "variant", "seed"):
        assert key in METRICS, key


def test_figures_are_small_pngs():
    figures = sorted((ROOT / "figures").glob("*.png"))
    assert len(figures) >= 8
    for figure in figures:
        assert figure.stat().st_size <= 400_000, figure.name
