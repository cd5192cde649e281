"""The numbers the series is judged against (notebook 05): reference articles, tuning trials."""

from collections import namedtuple

import pandas as pd

# One reference article's reported setup and result ("" or None: the article does not say).
Article = namedtuple("Article", "source url accuracy measured_on data epochs time hardware caveat")

REFERENCE_ARTICLES = (
    Article("Vitor dos Santos, Cats and Dogs classification using AlexNet (Medium, 2020)",
            "https://vitorgabo.medium.com/cats-and-dogs-classification-using-alexnet-5fc52b1cc1a6",
            0.9368, "test", "Kaggle, 25,000 photos", None, "14.5 h in total", "", ""),
    Article("Insignite, Keras AlexNet: Dog vs. Cat Classification (GitHub)",
            "https://github.com/Insignite/Alexnet-DogvsCat-Classification", 0.9125,
            "validation (best epoch, 18)", "20,000 train / 5,000 val, 227 px", 20,
            "801-975 s/epoch", "laptop GPU (GeForce MX150)",
            "no test split: only validation accuracy"),
    Article("qxdn, 用AlexNet实现DogsVsCats (blog, 2020)", "https://github.com/qxdn/DogsVsCats",
            0.8705, "test, also used as validation", "Microsoft PetImages, 227 px", 20,
            "about 41 s/epoch", "Colab free GPU",
            "no untouched test split: its test split was also its validation set"),
    Article("mrgloom, kaggle-dogs-vs-cats-caffe: AlexNet from scratch (GitHub, 2016)",
            "https://github.com/mrgloom/kaggle-dogs-vs-cats-caffe", 0.9365, "test",
            "Kaggle Dogs vs. Cats, 25,000 photos", 30, "35 min in total",
            "GeForce GTX 1070 (NVIDIA DIGITS, Caffe)", "batch size and learning rate not reported"),
    Article("meng1994412, dogs_vs_cats: AlexNet-BN from scratch (GitHub)",
            "https://github.com/meng1994412/dogs_vs_cats", 0.9255, "test",
            "Kaggle Dogs vs. Cats, 25,000 photos, 227 px crops", 75, "", "",
            "93.76% is with 10-crop test-time augmentation, not a single crop"),
)


def comparison_table(metrics: dict, accuracy_key: str = "test_accuracy",
                     accuracy_label: str = "test") -> pd.DataFrame:
    """The reference articles and this run side by side: accuracy, data, epochs, time, hardware."""
    this_run = Article(
        source="this series (AlexNet-{variant}, {precision})".format(**metrics), url="",
        accuracy=metrics[accuracy_key], measured_on=accuracy_label,
        data=f"{metrics['train_images']:,} training photos", epochs=metrics["epochs"],
        time=f"{metrics['seconds_per_epoch']:.0f} s/epoch, "
             f"{metrics['wall_time_s'] / 3600:.2f} h in total",
        hardware=metrics["hardware"], caveat="")
    table = pd.DataFrame([*REFERENCE_ARTICLES, this_run]).drop(columns="url").set_index("source")
    table.columns = [column.replace("_", " ") for column in table.columns]
    table["accuracy"] = table["accuracy"].map(lambda v: "" if pd.isna(v) else f"{v:.2%}")
    table["epochs"] = table["epochs"].map(lambda v: "" if pd.isna(v) else f"{int(v)}")
    return table


def trial_scale(row: dict, pilot: bool = False) -> str:
    """A trial's scale in words; with `pilot`, its pilot's: at the pilot's image size (a recipe
    changing it is set against its own baseline), and with oneDNN, which changes the arithmetic."""
    size = row.get("pilot_image_size", row["image_size"]) if pilot else row["image_size"]
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
    lines = []
    for scale in dict.fromkeys(trial_scale(row, pilot=True) for row in rows):
        pilot = {row["recipe"]: row for row in rows if trial_scale(row, pilot=True) == scale}
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
