"""Shared pytest fixtures: paths of the real records in ../shared/data."""
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # flat scripts: import them as siblings
SHARED = ROOT.parent / 'shared' / 'data'


@pytest.fixture(scope='session')
def shared_data():
    """../shared/data, or skip: a user's clone has no ../shared."""
    if not SHARED.is_dir():
        pytest.skip('../shared/data is absent (only CI and developer machines have it)')
    return SHARED
