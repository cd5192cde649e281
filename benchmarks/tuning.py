"""Tuning on the validation split: train each recipe the same way and record what it reached.

A recipe is the full profile's run (config.get_profile("full").train) with the
variant's dropout rates (PILOT_BASE) and a few settings changed, and optionally another
optimizer or an average of the weights. Every recipe trains for --epochs on the first
--train-photos training photos (half per class; default: all) at --image-size, and is judged on
the whole validation split. The test split is never read.

Each result is one row of results/tuning.json (or --out): the recipe, what changed, the
validation accuracy at the end of training and its 95% interval, the best epoch's, every
epoch's validation and training accuracy and seconds, minutes, images/s, the CPU or GPU (and
whether oneDNN was asked for), the pilot's scale, and for a recipe that averages the weights
the raw weights' last epoch too. A row replaces an earlier one of the same recipe, scale and
hardware; the file is rewritten atomically after every recipe, so an interrupted tuning keeps
what it finished. Notebook 05 shows the table.

Why: a recipe change earns its place by a measured gain on validation, with the noise (the
interval, and the baseline trained with a second seed) beside it. Short pilots rank recipes
cheaply; only the full-scale run says what the winner reaches.

    python -m benchmarks.tuning --data-dir data/raw [--recipes baseline adamw]
        [--epochs 4 --image-size 128 --train-photos 5000]
"""

import dataclasses
import json
import math
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import keras

from benchmarks import tuning_report
from benchmarks.common import (
    add_config_args,
    add_data_args,
    config_from,
    new_parser,
    prepared_split,
    report,
    training_session,
)
from benchmarks.time_to_accuracy import StopAtAccuracy, choose_loader, fit_data
from helpers.data import list_images, steps_per_epoch
from helpers.environment import describe_hardware, device_report
from helpers.evaluation import wilson_interval
from helpers.files import write_text
from helpers.photos import first_photos, link_photos
from helpers.runs import split_id
from helpers.training import at_size, build_model, learning_rate_schedule, stages
from helpers.workspace import from_root

DEFAULT_OUT = Path("results") / "tuning.json"


@dataclass(frozen=True)
class Recipe:
    """What a recipe changes: TrainConfig fields, the optimizer, an average of the weights."""

    changes: str  # in words, for the table
    overrides: dict = field(default_factory=dict)
    optimizer: str = "adam"  # adam (build_model's), adamw or sgd
    ema: float = 0.0  # the momentum of an average of the weights, judged at the end; 0: none


HOUR_AT_180 = {"image_size": 180, "label_smoothing": 0.0, "rotation": 0.0, "conv_dropout": 0.0,
               "dense_dropout": 0.3}
