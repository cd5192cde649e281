"""benchmarks/: every benchmark runs end to end on a tiny generated PetImages folder and prints
one JSON object with its keys as the last line. Only that is checked: speed ratios depend on
the machine, and `make bench` measures them on real photos."""

import ast
import dataclasses
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import keras
import pytest
from conftest import ROOT, make_petimages

from benchmarks import (
    layer_time,
    memory,
    pipeline,
    precision,
    run_all,
    save_memory,
    step_time,
    time_to_accuracy,
    tuning,
)
from benchmarks.common import (
    config_from,
    format_table,
    is_prepared,
    last_json,
    limit_split,
    prepared_split,
)
from helpers.config import get_profile
from helpers.photos import find_photos
from helpers.prepare import prepare
from helpers.training import build_model

TINY = ["--image-size", "67", "--batch-size", "4"]  # 67 px is about the smallest AlexNet takes
TINY_MODEL = ["--variant", "compact", *TINY]

PIPELINE_KEYS = ("naive_ips", "first_epoch_ips", "cached_ips", "pipeline_speedup")
PRECISION_KEYS = ("fp32_train_ips", "auto_train_ips", "precision_speedup")
MEMORY_KEYS = ("peak_rss_gb",)
TTA_KEYS = ("wall_time_s", "epochs", "images_per_s")
FUNCTIONS = (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)


pytestmark = pytest.mark.slow

@pytest.fixture(scope="module")
def pets(tmp_path_factory) -> Path:
    """A generated PetImages folder: 12 clean photos per class, 48 px."""
    return make_petimages(tmp_path_factory.mktemp("pets"), per_class=12, size=48, bad_files=False)


@pytest.fixture(scope="module")
def processed(pets) -> Path:
    """The same photos, cleaned and split."""
    dest = pets.parent / "processed"
    prepare(pets, dest, workers=1)
    return dest


@pytest.fixture(autouse=True)
def float32_policy():
    """Benchmarks switch the global dtype policy; make sure they put it back."""
    yield
    assert keras.mixed_precision.dtype_policy().name == "float32"


def printed_json(capsys) -> dict:
    """The JSON object on the last line the benchmark printed."""
    out = capsys.readouterr().out
    assert out.rstrip().splitlines()[-1].startswith("{")
    return last_json(out)


def assert_positive(result: dict, keys) -> None:
    for key in keys:
        assert isinstance(result[key], int | float) and math.isfinite(result[key]), key
        assert result[key] > 0, key


def test_pipeline_prepares_petimages_and_reports(pets, tmp_path, capsys):
    returned = pipeline.main(["--data-dir", str(pets), "--work-dir", str(tmp_path), *TINY])
    result = printed_json(capsys)
    assert result == json.loads(json.dumps(returned))
    assert_positive(result, PIPELINE_KEYS)
    assert result["pipeline_speedup"] == pytest.approx(result["cached_ips"] / result["naive_ips"])
    assert is_prepared(tmp_path / "processed")
    assert result["pipeline_images"] == len(list((tmp_path / "processed" / "train").rglob("*.jpg")))
    assert result["pipeline_cache"] == "memory"  # a few photos: cached in memory, as in training
    assert not list(tmp_path.glob("pipeline-cache-*"))  # the temporary cache folder is gone


def test_pipeline_measures_a_file_cache_too(processed, tmp_path, capsys, monkeypatch):
    """A split too large for memory (the full one) is cached in a file; the first epoch must
    complete it, so the cached epoch reads it back."""
    monkeypatch.setattr("helpers.data.MEMORY_CACHE_LIMIT_BYTES", 0)
    pipeline.main(["--data-dir", str(processed), "--work-dir", str(tmp_path), *TINY])
    result = printed_json(capsys)
    assert_positive(result, PIPELINE_KEYS)
    assert result["pipeline_cache"] == "file"
    assert not list(tmp_path.glob("pipeline-cache-*"))


