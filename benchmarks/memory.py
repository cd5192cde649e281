"""Peak resident memory of full-profile training over all photos, caches included.

A child Python process trains the full profile's run (config.get_profile("full").train: AlexNet
"bn", batch 64, automatic precision; the options change single settings) on the prepared split
as helpers.training.train does, in its stages for the epochs it trains (one epoch: 227 px
only; six: three at 128 px, two at 180, then one at 227): load_split's caches (the training
split's in a file, which the OS page cache holds, outside the process's memory; validation's in
memory), the shuffle buffer, the model, Adam's slots, validation and the checkpoint callbacks all
count. The child reports its own peak resident set size (getrusage ru_maxrss of itself and of
any process it waited for), so nothing the parent did before can inflate it.

By default the child trains one whole epoch (on a 2-core CPU in float32, 30+ minutes). With
--steps N it first makes one full pass over the training pipeline, decoding and caching every
photo as epoch 1 does, then trains only N steps and validates: the same caches, buffer, model
and validation, in minutes. With --epochs N it trains N epochs and reports the peak after each,
which shows whether memory grows from epoch to epoch (one epoch's peak cannot). With
--malloc glibc the child leaves glibc's malloc as it is instead of fixing its mmap threshold
(helpers.environment.fix_mmap_threshold) and trimming its arenas after each epoch
(release_memory, one of the training callbacks), to measure what those do.

Why: the series claims a full run fits a 12 GB Colab / laptop with room to spare: peak_rss_gb
(GB = 10^9 bytes) at most 6.

    python -m benchmarks.memory --data-dir data/raw [--max-photos N] [--steps N] [--epochs N]
                                [--malloc fixed|glibc]
"""

import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, replace
from pathlib import Path

from benchmarks.common import (
    add_config_args,
    add_data_args,
    check,
    config_from,
    last_json,
    new_parser,
    prepared_split,
    report,
)
from helpers.environment import KEEP_GLIBC_MALLOC
from helpers.workspace import from_root

TARGET_GB = 6.0
REPO = Path(__file__).resolve().parents[1]


def peak_rss_bytes() -> int:
    """Peak resident memory of this process and of its waited-for children (Linux: KiB)."""
    peak_kib = max(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
                   resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
    return peak_kib * (1 if sys.platform == "darwin" else 1024)


def child(config_json: str, processed: str, run_dir: str, steps: str, epochs: str) -> None:
    """In the child: train as helpers.training.train does, for `epochs` epochs (or, with
    `steps`, the training cache filled first and then that many steps per epoch), then print
    the peak memory, overall and at the end of each epoch, as the last JSON line."""
    import keras

    from helpers.config import TrainConfig
    from helpers.data import list_images, steps_per_epoch
    from helpers.environment import choose_precision
    from helpers.training import at_size, build_model, callbacks, datasets, open_run, stages

    steps, epochs = int(steps) or None, int(epochs)
    config = replace(TrainConfig(**json.loads(config_json)), epochs=epochs)
    started = time.perf_counter()
    precision = choose_precision(config.precision)
    keras.mixed_precision.set_dtype_policy(precision)
    open_run(config, run_dir)
    keras.utils.set_random_seed(config.seed)
    count = len(list_images(Path(processed) / "train")[0])
    model = build_model(config, steps_per_epoch(count, config.batch_size), config.seed)
    by_epoch, done = [], 0
    record = keras.callbacks.LambdaCallback(
        on_epoch_end=lambda epoch, logs: by_epoch.append(peak_rss_bytes()))
    for size, until in stages(config):
        train, val, _ = datasets(replace(config, image_size=size), processed, config.seed + done)
        if steps:
            for _ in train:  # the stage's first epoch's work on the data: every photo cached
                pass
        stage = model if size == config.image_size else at_size(model, size)
        stage.fit(train, validation_data=val, initial_epoch=done, epochs=until,
                  steps_per_epoch=steps, verbose=2, shuffle=False,  # the pipeline shuffles
                  callbacks=[*callbacks(config, run_dir), record])
        done = until
    print(json.dumps({"peak_rss_bytes": peak_rss_bytes(), "peak_rss_by_epoch": by_epoch,
                      "train_images": count,
                      "seconds": time.perf_counter() - started, "precision": precision}),
          flush=True)


def measure(processed: Path, run_dir: Path, config, steps: int | None, epochs: int,
            malloc: str) -> dict:
    """Run `child` in a fresh interpreter, echo its output, return its JSON line."""
    command = [sys.executable, "-m", "benchmarks.memory", "--child", json.dumps(asdict(config)),
               str(processed), str(run_dir), str(steps or 0), str(epochs)]
    env = {**os.environ, KEEP_GLIBC_MALLOC: malloc}
    started = time.perf_counter()
    with subprocess.Popen(command, cwd=REPO, stdout=subprocess.PIPE, text=True,
                          env=env) as process:
        lines = []
        for line in process.stdout:
            print(line, end="", flush=True)
            lines.append(line)
    if process.returncode:
        raise RuntimeError(f"the training child failed with exit code {process.returncode}")
    found = last_json("".join(lines))
    found["wall_s"] = time.perf_counter() - started
    return found


def run(processed: Path, work_dir: Path, config, steps: int | None = None,
        epochs: int = 1, malloc: str = "fixed") -> dict:
    """Peak memory of training `config` (a TrainConfig) on `processed` for `epochs` epochs of
    all photos, or with `steps` the cache filled and then that many steps per epoch, with
    malloc "fixed" (threshold fixed, arenas trimmed) or as "glibc" leaves it; returns this
    benchmark's keys."""
    if steps is not None and steps < 1:
        raise ValueError(f"--steps must be at least 1, got {steps}")
    if epochs < 1:
        raise ValueError(f"--epochs must be at least 1, got {epochs}")
    work_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="memory-run-", dir=work_dir) as run_dir:  # a fresh run
        found = measure(processed, Path(run_dir), config, steps, epochs, malloc)
    return {"peak_rss_gb": found["peak_rss_bytes"] / 1e9, "memory_train_images":
            found["train_images"], "memory_train_s": found["seconds"], "memory_steps": steps,
            "memory_epochs": epochs, "memory_malloc": malloc,
            "peak_rss_gb_by_epoch": [round(b / 1e9, 3) for b in found["peak_rss_by_epoch"]],
            "memory_variant": config.variant, "memory_image_size": config.image_size,
            "memory_batch_size": config.batch_size, "memory_precision": found["precision"]}


