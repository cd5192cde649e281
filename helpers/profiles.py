"""Run profiles: `quick` checks that everything works in minutes, `full` is the real run."""

from dataclasses import dataclass


@dataclass(frozen=True)
class Profile:
    """How much data a run uses and how long it trains."""

    name: str
    per_class_limit: int | None  # photos per class taken from the source; None = all
    variant: str
    epochs: int
    batch_size: int
    warmup_epochs: float


PROFILES = {
    "quick": Profile("quick", per_class_limit=150, variant="compact", epochs=2, batch_size=32,
                     warmup_epochs=0.5),
    "full": Profile("full", per_class_limit=None, variant="bn", epochs=12, batch_size=64,
                    warmup_epochs=1.0),
}


def get_profile(name: str) -> Profile:
    """The profile called `name`, with a clear error for a typo."""
    try:
        return PROFILES[name]
    except KeyError:
        raise ValueError(f"unknown PROFILE {name!r}; choose one of {sorted(PROFILES)}") from None
