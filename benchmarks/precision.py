"""Training throughput of one model in float32 and in the project's automatic precision.

The full profile's AlexNet (variant "bn", 227 px, batch 64, augmentation inside, compiled by
helpers.training.build_model; the options change single settings) trains on the same synthetic
uint8 batch, built and compiled fresh for each dtype policy. The first --warmup steps (tracing,
compilation, memory pools) are not timed; the next --steps are. train_on_batch returns its
losses as NumPy values, so every timed step has finished when the clock stops.

Why: helpers.environment.choose_precision picks mixed_bfloat16 on a CPU with bf16 matrix units
(AMX / AVX-512 BF16) and mixed_float16 on a GPU; the series claims at least 1.5x the float32
throughput on such a CPU (precision_speedup = auto / float32).

    python -m benchmarks.precision [--steps 20] [--warmup 3] [--batch-size 64]
"""

import argparse
import dataclasses
import gc
import time
import warnings

from benchmarks.common import add_config_args, check, config_from, new_parser, report

TARGET_SPEEDUP = 1.5


def synthetic_batch(batch_size: int, image_size: int, classes: int = 1, seed: int = 0):
    """Random 0-255 uint8 photos and matching targets: (batch, 1) floats or one-hot rows."""
    import numpy as np

    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, (batch_size, image_size, image_size, 3), dtype=np.uint8)
    labels = rng.integers(0, 2 if classes == 1 else classes, batch_size)
    targets = (labels[:, None].astype("float32") if classes == 1
               else np.eye(classes, dtype="float32")[labels])
    return images, targets


def train_ips(config, policy: str, steps: int = 20, warmup: int = 3,
              jit_compile: bool = False) -> tuple[float, bool]:
    """Images/s of train_on_batch of `config`'s model (a TrainConfig) under dtype `policy`,
    timed over `steps` after `warmup`, and whether XLA compiled it (`jit_compile` asks for
    it; Keras falls back, with a warning, for a model that XLA cannot compile)."""
    import keras

    from helpers.training import build_model

    if steps < 1 or warmup < 1:
        raise ValueError("--steps and --warmup must be at least 1")
    previous = keras.mixed_precision.dtype_policy()
    keras.mixed_precision.set_dtype_policy(policy)  # global: set before building the model
    try:
        keras.utils.set_random_seed(config.seed)
        model = build_model(dataclasses.replace(config, precision=policy), steps=warmup + steps)
        if jit_compile:
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", "Model doesn't support `jit_compile")
                model.compile(optimizer=model.optimizer, loss=model.loss, metrics=["accuracy"],
                              jit_compile=True)
        images, targets = synthetic_batch(config.batch_size, config.image_size, config.classes,
                                          config.seed)
        images, targets = keras.ops.convert_to_tensor(images), keras.ops.convert_to_tensor(targets)
        for _ in range(warmup):
            model.train_on_batch(images, targets)
        start = time.perf_counter()
        for _ in range(steps):
            model.train_on_batch(images, targets)
        elapsed = time.perf_counter() - start
    finally:
        keras.mixed_precision.set_dtype_policy(previous)
        keras.backend.clear_session()
        gc.collect()
    return steps * config.batch_size / elapsed, bool(model.jit_compile)


def run(config, steps: int = 20, warmup: int = 3) -> dict:
    """float32 vs `config`'s precision (a TrainConfig; "auto": the automatic choice) for its
    model, image size and batch size; returns this benchmark's JSON keys."""
    from helpers.environment import choose_precision

    auto = choose_precision(config.precision)
    fp32, _ = train_ips(config, "float32", steps, warmup)
    chosen, _ = train_ips(config, auto, steps, warmup)
    return {"fp32_train_ips": fp32, "auto_train_ips": chosen, "precision_speedup": chosen / fp32,
            "auto_precision": auto, "train_variant": config.variant,
            "train_image_size": config.image_size, "train_batch_size": config.batch_size,
            "train_steps": steps}


def rows(result: dict) -> list[tuple[str, str, str]]:
    """Table rows for this benchmark's result."""
    what = (f"{result['train_variant']}, {result['train_image_size']} px, batch "
            f"{result['train_batch_size']}")
    return [
        (f"training float32 ({what}, images/s)", f"{result['fp32_train_ips']:.1f}", ""),
        (f"training {result['auto_precision']} (images/s)", f"{result['auto_train_ips']:.1f}", ""),
        ("precision speedup (auto / float32)", f"{result['precision_speedup']:.2f}x",
         check(result["precision_speedup"], TARGET_SPEEDUP)),
    ]


def add_args(parser: argparse.ArgumentParser, seed: bool = True) -> None:
    """The options of the benchmarks that time synthetic steps (this one, step_time; run_all
    shares --steps and --warmup and has its own --seed)."""
    parser.add_argument("--steps", type=int, default=20, help="timed steps per setting")
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps first")
    if seed:
        parser.add_argument("--seed", type=int, default=42)


def main(argv: list[str] | None = None) -> dict:
    parser = new_parser("benchmarks.precision", __doc__)
    add_config_args(parser, "variant", "image_size", "batch_size", "precision")
    add_args(parser)
    args = parser.parse_args(argv)
    result = run(config_from(args), args.steps, args.warmup)
    report(rows(result), result)
    return result


if __name__ == "__main__":
    main()
