"""Identity's settings come from MOMENT_IDENTITY_* variables; one nested variable keeps the rest."""

from __future__ import annotations

import pytest

from moment_identity.config import IdentitySettings


def test_setting_one_nested_variable_keeps_the_group_defaults(
    monkeypatch: pytest.MonkeyPatch, tmp_path
) -> None:
    monkeypatch.setenv("MOMENT_IDENTITY_KAFKA__BOOTSTRAP_SERVERS", "127.0.0.1:19092")
    monkeypatch.setenv("MOMENT_IDENTITY_TELEMETRY__LOG_LEVEL", "DEBUG")
    monkeypatch.setenv("MOMENT_IDENTITY_DATABASE__URL", f"sqlite+aiosqlite:///{tmp_path}/i.db")
    monkeypatch.setenv("MOMENT_IDENTITY_VAULT__AUTH_METHOD", "token")
    monkeypatch.setenv("MOMENT_IDENTITY_VAULT__TOKEN_FILE", str(tmp_path / "token"))
    settings = IdentitySettings()
    assert settings.kafka.bootstrap_servers == "127.0.0.1:19092"
    assert settings.kafka.client_id == "identity"
    assert settings.telemetry.service_name == "identity"
    assert settings.telemetry.log_level == "DEBUG"
    assert settings.crypto.argon2_memory_kib >= 19_456
