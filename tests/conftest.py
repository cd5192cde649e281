"""Shared fixtures. tests/ has no __init__.py, so pytest puts it on sys.path and the test files
(and notebook tests) can `from fixtures import make_petimages`."""

import pytest
from fixtures import make_petimages


@pytest.fixture
def petimages(tmp_path):
    """A generated PetImages folder (20 good photos per class plus the problem files)."""
    return make_petimages(tmp_path, per_class=20)