PROGRESSIVE = {**HOUR_AT_180, "first_size": 128, "first_share": 10 / 22}
PROGRESSIVE_227 = {**PROGRESSIVE, "image_size": 227, "middle_size": 180, "middle_share": 9 / 22}
RECIPES = {
    "baseline": Recipe("the recipe the pilots started from: Adam 1e-3 with warm-up + cosine, L2 "
                       "2e-4 in the layers, label smoothing 0.05, batch-norm momentum 0.9, the "
                       "variant's dropout"),
    "baseline-seed43": Recipe("the same, another seed: how far chance alone moves a result",
                              {"seed": 43}),
    "adamw": Recipe("AdamW: weight decay 0.05 decoupled from the gradient, no L2 in the layers",
                    {"weight_decay": 0.0}, optimizer="adamw"),
    "sgd": Recipe("SGD with Nesterov momentum 0.9, learning rate 0.02",
                  {"learning_rate": 0.02}, optimizer="sgd"),
    "ema": Recipe("Adam plus an exponential moving average of the weights (momentum 0.99), "
                  "judged with the averaged weights", ema=0.99),
    "bn-momentum-0.99": Recipe("Keras's default batch-norm momentum, 0.99, instead of 0.9",
                               {"batch_norm_momentum": 0.99}),
    "no-smoothing": Recipe("label smoothing 0 instead of 0.05", {"label_smoothing": 0.0}),
    "size-180": Recipe("the photos' own 180 px instead of upscaling to 227", {"image_size": 180}),
    "less-dropout": Recipe("less dropout: none after the convolutions (0.1 before), 0.3 after "
                           "fc6 and fc7 (0.5 before)", {"conv_dropout": 0.0,
                                                        "dense_dropout": 0.3}),
    "no-rotation": Recipe("no random rotation (flip, zoom and shift stay): one image transform "
                          "fewer per step", {"rotation": 0.0}),
    "flip-shift": Recipe("a flip and a shift only, no rotation or zoom: the cheapest step",
                         {"rotation": 0.0, "zoom": 0.0}),
    "hour-at-180": Recipe("the full profile's recipe at the photos' own 180 px, without label "
                          "smoothing and rotation, trained for as many epochs as fit the hour",
                          HOUR_AT_180),
    "hour-flip-shift-ema": Recipe("hour-at-180 with a flip and a shift only (no zoom), and an "
                                  "average of the weights (momentum 0.999, about the last 1,000 "
                                  "steps) judged at the end; its last epoch's validation is the "
                                  "raw weights'", {**HOUR_AT_180, "zoom": 0.0}, ema=0.999),
    "progressive-128-180": Recipe("hour-at-180, but the first 10 of 22 epochs at 128 px, where a "
                                  "step costs a little over half: more epochs in the hour. The "
                                  "same layers train at both sizes; at 128 px each cell of the "
                                  "2x2 last feature map is copied into a 2x2 block of the 4x4 "
                                  "that fc6 reads at 180 px", PROGRESSIVE),
    "progressive-128-180-seed43": Recipe("progressive-128-180 with another seed: how far chance "
                                         "alone moves its result",
                                         {**PROGRESSIVE, "seed": 43}),
    "progressive-14-of-24-seed43": Recipe("progressive-128-180-seed43, but the first 14 of 24 "
                                          "epochs at 128 px: four more small-photo epochs for "
                                          "two fewer at 180 px, about the same minutes",
                                          {**PROGRESSIVE, "epochs": 24, "first_share": 14 / 24,
                                           "seed": 43}),
    "progressive-10-of-24-seed43": Recipe("progressive-128-180-seed43 with two more epochs at "
                                          "180 px (10 of 24 at 128 px): the minutes a family-26 "
                                          "CPU has left in the hour, if it runs 1.8 times as "
                                          "fast as a family-25 one",
                                          {**PROGRESSIVE, "epochs": 24, "first_share": 10 / 24,
                                           "seed": 43}),
    "progressive-128-180-227-seed43": Recipe("progressive-128-180-seed43, but the last 3 of its "
                                             "22 epochs at 227 px, AlexNet's own size (the "
                                             "180 px photos upscaled): fc6 reads the 6x6 last "
                                             "feature map of 227 px photos, which the earlier "
                                             "stages fill from their 2x2 and 4x4 maps by "
                                             "adaptive average pooling",
                                             {**PROGRESSIVE_227, "seed": 43}),
    "progressive-128-180-227": Recipe("progressive-128-180-227-seed43 with the full profile's "
                                      "seed, 42: whether its gain over progressive-128-180 "
                                      "holds for a second seed", PROGRESSIVE_227),
}
# What every recipe starts from, given the full profile's config: the variant's dropout rates,
# label smoothing and rotation, one image size, as when the pilots began (the full profile has
# since taken less-dropout's, hour-at-180's, progressive-128-180's and progressive-128-180-227's
# settings).
PILOT_BASE = {"conv_dropout": None, "dense_dropout": None, "label_smoothing": 0.05,
              "rotation": 0.05, "first_size": None, "first_share": 0.0, "middle_size": None,
              "middle_share": 0.0}
