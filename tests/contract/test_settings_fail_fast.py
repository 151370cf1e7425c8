"""A service started with missing or bad configuration exits at once, naming the setting."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

BIN = Path(sys.executable).parent


def run_service(service: str, **settings: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MOMENT_")}
    return subprocess.run(
        [str(BIN / f"moment-{service}"), "run"],
        env={**env, **settings},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize("service", ["identity", "consent", "audit"])
def test_missing_database_url_names_the_variable(service: str) -> None:
    done = run_service(service)
    assert done.returncode == 2
    assert f"MOMENT_{service.upper()}_DATABASE__URL" in done.stderr


def test_an_invalid_value_is_named_but_never_echoed() -> None:
    secret = "postgres://admin:hunter2-canary@db/identity"
    done = run_service("audit", MOMENT_AUDIT_DATABASE__URL=secret)
    assert done.returncode == 2
    assert "MOMENT_AUDIT_DATABASE__URL" in done.stderr
    assert "hunter2-canary" not in done.stderr + done.stdout
