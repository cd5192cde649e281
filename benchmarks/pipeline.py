"""Input pipeline: images per second a training loop can be fed, three ways, on the same
training photos in one run.

(a) naive: the ImageDataGenerator way, helpers.data.naive_batches - open, decode and resize
    every photo in Python, one at a time, in every epoch;
(b) first epoch of helpers.data.load_split as training uses it (shuffled) - tf.data decodes and
    resizes in parallel and fills the uint8 cache (in memory when it fits, as in training, else
    in a file, e.g. the full training split: 1.75 GB at 180 px);
(c) a later, cached epoch of the same dataset - no decoding at all, the pixels read back from
    the cache (a file cache is checked to be complete after (b)).

Why: notebook 02 shows the cached pipeline feeding the model far faster than the naive
loop (pipeline_speedup = c / a). The photo files are read once beforehand so that neither way
pays for a cold disk.

    python -m benchmarks.pipeline --data-dir data/raw [--max-photos N] [--image-size N]
"""

import shutil
import tempfile
from pathlib import Path

from benchmarks.common import (
    add_config_args,
    add_data_args,
    check,
    config_from,
    new_parser,
    prepared_split,
    report,
)
from helpers.workspace import from_root

TARGET_SPEEDUP = 10.0


def warm_file_cache(paths: list[Path]) -> int:
    """Read every file once so the OS page cache holds them; returns the bytes read."""
    return sum(len(path.read_bytes()) for path in paths)


def naive_ips(paths, labels, image_size: int, batch_size: int) -> float:
    """Images/s of the naive per-image loop over all `paths` (one epoch)."""
    from helpers.data import images_per_second, naive_batches

    return images_per_second(naive_batches(paths, labels, image_size, batch_size))


def pipeline_ips(split_dir: Path, image_size: int, batch_size: int, seed: int,
                 cache_dir: Path) -> tuple[float, float, str]:
    """Images/s of load_split's first epoch and of its second (cached) epoch, and where the
    cache was: in memory when it fits, as with cache="auto", else in a fresh file in
    `cache_dir`, which the first epoch must complete (so the second one reads it)."""
    from helpers.data import cached_in_memory, images_per_second, list_images, load_split

    in_memory = cached_in_memory(len(list_images(split_dir)[0]), image_size)
    cache = "" if in_memory else cache_dir / "photos"
    dataset = load_split(split_dir, image_size, batch_size, shuffle=True, seed=seed, cache=cache)
    first = images_per_second(dataset)
    if not in_memory and not (cache_dir / "photos.index").is_file():
        raise RuntimeError(f"the first epoch left no complete cache file in {cache_dir}")
    cached = images_per_second(dataset)
    return first, cached, "memory" if in_memory else "file"


def run(processed: Path, work_dir: Path, config) -> dict:
    """Measure (a), (b) and (c) on processed/train at the image size and batch size of
    `config` (a TrainConfig); returns the JSON keys of this benchmark."""
    from helpers.data import list_images

    split_dir = processed / "train"
    paths, labels = list_images(split_dir)
    if not paths:
        raise FileNotFoundError(f"no photos in {split_dir}")
    warm_file_cache(paths)
    naive = naive_ips(paths, labels, config.image_size, config.batch_size)
    work_dir.mkdir(parents=True, exist_ok=True)
    cache_dir = Path(tempfile.mkdtemp(prefix="pipeline-cache-", dir=work_dir))
    try:
        first, cached, where = pipeline_ips(split_dir, config.image_size, config.batch_size,
                                            config.seed, cache_dir)
    finally:
        shutil.rmtree(cache_dir, ignore_errors=True)
    return {"naive_ips": naive, "first_epoch_ips": first, "cached_ips": cached,
            "pipeline_speedup": cached / naive, "pipeline_images": len(paths),
            "pipeline_image_size": config.image_size, "pipeline_cache": where}


def rows(result: dict) -> list[tuple[str, str, str]]:
    """Table rows for this benchmark's result."""
    n = result["pipeline_images"]
    return [
        (f"naive loop, {n} photos (images/s)", f"{result['naive_ips']:.1f}", ""),
        ("load_split, first epoch (images/s)", f"{result['first_epoch_ips']:.1f}", ""),
        (f"load_split, cached epoch, cache in {result['pipeline_cache']} (images/s)",
         f"{result['cached_ips']:.1f}", ""),
        ("pipeline speedup (cached / naive)", f"{result['pipeline_speedup']:.1f}x",
         check(result["pipeline_speedup"], TARGET_SPEEDUP)),
    ]


def main(argv: list[str] | None = None) -> dict:
    parser = new_parser("benchmarks.pipeline", __doc__)
    add_data_args(parser)
    add_config_args(parser, "image_size", "batch_size")
    args = parser.parse_args(argv)
    processed = prepared_split(args.data_dir, args.work_dir, args.max_photos, args.seed)
    result = run(processed, from_root(args.work_dir), config_from(args))
    report(rows(result), result)
    return result


if __name__ == "__main__":
    main()
