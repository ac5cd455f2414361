"""Smoke test of the benchmark scripts' quick mode (tiny settings): they run, write JSON,
markdown and PNG, and report the fields the README quotes."""

from __future__ import annotations

import json

from benchmarks import worlds


def test_worlds_quick_smoke(tmp_path):
    worlds.main(["--models", "wall", "--quick", "--num-tasks", "2", "--repeats", "1", "--out", str(tmp_path)])
    out = json.loads((tmp_path / "worlds.json").read_text())
    rows = out["rows"]
    assert {r["planner"] for r in rows} == {"grasp", "cem"}
    for r in rows:
        assert r["num_tasks"] == 2
        assert 0.0 <= r["success_model"] <= 1.0 and 0.0 <= r["success_real"] <= 1.0
        assert r["batch_wall_s"] > 0 and r["compile_s"] >= 0
    assert out["meta"]["quick"] is True
    assert (tmp_path / "worlds.md").read_text().startswith("| model |")
    assert list(tmp_path.glob("worlds_wall_*.png"))
