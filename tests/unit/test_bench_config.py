"""A suite run's sizes reach each scenario's own process whole (bench.model.Config through its JSON file):
a size lost on the way would measure another setup than the one the command asked for and reported."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.model import Config


def test_every_size_a_scenario_runs_with_comes_back_from_the_config_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SHAREHUB_KAFKA_ADMIN_PASSWORD_FILE", raising=False)
    asked = Config(False, tmp_path, "127.0.0.1:9", seed=7, query_rate=1000.0, api_workers=2)
    assert Config.from_json(asked.to_json()) == asked


def test_a_config_file_of_an_earlier_suite_runs_with_the_defaults(tmp_path: Path) -> None:
    older = {"quick": True, "workdir": str(tmp_path), "bootstrap": None, "seed": 384}
    assert Config.from_json(older) == Config(True, tmp_path)