def test_pipeline_max_photos_limits_a_prepared_split(processed, tmp_path, capsys):
    pipeline.main(["--data-dir", str(processed), "--work-dir", str(tmp_path), "--max-photos",
                   "12", *TINY])
    result = printed_json(capsys)
    assert_positive(result, PIPELINE_KEYS)
    assert result["pipeline_images"] < len(list((processed / "train").rglob("*.jpg")))


def test_limit_split_takes_the_same_fraction_of_every_split(processed, tmp_path):
    subset = limit_split(processed, tmp_path / "subset", 12)
    assert is_prepared(subset)
    counts = {split: len(list((subset / split).rglob("*.jpg"))) for split in ("train", "val")}
    assert 0 < counts["val"] < counts["train"] <= 12
    assert (subset / "train" / "cat").stat().st_dev == (processed / "train").stat().st_dev
    (subset / "train" / "cat" / "notes.txt").write_text("mine")
    assert limit_split(processed, subset, 12) == subset  # made once, then used as it is
    assert (subset / "train" / "cat" / "notes.txt").read_text() == "mine"


def test_a_limited_split_is_made_for_the_split_it_limits(pets, processed, tmp_path):
    other = tmp_path / "other"  # the same photos split with another seed
    prepare(pets, other, seed=7, workers=1, verbose=False)
    first = prepared_split(processed, tmp_path / "work", max_photos=12)
    second = prepared_split(other, tmp_path / "work", max_photos=12)
    assert first != second and first.parent == second.parent
    for split in ("train", "val"):
        assert ({p.name for p in (second / split).rglob("*.jpg")}
                <= {p.name for p in (other / split).rglob("*.jpg")})


def test_prepared_split_uses_a_prepared_folder_as_it_is(processed, tmp_path):
    assert prepared_split(processed, tmp_path) == processed
    with pytest.raises(FileNotFoundError):
        prepared_split(tmp_path, tmp_path)


def test_precision_reports_both_throughputs(capsys):
    precision.main([*TINY_MODEL, "--steps", "1", "--warmup", "1"])
    result = printed_json(capsys)
    assert_positive(result, PRECISION_KEYS)
    assert result["auto_precision"] in ("float32", "mixed_bfloat16", "mixed_float16")


def test_memory_fills_the_cache_then_trains_some_steps_in_a_child(processed, tmp_path, capsys):
    (tmp_path / "memory-run").mkdir()  # a folder of the user's, by the name the run once had
    (tmp_path / "memory-run" / "notes.txt").write_text("mine")
    memory.main(["--data-dir", str(processed), "--work-dir", str(tmp_path), *TINY_MODEL,
                 "--steps", "2"])
    result = printed_json(capsys)
    assert_positive(result, MEMORY_KEYS)
    assert 0.1 < result["peak_rss_gb"] < 64  # a Python process with Keras, not bytes or KiB
    assert result["memory_train_images"] == len(list((processed / "train").rglob("*.jpg")))
    assert result["memory_steps"] == 2 and result["memory_image_size"] == 67
    assert sorted(p.name for p in tmp_path.iterdir()) == ["memory-run"]  # its own run removed
    assert (tmp_path / "memory-run" / "notes.txt").read_text() == "mine"


def test_memory_over_several_epochs_reports_the_peak_after_each(processed, tmp_path, capsys):
    memory.main(["--data-dir", str(processed), "--work-dir", str(tmp_path), *TINY_MODEL,
                 "--steps", "1", "--epochs", "3"])
    result = printed_json(capsys)
    by_epoch = result["peak_rss_gb_by_epoch"]
    assert result["memory_epochs"] == 3 and len(by_epoch) == 3
    assert by_epoch == sorted(by_epoch) and by_epoch[-1] <= result["peak_rss_gb"] + 1e-3
    assert [row[0] for row in memory.rows(result)][-1] == "peak RSS at the end of each epoch (GB)"


