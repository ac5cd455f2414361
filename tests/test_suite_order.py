"""The suite's own bookkeeping: ``conftest.LONG_FIRST`` names tests by node id, so a renamed
or removed test would silently drop out of the order (and the suite's time would grow)."""

import re
from pathlib import Path

from conftest import LONG_FIRST

TESTS = Path(__file__).parent


def test_long_first_names_tests_that_exist():
    for node in LONG_FIRST:
        file, name = node.split("::")
        function, _, param = name.partition("[")
        text = (TESTS / file).read_text()
        assert re.search(rf"^def {re.escape(function)}\(", text, re.M), f"LONG_FIRST: {node!r}: no {function} in {file}"
        if param:  # a parametrized id: the literal in the file, or a file the test collects by name
            param = param.rstrip("]")
            found = param in text or any(TESTS.parent.glob(f"*/{param}"))
            assert found, f"LONG_FIRST: {node!r}: no parameter {param!r} for {function}"
