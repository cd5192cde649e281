"""What the benchmarks share: finding the photos, preparing a (possibly limited) split under a
work folder, and printing results as a table followed by one JSON line."""

import argparse
import contextlib
import dataclasses
import json
import math
from pathlib import Path

from helpers.config import get_profile
from helpers.files import write_text
from helpers.photos import CLASS_NAMES, SPLITS, find_source, link_photos
from helpers.prepare import prepare
from helpers.runs import split_id
from helpers.workspace import from_root

DEFAULT_WORK_DIR = Path("build") / "bench"


def new_parser(module: str, doc: str | None) -> argparse.ArgumentParser:
    """The argument parser of `python -m <module>`, with the module docstring as its help."""
    return argparse.ArgumentParser(prog=f"python -m {module}", description=doc,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)


def add_data_args(parser: argparse.ArgumentParser) -> None:
    """--data-dir, --max-photos, --work-dir and --seed, the same in every benchmark."""
    parser.add_argument("--data-dir", default="data/raw",
                        help="a PetImages folder (Cat/, Dog/) or a prepared split (train/, val/)")
    parser.add_argument("--max-photos", type=int, default=None,
                        help="use about this many photos in all (default: every photo)")
    parser.add_argument("--work-dir", default=str(DEFAULT_WORK_DIR),
                        help="where the benchmark prepares its split and writes (default: "
                             "build/bench)")
    parser.add_argument("--seed", type=int, default=42)


def full_config(**overrides):
    """The TrainConfig of the full profile's run (the one place a run is described), with
    the `overrides` that are not None (options left at their default)."""
    return dataclasses.replace(get_profile("full").train, **{
        key: value for key, value in overrides.items() if value is not None})


def add_config_args(parser: argparse.ArgumentParser, *names: str) -> None:
    """Options --variant, --image-size, ... for these TrainConfig fields; left out, each is the
    full profile's."""
    defaults = full_config()
    for name in names:
        default = getattr(defaults, name)
        parser.add_argument(f"--{name.replace('_', '-')}", type=type(default), default=None,
                            help=f"default: the full profile's ({default})")


def config_from(args: argparse.Namespace, **overrides):
    """The full profile's TrainConfig with the options named like its fields that were given
    (add_config_args's, --seed), then `overrides`."""
    names = [field.name for field in dataclasses.fields(full_config())]
    given = {name: getattr(args, name) for name in names if hasattr(args, name)}
    return full_config(**(given | overrides))


@contextlib.contextmanager
def training_session(processed: Path, config):
    """For a benchmark that trains `config` (a TrainConfig) on processed/train: yields (number
    of training photos, precision policy), with Keras seeded from config.seed and the policy
    set; the previous policy comes back afterwards. Refuses a split without training photos."""
    import keras

    from helpers.data import list_images
    from helpers.environment import choose_precision

    train_count = len(list_images(processed / "train")[0])
    if train_count == 0:
        raise FileNotFoundError(f"no training photos in {processed / 'train'}")
    keras.utils.set_random_seed(config.seed)
    precision = choose_precision(config.precision)
    previous = keras.mixed_precision.dtype_policy()
    keras.mixed_precision.set_dtype_policy(precision)
    try:
        yield train_count, precision
    finally:
        keras.mixed_precision.set_dtype_policy(previous)


def is_prepared(folder: Path) -> bool:
    """True when `folder` already holds a cleaned split (train/ and val/ with cat/ and dog/)."""
    return all((folder / split / name).is_dir() for split in ("train", "val")
               for name in CLASS_NAMES)


def prepared_split(data_dir: str | Path, work_dir: str | Path, max_photos: int | None = None,
                   seed: int = 42) -> Path:
    """The cleaned split to benchmark on. A PetImages folder is cleaned and split into
    work_dir/processed[-N] by helpers.prepare (a no-op when already done; N photos = N/2 per
    class); a prepared split is used as it is, or limited to about N photos with hard links."""
    data_dir, work_dir = from_root(data_dir), from_root(work_dir)
    if max_photos is not None and max_photos < 4:
        raise ValueError(f"--max-photos must be at least 4 (2 per class), got {max_photos}")
    suffix = f"-{max_photos}" if max_photos else ""
    if is_prepared(data_dir):
        if not max_photos:
            return data_dir
        return limit_split(data_dir, work_dir / f"subset{suffix}-{split_id(data_dir)}", max_photos)
    source = find_source(data_dir)
    dest = work_dir / f"processed{suffix}"
    prepare(source, dest, seed=seed,
            per_class_limit=math.ceil(max_photos / 2) if max_photos else None)
    return dest


def limit_split(processed: Path, dest: Path, max_photos: int) -> Path:
    """The first photos of every split and class of `processed`, the same fraction of each,
    about `max_photos` in all, hard-linked into `dest` once (link_photos)."""
    files = [sorted((processed / split / name).glob("*.jpg")) for split in SPLITS
             for name in CLASS_NAMES]
    fraction = min(1.0, max_photos / max(1, sum(map(len, files))))
    return link_photos([path for paths in files
                        for path in paths[:max(1, math.ceil(len(paths) * fraction))]],
                       processed, dest)


def format_table(rows: list[tuple[str, str, str]]) -> str:
    """Rows of (what, value, target) as aligned text columns with a header."""
    rows = [("measure", "value", "target"), *rows]
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True))
             .rstrip() for row in rows]
    lines.insert(1, "  ".join("-" * width for width in widths))
    return "\n".join(lines)


def check(value: float, target: float, at_most: bool = False) -> str:
    """'>= target ok' / 'MISSED'-style text for the target column."""
    met = value <= target if at_most else value >= target
    return f"{'<=' if at_most else '>='} {target:g}  {'ok' if met else 'MISSED'}"


def report(rows: list[tuple[str, str, str]], result: dict, json_out: str | Path | None = None
           ) -> None:
    """Print the table, then the result as one JSON line (always the last line printed);
    also write the JSON to `json_out` when given."""
    print(format_table(rows), flush=True)
    line = json.dumps(result, sort_keys=False)
    if json_out:
        path = from_root(json_out)
        path.parent.mkdir(parents=True, exist_ok=True)
        write_text(path, json.dumps(result, indent=1) + "\n")
    print(line, flush=True)


def last_json(text: str) -> dict:
    """The JSON object on the last non-empty line of a benchmark's output."""
    lines = [line for line in text.splitlines() if line.strip()]
    if not lines:
        raise ValueError("the benchmark printed nothing")
    return json.loads(lines[-1])
