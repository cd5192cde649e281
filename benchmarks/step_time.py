"""Where the training step's time goes: the full profile's step against single changes to it.

Each setting trains the full profile's model (helpers.training.build_model, in the automatic
precision) on one synthetic batch, timed as benchmarks.precision times it, each in a Python
process of its own (so that no setting inherits another's memory pools), one after another
in one run so the ratios compare like with like on this machine:

* as trained: the full profile's last stage (227 px, batch 64, augmentation inside the model);
* XLA requested: compiled with jit_compile=True (Keras leaves XLA off on a CPU by default, and
  falls back when a layer cannot be compiled; the row says whether XLA really ran);
* flip only: no random rotation, zoom or translation (what those three cost);
* the middle stage's photo size (180 px, the photos' own): what a progressive run saves there;
* twice the batch;
* malloc as glibc leaves it: without helpers.environment.fix_mmap_threshold, which keeps
  memory from growing over epochs (benchmarks.memory); this row says what that costs in time;
* oneDNN off: TF_ENABLE_ONEDNN_OPTS=0 (helpers.environment.load_keras turns oneDNN's CPU
  kernels on; TensorFlow alone does so only on CPUs with AVX-512 VNNI or newer). Timed by
  default only in float32: a CPU with bfloat16 has VNNI, so TensorFlow uses oneDNN there
  anyway, and bfloat16 without oneDNN's kernels crawls (on a 2-core AMD EPYC with AVX-512
  BF16, 23 such steps had not finished after 10 minutes; the step as trained takes 1 s).

Why: on a CPU the hour-long run is all step time, so each lever is worth knowing as a ratio
before a training run spends an hour on it.

    python -m benchmarks.step_time [--steps 20] [--warmup 3] [--settings "as trained" ...]
"""

import dataclasses
import os
import subprocess
import sys
from pathlib import Path

from benchmarks.common import add_config_args, config_from, last_json, new_parser, report
from benchmarks.precision import add_args, train_ips
from helpers.environment import KEEP_GLIBC_MALLOC, choose_precision

SETTINGS = {  # name: (the TrainConfig fields it changes, given the full profile's; XLA asked;
    # environment variables for its process)
    "as trained": (lambda config: {}, False, {}),
    "XLA requested": (lambda config: {}, True, {}),
    "flip only (no rotation, zoom, translation)": (
        lambda config: {"rotation": 0.0, "zoom": 0.0, "translation": 0.0}, False, {}),
    "the middle stage's photo size": (
        lambda config: {"image_size": config.middle_size or config.image_size}, False, {}),
    "twice the batch": (lambda config: {"batch_size": 2 * config.batch_size}, False, {}),
    "oneDNN off (TF_ENABLE_ONEDNN_OPTS=0)": (lambda config: {}, False,
                                             {"TF_ENABLE_ONEDNN_OPTS": "0"}),
    f"malloc as glibc leaves it ({KEEP_GLIBC_MALLOC}=glibc)": (lambda config: {}, False,
                                                            {KEEP_GLIBC_MALLOC: "glibc"}),
}
BASE = "as trained"
ONEDNN_OFF = "oneDNN off (TF_ENABLE_ONEDNN_OPTS=0)"


def default_settings(precision: str) -> list[str]:
    """The settings timed when none are named: all of them, but oneDNN off only in float32."""
    return [name for name in SETTINGS if name != ONEDNN_OFF or precision == "float32"]


def time_here(config, name: str, steps: int, warmup: int) -> dict:
    """Images/s of setting `name` in this process, and whether XLA compiled it."""
    changes, jit_compile, _ = SETTINGS[name]
    ips, compiled = train_ips(dataclasses.replace(config, **changes(config)),
                              choose_precision(config.precision), steps, warmup, jit_compile)
    return {"images_per_s": ips, "xla": compiled,
            "onednn": os.environ.get("TF_ENABLE_ONEDNN_OPTS") == "1"}


def time_apart(config, name: str, steps: int, warmup: int) -> dict:
    """time_here in a new process with the setting's environment (TensorFlow reads oneDNN's
    switch once, when it is imported)."""
    args = ["--variant", config.variant, "--image-size", str(config.image_size),
            "--batch-size", str(config.batch_size), "--precision", config.precision,
            "--steps", str(steps), "--warmup", str(warmup), "--seed", str(config.seed),
            "--settings", name, "--here"]
    done = subprocess.run([sys.executable, "-m", "benchmarks.step_time", *args],
                          cwd=Path(__file__).resolve().parents[1], capture_output=True, text=True,
                          env=os.environ | SETTINGS[name][2])
    if done.returncode != 0:
        raise RuntimeError(f"step time of {name!r} failed: {done.stderr.strip()[-2000:]}")
    return last_json(done.stdout)["step_time"][name]


def run(config, steps: int = 20, warmup: int = 3, names: list[str] | None = None) -> dict:
    """Images/s of each setting named (default: default_settings; the step as trained always,
    first), each timed in its own process, and its ratio to the step as trained."""
    names = names or default_settings(choose_precision(config.precision))
    names = [BASE, *(name for name in names if name != BASE)]
    found = {name: time_apart(config, name, steps, warmup) for name in names}
    for values in found.values():
        values["ratio"] = values["images_per_s"] / found[BASE]["images_per_s"]
    return {"step_time": found, "step_time_precision": choose_precision(config.precision),
            "step_time_variant": config.variant, "step_time_image_size": config.image_size,
            "step_time_batch_size": config.batch_size, "step_time_steps": steps}


def rows(result: dict) -> list[tuple[str, str, str]]:
    """Table rows: each setting's images/s, its ratio, and whether XLA ran."""
    return [(f"{name} (images/s)", f"{values['images_per_s']:.1f}",
             f"{values['ratio']:.2f}x" + (", XLA on" if values["xla"] else ""))
            for name, values in result["step_time"].items()]


def main(argv: list[str] | None = None) -> dict:
    parser = new_parser("benchmarks.step_time", __doc__)
    add_config_args(parser, "variant", "image_size", "batch_size", "precision")
    add_args(parser)  # --steps, --warmup and --seed, as benchmarks.precision has them
    parser.add_argument("--settings", nargs="+", choices=list(SETTINGS), default=None,
                        help="settings to time (default: all; oneDNN off only in float32)")
    parser.add_argument("--here", action="store_true",
                        help="time one setting in this process, with its environment as it is "
                             "(how each setting's own process runs)")
    args = parser.parse_args(argv)
    config = config_from(args)
    if args.here:
        if not args.settings or len(args.settings) != 1:
            parser.error("--here times exactly one setting: give it with --settings")
        (name,) = args.settings
        result = {"step_time": {name: time_here(config, name, args.steps, args.warmup)}}
        report([(f"{name} (images/s)", f"{result['step_time'][name]['images_per_s']:.1f}", "")],
               result)
        return result
    result = run(config, args.steps, args.warmup, args.settings)
    report(rows(result), result)
    return result

if __name__ == "__main__":
    main()
