"""The README's Flax example runs exactly as written."""

import re
from pathlib import Path


def test_readme_flax_example_runs():
    text = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    block = next(b for b in re.findall(r"```python\n(.*?)```", text, re.S) if "flax.linen" in b)
    namespace = {}
    exec(compile(block, "README.md", "exec"), namespace)
    result = namespace["result"]
    assert result.actions.shape == (50, 2) and result.states.shape == (51, 4)
    assert not bool(result.nonfinite)
