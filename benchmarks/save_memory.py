"""Peak memory of saving the best model: Keras's model.save against helpers.files.save_model
(what SaveBest calls) and model.save_weights (what the backup calls every epoch), each once in a
fresh child process, on the full profile's model with its optimizer state (the files hold both).

Each child builds the model, resets its peak resident set size (/proc/self/clear_refs), saves
into --work-dir, and reports how far the peak (VmHWM) rose above the resident size before the
save: the memory a save adds on top of what training holds. Linux only.

Why: when memory allows, model.save zips a copy of every weight held in memory; save_model saves
the model to a folder first and zips the files from disk.

    python -m benchmarks.save_memory [--variant bn] [--image-size 180]
"""

import json
import shutil
import subprocess
import sys
import tempfile
from dataclasses import asdict
from pathlib import Path

from benchmarks.common import (
    DEFAULT_WORK_DIR,
    add_config_args,
    config_from,
    last_json,
    new_parser,
    report,
)
from helpers.workspace import from_root

METHODS = ("model.save", "save_model", "save_weights")
REPO = Path(__file__).resolve().parents[1]


def status_bytes(field: str) -> int:
    """A memory field of /proc/self/status (VmRSS: resident now, VmHWM: peak), in bytes."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"/proc/self/status has no {field}")


def child(config_json: str, method: str, work_dir: str) -> None:
    """In the child: build the model and its optimizer's slots, save it with `method`, print
    the resident size before and the peak after as the last JSON line."""
    import keras

    from helpers.config import TrainConfig
    from helpers.environment import choose_precision
    from helpers.files import save_model
    from helpers.training import build_model

    config = TrainConfig(**json.loads(config_json))
    keras.mixed_precision.set_dtype_policy(choose_precision(config.precision))
    model = build_model(config, steps=1)
    model.optimizer.build(model.trainable_variables)
    folder = Path(tempfile.mkdtemp(prefix="save-memory-", dir=work_dir))
    try:
        path = folder / ("best.weights.h5" if method == "save_weights" else "best.keras")
        Path("/proc/self/clear_refs").write_text("5")  # the peak starts again from now
        before = status_bytes("VmRSS")
        if method == "model.save":
            model.save(path)
        elif method == "save_model":
            save_model(model, path)
        else:
            model.save_weights(path)
        print(json.dumps({"before_bytes": before, "peak_bytes": status_bytes("VmHWM"),
                          "file_bytes": path.stat().st_size}), flush=True)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def run(config, work_dir: Path) -> dict:
    """Each method's rise of the peak over the resident size before the save, in GB."""
    if not Path("/proc/self/clear_refs").exists():
        raise RuntimeError("benchmarks.save_memory needs Linux's /proc/self: it runs on Linux only")
    work_dir.mkdir(parents=True, exist_ok=True)
    found = {}
    for method in METHODS:
        done = subprocess.run([sys.executable, "-m", "benchmarks.save_memory", "--child",
                               json.dumps(asdict(config)), method, str(work_dir)],
                              cwd=REPO, capture_output=True, text=True, timeout=900)
        if done.returncode:
            raise RuntimeError(f"the {method} child failed: {done.stderr.strip()[-2000:]}")
        found[method] = last_json(done.stdout)
    rise = {method: (row["peak_bytes"] - row["before_bytes"]) / 1e9
            for method, row in found.items()}
    return {"save_rise_gb_model_save": rise["model.save"],
            "save_rise_gb_save_model": rise["save_model"],
            "save_rise_gb_save_weights": rise["save_weights"],
            "save_file_gb_model_save": found["model.save"]["file_bytes"] / 1e9,
            "save_file_gb_save_model": found["save_model"]["file_bytes"] / 1e9,
            "save_variant": config.variant, "save_image_size": config.image_size}


def rows(result: dict) -> list[tuple[str, str, str]]:
    """Table rows for this benchmark's result."""
    what = (f"{result['save_variant']}, {result['save_image_size']} px, a "
            f"{result['save_file_gb_model_save']:.2f} GB file")
    return [(f"peak rise saving best.keras with model.save ({what}, GB)",
             f"{result['save_rise_gb_model_save']:.2f}", ""),
            ("peak rise saving it with save_model (through a folder, GB)",
             f"{result['save_rise_gb_save_model']:.2f}", ""),
            ("peak rise saving the weights with save_weights, as the backup does (GB)",
             f"{result['save_rise_gb_save_weights']:.2f}", "")]


def main(argv: list[str] | None = None) -> dict | None:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--child"]:
        child(*argv[1:])
        return None
    parser = new_parser("benchmarks.save_memory", __doc__)
    add_config_args(parser, "variant", "image_size")
    parser.add_argument("--work-dir", default=str(DEFAULT_WORK_DIR),
                        help="where the children save (default: build/bench)")
    args = parser.parse_args(argv)
    result = run(config_from(args), from_root(args.work_dir))
    report(rows(result), result)
    return result


if __name__ == "__main__":
    main()
