"""Command line: `python -m helpers {download,prepare,params,links,summary} ...`."""

import argparse
import sys


def _download(args: argparse.Namespace) -> None:
    from helpers.download import DEFAULT_URL, DownloadError, download

    try:
        download(url=args.url or DEFAULT_URL, dest=args.dest, sha256=args.sha256)
    except DownloadError as error:
        sys.exit(f"error: {error}")


def _prepare(args: argparse.Namespace) -> None:
    from helpers.prepare import prepare

    try:
        prepare(args.source, args.dest, seed=args.seed, val_fraction=args.val_fraction,
                test_fraction=args.test_fraction, per_class_limit=args.per_class_limit)
    except (FileNotFoundError, ValueError) as error:
        sys.exit(f"error: {error}")


def _params(args: argparse.Namespace) -> None:
    from helpers.params import format_table, parameter_table

    try:
        table = parameter_table(args.variant, classes=args.classes, image_size=args.image_size)
    except ValueError as error:
        sys.exit(f"error: {error}")
    print(format_table(table))


def _links(args: argparse.Namespace) -> None:
    from helpers.sync_links import sync_links

    changed = sync_links(check=args.check)
    if args.check and changed:
        sys.exit("error: these files disagree with helpers/links.py (run `python -m helpers "
                 "links`): " + ", ".join(str(p) for p in changed))


def _summary(args: argparse.Namespace) -> None:
    from helpers.paths import run_paths
    from helpers.results import read_metrics

    paths = run_paths(args.profile, args.work_dir or None)
    try:
        metrics = read_metrics(paths.results / "metrics.json")
    except FileNotFoundError as error:
        sys.exit(f"error: {error}")
    print(f"Run summary ({args.profile} profile, {paths.results / 'metrics.json'}):")
    for key in sorted(metrics):
        print(f"  {key:>24}: {metrics[key]}")
    print(f"Figures: {paths.figures}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m helpers", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    p = commands.add_parser("download", help="download and extract the PetImages photos")
    p.add_argument("--url", help="archive address (default: the Microsoft download centre zip)")
    p.add_argument("--sha256", help="expected SHA-256 of the archive; a mismatch is an error")
    p.add_argument("--dest", default="data/raw", help="where to extract (default: data/raw)")
    p.set_defaults(run=_download)

    p = commands.add_parser("prepare", help="clean the photos and split them train/val/test")
    p.add_argument("--source", required=True, help="PetImages folder (with Cat/ and Dog/)")
    p.add_argument("--dest", required=True, help="output folder for the split")
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--val-fraction", type=float, default=0.1)
    p.add_argument("--test-fraction", type=float, default=0.1)
    p.add_argument("--per-class-limit", type=int, default=None,
                   help="use only the first N files of each class (quick runs)")
    p.set_defaults(run=_prepare)

    p = commands.add_parser("params", help="per-layer parameter table of an AlexNet variant")
    p.add_argument("--variant", default="original", help="original, bn or compact")
    p.add_argument("--classes", type=int, default=1000, help="1 = sigmoid head, N>1 = softmax")
    p.add_argument("--image-size", type=int, default=227)
    p.set_defaults(run=_params)

    p = commands.add_parser("links", help="rewrite Colab badges and install cells from links.py")
    p.add_argument("--check", action="store_true", help="only report files that disagree")
    p.set_defaults(run=_links)

    p = commands.add_parser("summary", help="print the metrics of the last run of a profile")
    p.add_argument("--profile", default="full", help="quick or full (default: full)")
    p.add_argument("--work-dir", default="", help="the WORK_DIR the notebooks were run with")
    p.set_defaults(run=_summary)

    args = parser.parse_args(argv)
    args.run(args)


if __name__ == "__main__":
    main()
