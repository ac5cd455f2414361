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


def test_readme_links_files_that_are_in_the_repository():
    """Every repository path the README points at (images, result JSON, docs) is tracked by
    git, so a clean clone shows what the README shows (docs/api is built, not tracked)."""
    import subprocess

    root = Path(__file__).resolve().parents[1]
    text = (root / "README.md").read_text()
    paths = set(re.findall(r"\((docs/[\w/.-]+|examples/[\w/.-]+|notebooks/[\w/.-]+|benchmarks/[\w/.-]+)\)", text))
    paths |= set(re.findall(r"\b(docs/(?:img|results)/[\w.-]+\.(?:png|json))", text))
    assert paths, "no links found: the pattern is stale"
    try:
        tracked = set(subprocess.run(["git", "ls-files"], cwd=root, capture_output=True, text=True, check=True).stdout.splitlines())
    except (OSError, subprocess.CalledProcessError):  # not a git checkout (e.g. an sdist): existence only
        tracked = None
    for p in sorted(paths):
        p = p.rstrip("/.")
        assert (root / p).exists(), f"README links {p}, which does not exist"
        if tracked is not None and not (root / p).is_dir():
            assert p in tracked, f"README links {p}, which git does not track (ignored?)"
