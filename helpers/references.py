"""The reference articles the series is judged against (notebook 05), and this run beside them."""

import json
from collections import namedtuple
from pathlib import Path

import pandas as pd

# Each article's reported setup and result ("" or null where it does not say).
Article = namedtuple("Article", "source url accuracy measured_on data epochs time hardware caveat")
REFERENCE_ARTICLES = tuple(Article(**row) for row in json.loads(
    (Path(__file__).with_name("references.json")).read_text(encoding="utf-8")))


def comparison_table(metrics: dict, accuracy_key: str = "test_accuracy",
                     accuracy_label: str = "test") -> pd.DataFrame:
    """The reference articles and this run side by side: accuracy, data, epochs, time, hardware."""
    this_run = Article(
        source="this series (AlexNet-{variant}, {precision})".format(**metrics), url="",
        accuracy=metrics[accuracy_key], measured_on=accuracy_label, hardware=metrics["hardware"],
        data=f"{metrics['train_images']:,} training photos", epochs=metrics["epochs"],
        time=f"{metrics['seconds_per_epoch']:.0f} s/epoch, "
             f"{metrics['wall_time_s'] / 3600:.2f} h in total", caveat="")
    table = pd.DataFrame([*REFERENCE_ARTICLES, this_run]).drop(columns="url").set_index("source")
    table.columns = [column.replace("_", " ") for column in table.columns]
    table["accuracy"] = table["accuracy"].map(lambda v: "" if pd.isna(v) else f"{v:.2%}")
    table["epochs"] = table["epochs"].map(lambda v: "" if pd.isna(v) else f"{int(v)}")
    return table