PILOT_RECIPES = ("baseline", "bn-momentum-0.99", "baseline-seed43", "adamw", "sgd", "ema")


def compile_recipe(model: keras.Model, recipe: Recipe, config, steps: int) -> None:
    """Recompile build_model's model with the recipe's optimizer (same schedule, loss and
    metric); Adam without an average keeps build_model's compile."""
    if recipe.optimizer == "adam" and not recipe.ema:
        return
    schedule = learning_rate_schedule(config, steps)
    average = {"use_ema": True, "ema_momentum": recipe.ema} if recipe.ema else {}
    if recipe.optimizer == "adam":
        optimizer = keras.optimizers.Adam(schedule, **average)
    elif recipe.optimizer == "adamw":
        optimizer = keras.optimizers.AdamW(schedule, weight_decay=0.05, **average)
    elif recipe.optimizer == "sgd":
        optimizer = keras.optimizers.SGD(schedule, momentum=0.9, nesterov=True, **average)
    else:
        raise ValueError(f"unknown optimizer {recipe.optimizer!r}: use adam, adamw or sgd")
    model.compile(optimizer=optimizer, loss=model.loss, metrics=["accuracy"])


def pilot_split(processed: Path, dest: Path, train_photos: int | None) -> Path:
    """The split to tune on: the first train_photos/2 training photos of each class and every
    validation photo, hard-linked into `dest` once (link_photos); `processed` itself when
    train_photos is None."""
    if train_photos is None:
        return processed
    if train_photos < 2:
        raise ValueError(f"--train-photos must be at least 2 (1 per class), got {train_photos}")
    return link_photos(first_photos(processed / "train", train_photos // 2)
                       + first_photos(processed / "val", None), processed, dest)


def recipe_config(name: str, base):
    """The TrainConfig recipe `name` trains with: `base` (the full profile's, with the pilot's
    scale) from PILOT_BASE, with the recipe's changes."""
    return dataclasses.replace(base, **{**PILOT_BASE, **RECIPES[name].overrides})


def train_recipe(name: str, processed: Path, base, verbose: int | str = 2) -> dict:
    """Train recipe `name` from `base` (a TrainConfig) on processed/train; its result row."""
    recipe = RECIPES[name]
    config = recipe_config(name, base)
    with training_session(processed, config) as (train_count, precision):
        steps = steps_per_epoch(train_count, config.batch_size)
        model = build_model(config, steps)  # one schedule over every stage's epochs
        compile_recipe(model, recipe, config, steps)
        seconds, images, train_seconds, per_epoch, done = 0.0, 0, 0.0, [], 0
        train_per_epoch, epoch_seconds, phases = [], [], stages(config)
        for size, epochs in phases:
            train_kwargs, val_kwargs = fit_data(processed, dataclasses.replace(
                config, image_size=size), choose_loader("auto"))
            stage = model if size == config.image_size else at_size(model, size)
            clock = StopAtAccuracy(math.inf, math.inf, train_count, config.batch_size)
            started = time.perf_counter()
            history = stage.fit(**train_kwargs, **val_kwargs, initial_epoch=done, epochs=epochs,
                                verbose=verbose, callbacks=[clock])
            seconds += time.perf_counter() - started  # training and each epoch's validation
            images, train_seconds = images + clock.images, train_seconds + clock.train_seconds
            epoch_seconds += clock.epoch_seconds
            per_epoch += [float(value) for value in history.history["val_accuracy"]]
            train_per_epoch += [float(value) for value in history.history["accuracy"]]
            done = epochs
        val = val_kwargs["validation_data"]  # a dataset, or (images, targets) arrays
        final = (model.evaluate(*val, batch_size=config.batch_size, verbose=0, return_dict=True)
                 if isinstance(val, tuple) else model.evaluate(val, verbose=0, return_dict=True))
    val_count = len(list_images(processed / "val")[0])
    report = device_report()
    accuracy = float(final["accuracy"])  # after fit: the averaged weights, for an EMA recipe
    low, high = wilson_interval(round(accuracy * val_count), val_count)
    return {
        "recipe": name, "changes": recipe.changes, "val_accuracy": accuracy,
        "val_interval": [low, high], "best_epoch_val_accuracy": max(per_epoch),
        "val_accuracy_per_epoch": per_epoch, "train_accuracy_per_epoch": train_per_epoch,
        "epoch_seconds": epoch_seconds, "minutes": seconds / 60,
        "images_per_s": images / train_seconds if train_seconds else 0.0,
        "epochs": config.epochs, "image_size": config.image_size,
        "pilot_image_size": base.image_size, "train_photos": train_count,
        "val_photos": val_count, "batch_size": config.batch_size,
        "precision": precision, "hardware": describe_hardware(report),
        "onednn": report.get("onednn", False), "backend": keras.backend.backend(),
        "date": datetime.now(UTC).replace(microsecond=0).isoformat(),
    } | ({"raw_val_accuracy": per_epoch[-1]} if recipe.ema else {}) | (
        {"phases": [list(stage) for stage in phases]} if len(phases) > 1 else {})


def same_trial(a: dict, b: dict) -> bool:
    """Rows of one recipe at one scale on one machine (a newer one replaces the older)."""
    keys = ("recipe", "epochs", "image_size", "train_photos", "hardware", "onednn", "backend")
    return all(a.get(key) == b.get(key) for key in keys)


def record(row: dict, path: Path) -> list[dict]:
    """Add `row` to the tuning file at `path` (replacing the same trial), atomically."""
    rows = json.loads(path.read_text()) if path.exists() else []
    rows = [old for old in rows if not same_trial(old, row)] + [row]
    path.parent.mkdir(parents=True, exist_ok=True)
    write_text(path, json.dumps(rows, indent=1) + "\n")
    tuning_report.write(rows, path)
    return rows


def rows(results: list[dict]) -> list[tuple[str, str, str]]:
    """Table rows: recipe, final val accuracy with interval, minutes."""
    return [(f"{row['recipe']} ({row['epochs']} epochs, {row['image_size']} px, "
             f"{row['train_photos']:,} photos)",
             f"{row['val_accuracy']:.2%} [{row['val_interval'][0]:.1%}, "
             f"{row['val_interval'][1]:.1%}]", f"{row['minutes']:.1f} min") for row in results]


def main(argv: list[str] | None = None) -> list[dict]:
    parser = new_parser("benchmarks.tuning", __doc__)
    add_data_args(parser)
    parser.add_argument("--recipes", nargs="+", choices=sorted(RECIPES),
                        default=list(PILOT_RECIPES), help="recipes to train, in this order")
    add_config_args(parser, "epochs", "image_size", "variant", "batch_size", "precision")
    parser.add_argument("--train-photos", type=int, default=None,
                        help="training photos per recipe (default: all)")
    parser.add_argument("--out", default=str(DEFAULT_OUT), help="the tuning file to add to")
    parser.add_argument("--verbose", type=int, default=2, help="model.fit verbosity")
    args = parser.parse_args(argv)
    processed = prepared_split(args.data_dir, args.work_dir, args.max_photos, args.seed)
    if args.train_photos:
        processed = pilot_split(processed, from_root(args.work_dir)
                                / f"tuning-{args.train_photos}-{split_id(processed)}",
                                args.train_photos)
    base = config_from(args)
    out, results = from_root(args.out), []
    for name in args.recipes:
        print(f"== {name}: {RECIPES[name].changes}", flush=True)
        results.append(train_recipe(name, processed, base, args.verbose))
        record(results[-1], out)
    report(rows(results), {"tuning": results})
    return results


if __name__ == "__main__":
    main()
