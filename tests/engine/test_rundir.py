"""Run directories: refusal to overwrite a run, atomic metrics and config files, the run log."""

from __future__ import annotations

import csv
import json
import logging
from pathlib import Path

import pytest
import yaml

from medlearn.engine.rundir import RunDir
from medlearn.errors import MedlearnError


def test_fresh_run_refuses_a_folder_holding_a_run(tmp_path):
    run = RunDir.create(tmp_path / "run")
    run.write_config({"training": {"epochs": 2}})
    with pytest.raises(MedlearnError) as caught:
        RunDir.create(tmp_path / "run")
    assert "config.yaml exists" in caught.value.problem and "--resume" in caught.value.problem
    assert caught.value.path == str(tmp_path / "run")
    assert RunDir.open(tmp_path / "run").read_config() == {"training": {"epochs": 2}}


def test_checkpoint_alone_also_marks_a_run(tmp_path):
    (tmp_path / "checkpoints" / "last").mkdir(parents=True)
    with pytest.raises(MedlearnError, match="another --out"):
        RunDir.create(tmp_path)


def test_fresh_run_may_use_a_folder_without_a_run(tmp_path):
    (tmp_path / "notes.txt").write_text("unrelated")
    assert RunDir.create(tmp_path).path == tmp_path


def test_open_requires_a_config(tmp_path):
    with pytest.raises(MedlearnError, match="no config.yaml"):
        RunDir.open(tmp_path)


def test_config_is_plain_yaml(tmp_path):
    run = RunDir.create(tmp_path / "r")
    run.write_config({"data": Path("/data/x"), "sizes": (2, 3), "nan": float("nan")})
    assert yaml.safe_load(run.config_path.read_text()) == {"data": "/data/x", "sizes": [2, 3], "nan": None}


def test_metrics_files_have_one_row_per_epoch_and_union_of_columns(tmp_path):
    run = RunDir.create(tmp_path)
    history = [{"epoch": 1, "train_loss": 0.5}, {"epoch": 2, "train_loss": 0.25, "val_auc": 0.75}]
    run.write_metrics(history[:1])
    run.write_metrics(history)
    with run.metrics_csv.open() as handle:
        rows = list(csv.DictReader(handle))
    assert [r["epoch"] for r in rows] == ["1", "2"]
    assert rows[0]["val_auc"] == "" and float(rows[1]["val_auc"]) == 0.75
    assert json.loads(run.metrics_json.read_text()) == history
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_log_to_file_captures_medlearn_loggers_only_while_active(tmp_path):
    run = RunDir.create(tmp_path)
    with run.log_to_file():
        logging.getLogger("medlearn.some.module").info("inside the run")
    logging.getLogger("medlearn.some.module").warning("after the run")
    text = run.log_path.read_text()
    assert "inside the run" in text and "after the run" not in text
