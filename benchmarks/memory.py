"""Peak resident memory of one full-profile training epoch over all photos, cache included.

A child Python process runs helpers.training.train for one epoch with the full profile's
settings (AlexNet "bn", 227 px, batch 64, automatic precision) on the prepared split: the uint8
cache of every training photo, the shuffle buffer, the model, Adam's slots and validation all
count. The child reports its own peak resident set size (getrusage ru_maxrss of itself and of
any process it waited for), so nothing the parent did before can inflate it.

Why: the series claims a full run fits a 12 GB Colab / laptop with room to spare: peak_rss_gb
(GB = 10^9 bytes) at most 6.

    python -m benchmarks.memory --data-dir data/raw [--max-photos N]
"""

import argparse
import json
import resource
import shutil
import subprocess
import sys
import time
from dataclasses import asdict
from pathlib import Path

from benchmarks.common import (
    add_data_args,
    check,
    last_json,
    new_parser,
    prepared_split,
    report,
)
from helpers.paths import from_root

TARGET_GB = 6.0
REPO = Path(__file__).resolve().parents[1]


def full_epoch_config(variant: str | None = None, image_size: int | None = None,
                      batch_size: int | None = None, seed: int = 42):
    """TrainConfig of the full profile, one epoch (variant / size / batch overridable)."""
    from helpers.profiles import get_profile
    from helpers.training import TrainConfig

    full = get_profile("full")
    return TrainConfig(variant=variant or full.variant, epochs=1,
                       batch_size=batch_size or full.batch_size,
                       warmup_epochs=full.warmup_epochs, image_size=image_size or full.image_size,
                       seed=seed)


def peak_rss_bytes() -> int:
    """Peak resident memory of this process and of its waited-for children (Linux: KiB)."""
    peak_kib = max(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
                   resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
    return peak_kib * (1 if sys.platform == "darwin" else 1024)


def child(config_json: str, processed: str, run_dir: str) -> None:
    """In the child: train one epoch, then print the peak memory as the last JSON line."""
    from helpers.training import TrainConfig, train

    config = TrainConfig(**json.loads(config_json))
    shutil.rmtree(run_dir, ignore_errors=True)  # a fresh run, never a resumed one
    summary = train(config, processed, run_dir, verbose=2)
    print(json.dumps({"peak_rss_bytes": peak_rss_bytes(), "seconds": summary["this_call_s"],
                      "train_images": summary["train_images"],
                      "precision": summary["precision"]}), flush=True)


def measure(processed: Path, run_dir: Path, config) -> dict:
    """Run `child` in a fresh interpreter, echo its output, return its JSON line."""
    command = [sys.executable, "-m", "benchmarks.memory", "--child", json.dumps(asdict(config)),
               str(processed), str(run_dir)]
    started = time.perf_counter()
    with subprocess.Popen(command, cwd=REPO, stdout=subprocess.PIPE, text=True) as process:
        lines = []
        for line in process.stdout:
            print(line, end="", flush=True)
            lines.append(line)
    if process.returncode:
        raise RuntimeError(f"the training child failed with exit code {process.returncode}")
    found = last_json("".join(lines))
    found["wall_s"] = time.perf_counter() - started
    return found


def run(processed: Path, work_dir: Path, variant: str | None = None,
        image_size: int | None = None, batch_size: int | None = None, seed: int = 42) -> dict:
    """Peak memory of one full-profile epoch on `processed`; returns this benchmark's keys."""
    config = full_epoch_config(variant, image_size, batch_size, seed)
    run_dir = work_dir / "memory-run"
    try:
        found = measure(processed, run_dir, config)
    finally:
        shutil.rmtree(run_dir, ignore_errors=True)  # a best.keras of ~0.7 GB
    return {"peak_rss_gb": found["peak_rss_bytes"] / 1e9, "memory_train_images":
            found["train_images"], "memory_epoch_s": found["seconds"],
            "memory_variant": config.variant, "memory_image_size": config.image_size,
            "memory_batch_size": config.batch_size}


def rows(result: dict) -> list[tuple[str, str, str]]:
    """Table rows for this benchmark's result."""
    what = (f"{result['memory_train_images']} photos, {result['memory_variant']}, "
            f"{result['memory_image_size']} px")
    return [(f"peak RSS, one training epoch ({what}, GB)", f"{result['peak_rss_gb']:.2f}",
             check(result["peak_rss_gb"], TARGET_GB, at_most=True))]


def add_args(parser: argparse.ArgumentParser) -> None:
    """This benchmark's own options (defaults: the full profile)."""
    parser.add_argument("--variant", default=None, help="default: the full profile's (bn)")
    parser.add_argument("--image-size", type=int, default=None, help="default: 227")
    parser.add_argument("--batch-size", type=int, default=None, help="default: 64")


def main(argv: list[str] | None = None) -> dict | None:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--child"]:
        child(*argv[1:])
        return None
    parser = new_parser("benchmarks.memory", __doc__)
    add_data_args(parser)
    add_args(parser)
    args = parser.parse_args(argv)
    processed = prepared_split(args.data_dir, args.work_dir, args.max_photos, args.seed)
    result = run(processed, from_root(args.work_dir), args.variant, args.image_size,
                 args.batch_size, args.seed)
    report(rows(result), result)
    return result


if __name__ == "__main__":
    main()
