"""Where the training step's time goes, layer by layer: each layer of the full profile's model
timed alone, forward and backward, on a batch of the shape it receives in training, beside its
share of the multiply-accumulates (helpers.params counts them).

Each layer runs in a compiled tf.function, as fit runs it, and computes the gradients training
needs: for its weights, and for its input once a layer with weights came before it (nothing
flows back into the photos). The full step (benchmarks.precision's train_ips) is timed in the
same run, so the table also says how much of the step the layers alone account for; the rest
is the loss, the optimizer's update and TensorFlow's own work. TensorFlow backend only.

Why: on a CPU the step time is the run's time, and it does not follow the arithmetic: layers
that move much memory for little arithmetic (batch norm, pooling, the augmentation) cost more
than their multiply-accumulates say.

    python -m benchmarks.layer_time [--steps 10] [--warmup 2]
"""

import time

from benchmarks.common import add_config_args, config_from, new_parser, report
from benchmarks.precision import add_args, train_ips
from helpers.environment import choose_precision
from helpers.params import layer_row
from helpers.training import build_model


def layer_seconds(layer, batch_size: int, input_gradient: bool, steps: int, warmup: int
                  ) -> float:
    """Mean seconds of one forward and backward pass of `layer` alone on random input."""
    import tensorflow as tf

    shape = (batch_size, *layer.input.shape[1:])
    x = tf.cast(tf.random.uniform(shape, 0, 1, seed=0), layer.input.dtype)

    @tf.function
    def step():
        with tf.GradientTape() as tape:
            if input_gradient:
                tape.watch(x)
            loss = tf.reduce_sum(tf.cast(layer(x, training=True), "float32"))
        sources = [*([x] if input_gradient else []), *layer.trainable_variables]
        return tape.gradient(loss, sources) if sources else loss

    for _ in range(warmup):
        tf.nest.map_structure(lambda t: t.numpy() if t is not None else t, step())
    start = time.perf_counter()
    for _ in range(steps):
        done = step()
    tf.nest.map_structure(lambda t: t.numpy() if t is not None else t, done)
    return (time.perf_counter() - start) / steps


def run(config, steps: int = 10, warmup: int = 2) -> dict:
    """Milliseconds and multiply-accumulates of every layer, and the whole step's ms."""
    import keras

    if keras.backend.backend() != "tensorflow":
        raise RuntimeError("benchmarks.layer_time needs the TensorFlow backend")
    policy = choose_precision(config.precision)
    previous = keras.mixed_precision.dtype_policy()
    keras.mixed_precision.set_dtype_policy(policy)
    try:
        keras.utils.set_random_seed(config.seed)
        model = build_model(config, steps=1)
        layers, weighted_before = [], False
        for layer in model.layers[1:]:  # after the input layer
            ms = 1000 * layer_seconds(layer, config.batch_size, weighted_before, steps, warmup)
            layers.append({"layer": layer.name, "type": type(layer).__name__,
                           "macs": layer_row(layer)["macs"], "ms": ms})
            weighted_before = weighted_before or bool(layer.trainable_variables)
    finally:
        keras.mixed_precision.set_dtype_policy(previous)
        keras.backend.clear_session()
    step_ips, _ = train_ips(config, policy, steps, warmup)
    return {"layer_time": layers, "layer_time_step_ms": 1000 * config.batch_size / step_ips,
            "layer_time_precision": policy, "layer_time_variant": config.variant,
            "layer_time_image_size": config.image_size,
            "layer_time_batch_size": config.batch_size, "layer_time_steps": steps}


def rows(result: dict) -> list[tuple[str, str, str]]:
    """Table rows: each layer's ms per step with its share of the layers' time, and its share
    of the multiply-accumulates; then the layers' sum against the whole step."""
    layers = result["layer_time"]
    total_ms = sum(row["ms"] for row in layers)
    total_macs = sum(row["macs"] for row in layers) or 1
    found = [(f"{row['layer']} ({row['type']}, ms per step)", f"{row['ms']:,.1f}",
              f"{row['ms'] / total_ms:.1%} of the time, {row['macs'] / total_macs:.1%} of the "
              f"MACs") for row in layers]
    step_ms = result["layer_time_step_ms"]
    return [*found, ("all layers alone (ms)", f"{total_ms:,.1f}",
                     f"{total_ms / step_ms:.0%} of the whole step's {step_ms:,.1f} ms")]


def main(argv: list[str] | None = None) -> dict:
    parser = new_parser("benchmarks.layer_time", __doc__)
    add_config_args(parser, "variant", "image_size", "batch_size", "precision")
    add_args(parser)  # --steps, --warmup and --seed, as benchmarks.precision has them
    parser.set_defaults(steps=10, warmup=2)
    args = parser.parse_args(argv)
    result = run(config_from(args), args.steps, args.warmup)
    report(rows(result), result)
    return result


if __name__ == "__main__":
    main()
