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


def test_the_sealed_box_window_is_configurable_and_bounded(
    monkeypatch: pytest.MonkeyPatch, tmp_path: object
) -> None:
    monkeypatch.setenv("MOMENT_IDENTITY_DATABASE__URL", f"sqlite+aiosqlite:///{tmp_path}/i.db")
    monkeypatch.setenv("MOMENT_IDENTITY_VAULT__AUTH_METHOD", "token")
    monkeypatch.setenv("MOMENT_IDENTITY_VAULT__TOKEN_FILE", f"{tmp_path}/token")
    assert (IdentitySettings().sealing.max_age_s, IdentitySettings().sealing.clock_skew_s) == (
        300,
        30,
    )
    monkeypatch.setenv("MOMENT_IDENTITY_SEALING__MAX_AGE_S", "120")
    assert IdentitySettings().sealing.max_age_s == 120
    assert IdentitySettings().sealing.clock_skew_s == 30
    monkeypatch.setenv("MOMENT_IDENTITY_SEALING__MAX_AGE_S", "86400")  # a day is not "minutes"
    with pytest.raises(ValueError, match="max_age_s"):
        IdentitySettings()
