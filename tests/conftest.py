"""Fixtures for every test under tests/ (the repository's conftest.py has the rest)."""

import pytest


@pytest.fixture(autouse=True)
def _fresh_hot_cache():
    """Each test starts with an empty in-process hot-path cache (core.hotcache): rows a
    rolled-back test cached (a key, a feature) never exist for the next one."""
    from core import hotcache

    hotcache.reset_process_state()
    yield
    hotcache.reset_process_state()