def test_save_memory_saves_each_way_in_children_and_leaves_nothing(tmp_path, capsys):
    result = save_memory.main(["--variant", "compact", "--image-size", "67",
                               "--work-dir", str(tmp_path)])
    assert printed_json(capsys) == result and result["save_variant"] == "compact"
    # the same model and optimizer state, in two zips that differ only by the save date
    assert result["save_file_gb_model_save"] > 0
    assert result["save_file_gb_save_model"] == pytest.approx(result["save_file_gb_model_save"],
                                                              rel=0.01)
    assert min(result[f"save_rise_gb_{way}"] for way in ("model_save", "save_model",
                                                         "save_weights")) >= 0
    assert list(tmp_path.iterdir()) == []  # each child's folder removed with its file


def test_memory_refuses_zero_epochs(processed, tmp_path):
    with pytest.raises(ValueError, match="must be at least 1"):
        memory.main(["--data-dir", str(processed), "--work-dir", str(tmp_path), *TINY_MODEL,
                     "--epochs", "0"])


def test_options_change_single_settings_of_the_full_profile():
    full = dataclasses.replace(get_profile("full").train, seed=42)
    assert config_from(run_all.parse([])) == full
    changed = config_from(run_all.parse(["--image-size", "99", "--seed", "3"]))
    assert (changed.image_size, changed.seed) == (99, 3)
    assert (changed.variant, changed.batch_size, changed.epochs) == (
        full.variant, full.batch_size, full.epochs)


def test_time_to_accuracy_reports(processed, tmp_path, capsys):
    time_to_accuracy.main(["--data-dir", str(processed), "--work-dir", str(tmp_path), *TINY_MODEL,
                           "--epochs", "1", "--time-limit", "300", "--verbose", "0"])
    result = printed_json(capsys)
    assert_positive(result, TTA_KEYS)
    assert result["loader"] == "tf" and result["backend"] == "tensorflow"
    assert result["epochs"] == 1 and result["reached"] == (result["seconds_to_target"] is not None)
    assert result["images_trained"] == result["train_images"] and not result["timed_out"]


def test_time_to_accuracy_trains_a_progressive_profile_in_its_stages(processed):
    config = dataclasses.replace(get_profile("quick").train, image_size=131, first_size=99,
                                 first_share=0.5, epochs=2, batch_size=4)
    result = time_to_accuracy.run(processed, config, target=2.0, verbose=0)  # never reached
    assert result["epochs"] == 2 and not result["reached"] and not result["timed_out"]
    assert result["images_trained"] == 2 * result["train_images"]


def test_time_to_accuracy_numpy_loader_stops_at_the_time_limit(processed, tmp_path, capsys):
    """The loader used without TensorFlow, and a limit that runs out after the first batch."""
    time_to_accuracy.main(["--data-dir", str(processed), "--work-dir", str(tmp_path), *TINY_MODEL,
                           "--epochs", "5", "--time-limit", "0", "--loader", "numpy",
                           "--verbose", "0"])
    result = printed_json(capsys)
    assert_positive(result, TTA_KEYS)
    assert result["loader"] == "numpy"
    assert result["timed_out"] and not result["reached"] and result["epochs"] == 1
    assert 0 < result["images_trained"] < result["train_images"]


def top_level_imports(path: Path) -> set[str]:
    """Modules a file imports when it is loaded (imports inside functions excluded); for
    `from a import b`, both a and a.b."""
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        if isinstance(node, FUNCTIONS):
            return
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.update([node.module, *(f"{node.module}.{alias.name}" for alias in node.names)])
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(ast.parse(path.read_text()))
    return found


def project_file(module: str) -> Path | None:
    """The file of a benchmarks.* or helpers.* module, None for a name that is no module."""
    path = ROOT / Path(*module.split("."))
    for candidate in (path / "__init__.py", path.with_suffix(".py")):
        if candidate.is_file():
            return candidate
    return None


