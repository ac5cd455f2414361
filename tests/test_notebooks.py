"""The notebooks and examples run as a newcomer would run them (small settings), and the
API reference builds with warnings as errors."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # each runs a newcomer's whole script: minutes together

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
# mjx_pendulum.py compiles MuJoCo MJX for several planners (minutes): it has its own, smaller test below.
EXAMPLES = sorted(p for p in (ROOT / "examples").glob("*.py") if p.name != "mjx_pendulum.py")


def test_there_are_notebooks_and_examples():
    assert {p.name for p in NOTEBOOKS} >= {"quickstart.ipynb", "your_world_model.ipynb"}
    assert len(EXAMPLES) >= 5


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_executes(path, monkeypatch):
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    nb = nbformat.read(path, as_version=4)
    assert all(not c.get("outputs") for c in nb.cells if c.cell_type == "code"), "commit notebooks with outputs cleared"
    monkeypatch.setenv("GRASP_JAX_SMOKE", "1")
    monkeypatch.setenv("MPLBACKEND", "Agg")
    client = nbclient.NotebookClient(nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(ROOT)}})
    client.execute()
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs if o.output_type == "error"]
    assert not errors


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_example_runs(path):
    env = dict(os.environ, JAX_PLATFORMS="cpu", MPLBACKEND="Agg")
    proc = subprocess.run([sys.executable, str(path)], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]


def test_mjx_example_plans_a_swing_up_that_works_in_mujoco(monkeypatch):
    """Planning through a simulator we did not write (MuJoCo MJX): the plans swing the
    pendulum up when executed in MuJoCo's C simulator, as under MJX."""
    pytest.importorskip("mujoco.mjx")
    monkeypatch.syspath_prepend(str(ROOT))
    from examples import mjx_pendulum

    results = mjx_pendulum.main(["--quick", "--planners", "bptt", "--num-starts", "2"])
    assert results["bptt"] == dict(success_mujoco=1.0, success_mjx=1.0)


def test_api_reference_builds_without_warnings(tmp_path):
    pytest.importorskip("pdoc")
    sys.path.insert(0, str(ROOT / "docs"))
    try:
        import build as docs_build
    finally:
        sys.path.pop(0)
    pages = {str(p.relative_to(tmp_path)) for p in docs_build.build(tmp_path)}
    for module in docs_build.MODULES:
        assert module.replace(".", "/") + ".html" in pages
