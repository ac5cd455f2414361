"""The ``grasp-jax`` command (``grasp_jax.cli``, also ``python -m grasp_jax``) and the
packaging behind it: only ``grasp_jax`` is installed; the benchmarks are checkout scripts."""

from __future__ import annotations

import importlib
import importlib.metadata
import importlib.util
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from grasp_jax import cli

ROOT = Path(__file__).resolve().parent.parent


def test_cli_dispatches_to_every_script(capsys):
    for command, module in cli.COMMANDS.items():
        if command == "anytime" and importlib.util.find_spec("benchmarks.anytime") is None:
            continue  # not written yet: the command says so (test_cli_missing_benchmark_is_clear)
        assert callable(importlib.import_module(module).main)
    cli.main(["--help"])
    out = capsys.readouterr().out
    assert all(f"grasp-jax {command}" in out for command in cli.COMMANDS)
    with pytest.raises(SystemExit, match="command must be one of"):
        cli.main(["bogus"])


def test_cli_usage_names_the_subcommand(capsys):
    argv0 = sys.argv[0]
    with pytest.raises(SystemExit) as e:
        cli.main(["conditioning", "--help"])
    assert e.value.code == 0
    assert capsys.readouterr().out.startswith("usage: grasp-jax conditioning ")
    assert sys.argv[0] == argv0


def test_cli_benchmarks_need_a_checkout(monkeypatch):
    assert cli.checkout_root() == ROOT
    monkeypatch.setattr(cli, "checkout_root", lambda: None)
    with pytest.raises(SystemExit, match=r"source checkout.*python -m benchmarks\.compare"):
        cli.main(["compare", "--help"])


def test_cli_missing_benchmark_is_clear(monkeypatch):
    monkeypatch.setitem(cli.COMMANDS, "anytime", "benchmarks.not_a_script")
    with pytest.raises(SystemExit, match=r"no benchmarks/not_a_script\.py"):
        cli.main(["anytime"])


def test_python_m_grasp_jax_help_from_any_directory(tmp_path):
    for args in (["--help"], []):
        out = subprocess.run([sys.executable, "-m", "grasp_jax", *args], cwd=tmp_path,
                             capture_output=True, text=True, check=True).stdout
        assert "grasp-jax train" in out and "grasp-jax compare" in out


def test_only_grasp_jax_is_packaged():
    import setuptools

    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    find = config["tool"]["setuptools"]["packages"]["find"]
    packages = setuptools.find_packages(where=str(ROOT), include=find["include"], exclude=find.get("exclude", ()))
    assert "grasp_jax" in packages and all(p.split(".")[0] == "grasp_jax" for p in packages), packages
    assert config["project"]["scripts"]["grasp-jax"] == "grasp_jax.cli:main"
    # the installed distribution agrees (its metadata is written at install time)
    dist = importlib.metadata.distribution("grasp_jax")
    assert (dist.read_text("top_level.txt") or "grasp_jax").split() == ["grasp_jax"]
    assert {ep.value for ep in dist.entry_points if ep.name == "grasp-jax"} == {"grasp_jax.cli:main"}
