"""The canonical zoo format: reading, validation messages, round trip."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from conftest import ROOT, write_zoo
from recsys.errors import RecsysError, ZooError
from recsys.zoo import Roles, Zoo, infer_roles, load_zoo

EXAMPLE = ROOT / "data" / "example-zoo"


def zoo_error(path, match: str | None = None) -> str:
    """Load ``path``, expect a ZooError, check it is one line (and matches); return the message."""
    with pytest.raises(ZooError, match=match) as info:
        load_zoo(path)
    msg = str(info.value)
    assert "\n" not in msg and msg.strip() == msg and len(msg) < 400, msg
    return msg


def records_file(directory: Path, text: str) -> Path:
    return write_zoo(directory, records=text)


# -- valid zoos ---------------------------------------------------------------


def test_example_zoo_loads():
    zoo = load_zoo(EXAMPLE)
    s = zoo.summary()
    assert (s["name"], s["models"], s["datasets"], s["records"]) == ("example-zoo", 5, 8, 29)
    assert s["datasets_without_records"] == 1
    assert "sketch vehicles" in zoo.dataset_ids and "sketch vehicles" not in set(zoo.records["dataset"])
    assert {"google/vit-base-patch16-224", "convnext tiny", "mobilenet v3 large"} <= set(zoo.model_ids)
    assert {"flowers/102", "eurosat/rgb", "cub birds"} <= set(zoo.dataset_ids)
    assert zoo.metrics == ["LOG_ME"]
    # scores exist for the dataset without records (no fine-tuning needed)
    assert (zoo.scores["dataset"] == "sketch vehicles").sum() == 5
    assert zoo.dataset_roles.text == ("domain", "labels") and "domain" in zoo.dataset_roles.categorical
    assert zoo.model_roles.log == ("params_millions",)
    assert list(zoo.records.columns) == ["model", "dataset", "accuracy"]  # 'epochs' ignored
    assert zoo.records["accuracy"].dtype == np.float64
    assert zoo.models["params_millions"].dtype == np.float64


def test_tiny_zoo_names_with_commas_slashes_spaces(tiny_zoo_dir):
    zoo = load_zoo(tiny_zoo_dir)
    assert zoo.model_ids == ["resnet50", "vit b/16", "convnext, tiny"]
    assert zoo.dataset_ids == ["birds", "cars 196", "flowers/102", "new sketches"]
    table = zoo.accuracy_table()
    assert table.shape == (4, 3)
    assert table.loc["flowers/102", "convnext, tiny"] == pytest.approx(0.93)
    assert table.loc["new sketches"].isna().all()  # cold-start dataset kept
    s = zoo.summary()
    assert s["datasets_without_records"] == 1 and s["records"] == 7 and s["name"] == "tiny"
    assert s["density"] == pytest.approx(7 / 12, abs=1e-4)
    # roles inferred without zoo.json
    assert zoo.model_roles.numeric == ("params",)
    assert zoo.dataset_roles.categorical == ("domain",) and zoo.dataset_roles.numeric == ("classes",)
    assert zoo.dataset_roles.text == ("labels",)


@pytest.mark.parametrize("source", ["tiny", "example"])
def test_write_then_load_round_trip(tmp_path, tiny_zoo_dir, source):
    zoo = load_zoo(tiny_zoo_dir if source == "tiny" else EXAMPLE)
    out = zoo.write(tmp_path / "copy")
    again = load_zoo(out)
    assert again.fingerprint() == zoo.fingerprint()
    assert again.name == zoo.name
    assert again.model_roles == zoo.model_roles and again.dataset_roles == zoo.dataset_roles
    pd.testing.assert_frame_equal(again.models, zoo.models)
    pd.testing.assert_frame_equal(again.records, zoo.records)
    # ... and the fingerprint notices a changed accuracy
    changed = zoo.with_records(zoo.records.assign(accuracy=zoo.records["accuracy"] * 0.5))
    assert changed.fingerprint() != zoo.fingerprint()


def test_reference_zoos_round_trip(tmp_path, domainnet, transfergraph):
    for zoo in (domainnet, transfergraph):
        again = load_zoo(zoo.write(tmp_path / zoo.name))
        assert again.fingerprint() == zoo.fingerprint()
        assert again.summary()["records"] == len(zoo.records)


def test_write_removes_stale_scores(tmp_path, tiny_zoo_dir):
    zoo = load_zoo(EXAMPLE)
    zoo.write(tmp_path / "z")
    assert (tmp_path / "z" / "scores.csv").exists()
    load_zoo(tiny_zoo_dir).write(tmp_path / "z")
    assert not (tmp_path / "z" / "scores.csv").exists()
    assert load_zoo(tmp_path / "z").metrics == []
    assert not [p for p in (tmp_path / "z").iterdir() if p.name.endswith(".tmp")]


def test_bom_whitespace_blank_lines_and_extra_columns(tmp_path):
    d = write_zoo(tmp_path / "z", records=None)
    (d / "records.csv").write_text(
        "\ufeff model , dataset ,accuracy , lr,\n"
        "resnet50 , birds, 0.71 ,0.01,\n"
        "\n"
        "vit b/16,birds,0.83,0.01,\n"
        "   \n"
        "\"convnext, tiny\",\"flowers/102\",0.93,,\n", encoding="utf-8")
    (d / "models.csv").write_text((d / "models.csv").read_text(), encoding="utf-8-sig")
    zoo = load_zoo(d)
    assert sorted(zoo.records["model"]) == ["convnext, tiny", "resnet50", "vit b/16"]
    assert list(zoo.records.columns) == ["model", "dataset", "accuracy"]
    assert zoo.model_ids[0] == "resnet50"  # no BOM glued to the header


def test_index_column_written_by_pandas_is_ignored(tmp_path):
    records = pd.DataFrame({"model": ["resnet50"], "dataset": ["birds"], "accuracy": [0.7]})
    d = write_zoo(tmp_path / "z", records=None)
    records.to_csv(d / "records.csv")  # with an unnamed index column
    assert len(load_zoo(d).records) == 1


def test_ids_stay_strings(tmp_path):
    models = pd.DataFrame({"model": ["007", "NA", "1.0"], "size": [1, 2, 3]})
    datasets = pd.DataFrame({"dataset": ["None", "0042"], "n": [3, 4]})
    records = pd.DataFrame({"model": ["007", "NA", "1.0"], "dataset": ["None", "0042", "None"],
                            "accuracy": [0.5, 0.6, 0.7]})
    d = write_zoo(tmp_path / "z", models=models, datasets=datasets, records=records)
    zoo = load_zoo(d)
    assert zoo.model_ids == ["007", "NA", "1.0"] and zoo.dataset_ids == ["None", "0042"]
    assert zoo.accuracy_table().loc["None", "1.0"] == pytest.approx(0.7)


def test_missing_metadata_values(tmp_path):
    models = pd.DataFrame({"model": ["a", "b", "c"], "family": ["x", "", "y"], "params": ["1e6", "NA", "3e7"]})
    d = write_zoo(tmp_path / "z", models=models,
                  records=pd.DataFrame({"model": ["a"], "dataset": ["birds"], "accuracy": [0.5]}))
    zoo = load_zoo(d)
    assert zoo.models["params"].dtype == np.float64 and np.isnan(zoo.models.loc["b", "params"])
    assert pd.isna(zoo.models.loc["b", "family"])


def test_identical_duplicates_are_fine(tmp_path):
    d = records_file(tmp_path / "z", "model,dataset,accuracy\nresnet50,birds,0.7\nresnet50,birds,0.70\n"
                                     "vit b/16,birds,0.8\n")
    zoo = load_zoo(d)
    assert len(zoo.records) == 2


def test_custom_id_column_from_zoo_json(tmp_path):
    models = pd.DataFrame({"name": ["resnet50", "vit b/16", "convnext, tiny"], "family": ["r", "v", "c"]})
    roles = {"name": "custom", "models": {"id": "name", "categorical": ["family"]}}
    zoo = load_zoo(write_zoo(tmp_path / "z", models=models, zoo_json=roles))
    assert zoo.name == "custom" and zoo.models.index.name == "model"
    assert zoo.model_roles == Roles(id="model", categorical=("family",))
    # datasets roles were not given: inferred
    assert "classes" in zoo.dataset_roles.numeric


def test_from_frames_with_pandas_dtypes():
    """Frames built in Python (pandas 3 string dtype, pd.NA, ints, bools) validate like files."""
    models = pd.DataFrame({"model": pd.array(["a", "b", "c"], dtype="string"),
                           "family": pd.array(["x", pd.NA, "y"], dtype="string"),
                           "params": pd.array([1, None, 30], dtype="Int64"),
                           "pretrained": [True, False, True]})
    datasets = pd.DataFrame({"dataset": ["d1", "d2"], "n": [10, 20]}).set_index("dataset")
    records = pd.DataFrame({"model": pd.array(["a", "b"], dtype="string"), "dataset": ["d1", "d2"],
                            "accuracy": pd.array([0.5, 0.6], dtype="Float64")})
    zoo = Zoo.from_frames(models, datasets, records)
    assert zoo.models["params"].dtype == np.float64 and np.isnan(zoo.models.loc["b", "params"])
    assert zoo.models.loc["a", "pretrained"] == "True"
    assert zoo.records["accuracy"].tolist() == [0.5, 0.6]
    assert zoo.dataset_ids == ["d1", "d2"]
    # frames have no line numbers: messages count rows
    with pytest.raises(ZooError, match=r"records.csv row 2: accuracy is empty or NaN"):
        Zoo.from_frames(models, datasets, records.assign(accuracy=pd.array([0.5, None], dtype="Float64")))


def test_infer_roles():
    df = pd.DataFrame({"model": list("abcdef"), "family": ["r", "r", "v", "v", "c", "c"],
                       "params": [1e6, 2e6, 3e7, 4e7, 5e8, 6e8], "constant": [1] * 6,
                       "labels": [f"cat {i}, dog {i}, bird {i}" for i in range(6)]})
    roles = infer_roles(df, "model")
    assert roles.categorical == ("family",) and roles.numeric == ("params",) and roles.text == ("labels",)
    assert roles.log is None


# -- errors: files and columns -------------------------------------------------


@pytest.mark.parametrize("missing", ["models.csv", "datasets.csv", "records.csv"])
def test_missing_file(tiny_zoo_dir, missing):
    (tiny_zoo_dir / missing).unlink()
    msg = zoo_error(tiny_zoo_dir, match=missing)
    assert "needs models.csv, datasets.csv and records.csv" in msg


def test_missing_directory_and_file_instead(tmp_path, tiny_zoo_dir):
    zoo_error(tmp_path / "nope", match="does not exist")
    zoo_error(tiny_zoo_dir / "records.csv", match="is a file")


def test_missing_columns(tmp_path):
    d = records_file(tmp_path / "a", "model,dataset,acc\nresnet50,birds,0.5\n")
    msg = zoo_error(d, match=r"records.csv has no column\(s\) \['accuracy'\]")
    assert "required columns: model, dataset, accuracy" in msg
    d = write_zoo(tmp_path / "b", models=pd.DataFrame({"name": ["resnet50"]}))
    zoo_error(d, match=r"models.csv has no column 'model' \(the model id\)")


def test_empty_files_and_empty_zoo(tmp_path):
    d = records_file(tmp_path / "a", "model,dataset,accuracy\n")
    zoo_error(d, match="holds no records")
    d = write_zoo(tmp_path / "b", models=pd.DataFrame({"model": []}))
    zoo_error(d, match="lists no models")
    d = records_file(tmp_path / "c", "")
    zoo_error(d, match="records.csv is empty")


def test_not_csv(tmp_path):
    d = records_file(tmp_path / "a", "model;dataset;accuracy\nresnet50;birds;0.5\n")
    zoo_error(d, match="uses semicolons.*comma-separated")
    d = records_file(tmp_path / "b", "model,dataset,accuracy\nconvnext, tiny,birds,0.5\n")
    zoo_error(d, match=r"records.csv line 2: 4 fields but the header has 3; quote values")
    d = records_file(tmp_path / "c", "model,dataset,accuracy\n\"resnet50,birds,0.5\n")
    zoo_error(d, match="records.csv line 2: not valid CSV")
    d = write_zoo(tmp_path / "d")
    (d / "records.csv").write_bytes(b"model,dataset,accuracy\nr\xe9snet,birds,0.5\n")
    zoo_error(d, match="not UTF-8")
    d = records_file(tmp_path / "e", "model,dataset,model\nresnet50,birds,resnet50\n")
    zoo_error(d, match=r"names column\(s\) \['model'\] more than once")


def test_duplicate_and_empty_ids(tmp_path):
    models = pd.DataFrame({"model": ["resnet50", "vit b/16", "resnet50", "convnext, tiny"]})
    msg = zoo_error(write_zoo(tmp_path / "a", models=models), match="lists model 'resnet50' more than once")
    assert "lines 2, 4" in msg
    models = pd.DataFrame({"model": ["resnet50", "", "convnext, tiny"], "family": ["r", "v", "c"]})
    zoo_error(write_zoo(tmp_path / "b", models=models), match="models.csv line 3: empty model id")


# -- errors: accuracy ------------------------------------------------------------


@pytest.mark.parametrize("cell, match", [
    ("high", r"records.csv line 3: accuracy 'high' is not a number; give a fraction in \[0, 1\]"),
    ("", r"records.csv line 3: accuracy is empty or NaN"),
    ("NaN", r"records.csv line 3: accuracy is empty or NaN"),
    ("inf", r"records.csv line 3: accuracy 'inf' is infinite"),
    ("83%", r"records.csv line 3: accuracy '83%' is a percentage; give a fraction in \[0, 1\], e.g. 0.83"),
    ("-0.1", r"records.csv line 3: accuracy -0.1 is outside \[0, 1\]"),
])
def test_bad_accuracy(tmp_path, cell, match):
    d = records_file(tmp_path / "z", f"model,dataset,accuracy\nresnet50,birds,0.7\nvit b/16,birds,{cell}\n")
    msg = zoo_error(d, match=match)
    assert "percentages" not in msg or cell == "83%"


def test_percentages_are_not_rescaled(tmp_path):
    d = records_file(tmp_path / "z", "model,dataset,accuracy\nresnet50,birds,71\nvit b/16,birds,83.5\n")
    msg = zoo_error(d, match=r"records.csv line 2: accuracy 71 is outside \[0, 1\] \(2 rows are outside\)")
    assert "never rescales" in msg and "if they are percentages, divide them by 100" in msg


def test_line_numbers_count_blank_and_quoted_multiline_rows(tmp_path):
    d = write_zoo(tmp_path / "z", records=None)
    (d / "records.csv").write_text("model,dataset,accuracy,note\n\nresnet50,birds,0.5,\"two\nlines\"\n\n"
                                   "vit b/16,birds,x,\n")
    zoo_error(d, match="records.csv line 6: accuracy 'x' is not a number")
    datasets = pd.DataFrame({"dataset": ["birds", "two\nlines"], "domain": ["photo", "photo"]})
    datasets.to_csv(d / "datasets.csv", index=False)  # a quoted newline in an id: refused where it is
    zoo_error(d, match=r"remove the character U\+000A \(newline\) from the dataset id 'two\\nlines': datasets.csv "
                       r"line 3")


# -- errors: names and duplicates ------------------------------------------------


def test_unknown_model_with_did_you_mean(tmp_path):
    d = records_file(tmp_path / "z", "model,dataset,accuracy\nresnet50,birds,0.7\nresnet5O,birds,0.7\n")
    msg = zoo_error(d, match=r"records.csv line 3 names model 'resnet5O', which is not in models.csv")
    assert "did you mean 'resnet50'" in msg and "fix the name or add it to models.csv" in msg


def test_unknown_dataset_with_did_you_mean(tmp_path):
    d = records_file(tmp_path / "z", "model,dataset,accuracy\nresnet50,flowers/120,0.7\nresnet50,brids,0.7\n")
    msg = zoo_error(d, match=r"line 2 names dataset 'flowers/120', which is not in datasets.csv")
    assert "did you mean 'flowers/102'" in msg and "2 rows name unknown datasets" in msg


def test_conflicting_duplicates(tmp_path):
    d = records_file(tmp_path / "z", "model,dataset,accuracy\nresnet50,birds,0.7\nvit b/16,birds,0.8\n"
                                     "resnet50,birds,0.75\n")
    msg = zoo_error(d, match=r"records.csv lines 2, 4 give different accuracies \(0.7, 0.75\) for model "
                             r"'resnet50' on dataset 'birds'")
    assert "keep one record per pair" in msg


def test_empty_names_in_records(tmp_path):
    d = records_file(tmp_path / "z", "model,dataset,accuracy\nresnet50,birds,0.7\n,birds,0.8\n")
    zoo_error(d, match="records.csv line 3: empty model name")


# -- errors: zoo.json -------------------------------------------------------------


def test_zoo_json_names_missing_column(tmp_path):
    roles = {"datasets": {"categorical": ["domian"], "numeric": ["classes"]}}
    msg = zoo_error(write_zoo(tmp_path / "z", zoo_json=roles),
                    match="zoo.json names column 'domian' of datasets.csv, which has no such column")
    assert "did you mean 'domain'" in msg


@pytest.mark.parametrize("content, match", [
    ("{not json", "is not valid JSON"),
    ("[1, 2]", "must hold a JSON object"),
    ('{"dataset": {}}', r"unknown key\(s\) \['dataset'\] \(did you mean 'datasets'\?\)"),
    ('{"models": {"numerical": ["params"]}}', r"zoo.json models has unknown key\(s\) \['numerical'\]"),
    ('{"models": {"numeric": "params", "log": ["family"]}}', "lists 'family' under log but not under numeric"),
    ('{"models": {"numeric": ["family"]}}', r"write a number or leave the cell empty in column 'family' of models.csv "
                                            r"\(zoo.json lists it as numeric\): models.csv line 2 holds 'resnet'"),
    ('{"models": {"categorical": ["model"]}}', "lists the id column 'model'"),
    ('{"name": 3}', "'name' must be a string"),
])
def test_bad_zoo_json(tmp_path, content, match):
    d = write_zoo(tmp_path / "z")
    (d / "zoo.json").write_text(content)
    zoo_error(d, match=match)


def test_log_of_non_positive_values(tmp_path):
    models = pd.DataFrame({"model": ["resnet50", "vit b/16", "convnext, tiny"], "params": [1, 0, 3]})
    roles = {"models": {"numeric": ["params"], "log": ["params"]}}
    zoo_error(write_zoo(tmp_path / "z", models=models, zoo_json=roles),
              match="models.csv line 3: column 'params' is log-transformed but holds 0")


# -- errors: scores ---------------------------------------------------------------


def test_scores(tmp_path):
    scores = pd.DataFrame({"model": ["resnet50", "resnet50", "vit b/16"],
                           "dataset": ["new sketches", "new sketches", "birds"],
                           "metric": ["LOG_ME"] * 3, "score": [1.5, 1.5, 2.0]})
    zoo = load_zoo(write_zoo(tmp_path / "ok", scores=scores))
    assert zoo.metrics == ["LOG_ME"] and len(zoo.scores) == 2  # identical duplicate dropped
    bad = scores.assign(score=[1.5, 1.6, 2.0])
    zoo_error(write_zoo(tmp_path / "conflict", scores=bad),
              match=r"scores.csv lines 2, 3 give different LOG_ME scores \(1.5, 1.6\) for model 'resnet50'")
    bad = scores.assign(model=["resnet50", "resnet50", "vit-b/16"])
    zoo_error(write_zoo(tmp_path / "unknown", scores=bad), match="scores.csv line 4 names model 'vit-b/16'")
    bad = scores.assign(score=[1.5, None, 2.0])
    zoo_error(write_zoo(tmp_path / "nan", scores=bad), match="scores.csv line 3: score is empty or NaN")
    zoo_error(write_zoo(tmp_path / "cols", scores=scores.drop(columns="metric")),
              match=r"scores.csv has no column\(s\) \['metric'\]")


def test_zoo_error_is_a_recsys_error_with_exit_status_1():
    assert issubclass(ZooError, RecsysError) and ZooError.exit_code == 1


def test_summary_is_json_serializable():
    summary = load_zoo(EXAMPLE).summary()
    assert json.loads(json.dumps(summary)) == summary
    assert summary["name"] == "example-zoo" and summary["models"] == 5 and summary["records"] == 29


# -- issue 20: what a newcomer sees, ids as seen, long cells ---------------------------------


def test_repr_is_one_paragraph(tiny_zoo_dir):
    text = repr(load_zoo(tiny_zoo_dir))
    assert "\n" not in text and text == str(load_zoo(tiny_zoo_dir))
    assert text.startswith("Zoo 'tiny', read from ") and "3 models x 4 datasets, 7 records (58.3% of the pairs; " \
        "1 dataset without records); no transferability scores." in text
    assert "Model columns: numeric params; text family." in text
    assert "Dataset columns: categorical domain; numeric classes; text labels." in text


def test_ids_are_compared_after_nfc(tmp_path):
    nfd, nfc = "cafe\u0301", "caf\u00e9"
    models = pd.DataFrame({"model": [nfd, "vit"], "family": ["a", "b"]})
    records = pd.DataFrame({"model": [nfc, "vit"], "dataset": ["birds", "birds"], "accuracy": [0.5, 0.6]})
    zoo = load_zoo(write_zoo(tmp_path / "z", models=models, records=records))
    assert zoo.model_ids == [nfc, "vit"] and zoo.accuracy_table().loc["birds", nfc] == 0.5


def test_cells_longer_than_csvs_default_limit_load(tmp_path):
    labels = ", ".join(f"label{i}" for i in range(30_000))  # about 300 KiB: a dataset of 30,000 classes
    datasets = pd.DataFrame({"dataset": ["birds", "cars"], "labels": [labels, "a, b"]})
    zoo = load_zoo(write_zoo(tmp_path / "z", datasets=datasets,
                             records="model,dataset,accuracy\nresnet50,birds,0.5\nvit b/16,cars,0.6\n"))
    assert zoo.datasets.loc["birds", "labels"] == labels


# -- records that look like failed fine-tunes -----------------------------------------------------------------


def _floor_zoo() -> Zoo:
    models = pd.DataFrame({"model": [f"m{i}" for i in range(10)], "params": np.arange(10.0) + 1})
    rows = {  # dataset: accuracies of m0, m1, ...
        "collapsed": [0.01, 0.01, 0.01, 0.01, 0.6, 0.7],      # 4 of 6 at 0.01, below half of 0.7: flagged
        "steps": [0.9] * 6 + [1.0] * 4,                         # a small test set's steps: 0.9 is not below 0.5
        "few": [0.01, 0.01, 0.01, 0.8],                         # 3 of 4: under five records
        "half": [0.02, 0.02, 0.02, 0.5, 0.6, 0.7],             # 3 of 6 is not more than half
        "all chance": [0.1] * 9 + [0.3],                        # 9 of 10 at 0.1, below half of 0.3: flagged
    }
    records = pd.DataFrame([(f"m{i}", d, a) for d, accs in rows.items() for i, a in enumerate(accs)],
                           columns=["model", "dataset", "accuracy"])
    datasets = pd.DataFrame({"dataset": [*rows, "no records"], "classes": [10, 20, 30, 40, 50, 60]})
    return Zoo.from_frames(models, datasets, records, name="floors")


def test_floored_names_datasets_whose_records_collapse_to_their_lowest_value():
    zoo = _floor_zoo()
    got = zoo.floored()
    assert list(got.columns) == ["dataset", "records", "at_floor", "floor", "highest"]
    assert got["dataset"].tolist() == ["all chance", "collapsed"]  # most records at the floor first
    assert got.iloc[0][["records", "at_floor"]].tolist() == [10, 9]
    assert got.iloc[1].tolist() == ["collapsed", 6, 4, pytest.approx(0.01), pytest.approx(0.7)]
    assert zoo.floored(min_records=4)["dataset"].tolist() == ["all chance", "collapsed", "few"]
    assert zoo.summary()["datasets_mostly_at_floor"] == ["all chance", "collapsed"]
    # a zoo without any: an empty frame with the same columns
    clean = zoo.with_records(zoo.records[zoo.records["dataset"].isin(["steps", "half"])])
    assert clean.floored().empty and list(clean.floored().columns) == list(got.columns)


def test_fit_warns_in_one_line_about_datasets_that_look_failed(caplog):
    from recsys import Recommender

    with caplog.at_level("WARNING", logger="recsys"):
        Recommender(seed=0, text_encoder="hashing", calibrate=False).fit(_floor_zoo())
    lines = [r.getMessage() for r in caplog.records if "lowest accuracy" in r.getMessage()]
    assert len(lines) == 1 and "\n" not in lines[0]
    assert lines[0].startswith("floors: 2 dataset(s) with most records at their lowest accuracy")
    assert "all chance: 9 of 10 records at 0.1, the highest 0.3; collapsed: 4 of 6 records at 0.01" in lines[0]
    assert "remove the records of runs that failed" in lines[0]


def test_transfergraph_food101_is_the_one_reference_dataset_at_its_floor(transfergraph, domainnet):
    got = transfergraph.floored()
    assert got[["dataset", "records", "at_floor"]].values.tolist() == [["food101", 112, 110]]
    assert got["floor"].iloc[0] == pytest.approx(1 / 101, abs=1e-4)  # one class in 101: chance
    assert domainnet.floored().empty  # 20-image test sets give steps of 0.05, not a floor
