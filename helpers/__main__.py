"""Command line: `python -m helpers {download,prepare,train,params} ...`."""

import argparse
import sys
import traceback
from dataclasses import replace
from pathlib import Path

from helpers.config import DATA_DIR, INPUT_SIZE, PROFILE, SEED, get_profile
from helpers.environment import load_keras
from helpers.files import Refused, shown


def _download(args: argparse.Namespace) -> None:
    from helpers.download import DEFAULT_URL, download

    download(url=args.url or DEFAULT_URL, dest=args.dest, sha256=args.sha256, timeout=args.timeout)


def _prepare(args: argparse.Namespace) -> None:
    from helpers.prepare import prepare

    prepare(args.source, args.dest, seed=args.seed, val_fraction=args.val_fraction,
            test_fraction=args.test_fraction, per_class_limit=args.per_class_limit)


def _params(args: argparse.Namespace) -> None:
    size = args.image_size or INPUT_SIZE
    if not 67 <= size <= 1024:  # below 67 px a layer's output is empty
        sys.exit(f"error: --image-size must be 67 to 1024 pixels, not {size}")
    load_keras()
    import pandas as pd

    from helpers.params import parameter_table

    rows = parameter_table(args.variant, classes=args.classes, image_size=size)
    table = pd.DataFrame(rows).drop(columns="trainable")  # notebook 03's table, as plain text
    print(table.map(lambda v: v if isinstance(v, str) else f"{v:,}").to_string(index=False))
    total, trainable = rows[-1]["keras"], rows[-1]["trainable"]
    print(f"\nTotal params: {total:,} (trainable {trainable:,}, "
          f"non-trainable {total - trainable:,})")


def _train(args: argparse.Namespace) -> None:
    load_keras()  # before helpers.training imports keras
    from helpers.training import train

    names = ("variant", "epochs", "batch_size", "image_size", "precision", "seed")
    overrides = {name: getattr(args, name) for name in names if getattr(args, name) is not None}
    config = replace(get_profile(args.profile).train, **overrides)
    try:
        summary = train(config, args.data, args.run_dir, restart=args.restart)
    except KeyboardInterrupt:
        sys.exit("interrupted: the finished epochs are saved; run the same command again to resume")
    print(f"epochs:      {summary['epochs']} of {config.epochs}\n"
          f"best epoch:  {summary['best_epoch']}, val accuracy {summary['val_accuracy']:.2%}\n"
          f"time:        {summary['seconds_per_epoch']:,.0f} s per epoch\n"
          f"model:       {shown(Path(args.run_dir) / 'best.keras')}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m helpers", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    p = commands.add_parser("download", help="download and extract the PetImages photos")
    p.add_argument("--url", help="archive address (default: the Microsoft download centre zip)")
    p.add_argument("--sha256", help="expected SHA-256 of the archive; a mismatch is an error")
    p.add_argument("--dest", default=DATA_DIR, help=f"where to extract (default: {DATA_DIR})")
    p.add_argument("--timeout", type=float, default=30.0, metavar="SECONDS",
                   help="give up when the server sends nothing for this long (default: 30)")
    p.set_defaults(run=_download)

    p = commands.add_parser("prepare", help="clean the photos and split them train/val/test")
    p.add_argument("--source", required=True, help="PetImages folder (with Cat/ and Dog/)")
    p.add_argument("--dest", required=True, help="output folder for the split")
    p.add_argument("--seed", type=int, default=SEED)
    p.add_argument("--val-fraction", type=float, default=0.1)
    p.add_argument("--test-fraction", type=float, default=0.1)
    p.add_argument("--per-class-limit", type=int, help="use only the first N files per class")
    p.set_defaults(run=_prepare)

    p = commands.add_parser("train", help="train (or resume) a run on a prepared split")
    p.add_argument("--data", required=True, help="the prepared split: train/ and val/ folders")
    p.add_argument("--run-dir", required=True, help="the run folder: model, history, resume state")
    p.add_argument("--profile", default=PROFILE, help=f"auto, quick or full (default: {PROFILE}): "
                   "the settings notebook 04 uses, changed by the options below")
    p.add_argument("--variant", help="original, bn or compact")
    p.add_argument("--epochs", type=int)
    p.add_argument("--batch-size", type=int)
    p.add_argument("--image-size", type=int)
    p.add_argument("--precision", help="auto, float32, mixed_float16 or mixed_bfloat16")
    p.add_argument("--seed", type=int)
    p.add_argument("--restart", action="store_true", help="start over; the earlier run's "
                   "files are moved to RUN_DIR/previous-<time>/, not deleted")
    p.set_defaults(run=_train)

    p = commands.add_parser("params", help="per-layer parameter table of an AlexNet variant")
    p.add_argument("--variant", default="original", help="original, bn or compact")
    p.add_argument("--classes", type=int, default=1000, help="1 = sigmoid head, N>1 = softmax")
    p.add_argument("--image-size", type=int, help=f"photo size in pixels (default: {INPUT_SIZE})")
    p.set_defaults(run=_params)

    args = parser.parse_args(argv)
    try:
        args.run(args)
    except (Refused, OSError, ValueError) as error:  # bad input, or a folder in the way
        sys.exit(f"error: {error}")
    except Exception:  # anything else is a bug
        traceback.print_exc()
        sys.exit("error: this is a bug in helpers; please report it with the command you ran "
                 "and the output above")


if __name__ == "__main__":
    main()
