"""The numbers the series is judged against: what the reference articles reported (None or an
empty string: the article does not say) and the recipes tried in tuning, for notebook 05 and
the README."""

from dataclasses import dataclass

import pandas as pd


@dataclass(frozen=True)
class Article:
    """One reference article's reported setup and result."""

    name: str
    url: str
    accuracy: float | None
    accuracy_split: str
    data: str
    epochs: int | None
    time: str
    hardware: str
    pitfall: str


REFERENCE_ARTICLES = (
    Article(
        name="Vitor dos Santos, Cats and Dogs classification using AlexNet (Medium, 2020)",
        url="https://vitorgabo.medium.com/cats-and-dogs-classification-using-alexnet-5fc52b1cc1a6",
        accuracy=0.9368, accuracy_split="test", data="Kaggle, 25,000 photos", epochs=None,
        time="14.5 h in total", hardware="", pitfall=""),
    Article(
        name="Insignite, Keras AlexNet: Dog vs. Cat Classification (GitHub)",
        url="https://github.com/Insignite/Alexnet-DogvsCat-Classification",
        accuracy=0.9125, accuracy_split="validation (best epoch, 18)",
        data="20,000 train / 5,000 val, 227 px", epochs=20, time="801-975 s/epoch",
        hardware="laptop GPU (GeForce MX150)",
        pitfall="no test split: only validation accuracy"),
    Article(
        name="qxdn, 用AlexNet实现DogsVsCats (blog, 2020)",
        url="https://github.com/qxdn/DogsVsCats",
        accuracy=0.8705, accuracy_split="test, also used as validation",
        data="Microsoft PetImages, 227 px", epochs=20, time="about 41 s/epoch",
        hardware="Colab free GPU",
        pitfall="no untouched test split: its test split was also its validation set"),
    Article(
        name="mrgloom, kaggle-dogs-vs-cats-caffe: AlexNet from scratch (GitHub, 2016)",
        url="https://github.com/mrgloom/kaggle-dogs-vs-cats-caffe",
        accuracy=0.9365, accuracy_split="test", data="Kaggle Dogs vs. Cats, 25,000 photos",
        epochs=30, time="35 min in total", hardware="GeForce GTX 1070 (NVIDIA DIGITS, Caffe)",
        pitfall="batch size and learning rate not reported"),
    Article(
        name="meng1994412, dogs_vs_cats: AlexNet-BN from scratch (GitHub)",
        url="https://github.com/meng1994412/dogs_vs_cats",
        accuracy=0.9255, accuracy_split="test", data="Kaggle Dogs vs. Cats, 25,000 photos, "
        "227 px crops", epochs=75, time="", hardware="",
        pitfall="93.76% is with 10-crop test-time augmentation, not a single crop"),
)


def comparison_table(metrics: dict, accuracy_key: str = "test_accuracy",
                     accuracy_label: str = "test") -> pd.DataFrame:
    """The reference articles and this run side by side: accuracy (and on which split), data,
    epochs, time and hardware."""
    rows = [{"source": a.name, "accuracy": a.accuracy, "measured on": a.accuracy_split or "",
             "data": a.data, "epochs": a.epochs, "time": a.time, "hardware": a.hardware,
             "caveat": a.pitfall}
            for a in REFERENCE_ARTICLES]
    rows.append({
        "source": "this series (AlexNet-{variant}, {precision})".format(**metrics),
        "accuracy": metrics[accuracy_key], "measured on": accuracy_label,
        "data": f"{metrics['train_images']:,} training photos", "epochs": metrics["epochs"],
        "time": f"{metrics['seconds_per_epoch']:.0f} s/epoch, "
                f"{metrics['wall_time_s'] / 3600:.2f} h in total",
        "hardware": metrics["hardware"], "caveat": ""})
    table = pd.DataFrame(rows).set_index("source")
    table["accuracy"] = table["accuracy"].map(lambda v: "" if pd.isna(v) else f"{v:.2%}")
    table["epochs"] = table["epochs"].map(lambda v: "" if pd.isna(v) else f"{int(v)}")
    return table


def trial_scale(row: dict) -> str:
    """The scale a tuning trial ran at, in words."""
    return (f"{row['epochs']} epochs, {row['image_size']} px, "
            f"{row['train_photos']:,} training photos")


def pilot_of(row: dict) -> str:
    """The pilot a trial belongs to: its scale at the size the pilot was run with, so that a
    recipe changing the size (size-180) is set against the baseline of its own pilot, and
    whether TensorFlow ran with oneDNN asked for (its kernels change the arithmetic's order)."""
    scale = trial_scale({**row, "image_size": row.get("pilot_image_size", row["image_size"])})
    return scale + (", oneDNN on" if row.get("onednn") else "")


def tuning_table(rows: list[dict]) -> pd.DataFrame:
    """The recipes tried on the validation split (benchmarks/tuning.py's rows), one line each:
    what changed, validation accuracy with its 95% interval, the scale of the trial, time."""
    table = pd.DataFrame([{
        "recipe": row["recipe"], "what changed": row["changes"],
        "val accuracy (95% interval)": f"{row['val_accuracy']:.1%} "
                                       f"({row['val_interval'][0]:.1%}–{row['val_interval'][1]:.1%})",
        "best epoch's": f"{row['best_epoch_val_accuracy']:.1%}",
        "scale": trial_scale(row),
        "minutes": f"{row['minutes']:,.1f}", "photos/s": f"{row['images_per_s']:,.0f}",
        "hardware": f"{row['hardware']}, {row['precision']}"
                    + (", oneDNN on" if row.get("onednn") else ""),
        "note": row.get("note", "")} for row in rows])
    if not table["note"].any():
        table = table.drop(columns="note")
    return table.set_index("recipe")


def tuning_summary(rows: list[dict]) -> list[str]:
    """One sentence per scale tried: the baseline, how far a second seed moved it (the noise a
    difference must beat), and each other recipe's difference from the baseline."""
    lines = []
    for scale in dict.fromkeys(pilot_of(row) for row in rows):
        pilot = {row["recipe"]: row for row in rows if pilot_of(row) == scale}
        found = {recipe: row["val_accuracy"] for recipe, row in pilot.items()}
        base, seed = found.pop("baseline", None), found.pop("baseline-seed43", None)
        parts = [f"baseline {base:.1%}"] if base is not None else []
        noise = None
        if base is not None and seed is not None:
            noise = abs(seed - base)
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
