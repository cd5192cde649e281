"""Print the metrics of a profile's last run, as `make run` and `make publish` do at the end."""

import argparse
import json
import sys

from helpers.config import PROFILE, get_profile
from helpers.environment import load_keras
from helpers.files import shown
from helpers.workspace import work_folders


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m tools.summary", description=__doc__)
    parser.add_argument("--profile", default=PROFILE,
                        help=f"auto, quick or full (default: {PROFILE}; auto: full on a GPU)")
    parser.add_argument("--work-dir", default="", help="the WORK_DIR the notebooks ran with")
    args = parser.parse_args(argv)
    if args.profile == "auto":
        load_keras()  # to look for a GPU
    try:
        profile = get_profile(args.profile).name
    except ValueError as error:
        sys.exit(f"error: {error}")
    work, _ = work_folders(profile, args.work_dir)
    path = work / "results" / "metrics.json"
    metrics_file = shown(path)
    if not path.exists():
        sys.exit(f"error: {metrics_file} does not exist yet: run notebook 04 (training) first")
    try:
        metrics = json.loads(path.read_text())
    except ValueError as error:
        sys.exit(f"error: {metrics_file} is not a metrics file notebook 04 wrote ({error})")
    if not isinstance(metrics, dict):
        sys.exit(f"error: {metrics_file} is not a metrics file notebook 04 wrote")
    print(f"Run summary ({profile} profile, {metrics_file}):")
    for key, value in sorted(metrics.items()):
        text = f"{value:,}" if isinstance(value, int) and not isinstance(value, bool) else value
        print(f"  {key:>24}: {text}")
    print(f"Figures: {shown(work / 'figures')}")


if __name__ == "__main__":
    main()
