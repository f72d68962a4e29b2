"""The facade contract (facade_contract.py) holds for the tests' fake facade, so the API tests rest on
a facade that behaves as the runtime's must."""

from __future__ import annotations

import asyncio

import pytest
from facade_contract import CHECKS, Check
from fake_facade import FakeFacade


@pytest.mark.parametrize("check", CHECKS, ids=[c.__name__ for c in CHECKS])
def test_fake_facade_keeps_the_contract(check: Check) -> None:
    asyncio.run(check(FakeFacade()))
