"""All the benchmarks in one run on the same photos: input pipeline, precision, step time,
time per layer, peak memory (of training, and of saving the best model), the demo model (from a
PetImages folder) and, with --time-to-accuracy, time to accuracy. Prints one table and, last,
one JSON object with every key; --json-out also writes it to a file (`make bench` uses
results/benchmarks.json).

    python -m benchmarks --data-dir data/raw [--max-photos N] [--memory-steps N]
        [--time-to-accuracy]
"""

import argparse

from benchmarks import (
    demo_model,
    layer_time,
    memory,
    pipeline,
    precision,
    save_memory,
    step_time,
)
from benchmarks.common import (
    add_config_args,
    add_data_args,
    config_from,
    new_parser,
    prepared_split,
    report,
)
from helpers.files import shown
from helpers.photos import find_photos
from helpers.workspace import from_root


def hardware() -> dict:
    """Backend, devices and precision, as helpers.environment reports them."""
    from helpers.environment import describe_hardware, device_report

    found = device_report()
    return {"hardware": describe_hardware(found), "keras_backend": found["keras_backend"],
            "keras": found["keras"], "tensorflow": found.get("tensorflow")}


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = new_parser("benchmarks", __doc__)
    add_data_args(parser)
    add_config_args(parser, "variant", "image_size", "batch_size", "precision")
    precision.add_args(parser, seed=False)
    parser.add_argument("--memory-steps", type=int, default=None,
                        help="memory: fill the training cache, then train only this many steps "
                             "(default: one whole epoch)")
    parser.add_argument("--skip", nargs="*", default=[], choices=(
        "pipeline", "precision", "step_time", "layer_time", "memory", "save_memory",
        "demo_model"))
    parser.add_argument("--time-to-accuracy", action="store_true",
                        help="also train to the target accuracy (hours on a CPU)")
    parser.add_argument("--time-limit", type=float, default=None,
                        help="seconds allowed for --time-to-accuracy (default: 3 hours)")
    parser.add_argument("--json-out", default=None, help="also write the JSON to this file")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> dict:
    args = parse(argv)
    config = config_from(args)  # the full profile's run, with the options given
    work_dir = from_root(args.work_dir)
    processed = prepared_split(args.data_dir, work_dir, args.max_photos, args.seed)
    result, rows = {}, []
    if "pipeline" not in args.skip:
        found = pipeline.run(processed, work_dir, config)
        result.update(found)
        rows += pipeline.rows(found)
    if "precision" not in args.skip:
        found = precision.run(config, args.steps, args.warmup)
        result.update(found)
        rows += precision.rows(found)
    if "step_time" not in args.skip:
        found = step_time.run(config, args.steps, args.warmup)
        result.update(found)
        rows += step_time.rows(found)
    if "layer_time" not in args.skip:
        found = layer_time.run(config, args.steps, args.warmup)
        result.update(found)
        rows += layer_time.rows(found)
    if "memory" not in args.skip:
        found = memory.run(processed, work_dir, config, args.memory_steps)
        result.update(found)
        rows += memory.rows(found)
    if "save_memory" not in args.skip:
        found = save_memory.run(config, work_dir)
        result.update(found)
        rows += save_memory.rows(found)
    if "demo_model" not in args.skip and (photos := find_photos(from_root(args.data_dir))):
        found = demo_model.run(photos, args.seed)
        result.update(found)
        rows += demo_model.rows(found)
    if args.time_to_accuracy:
        from benchmarks import time_to_accuracy as tta

        found = tta.run(processed, config, time_limit_s=args.time_limit or tta.DEFAULT_TIME_LIMIT_S)
        result.update({f"tta_{key}": value for key, value in found.items()})
        rows += tta.rows(found)
    result.update(hardware(), data_dir=shown(processed))  # no machine paths
    report(rows, result, args.json_out)
    return result


if __name__ == "__main__":
    main()
