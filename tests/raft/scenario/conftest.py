"""Rewrite switch for the scenario tests: PETCD_REWRITE=1, or --rewrite when this directory is given."""

from __future__ import annotations

import os

import pytest


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--rewrite",
        action="store_true",
        default=False,
        help="rewrite the expected output of raft scenario files instead of comparing",
    )


@pytest.fixture
def rewrite(request: pytest.FixtureRequest) -> bool:
    if os.environ.get("PETCD_REWRITE", "") not in ("", "0"):
        return True
    return bool(request.config.getoption("--rewrite", default=False))
