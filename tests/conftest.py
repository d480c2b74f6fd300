"""Fixtures for every test under tests/ (the repository's conftest.py has the rest)."""

import pytest


@pytest.fixture(autouse=True)
def _fresh_hot_cache():
    """Each test starts with an empty in-process hot-path cache (core.hotcache): rows a
    rolled-back test cached (a key, a feature) never exist for the next one; nor does an
    address this process trusted not to be locked out (accounts.auth), nor the ingest
    throttle's tallies (usage.throttles)."""
    from accounts.auth import api_key_lockout_forget
    from core import hotcache
    from usage.throttles import throttle_forget

    hotcache.reset_process_state()
    api_key_lockout_forget()
    throttle_forget()
    yield
    hotcache.reset_process_state()
    api_key_lockout_forget()
    throttle_forget()
