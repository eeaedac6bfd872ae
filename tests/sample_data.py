"""The tutorial's sample files, read from the team folder ``../shared/data`` (never copied).

A test that needs one fails loudly when the folder is missing: a silent skip would let a
machine without the data report a green run that checked nothing.
"""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"


def sample_path(name: str) -> Path:
    """The path of a sample file in ``../shared/data``; fails the test when it is absent."""
    path = SHARED_DATA / name
    if not path.exists():
        pytest.fail(
            f"sample data not found at {path}: these tests need the team folder ../shared/data "
            "beside the repository",
            pytrace=False,
        )
    return path
