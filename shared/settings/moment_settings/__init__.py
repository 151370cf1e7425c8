"""Loading pydantic settings so that bad configuration fails fast with a clear message."""

from moment_settings.base import ServiceSettings
from moment_settings.loader import ConfigurationError, SettingProblem, env_var_name, load_settings

__all__ = [
    "ConfigurationError",
    "ServiceSettings",
    "SettingProblem",
    "env_var_name",
    "load_settings",
]
