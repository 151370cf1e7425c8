"""Loading settings so that bad configuration stops a service at once, with a clear message.

The message names each offending environment variable and why it is wrong, but never its
value: settings include database passwords and Vault tokens.
"""

from __future__ import annotations

import re
import sys
import types
import typing
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError
from pydantic.fields import FieldInfo
from pydantic_core import ErrorDetails
from pydantic_settings import BaseSettings, SettingsError

__all__ = ["ConfigurationError", "SettingProblem", "env_var_name", "load_settings"]

T = TypeVar("T", bound=BaseSettings)

EXIT_CODE = 2
"""The conventional exit status for a usage or configuration error."""

_REDACTED = "<value hidden>"
# Inputs shorter than this are left alone in messages: redacting "1" would garble the text,
# and values that short are not secrets.
_MIN_REDACT_LEN = 4
_SETTINGS_ERROR_FIELD = re.compile(r'field "(?P<field>[^"]+)"')


@dataclass(frozen=True)
class SettingProblem:
    """One bad or missing setting: the environment variable and what is wrong with it."""

    env_var: str
    reason: str


class ConfigurationError(SystemExit):
    """The settings could not be loaded; exits the process with status 2 if not caught.

    The human-readable report has already been written to stderr when this is raised.
    """

    def __init__(self, settings_name: str, problems: Sequence[SettingProblem]) -> None:
        super().__init__(EXIT_CODE)
        self.settings_name = settings_name
        self.problems = tuple(problems)

    def __str__(self) -> str:
        count = len(self.problems)
        noun = "setting is" if count == 1 else "settings are"
        lines = [f"Configuration error: {count} {noun} missing or invalid ({self.settings_name})."]
        lines += [f"  {problem.env_var}: {problem.reason}" for problem in self.problems]
        lines.append("Values are never shown, as they may be secret.")
        return "\n".join(lines)


def load_settings(settings_cls: type[T], /, **overrides: Any) -> T:
    """Instantiate ``settings_cls`` from the environment, with ``overrides`` taking precedence.

    On bad or missing settings, writes a report to stderr and raises
    :class:`ConfigurationError`, which exits with status 2 unless caught.
    """
    try:
        return settings_cls(**overrides)
    except ValidationError as error:
        problems = [_problem(settings_cls, detail) for detail in error.errors()]
    except SettingsError as error:
        problems = [_unparsable(settings_cls, error)]
    failure = ConfigurationError(settings_cls.__name__, problems)
    sys.stderr.write(f"{failure}\n")
    sys.stderr.flush()
    # ``from None``: the chained pydantic error would render the raw input.
    raise failure from None


def env_var_name(settings_cls: type[BaseSettings], loc: Sequence[str | int]) -> str:
    """The environment variable that sets the field at ``loc`` (as in a pydantic error)."""
    return _locate(settings_cls, loc)[0]


def _problem(settings_cls: type[BaseSettings], detail: ErrorDetails) -> SettingProblem:
    env_var, positions = _locate(settings_cls, detail["loc"])
    if detail["type"] == "missing":
        reason = "is required but not set"
        if _names_model(settings_cls, detail["loc"]):
            reason += _how_to_set(settings_cls, detail["loc"], env_var)
    elif detail["type"] == "extra_forbidden":
        reason = "is not a recognised setting"
    else:
        reason = _without_input(detail["msg"], detail.get("input"))
    if positions:
        reason = f"item {', '.join(positions)}: {reason}"
    return SettingProblem(env_var, reason)


def _how_to_set(settings_cls: type[BaseSettings], loc: Sequence[str | int], env_var: str) -> str:
    """Name the group's required fields, so the message says exactly what to set."""
    delimiter = settings_cls.model_config.get("env_nested_delimiter") or "__"
    model: type[BaseModel] | None = settings_cls
    for segment in loc:
        field = _field(model, str(segment)) if model is not None else None
        model = _model_type(field.annotation) if field is not None else None
    required = [n for n, f in model.model_fields.items() if f.is_required()] if model else []
    if not required:
        return f" (set its fields as {env_var}{delimiter}<FIELD>)"
    names = ", ".join(f"{env_var}{delimiter}{name.upper()}" for name in required)
    return f" (set {names})"


def _unparsable(settings_cls: type[BaseSettings], error: SettingsError) -> SettingProblem:
    match = _SETTINGS_ERROR_FIELD.search(str(error))
    field = match["field"] if match else "?"
    return SettingProblem(
        env_var_name(settings_cls, (field,)), "could not be parsed (complex values must be JSON)"
    )


def _without_input(message: str, supplied: object) -> str:
    # Pydantic's own messages do not quote the input, but a custom validator's might.
    if isinstance(supplied, str) and len(supplied) >= _MIN_REDACT_LEN:
        return message.replace(supplied, _REDACTED)
    return message


def _locate(settings_cls: type[BaseSettings], loc: Sequence[str | int]) -> tuple[str, list[str]]:
    """The variable for ``loc`` and the list positions within its value, if any."""
    config = settings_cls.model_config
    delimiter = config.get("env_nested_delimiter") or "__"
    prefix = config.get("env_prefix", "")
    parts: list[str] = []
    positions: list[str] = []
    model: type[BaseModel] | None = settings_cls
    for segment in loc:
        if isinstance(segment, int):
            positions.append(str(segment))
            model = None
            continue
        field = _field(model, segment) if model is not None else None
        if field is None:
            # A union branch, a dict key or an unknown name: only the first one can be named.
            if not parts:
                parts.append(segment)
            model = None
            continue
        if not parts and _aliased(field, segment):
            prefix = ""  # pydantic-settings reads an aliased field by its alias alone
        parts.append(segment)
        model = _model_type(field.annotation)
    name = prefix + delimiter.join(parts)
    return (name if config.get("case_sensitive") else name.upper()), positions


def _names_model(settings_cls: type[BaseSettings], loc: Sequence[str | int]) -> bool:
    """Whether ``loc`` leads to a field whose value is itself a settings group."""
    model: type[BaseModel] | None = settings_cls
    for segment in loc:
        field = _field(model, segment) if model is not None and isinstance(segment, str) else None
        if field is None:
            return False
        model = _model_type(field.annotation)
    return model is not None


def _field(model: type[BaseModel], segment: str) -> FieldInfo | None:
    for name, field in model.model_fields.items():
        if segment in (name, field.alias, field.validation_alias):
            return field
    return None


def _aliased(field: FieldInfo, segment: str) -> bool:
    return segment in (field.alias, field.validation_alias)


def _model_type(annotation: object) -> type[BaseModel] | None:
    """The pydantic model inside ``annotation`` (``Model`` or ``Model | None``), if there is one."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        models = [arg for arg in typing.get_args(annotation) if _model_type(arg) is not None]
        if len(models) == 1:
            return _model_type(models[0])
    return None