def test_time_to_accuracy_imports_no_tensorflow_when_loaded():
    """Under KERAS_BACKEND=jax it must run where TensorFlow is not installed: neither it nor
    any project module it loads imports tensorflow at load time (only inside functions used
    under the TensorFlow backend)."""
    todo, seen = ["benchmarks.time_to_accuracy", "benchmarks"], set()
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        path = project_file(name)
        if path is None:
            continue
        imports = top_level_imports(path)
        assert not {m for m in imports if m.split(".")[0] == "tensorflow"}, name
        todo += [m for m in imports if m.split(".")[0] in ("benchmarks", "helpers")]
    assert {"helpers.training", "helpers.data", "helpers.environment", "benchmarks.common"} <= seen


def without_tensorflow(tmp_path: Path, backend: str, code: str) -> subprocess.CompletedProcess:
    """Run `code` under KERAS_BACKEND=backend with every import of tensorflow failing."""
    blocker = tmp_path / "blocker"
    blocker.mkdir()
    (blocker / "sitecustomize.py").write_text(
        "import sys\n"
        "class NoTensorFlow:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] == 'tensorflow':\n"
        "            raise ModuleNotFoundError(f'No module named {name!r}', name=name)\n"
        "sys.meta_path.insert(0, NoTensorFlow())\n")
    path = [str(blocker), str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])]
    env = {**os.environ, "KERAS_BACKEND": backend, "PYTHONPATH": os.pathsep.join(path)}
    return subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=300)


def test_time_to_accuracy_trains_under_jax_without_tensorflow(processed, tmp_path):
    code = ("from benchmarks.time_to_accuracy import main; main(['--data-dir', "
            f"{str(processed)!r}, '--work-dir', {str(tmp_path)!r}, '--variant', 'compact', "
            "'--image-size', '67', '--batch-size', '4', '--epochs', '1', '--verbose', '0'])")
    done = without_tensorflow(tmp_path, "jax", code)
    assert done.returncode == 0, done.stderr
    result = last_json(done.stdout)
    assert result["backend"] == "jax" and result["loader"] == "numpy"
    assert_positive(result, TTA_KEYS)


def test_run_all_prints_a_table_and_every_key(processed, tmp_path, capsys):
    out = tmp_path / "bench.json"
    run_all.main(["--data-dir", str(processed), "--work-dir", str(tmp_path), *TINY_MODEL,
                  "--steps", "1", "--warmup", "1", "--skip", "precision", "memory",
                  "--json-out", str(out)])
    printed = capsys.readouterr().out
    result = last_json(printed)
    assert "pipeline speedup" in printed and "hardware" in result
    assert "peak rise saving best.keras with model.save" in printed
    assert "XLA requested" in printed and result["step_time"]["as trained"]["ratio"] == 1.0
    assert_positive(result, PIPELINE_KEYS)
    assert json.loads(out.read_text()) == result


# Each benchmark as a user starts it, with its defaults (the full profile's run: AlexNet "bn",
# 227 px, batch 64), on a few generated photos; only the precision steps are fewer and smaller.
# Each run's JSON must show the full profile's settings.
FULL = get_profile("full").train
FEWER_STEPS = ["--steps", "1", "--warmup", "1", "--batch-size", "4"]
DEFAULT_RUNS = {
    "benchmarks.pipeline": ([], {"pipeline_image_size": FULL.image_size}),
    "benchmarks.precision": (FEWER_STEPS, {"train_variant": FULL.variant,
                                           "train_image_size": FULL.image_size}),
    "benchmarks.step_time": (FEWER_STEPS[:4], {"step_time_variant": FULL.variant,
                                               "step_time_image_size": FULL.image_size,
                                               "step_time_batch_size": FULL.batch_size}),
    "benchmarks.layer_time": (FEWER_STEPS[:4], {"layer_time_variant": FULL.variant,
                                                "layer_time_image_size": FULL.image_size,
                                                "layer_time_batch_size": FULL.batch_size}),
    "benchmarks.memory": ([], {"memory_variant": FULL.variant, "memory_steps": None,
                               "memory_epochs": 1,
                               "memory_image_size": FULL.image_size,
                               "memory_batch_size": FULL.batch_size}),
    "benchmarks.save_memory": ([], {"save_variant": FULL.variant,
                                    "save_image_size": FULL.image_size}),
    "benchmarks.time_to_accuracy": (["--time-limit", "0"], {
        "variant": FULL.variant, "image_size": FULL.image_size, "batch_size": FULL.batch_size,
        "max_epochs": FULL.epochs}),
    "benchmarks": (FEWER_STEPS, {"pipeline_image_size": FULL.image_size,
                                 "train_variant": FULL.variant,
                                 "memory_image_size": FULL.image_size,
                                 "save_image_size": FULL.image_size}),
}


