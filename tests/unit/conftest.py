"""Fixtures shared by the unit tests."""

from __future__ import annotations

import pytest

from tests.unit.state_support import Chain


@pytest.fixture
def chain() -> Chain:
    """A fresh dev chain driven the way the ledger drives it (see `state_support.Chain`)."""
    return Chain()
