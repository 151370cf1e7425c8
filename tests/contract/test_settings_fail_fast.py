"""A service started with missing or bad configuration exits at once, naming the setting."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

BIN = Path(sys.executable).parent


@pytest.mark.parametrize("service", ["identity", "consent", "audit"])
def test_missing_database_url_names_the_variable(service: str) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MOMENT_")}
    done = subprocess.run(
        [str(BIN / f"moment-{service}"), "run"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    assert f"MOMENT_{service.upper()}_DATABASE__URL" in done.stderr


def test_an_invalid_value_is_named_but_never_echoed() -> None:
    secret = "postgres://admin:hunter2-canary@db/identity"
    env = {k: v for k, v in os.environ.items() if not k.startswith("MOMENT_")}
    env["MOMENT_AUDIT_DATABASE__URL"] = secret
    done = subprocess.run(
        [str(BIN / "moment-audit"), "run"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    assert "MOMENT_AUDIT_DATABASE__URL" in done.stderr
    assert "hunter2-canary" not in done.stderr + done.stdout
