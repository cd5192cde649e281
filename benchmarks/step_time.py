"""Where the training step's time goes: the full profile's step against single changes to it.

Each setting trains the full profile's model (helpers.training.build_model, in the automatic
precision) on one synthetic batch, timed as benchmarks.precision times it, all in one run so
the ratios compare like with like on this machine:

* as trained: the full profile's run (227 px, batch 64, augmentation inside the model);
* XLA requested: compiled with jit_compile=True (Keras leaves XLA off on a CPU by default, and
  falls back when a layer cannot be compiled; the row says whether XLA really ran);
* flip only: no random rotation, zoom or translation (what those three cost);
* 180 px: the shared photos' own size instead of upscaling to 227 px;
* twice the batch.

Why: on a CPU the hour-long run is all step time, so each lever is worth knowing as a ratio
before a training run spends an hour on it.

    python -m benchmarks.step_time [--steps 20] [--warmup 3]
"""

import dataclasses

from benchmarks.common import add_config_args, config_from, new_parser, report
from benchmarks.precision import add_args, train_ips
from helpers.training import resolve_precision

SETTINGS = {  # name: (the TrainConfig fields it changes, given the full profile's; XLA asked)
    "as trained": (lambda config: {}, False),
    "XLA requested": (lambda config: {}, True),
    "flip only (no rotation, zoom, translation)": (
        lambda config: {"rotation": 0.0, "zoom": 0.0, "translation": 0.0}, False),
    "180 px (the photos' own size)": (lambda config: {"image_size": 180}, False),
    "twice the batch": (lambda config: {"batch_size": 2 * config.batch_size}, False),
}


def run(config, steps: int = 20, warmup: int = 3) -> dict:
    """Images/s of each setting and its ratio to the full profile's step."""
    policy = resolve_precision(config)
    found = {}
    for name, (changes, jit_compile) in SETTINGS.items():
        ips, compiled = train_ips(dataclasses.replace(config, **changes(config)), policy, steps,
                                  warmup, jit_compile)
        found[name] = {"images_per_s": ips, "xla": compiled}
    base = found["as trained"]["images_per_s"]
    for values in found.values():
        values["ratio"] = values["images_per_s"] / base
    return {"step_time": found, "step_time_precision": policy,
            "step_time_variant": config.variant, "step_time_image_size": config.image_size,
            "step_time_batch_size": config.batch_size, "step_time_steps": steps}


def rows(result: dict) -> list[tuple[str, str, str]]:
    """Table rows: each setting's images/s, its ratio, and whether XLA ran."""
    return [(f"{name} (images/s)", f"{values['images_per_s']:.1f}",
             f"{values['ratio']:.2f}x" + (", XLA on" if values["xla"] else ""))
            for name, values in result["step_time"].items()]


def main(argv: list[str] | None = None) -> dict:
    parser = new_parser("benchmarks.step_time", __doc__)
    add_config_args(parser, "variant", "image_size", "batch_size", "precision")
    add_args(parser)  # --steps, --warmup and --seed, as benchmarks.precision has them
    args = parser.parse_args(argv)
    result = run(config_from(args), args.steps, args.warmup)
    report(rows(result), result)
    return result


if __name__ == "__main__":
    main()
