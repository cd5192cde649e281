"""results/metrics.json: the numbers of a run, filled in by notebooks 04 and 06."""

import json
from datetime import UTC, datetime
from pathlib import Path


def update_metrics(path: str | Path, **fields) -> dict:
    """Merge `fields` into the JSON file at `path` (created when missing) and return it all."""
    path = Path(path)
    metrics = json.loads(path.read_text()) if path.exists() else {}
    metrics.update(fields)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(metrics, indent=2, sort_keys=True) + "\n")
    return metrics


def read_metrics(path: str | Path) -> dict:
    """The metrics written so far, with a clear error when notebook 04 has not run yet."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist yet: run notebook 04 (training) first")
    return json.loads(path.read_text())


def now() -> str:
    """The current UTC time, to the second, for run metadata."""
    return datetime.now(UTC).replace(microsecond=0).isoformat()
