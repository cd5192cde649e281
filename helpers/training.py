"""Training with Keras's own pieces (data, model and schedule, the callbacks of callbacks.py),
which notebook 04 shows one by one and `train()` runs in order for the CLI and demo model."""

import dataclasses
import warnings
from pathlib import Path

import keras

from helpers.alexnet import build_alexnet, head_loss
from helpers.callbacks import Backup, HistoryLog, SaveBest, StopEarly
from helpers.config import TrainConfig, saved_settings
from helpers.data import augmentation, check_split, list_images, load_split, steps_per_epoch
from helpers.environment import choose_precision, release_memory
from helpers.files import held, shown
from helpers.runs import MONITOR, RunError, epochs_done, open_run, read_json, split_id, summary


def learning_rate_schedule(config: TrainConfig, steps: int):
    """Linear warm-up to `learning_rate` over `warmup_epochs`, then cosine decay to zero."""
    total = steps * config.epochs
    warmup = min(int(steps * config.warmup_epochs), total - 1)
    return keras.optimizers.schedules.CosineDecay(
        initial_learning_rate=0.0 if warmup else config.learning_rate,
        decay_steps=total - warmup, warmup_target=config.learning_rate if warmup else None,
        warmup_steps=warmup)


def build_model(config: TrainConfig, steps: int, seed: int | None = None) -> keras.Model:
    """The compiled model: augmentation inside, Adam with the schedule, the head's loss."""
    model = build_alexnet(
        config.variant, classes=config.classes, image_size=config.image_size,
        weight_decay=config.weight_decay, batch_norm_momentum=config.batch_norm_momentum,
        conv_dropout=config.conv_dropout, dense_dropout=config.dense_dropout,
        augmentation=augmentation(rotation=config.rotation, zoom=config.zoom,
                                  translation=config.translation,
                                  seed=config.seed if seed is None else seed))
    model.compile(optimizer=keras.optimizers.Adam(learning_rate_schedule(config, steps)),
                  loss=head_loss(config.classes, None, config.label_smoothing),
                  metrics=["accuracy"])
    return model


def stages(config: TrainConfig) -> list[tuple[int, int]]:
    """(image size, epochs trained to) of each stage: first_size, then middle_size, each for its
    share of the epochs if given (progressive resizing), then image_size for the rest."""
    done, result = 0, []
    for size, share in [(config.first_size, config.first_share),
                        (config.middle_size, config.middle_share)]:
        until = min(done + max(1, round(config.epochs * share)), config.epochs - 1)
        if size and 0 < share and size < config.image_size and done < until:
            done, result = until, [*result, (size, until)]
    return [*result, (config.image_size, config.epochs)]


def at_size(model: keras.Model, image_size: int) -> keras.Model:
    """`model`'s layers (weights and optimizer shared) on image_size-pixel photos: adaptive
    average pooling, as in torchvision's AlexNet, gives fc6 the feature map it was built for."""
    flatten = model.get_layer("flatten")
    grid = tuple(flatten.input.shape[1:3])
    x = inputs = keras.Input((image_size, image_size, 3), name=model.inputs[0].name)
    for layer in model.layers[1:]:
        if layer is flatten and tuple(x.shape[1:3]) != grid:
            x = keras.layers.AdaptiveAveragePooling2D(grid, name="pool_to_fc6")(x)
        x = layer(x)
    resized = keras.Model(inputs, x, name=model.name)
    resized.compile(optimizer=model.optimizer, loss=model.loss, metrics=["accuracy"])
    return resized


def load_best_model(run_dir: str | Path) -> keras.Model:
    """The run's best model, built again from config.json with best.keras's weights: unlike
    load_model, which reads the layer settings the saving Keras wrote, it loads in any Keras 3."""
    run_dir = Path(run_dir)
    settings = read_json(run_dir / "config.json")
    if not isinstance(settings, dict):
        raise RunError(f"{shown(run_dir / 'config.json')} is missing: best.keras is loaded into "
                       "the model its settings build, so copy config.json along with it")
    config = TrainConfig(**saved_settings(settings))
    model = build_model(config, steps=1)  # the schedule's length matters only to more training
    with warnings.catch_warnings():  # the optimizer's state, needed only to train on, is skipped
        warnings.filterwarnings("ignore", "Skipping variable loading for optimizer")
        model.load_weights(run_dir / "best.keras")
    return model


def datasets(config: TrainConfig, processed_dir: str | Path, seed: int):
    """(training batches shuffled with `seed`, validation batches, number of training photos),
    with labels shaped for the head: (batch, 1) for a sigmoid, one-hot for a softmax."""
    import tensorflow as tf  # tf.data maps run TensorFlow ops, whatever the Keras backend

    processed_dir = Path(processed_dir)
    check_split(processed_dir)

    def targets(dataset):
        if config.classes == 1:
            return dataset.map(lambda x, y: (x, tf.cast(tf.expand_dims(y, -1), tf.float32)))
        return dataset.map(lambda x, y: (x, tf.one_hot(y, config.classes)))

    train_data = load_split(processed_dir / "train", config.image_size, config.batch_size,
                            shuffle=True, seed=seed)
    val_data = load_split(processed_dir / "val", config.image_size, config.batch_size)
    count = len(list_images(processed_dir / "train")[0])
    return targets(train_data), targets(val_data), count


def callbacks(config: TrainConfig, run_dir: Path) -> list[keras.callbacks.Callback]:
    """The run's callbacks in the order they act at each epoch's end: history, best model, backup
    (a kill between two loses at most that epoch), early stopping in the last stage, memory back."""
    *earlier, _ = stages(config)
    return [HistoryLog(run_dir, config.epochs), SaveBest(Path(run_dir) / "best.keras"),
            Backup(run_dir),
            StopEarly(run_dir, monitor=MONITOR, mode="max", patience=config.patience,
                      start_from_epoch=earlier[-1][1] if earlier else 0),
            keras.callbacks.LambdaCallback(on_epoch_end=lambda epoch, logs: release_memory())]


def train(config: TrainConfig, processed_dir: str | Path, run_dir: str | Path,
          verbose: int | str = "auto", restart: bool = False, extra_callbacks=()) -> dict:
    """Train on processed_dir/train, validate on its val, keep the run in run_dir as notebook 04
    does: an interrupted run resumes, a finished one is reported; one training per folder."""
    check_split(Path(processed_dir))
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    with held(run_dir / ".lock", "training"):
        said = open_run(config, run_dir, split_id(processed_dir), restart)
        if verbose:
            print(said)
        if (run_dir / "finished.json").exists():
            return summary(run_dir)
        keras.mixed_precision.set_dtype_policy(choose_precision(config.precision))
        done = epochs_done(run_dir)
        seed = config.seed + done  # a resumed run does not replay epoch 1
        keras.utils.set_random_seed(seed)
        count = len(list_images(Path(processed_dir) / "train")[0])
        model = build_model(config, steps_per_epoch(count, config.batch_size), seed)
        for size, until in stages(config):  # smaller photos first, in a progressive run
            if (until <= done and until < config.epochs) or (run_dir / "finished.json").exists():
                continue  # trained before an interruption (the last stage finishes the run)
            stage = model if size == config.image_size else at_size(model, size)
            train_data, val_data, _ = datasets(dataclasses.replace(config, image_size=size),
                                               processed_dir, config.seed + done)
            stage.fit(train_data, validation_data=val_data, initial_epoch=done, epochs=until,
                      verbose=verbose, shuffle=False,  # the pipeline shuffles
                      callbacks=callbacks(config, run_dir) + list(extra_callbacks))
            done = until
    return summary(run_dir)
