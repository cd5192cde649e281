"""The settings of a run, in one place: the defaults every notebook and command starts from,
the training recipe (TrainConfig) and the profiles that fill it in."""

from dataclasses import dataclass

DATA_DIR = "data/raw"  # where the photos are looked for, and downloaded when missing
SEED = 42
PROFILE = "auto"  # what a notebook or command runs when not told otherwise: see get_profile
# The input size Keras tutorials give the 2012 layout (the paper says 224; 227 makes the
# arithmetic of conv1 work out): the default wherever the series sizes a photo.
INPUT_SIZE = 227
# How much of the old moving average each training step keeps, in the batch-norm layers. Keras's
# default, 0.99, lags behind weights that still change fast, so validation accuracy can sit at
# chance while training accuracy climbs (results/tuning.json); 0.9 is PyTorch's default.
BATCH_NORM_MOMENTUM = 0.9


@dataclass(frozen=True)
class TrainConfig:
    """Everything a run depends on; saved next to the model as config.json."""

    variant: str = "bn"
    classes: int = 1
    epochs: int = 12
    batch_size: int = 64
    learning_rate: float = 1e-3
    warmup_epochs: float = 1.0
    label_smoothing: float = 0.05
    weight_decay: float | None = None  # None = the variant's default
    conv_dropout: float | None = None  # None = the variant's default
    dense_dropout: float | None = None  # None = the variant's default (0.5, as in the paper)
    batch_norm_momentum: float = BATCH_NORM_MOMENTUM  # not Keras's 0.99, which lags
    rotation: float = 0.05
    zoom: float = 0.1
    translation: float = 0.1
    patience: int = 4
    image_size: int = INPUT_SIZE
    first_size: int | None = None  # progressive resizing: train at this size first, if given,
    first_share: float = 0.0  # for this share of the epochs (at least one epoch at image_size),
    middle_size: int | None = None  # then at this size, if given,
    middle_share: float = 0.0  # for this share
    precision: str = "auto"
    seed: int = SEED

    def __post_init__(self):
        sizes = (self.first_size, self.middle_size, self.image_size)
        if min(self.epochs, self.batch_size, self.classes) < 1 or min(s or 67 for s in sizes) < 67:
            raise ValueError(f"epochs, batch size and classes must be at least 1 and the image "
                             f"sizes at least 67 pixels (got {self.epochs}, {self.batch_size}, "
                             f"{self.classes} and sizes {sizes})")


def saved_settings(saved: dict) -> dict:
    """The TrainConfig fields of a run's config.json, which also holds the split's fingerprint."""
    return {key: saved[key] for key in TrainConfig.__dataclass_fields__ if key in saved}


@dataclass(frozen=True)
class Profile:
    """How much data a run uses and how it trains."""

    name: str
    per_class_limit: int | None  # photos per class taken from the source; None = all
    train: TrainConfig


PROFILES = {
    # The demo recipe: a compact AlexNet at 112 px with flips and shifts only, on 5,000
    # photos per class (4,000 to train on): minutes on a 2-core CPU (benchmarks/demo_model.py).
    "quick": Profile("quick", 5000, TrainConfig(variant="compact", epochs=12, batch_size=64,
                                                learning_rate=3e-3, warmup_epochs=0.5,
                                                rotation=0.0, zoom=0.0, image_size=112)),
    # The best recipe on validation in results/tuning.json: less dropout, no label smoothing or
    # rotation, 22 epochs: 10 at 128 px, 9 at the photos' own 180 px, the last 3 at 227 px,
    # 1–2 hours on a 2-core BF16 CPU (docs/performance.md).
    "full": Profile("full", None, TrainConfig(
        variant="bn", epochs=22, batch_size=64, warmup_epochs=1.0, label_smoothing=0.0,
        conv_dropout=0.0, dense_dropout=0.3, rotation=0.0, image_size=227, first_size=128,
        first_share=10 / 22, middle_size=180, middle_share=9 / 22)),
}


def get_profile(name: str) -> Profile:
    """The profile called `name`, with a clear error for a typo; "auto" is the full run where
    a GPU is found and the quick one otherwise."""
    if name == "auto":
        from helpers.environment import gpus

        name = "full" if gpus() else "quick"
    if name not in PROFILES:
        raise ValueError(f"unknown PROFILE {name!r}; choose one of {['auto', *sorted(PROFILES)]}")
    return PROFILES[name]