@pytest.mark.parametrize("module", DEFAULT_RUNS)
def test_every_benchmark_runs_with_its_defaults(module, tmp_path):
    pets = make_petimages(tmp_path, per_class=10, size=48, bad_files=False)
    args, expected = DEFAULT_RUNS[module]
    if module == "benchmarks.save_memory":  # it needs no photos, only a folder to save in
        args = ["--work-dir", str(tmp_path / "work"), *args]
    elif module not in ("benchmarks.precision", "benchmarks.step_time",
                        "benchmarks.layer_time"):  # these need no photos
        args = ["--data-dir", str(pets), "--work-dir", str(tmp_path / "work"), *args]
    done = subprocess.run([sys.executable, "-m", module, *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-4000:]
    result = last_json(done.stdout)
    assert {key: result.get(key) for key in expected} == expected


def test_format_table_aligns_columns():
    lines = format_table([("a", "1.0", ""), ("longer name", "22.5", ">= 10  ok")]).splitlines()
    assert lines[0].startswith("measure") and set(lines[1]) <= {"-", " "}
    assert lines[2].index("1.0") == lines[3].index("22.5")


def test_tuning_trains_each_recipe_on_validation_and_records_a_row(processed, tmp_path, capsys):
    out = tmp_path / "tuning.json"
    returned = tuning.main(["--data-dir", str(processed), "--work-dir", str(tmp_path / "work"),
                            *TINY_MODEL, "--epochs", "1", "--recipes", "baseline", "adamw", "sgd",
                            "ema", "--out", str(out), "--verbose", "0"])
    rows = json.loads(out.read_text())
    assert [row["recipe"] for row in rows] == ["baseline", "adamw", "sgd", "ema"]
    assert printed_json(capsys) == {"tuning": returned} and rows == returned
    val_photos = sum(1 for _ in (processed / "val").rglob("*.jpg"))
    for row in rows:
        low, high = row["val_interval"]
        assert 0 <= low <= row["val_accuracy"] <= high <= 1
        assert row["val_photos"] == val_photos and row["epochs"] == 1 and row["image_size"] == 67
        assert row["minutes"] > 0 and row["changes"] == tuning.RECIPES[row["recipe"]].changes
        assert ("raw_val_accuracy" in row) == (row["recipe"] == "ema")  # the raw weights' too
    assert not list(tmp_path.glob(".tmp-*"))


def test_tuning_again_replaces_the_same_trial_and_keeps_the_others(tmp_path):
    out = tmp_path / "tuning.json"
    first = {"recipe": "baseline", "epochs": 1, "image_size": 67, "train_photos": 8,
             "hardware": "cpu", "backend": "tensorflow", "val_accuracy": 0.5,
             "changes": "none", "val_interval": [0.4, 0.6], "best_epoch_val_accuracy": 0.5,
             "minutes": 1.0, "images_per_s": 9.0, "precision": "float32"}
    other = first | {"recipe": "sgd"}
    tuning.record(first, out)
    tuning.record(other, out)
    rows = tuning.record(first | {"val_accuracy": 0.75}, out)
    assert rows == json.loads(out.read_text())
    assert [(row["recipe"], row["val_accuracy"]) for row in rows] == [("sgd", 0.5),
                                                                      ("baseline", 0.75)]
    tuning.record(first | {"image_size": 99}, out)  # another scale is another trial
    assert len(json.loads(out.read_text())) == 3
    assert "| sgd | none | 50.0% (40.0%–60.0%) |" in (tmp_path / "tuning.md").read_text()


@pytest.mark.parametrize("name", ["adamw", "sgd", "ema", "hour-flip-shift-ema"])
def test_tuning_compiles_the_recipes_optimizer(name):
    config = dataclasses.replace(get_profile("quick").train, image_size=67)
    recipe = tuning.RECIPES[name]
    model = build_model(dataclasses.replace(config, **recipe.overrides), steps=10)
    tuning.compile_recipe(model, recipe, config, steps=10)
    expected = {"adamw": keras.optimizers.AdamW, "sgd": keras.optimizers.SGD,
                "ema": keras.optimizers.Adam, "hour-flip-shift-ema": keras.optimizers.Adam}[name]
    assert type(model.optimizer) is expected and model.optimizer.use_ema == bool(recipe.ema)
    assert not recipe.ema or model.optimizer.ema_momentum == recipe.ema
    assert model.get_compile_config()["metrics"] == ["accuracy"]


def test_a_progressive_recipe_trains_smaller_photos_first_on_the_same_layers(processed,
                                                                              tmp_path):
    out = tmp_path / "tuning.json"
    (row,) = tuning.main(["--data-dir", str(processed), "--work-dir", str(tmp_path / "work"),
                          *TINY_MODEL, "--epochs", "3", "--recipes", "progressive-128-180",
                          "--out", str(out), "--verbose", "0"])
    assert row["phases"] == [[128, 1], [180, 3]]  # the recipe's own sizes, whatever the pilot's
    assert len(row["val_accuracy_per_epoch"]) == 3 and row["image_size"] == 180
    assert len(row["train_accuracy_per_epoch"]) == 3 and len(row["epoch_seconds"]) == 3
    assert all(0 < seconds < row["minutes"] * 60 for seconds in row["epoch_seconds"])
    assert json.loads(out.read_text()) == [row]


def test_a_recipe_with_a_stage_between_trains_three_sizes_in_order(processed, tmp_path):
    (row,) = tuning.main(["--data-dir", str(processed), "--work-dir", str(tmp_path / "work"),
                          *TINY_MODEL, "--epochs", "3", "--recipes",
                          "progressive-128-180-227-seed43", "--out",
                          str(tmp_path / "tuning.json"), "--verbose", "0"])
    assert row["phases"] == [[128, 1], [180, 2], [227, 3]] and row["image_size"] == 227
    assert len(row["val_accuracy_per_epoch"]) == 3 and 0 <= row["val_accuracy"] <= 1


def test_tuning_recipes_start_from_the_variants_dropout_not_the_full_profiles():
    """The pilots' baseline keeps meaning what it meant when the full profile took the
    less-dropout recipe: every recipe starts from the variant's rates."""
    base = dataclasses.replace(get_profile("full").train, epochs=4, image_size=128)
    baseline, less = tuning.recipe_config("baseline", base), tuning.recipe_config("less-dropout",
                                                                                   base)
    assert (baseline.conv_dropout, baseline.dense_dropout) == (None, None)
    assert (less.conv_dropout, less.dense_dropout) == (0.0, 0.3)
    assert (base.conv_dropout, base.dense_dropout) == (less.conv_dropout, less.dense_dropout)
    assert (baseline.epochs, baseline.image_size) == (4, 128)
    assert tuning.recipe_config("no-smoothing", base).label_smoothing == 0.0


def test_pilot_split_limits_training_photos_only(processed, tmp_path):
    split = tuning.pilot_split(processed, tmp_path / "tuning-4", 4)
    for name in ("cat", "dog"):
        assert len(list((split / "train" / name).glob("*.jpg"))) == 2
        assert (sorted(p.name for p in (split / "val" / name).glob("*.jpg"))
                == sorted(p.name for p in (processed / "val" / name).glob("*.jpg")))
    assert not (split / "test").exists()
    assert tuning.pilot_split(processed, tmp_path / "x", None) == processed


def test_tuning_runs_with_its_defaults(tmp_path):
    """As a user starts it (the full profile's 227 px AlexNet-bn), one recipe to keep it short."""
    pets = make_petimages(tmp_path, per_class=6, size=48, bad_files=False)
    out = tmp_path / "tuning.json"
    done = subprocess.run([sys.executable, "-m", "benchmarks.tuning", "--data-dir", str(pets),
                           "--work-dir", str(tmp_path / "work"), "--recipes", "baseline",
                           "--out", str(out), "--verbose", "0"], cwd=ROOT, capture_output=True,
                          text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-4000:]
    (row,) = json.loads(out.read_text())
    assert (row["image_size"], row["epochs"], row["batch_size"]) == (
        FULL.image_size, FULL.epochs, FULL.batch_size)


def test_step_time_compares_each_setting_with_the_step_as_trained(capsys):
    returned = step_time.main([*TINY_MODEL, "--precision", "float32", "--steps", "1",
                               "--warmup", "1"])
    assert printed_json(capsys) == returned
    found = returned["step_time"]
    assert list(found) == list(step_time.SETTINGS)
    assert found["as trained"]["ratio"] == 1.0 and not found["as trained"]["xla"]
    for values in found.values():
        assert values["images_per_s"] > 0 and values["ratio"] > 0
    # the augmentation layers cannot be compiled by XLA, so Keras falls back
    assert found["XLA requested"]["xla"] is False
    # each setting ran in its own process: only the oneDNN one with oneDNN off
    assert [name for name, values in found.items() if not values["onednn"]] == [
        step_time.ONEDNN_OFF]


def test_step_time_leaves_onednn_off_out_in_bfloat16_unless_asked():
    assert step_time.default_settings("float32") == list(step_time.SETTINGS)
    assert step_time.default_settings("mixed_bfloat16") == [
        name for name in step_time.SETTINGS if name != step_time.ONEDNN_OFF]


def test_step_time_times_the_step_as_trained_first_whatever_is_asked(capsys):
    returned = step_time.main([*TINY_MODEL, "--steps", "1", "--warmup", "1", "--settings",
                               "twice the batch"])
    assert list(returned["step_time"]) == ["as trained", "twice the batch"]


def test_step_time_here_needs_exactly_one_setting(capsys):
    with pytest.raises(SystemExit):
        step_time.main([*TINY_MODEL, "--here"])
    assert "exactly one setting" in capsys.readouterr().err


def test_layer_time_times_every_layer_beside_its_multiply_accumulates(capsys):
    returned = layer_time.main([*TINY_MODEL, "--steps", "1", "--warmup", "1"])
    printed = capsys.readouterr().out
    assert last_json(printed) == returned
    tiny = dataclasses.replace(FULL, variant="compact", image_size=67, batch_size=4)
    model = build_model(tiny, steps=1)
    layers = returned["layer_time"]
    assert [row["layer"] for row in layers] == [layer.name for layer in model.layers[1:]]
    assert all(row["ms"] > 0 for row in layers) and returned["layer_time_step_ms"] > 0
    macs = {row["layer"]: row["macs"] for row in layers}
    assert macs["conv1"] > 0 and macs["fc7"] > 0 and macs["conv1_relu"] == 0
    assert "all layers alone" in printed and "of the MACs" in printed


def test_demo_model_benchmark_needs_the_photos_not_a_split(processed):
    from benchmarks import demo_model

    with pytest.raises(ValueError, match="PetImages folder"):
        demo_model.run(find_photos(processed))
