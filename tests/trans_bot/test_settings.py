"""Production settings refuse an insecure secret key and pass Django's deploy checks."""

import os
import secrets
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _manage(*args: str, env: dict[str, str], tmp_path: Path) -> subprocess.CompletedProcess:
    base = {"PATH": os.environ["PATH"], "HOME": str(tmp_path), "VAR_DIR": str(tmp_path / "var")}
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT, env={**base, **env}, capture_output=True, text=True, timeout=120,
    )


PRODUCTION = {"DJANGO_ENV": "production", "ALLOWED_HOSTS": "backoffice.example.com"}


def test_check_deploy_is_clean_under_production_settings(tmp_path):
    result = _manage(
        "check", "--deploy", "--fail-level", "WARNING",
        env={**PRODUCTION, "SECRET_KEY": secrets.token_urlsafe(64)}, tmp_path=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert "no issues" in result.stdout


@pytest.mark.parametrize(
    "key",
    [None, "", "short-key", "django-insecure-" + "x" * 60, "a" * 64],
    ids=["missing", "empty", "short", "django-insecure", "low-entropy"],
)
def test_production_refuses_to_start_with_an_insecure_secret_key(tmp_path, key):
    env = dict(PRODUCTION)
    if key is not None:
        env["SECRET_KEY"] = key
    result = _manage("check", env=env, tmp_path=tmp_path)
    assert result.returncode != 0
    assert "SECRET_KEY is missing or insecure" in result.stderr
