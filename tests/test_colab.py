"""Each notebook as a Colab user meets it: a fresh, empty folder, Colab's package versions
(requirements-colab.txt, in .venv-colab), the package installed from a clean copy of the
repository without dependencies, and no other notebook run before it."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ROOT, make_petimages

pytestmark = pytest.mark.slow

COLAB_PYTHON = ROOT / ".venv-colab" / "bin" / "python"
NOTEBOOKS = sorted((ROOT / "notebooks").glob("0*.ipynb"))


def clean_copy(dest: Path) -> Path:
    """The repository's tracked and new (not ignored) files, as a fresh clone would have them."""
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others",
                             "--exclude-standard"], cwd=ROOT, capture_output=True, check=True)
    for name in filter(None, listed.stdout.decode().split("\0")):
        if (ROOT / name).is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, dest / name)
    return dest


@pytest.fixture(scope="module")
def colab(tmp_path_factory):
    """Colab's environment (built by `make colab-env` when missing) and the package installed
    --no-deps into a folder of its own, so nothing is written into site-packages."""
    subprocess.run(["make", "--no-print-directory", "colab-env"], cwd=ROOT, check=True)
    tmp = tmp_path_factory.mktemp("colab")
    site = tmp / "site"
    subprocess.run([str(COLAB_PYTHON), "-m", "pip", "install", "--quiet", "--no-deps",
                    "--no-build-isolation", "--target", str(site),
                    str(clean_copy(tmp / "clone"))], check=True)
    # clean photos, like the pre-resized copy: notebook 01 then makes broken ones to show
    photos = make_petimages(tmp / "photos", per_class=40, size=120, bad_files=False)
    return tmp, site, photos


def run_alone(notebook: Path, tmp: Path, site: Path, photos: Path) -> dict:
    """Execute one notebook in an empty folder of its own with Colab's Python; return it."""
    folder = tmp / notebook.name[:2]
    folder.mkdir()
    shutil.copy(notebook, folder / notebook.name)
    env = {"PATH": f"{COLAB_PYTHON.parent}:/usr/bin:/bin", "PYTHONPATH": str(site),
           "HOME": str(tmp), "TF_CPP_MIN_LOG_LEVEL": "3", "MPLBACKEND": "agg"}
    result = subprocess.run(
        [str(COLAB_PYTHON), str(ROOT / "tools" / "notebooks.py"), str(folder / "out"),
         "PROFILE=quick",
         f"DATA_DIR={photos}", "VERBOSE=2", "--", str(folder / notebook.name)],
        cwd=folder, env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads((folder / "out" / notebook.name).read_text())


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda p: p.name[:2])
def test_notebook_runs_alone_on_colabs_versions(colab, notebook):
    tmp, site, photos = colab
    before = subprocess.run(["git", "status", "--porcelain"], cwd=ROOT, capture_output=True,
                            text=True).stdout
    executed = run_alone(notebook, tmp, site, photos)
    text = ""
    for cell in executed["cells"]:
        for output in cell.get("outputs", []):
            assert output["output_type"] != "error", output.get("evalue")
            text += "".join(output.get("text", ""))
            text += "".join(output.get("data", {}).get("text/plain", ""))
    assert "date:" in text and "wall time:" in text  # it reached its last cell
    fallback = {"01": "made as", "05": "reference run", "06": "demo model",
                "07": "demo model"}
    if notebook.name[:2] in fallback:
        assert fallback[notebook.name[:2]] in text
    assert not (site / "keras").exists() and not (site / "tensorflow").exists()
    after = subprocess.run(["git", "status", "--porcelain"], cwd=ROOT, capture_output=True,
                           text=True).stdout
    assert after == before, "the notebook wrote into the repository"


def test_colab_environment_has_colabs_keras_and_python(colab):
    script = "import keras, sys; print(keras.__version__, sys.version_info[:2] >= (3, 12))"
    out = subprocess.run([str(COLAB_PYTHON), "-c", script], capture_output=True, text=True,
                         check=False).stdout.split()
    required = dict(line.split("==") for line in (ROOT / "requirements-colab.txt").read_text()
                    .splitlines() if "==" in line and not line.startswith("#"))
    assert out[0] == required["keras"]
    assert out[1] == "True" or sys.version_info[:2] < (3, 12)
