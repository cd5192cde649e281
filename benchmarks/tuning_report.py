"""The tuning trials as people read them: per pilot, each recipe against its baseline and the
seed noise, and a table of every trial; written as results/tuning.md, which notebook 05 shows.

    python -m benchmarks.tuning_report   # rewrite results/tuning.md from results/tuning.json
"""

import json
from pathlib import Path

import pandas as pd

from helpers.files import write_text
from helpers.workspace import from_root

TUNING = Path("results") / "tuning.json"


def trial_scale(row: dict, pilot: bool = False) -> str:
    """A trial's scale in words; with `pilot`, its pilot's: at the pilot's image size (a recipe
    changing it is set against its own baseline), and with oneDNN, which changes the arithmetic."""
    size = row.get("pilot_image_size", row["image_size"]) if pilot else row["image_size"]
    phases = row.get("phases", [])  # smaller sizes first (benchmarks/tuning.py's phases)
    if len(phases) > 1:
        starts = [0] + [until for _, until in phases[:-2]]  # each stage begins where one ended
        earlier = [f"{each} px for {until - start}"
                   for (each, until), start in zip(phases[:-1], starts, strict=True)]
        size = f"{', '.join(earlier)}, then {size}"
    return (f"{row['epochs']} epochs, {size} px, {row['train_photos']:,} training photos"
            + (", oneDNN on" if pilot and row.get("onednn") else ""))


def tuning_table(rows: list[dict]) -> pd.DataFrame:
    """The recipes tried (benchmarks/tuning.py's rows): change, val accuracy, scale, time."""
    table = pd.DataFrame([{
        "recipe": row["recipe"], "what changed": row["changes"],
        "val accuracy (95% interval)": f"{row['val_accuracy']:.1%} "
                                       f"({row['val_interval'][0]:.1%}–{row['val_interval'][1]:.1%})",
        "best epoch's": f"{row['best_epoch_val_accuracy']:.1%}", "scale": trial_scale(row),
        "minutes": f"{row['minutes']:,.1f}", "photos/s": f"{row['images_per_s']:,.0f}",
        "hardware": f"{row['hardware']}, {row['precision']}"
                    + (", oneDNN on" if row.get("onednn") else ""),
        "note": row.get("note", "")} for row in rows]).set_index("recipe")
    return table if table["note"].any() else table.drop(columns="note")


def tuning_summary(rows: list[dict]) -> list[str]:
    """Per pilot: the baseline, a second seed's distance (the noise), each recipe's difference."""
    baselines = {trial_scale(row, pilot=True) for row in rows if row["recipe"] == "baseline"}

    def group(row: dict) -> str:  # its pilot's scale; with no baseline to set it against, its own
        scale = trial_scale(row, pilot=True)
        return scale if scale in baselines else trial_scale(
            {**row, "pilot_image_size": row["image_size"]}, pilot=True)

    lines = []
    for scale in dict.fromkeys(map(group, rows)):
        pilot = {row["recipe"]: row for row in rows if group(row) == scale}
        found = {recipe: row["val_accuracy"] for recipe, row in pilot.items()}
        base, seed = found.pop("baseline", None), found.pop("baseline-seed43", None)
        parts = [f"baseline {base:.1%}"] if base is not None else []
        noise = None if base is None or seed is None else abs(seed - base)
        if noise is not None:
            parts.append(f"a second seed {seed:.1%} ({noise * 100:.1f} points apart: smaller "
                         "differences are chance)")
        for recipe, accuracy in found.items():
            if base is None:
                parts.append(f"{recipe} {accuracy:.1%}")
                continue
            verdict = ("" if noise is None else
                       ", more than chance" if abs(accuracy - base) > noise else ", within chance")
            row, baseline = pilot[recipe], pilot["baseline"]
            if row["image_size"] != baseline["image_size"]:  # a faster or slower step
                verdict += (f", at {row['image_size']} px in "
                            f"{row['minutes'] / baseline['minutes']:.2f}× the baseline's minutes")
            parts.append(f"{recipe} {(accuracy - base) * 100:+.1f} points{verdict}")
        lines.append(f"{scale}: " + "; ".join(parts))
    return lines


def markdown(rows: list[dict]) -> str:
    """The summary as a list, then the table, in Markdown."""
    table = tuning_table(rows).reset_index()
    lines = [f"- {line}" for line in tuning_summary(rows)]
    lines += ["", "| " + " | ".join(table.columns) + " |", "|" + "---|" * len(table.columns)]
    lines += ["| " + " | ".join(map(str, row)) + " |" for row in table.itertuples(index=False)]
    return "\n".join(lines) + "\n"


def write(rows: list[dict], path: Path) -> None:
    """Write the report beside the tuning file at `path` (tuning.md for tuning.json)."""
    write_text(path.with_suffix(".md"), markdown(rows))


if __name__ == "__main__":
    tuning = from_root(TUNING)
    write(json.loads(tuning.read_text()), tuning)
