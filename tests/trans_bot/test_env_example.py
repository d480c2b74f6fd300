"""`.env.example` documents every variable the settings read, and copying it to `.env`
changes nothing (every line is a comment)."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _read_by_settings() -> set[str]:
    source = (ROOT / "trans_bot" / "settings.py").read_text()
    return set(re.findall(r'env(?:\.[a-z_]+)?\(\s*"([A-Z][A-Z0-9_]*)"', source))


def test_every_variable_the_settings_read_is_documented():
    documented = set(re.findall(r"^# ([A-Z][A-Z0-9_]*)=", (ROOT / ".env.example").read_text(), re.M))
    missing = _read_by_settings() - documented
    assert len(_read_by_settings()) > 30
    assert not missing, f"add these to .env.example: {sorted(missing)}"


def test_copying_the_example_sets_nothing():
    lines = (ROOT / ".env.example").read_text().splitlines()
    assert all(not line.strip() or line.lstrip().startswith("#") for line in lines)
