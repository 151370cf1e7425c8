"""Loading settings: clear reports that name the environment variable and never the value."""

from __future__ import annotations

import pytest
from pydantic import BaseModel, Field, SecretStr, field_validator
from pydantic_settings import SettingsConfigDict

from moment_settings import ConfigurationError, ServiceSettings, env_var_name, load_settings

CANARY = "canary-secret-5d1e8b"


class DatabaseSettings(BaseModel):
    url: str
    pool_size: int = 5


class DemoSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="MOMENT_DEMO_")

    database: DatabaseSettings
    vault_token: SecretStr
    port: int = 8080
    brokers: list[str] = Field(default_factory=lambda: ["127.0.0.1:9092"])
    retries: list[int] = Field(default_factory=list)
    log_dir: str = Field(default="/tmp", validation_alias="DEMO_LOG_DIR")
    mode: str = "normal"

    @field_validator("mode")
    @classmethod
    def _known_mode(cls, value: str) -> str:
        if value not in {"normal", "maintenance"}:
            # Deliberately careless: quotes the value, which the loader must hide.
            raise ValueError(f"unknown mode {value}")
        return value


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("DATABASE__URL", "DATABASE__POOL_SIZE", "VAULT_TOKEN", "PORT", "RETRIES", "MODE"):
        monkeypatch.delenv(f"MOMENT_DEMO_{name}", raising=False)
    monkeypatch.delenv("DEMO_LOG_DIR", raising=False)


def _valid_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MOMENT_DEMO_DATABASE__URL", "postgresql+asyncpg://127.0.0.1/demo")
    monkeypatch.setenv("MOMENT_DEMO_VAULT_TOKEN", CANARY)


def _fail(
    capsys: pytest.CaptureFixture[str], **overrides: object
) -> tuple[ConfigurationError, str]:
    with pytest.raises(ConfigurationError) as raised:
        load_settings(DemoSettings, **overrides)
    stderr = capsys.readouterr().err
    assert CANARY not in stderr
    assert CANARY not in str(raised.value)
    return raised.value, stderr


def test_loads_from_environment_with_overrides_winning(monkeypatch: pytest.MonkeyPatch) -> None:
    _valid_env(monkeypatch)
    monkeypatch.setenv("moment_demo_port", "9000")
    settings = load_settings(DemoSettings, mode="maintenance")
    assert settings.database.url.startswith("postgresql+asyncpg://")
    assert settings.vault_token.get_secret_value() == CANARY
    assert settings.port == 9000
    assert settings.mode == "maintenance"


def test_missing_settings_are_named_by_env_var(capsys: pytest.CaptureFixture[str]) -> None:
    error, stderr = _fail(capsys)
    assert isinstance(error, SystemExit)
    assert error.code == 2
    assert "MOMENT_DEMO_DATABASE: is required but not set" in stderr
    assert "(set MOMENT_DEMO_DATABASE__URL)" in stderr
    assert "MOMENT_DEMO_VAULT_TOKEN: is required but not set" in stderr
    assert {problem.env_var for problem in error.problems} == {
        "MOMENT_DEMO_DATABASE",
        "MOMENT_DEMO_VAULT_TOKEN",
    }


def test_missing_nested_setting_uses_the_nested_delimiter(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("MOMENT_DEMO_DATABASE__POOL_SIZE", "3")
    monkeypatch.setenv("MOMENT_DEMO_VAULT_TOKEN", CANARY)
    _, stderr = _fail(capsys)
    assert "MOMENT_DEMO_DATABASE__URL: is required but not set" in stderr


def test_invalid_values_are_named_but_never_echoed(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    _valid_env(monkeypatch)
    monkeypatch.setenv("MOMENT_DEMO_PORT", CANARY)
    monkeypatch.setenv("MOMENT_DEMO_DATABASE__POOL_SIZE", CANARY)
    monkeypatch.setenv("MOMENT_DEMO_RETRIES", f'[1, "{CANARY}"]')
    monkeypatch.setenv("MOMENT_DEMO_MODE", CANARY)
    error, stderr = _fail(capsys)
    assert "MOMENT_DEMO_PORT: Input should be a valid integer" in stderr
    assert "MOMENT_DEMO_DATABASE__POOL_SIZE: Input should be a valid integer" in stderr
    assert "MOMENT_DEMO_RETRIES: item 1: Input should be a valid integer" in stderr
    assert "MOMENT_DEMO_MODE: Value error, unknown mode <value hidden>" in stderr
    assert len(error.problems) == 4


def test_unparsable_json_is_named_without_its_value(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    _valid_env(monkeypatch)
    monkeypatch.setenv("MOMENT_DEMO_RETRIES", f"[{CANARY}")
    _, stderr = _fail(capsys)
    assert "MOMENT_DEMO_RETRIES: could not be parsed" in stderr


def test_unknown_override_is_rejected(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    _valid_env(monkeypatch)
    _, stderr = _fail(capsys, databse=CANARY)
    assert "MOMENT_DEMO_DATABSE: is not a recognised setting" in stderr


def test_env_var_name() -> None:
    assert env_var_name(DemoSettings, ("database", "url")) == "MOMENT_DEMO_DATABASE__URL"
    assert env_var_name(DemoSettings, ("retries", 2)) == "MOMENT_DEMO_RETRIES"
    assert env_var_name(DemoSettings, ("DEMO_LOG_DIR",)) == "DEMO_LOG_DIR"


def test_service_settings_defaults() -> None:
    config = ServiceSettings.model_config
    assert config["env_nested_delimiter"] == "__"
    assert config["extra"] == "forbid"
    assert config["case_sensitive"] is False
    assert DemoSettings.model_config["env_nested_delimiter"] == "__"
