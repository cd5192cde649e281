"""A run's best.keras loads whatever saved it: the other Keras of the development pins and Colab's
(.venv-colab, whose runs make the committed outputs), or another precision policy."""

import os
import subprocess
import sys
import warnings

import keras
import numpy as np
import pytest
from conftest import ROOT

from helpers.config import TrainConfig
from helpers.files import save_model
from helpers.runs import open_run
from helpers.training import build_model, load_best_model

COLAB_PYTHON = ROOT / ".venv-colab" / "bin" / "python"

SAVE = """
import sys
from pathlib import Path

import keras
import numpy as np

from helpers.config import TrainConfig
from helpers.files import save_model
from helpers.runs import open_run
from helpers.training import build_model

run_dir = Path(sys.argv[1])
photos = np.load(run_dir.parent / "photos.npy")
config = TrainConfig(variant="compact", image_size=67, epochs=1)
open_run(config, run_dir)  # config.json, as training writes it
keras.utils.set_random_seed(1)
model = build_model(config, steps=1)
model.train_on_batch(photos, np.array([[0.0], [1.0], [0.0], [1.0]]))  # an optimizer state too
save_model(model, run_dir / "best.keras")  # what SaveBest calls
np.save(run_dir / "saved.npy", model.predict(photos, verbose=0))
"""

LOAD = """
import sys
import warnings
from pathlib import Path

import keras
import numpy as np

from helpers.training import load_best_model

run_dir = Path(sys.argv[1])
keras.utils.set_random_seed(2)  # weights of its own until the saved ones load
with warnings.catch_warnings():
    warnings.simplefilter("error")  # nothing the notebooks would print
    model = load_best_model(run_dir)
np.save(run_dir / "loaded.npy", model.predict(np.load(run_dir.parent / "photos.npy"), verbose=0))
"""


def python_of(environment: str) -> str:
    """The Python of "development" (the one running the tests) or "colab" (.venv-colab)."""
    if environment == "development":
        return sys.executable
    if not COLAB_PYTHON.exists():
        pytest.skip(".venv-colab is missing: `make colab-env` builds it with Colab's versions")
    return str(COLAB_PYTHON)


def run(environment: str, script: str, run_dir) -> str:
    """Run `script` on run_dir with that environment's Python and the checkout's helpers."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TF_CPP_MIN_LOG_LEVEL": "3"}
    result = subprocess.run([python_of(environment), "-c", script, str(run_dir)], env=env,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


@pytest.mark.slow
@pytest.mark.parametrize("saver, loader", [("development", "colab"), ("colab", "development")])
def test_a_saved_model_loads_in_the_other_keras_and_predicts_the_same(tmp_path, saver, loader):
    photos = np.random.default_rng(0).uniform(0, 255, (4, 67, 67, 3)).astype("float32")
    np.save(tmp_path / "photos.npy", photos)
    run_dir = tmp_path / "run"
    run(saver, SAVE, run_dir)
    run(loader, LOAD, run_dir)
    saved, loaded = np.load(run_dir / "saved.npy"), np.load(run_dir / "loaded.npy")
    assert saved.shape == loaded.shape == (4, 1)
    np.testing.assert_allclose(loaded, saved, rtol=1e-5, atol=1e-6)


def test_a_mixed_precision_model_loads_in_float32_silently(tmp_path):
    config = TrainConfig(variant="compact", image_size=67, epochs=1)
    open_run(config, tmp_path)
    photos = np.random.default_rng(0).uniform(0, 255, (2, 67, 67, 3)).astype("float32")
    keras.mixed_precision.set_dtype_policy("mixed_float16")  # as on a GPU
    try:
        model = build_model(config, steps=1)
        model.train_on_batch(photos, np.array([[0.0], [1.0]]))
        save_model(model, tmp_path / "best.keras")  # as SaveBest saves it
    finally:
        keras.mixed_precision.set_dtype_policy("float32")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the loss-scale optimizer's state is not Adam's
        loaded = load_best_model(tmp_path)
    assert loaded.dtype_policy.name == "float32"
    for saved, got in zip(model.get_weights(), loaded.get_weights(), strict=True):
        np.testing.assert_array_equal(got, saved)
