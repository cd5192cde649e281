"""The demo model: what notebooks 06 and 07 train when opened alone, without notebook 04's model.

In a temporary work folder, the quick profile's split is made from the PetImages photos
(workspace.start("quick", ...), as in a fresh runtime) and helpers.evaluation.saved_or_demo_model
trains the demo model: the validation accuracy it reaches and the minutes it takes, split
making excluded. The temporary folder is removed afterwards.

Why: a demo model near 50% shows a confusion matrix, mistakes and Grad-CAM maps with nothing to
learn from; the series asks for at least 80% validation accuracy in at most 3 minutes on a
2-core CPU.

    python -m benchmarks.demo_model --data-dir data/raw
"""

import tempfile
import time

from benchmarks.common import add_data_args, check, new_parser, report
from helpers.photos import find_photos
from helpers.workspace import from_root

TARGET_ACCURACY = 0.80
TARGET_MINUTES = 3.0


def run(source, seed: int = 42) -> dict:
    """Train the demo model from the PetImages folder `source` (find_photos's answer: None when
    there is none); its accuracy and minutes."""
    from helpers import workspace
    from helpers.evaluation import saved_or_demo_model
    from helpers.runs import summary

    if source is None:
        raise ValueError("the demo model is made from a PetImages folder (Cat/ and Dog/); "
                         "--data-dir has none")
    with tempfile.TemporaryDirectory(prefix="demo-model-") as folder:
        run = workspace.start("quick", source, seed=seed, work_dir=folder)
        started = time.perf_counter()
        saved_or_demo_model(run)
        seconds = time.perf_counter() - started
        trained = summary(run.models / "demo")
    return {"demo_val_accuracy": trained["val_accuracy"], "demo_minutes": seconds / 60,
            "demo_epochs": trained["epochs"]}


def rows(found: dict) -> list[tuple[str, str, str]]:
    return [("demo model: validation accuracy", f"{found['demo_val_accuracy']:.2%}",
             check(found["demo_val_accuracy"], TARGET_ACCURACY)),
            ("demo model: minutes to train", f"{found['demo_minutes']:.1f}",
             check(found["demo_minutes"], TARGET_MINUTES, at_most=True))]


def main(argv: list[str] | None = None) -> dict:
    parser = new_parser("benchmarks.demo_model", __doc__)
    add_data_args(parser)
    args = parser.parse_args(argv)
    from helpers.environment import load_keras

    load_keras()
    found = run(find_photos(from_root(args.data_dir)), args.seed)
    report(rows(found), found)
    return found


if __name__ == "__main__":
    main()
