"""The schema comes from migrations, and the migrations match the models (no drift)."""

import os
import subprocess
import sys

from tests.support import ROOT


def flask(database_url: str, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "FLASK_APP": "app", "DATABASE_URL": database_url}
    return subprocess.run(
        [sys.executable, "-m", "flask", *args], cwd=ROOT, env=env, capture_output=True, text=True, check=False
    )


def test_upgrade_builds_the_schema_the_models_describe(database_url):
    upgrade = flask(database_url, "db", "upgrade")
    assert upgrade.returncode == 0, upgrade.stderr
    check = flask(database_url, "db", "check")
    assert check.returncode == 0, check.stdout + check.stderr
    assert "No new upgrade operations detected" in check.stdout + check.stderr
