"""The base every service's settings class derives from."""

from __future__ import annotations

from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["ServiceSettings"]


class ServiceSettings(BaseSettings):
    """Settings read from ``MOMENT_*`` environment variables; nested fields use ``__``.

    A service subclasses it and sets its own prefix, then loads it with
    :func:`moment_settings.load_settings`::

        class IdentitySettings(ServiceSettings):
            model_config = SettingsConfigDict(env_prefix="MOMENT_IDENTITY_")

            database: DatabaseSettings  # MOMENT_IDENTITY_DATABASE__URL, ...

    Unknown keyword overrides are rejected so that a misspelt setting fails loudly; unknown
    environment variables cannot be rejected, as the environment is shared with everything else.
    """

    model_config = SettingsConfigDict(
        env_prefix="MOMENT_",
        env_nested_delimiter="__",
        extra="forbid",
        case_sensitive=False,
        # Setting one nested variable (…_KAFKA__BOOTSTRAP_SERVERS) must update the group's
        # default, not replace it and lose the other defaults (client id, service name).
        nested_model_default_partial_update=True,
    )
