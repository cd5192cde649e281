"""benchmarks.tuning_report: the tuning trials as notebook 05 shows them."""

import json

from benchmarks.tuning_report import markdown, tuning_summary, tuning_table, write


def trial(recipe: str, accuracy: float, image_size: int = 128) -> dict:
    """A row as benchmarks/tuning.py records it."""
    return {"recipe": recipe, "changes": f"{recipe} changes", "val_accuracy": accuracy,
            "val_interval": [accuracy - 0.01, accuracy + 0.01],
            "best_epoch_val_accuracy": accuracy, "epochs": 4, "image_size": image_size,
            "train_photos": 5000, "minutes": 11.3, "images_per_s": 36.4,
            "hardware": "CPU only (AMD EPYC, 2 cores)", "precision": "float32"}


def test_tuning_table_shows_each_recipe_with_its_interval():
    table = tuning_table([trial("baseline", 0.8), trial("adamw", 0.8234)])
    assert list(table.index) == ["baseline", "adamw"]
    assert table.loc["adamw", "val accuracy (95% interval)"] == "82.3% (81.3%–83.3%)"
    assert table.loc["adamw", "scale"] == "4 epochs, 128 px, 5,000 training photos"
    assert table.loc["adamw", "minutes"] == "11.3"


def test_tuning_summary_sets_each_difference_against_the_seed_noise():
    rows = [trial("baseline", 0.80), trial("baseline-seed43", 0.79), trial("adamw", 0.83),
            trial("ema", 0.805), trial("baseline", 0.90, image_size=227),
            trial("sgd", 0.905, image_size=227)]
    small, large = tuning_summary(rows)
    assert small == ("4 epochs, 128 px, 5,000 training photos: baseline 80.0%; a second seed "
                     "79.0% (1.0 points apart: smaller differences are chance); adamw +3.0 "
                     "points, more than chance; ema +0.5 points, within chance")
    assert large.endswith("baseline 90.0%; sgd +0.5 points")
    assert tuning_summary([trial("sgd", 0.7)]) == [
        "4 epochs, 128 px, 5,000 training photos: sgd 70.0%"]


def test_a_recipe_that_changes_the_size_is_set_against_its_own_pilots_baseline():
    faster = {**trial("size-180", 0.91, image_size=180), "pilot_image_size": 227,
              "minutes": 5.65, "note": "one run"}
    rows = [{**trial("baseline", 0.90, image_size=227), "pilot_image_size": 227}, faster]
    assert tuning_summary(rows) == [
        "4 epochs, 227 px, 5,000 training photos: baseline 90.0%; size-180 +1.0 points, at "
        "180 px in 0.50× the baseline's minutes"]
    table = tuning_table(rows)
    assert table.loc["size-180", "scale"] == "4 epochs, 180 px, 5,000 training photos"
    assert table.loc["size-180", "note"] == "one run" and table.loc["baseline", "note"] == ""
    assert "note" not in tuning_table(rows[:1]).columns


def test_a_trial_without_a_baseline_is_labelled_with_its_own_size():
    alone = {**trial("hour-at-180", 0.945, image_size=180), "pilot_image_size": 227}
    assert tuning_summary([alone]) == ["4 epochs, 180 px, 5,000 training photos: hour-at-180 94.5%"]
    other = {**trial("other", 0.94, image_size=180), "pilot_image_size": 180}
    assert tuning_summary([alone, other]) == [
        "4 epochs, 180 px, 5,000 training photos: hour-at-180 94.5%; other 94.0%"]


def test_a_trial_with_a_smaller_size_first_says_so_in_its_scale():
    row = {**trial("progressive", 0.95, image_size=180), "epochs": 22,
           "phases": [[128, 10], [180, 22]]}
    assert tuning_table([row]).loc["progressive", "scale"] == (
        "22 epochs, 128 px for 10, then 180 px, 5,000 training photos")
    assert tuning_summary([row]) == [
        "22 epochs, 128 px for 10, then 180 px, 5,000 training photos: progressive 95.0%"]
    three = {**row, "image_size": 227, "phases": [[128, 10], [180, 19], [227, 22]]}
    assert tuning_table([three]).loc["progressive", "scale"] == (
        "22 epochs, 128 px for 10, 180 px for 9, then 227 px, 5,000 training photos")


def test_trials_with_onednn_are_a_pilot_of_their_own():
    rows = [trial("baseline", 0.80), {**trial("baseline", 0.81), "onednn": True},
            {**trial("less-dropout", 0.83), "onednn": True}]
    without, with_onednn = tuning_summary(rows)
    assert without == "4 epochs, 128 px, 5,000 training photos: baseline 80.0%"
    assert with_onednn == ("4 epochs, 128 px, 5,000 training photos, oneDNN on: baseline 81.0%; "
                           "less-dropout +2.0 points")
    assert tuning_table(rows[1:]).loc["less-dropout", "hardware"].endswith("float32, oneDNN on")


def test_the_report_is_written_beside_the_tuning_file_as_markdown(tmp_path):
    rows = [trial("baseline", 0.80), trial("adamw", 0.83)]
    (tmp_path / "tuning.json").write_text(json.dumps(rows))
    write(rows, tmp_path / "tuning.json")
    text = (tmp_path / "tuning.md").read_text()
    assert text == markdown(rows)
    assert text.startswith("- 4 epochs, 128 px, 5,000 training photos: baseline 80.0%; adamw +3.0")
    assert "| adamw | adamw changes | 83.0% (82.0%–84.0%) |" in text