def rows(result: dict) -> list[tuple[str, str, str]]:
    """Table rows for this benchmark's result."""
    what = (f"{result['memory_train_images']:,} photos, {result['memory_variant']}, "
            f"{result['memory_image_size']} px")
    if result["memory_malloc"] == "glibc":
        what += ", glibc's malloc as it is"
    steps, epochs = result["memory_steps"], result["memory_epochs"]
    how = "one training epoch" if epochs == 1 else f"{epochs} training epochs"
    if steps is not None:
        how = f"cache filled + {steps} training steps" + (f" x {epochs}" if epochs > 1 else "")
    table = [(f"peak RSS, {how} ({what}, GB)", f"{result['peak_rss_gb']:.2f}",
              check(result["peak_rss_gb"], TARGET_GB, at_most=True))]
    if epochs > 1:  # growth from epoch to epoch is what one epoch's peak cannot show
        table.append(("peak RSS at the end of each epoch (GB)",
                      ", ".join(f"{gb:.2f}" for gb in result["peak_rss_gb_by_epoch"]), ""))
    return table


def main(argv: list[str] | None = None) -> dict | None:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--child"]:
        child(*argv[1:])
        return None
    parser = new_parser("benchmarks.memory", __doc__)
    add_data_args(parser)
    add_config_args(parser, "variant", "image_size", "batch_size")
    parser.add_argument("--steps", type=int, default=None,
                        help="fill the training cache, then train only this many steps "
                             "(default: one whole epoch)")
    parser.add_argument("--epochs", type=int, default=1,
                        help="train this many epochs and report the peak after each (default: 1)")
    parser.add_argument("--malloc", choices=("fixed", "glibc"), default="fixed",
                        help="fixed: malloc's mmap threshold fixed and its arenas trimmed "
                             "after each epoch, as the project runs (default); glibc: left as "
                             "glibc sets it, for comparison")
    args = parser.parse_args(argv)
    processed = prepared_split(args.data_dir, args.work_dir, args.max_photos, args.seed)
    result = run(processed, from_root(args.work_dir), config_from(args), args.steps,
                 args.epochs, args.malloc)
    report(rows(result), result)
    return result


if __name__ == "__main__":
    main()
