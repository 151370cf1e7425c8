"""Every timestamp on the wire is RFC 3339 with its zone (issue 10: an export's account.created_at
went out as "2026-12-04 02:28:17.150188"). Walks every message model: the catalogue's, the replies,
and every model sealed inside a box, so a new datetime field can't slip past the shared type."""

from __future__ import annotations

import importlib
import pkgutil
import re
import typing
from datetime import UTC, datetime, timedelta, timezone

import pytest
from pydantic import BaseModel, TypeAdapter, ValidationError

import moment_contracts
from moment_contracts import catalogue
from moment_contracts.base import Contract, Timestamp
from moment_contracts.profile import ExportAccount, ExportDocument

# RFC 3339 section 5.6 date-time, with the "T" and a zone ("Z" or an offset) both required.
RFC3339 = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?(Z|[+-][0-9]{2}:[0-9]{2})"
)
_TIMESTAMP_CHECK = typing.get_args(Timestamp)[1]


def _every_model() -> list[type[Contract]]:
    for module in pkgutil.iter_modules(moment_contracts.__path__):
        importlib.import_module(f"moment_contracts.{module.name}")
    found: dict[str, type[Contract]] = {}
    pending: list[type[Contract]] = [Contract]
    while pending:
        for sub in pending.pop().__subclasses__():
            found[f"{sub.__module__}.{sub.__qualname__}"] = sub
            pending.append(sub)
    listed = [m for ms in catalogue.TOPIC_MESSAGES.values() for m in ms]
    listed += [*catalogue.IDENTITY_REPLIES, *catalogue.AUDIT_REPLIES]
    assert set(listed) <= set(found.values())
    return sorted(found.values(), key=lambda m: m.__name__)


MODELS = _every_model()


def _naked_datetimes(annotation: object, where: str) -> list[str]:
    """Where `annotation` holds a datetime that is not the shared Timestamp type."""
    if annotation is datetime:
        return [where]
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [
            hit
            for name, info in annotation.model_fields.items()
            for hit in _field_hits(info.annotation, info.metadata, f"{where}.{name}")
        ]
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        base, *metadata = typing.get_args(annotation)
        return _field_hits(base, metadata, where)
    return [hit for arg in typing.get_args(annotation) for hit in _naked_datetimes(arg, where)]


def _field_hits(annotation: object, metadata: list[object], where: str) -> list[str]:
    if annotation is datetime:
        return [] if _TIMESTAMP_CHECK in metadata else [where]
    return _naked_datetimes(annotation, where)


def test_the_walk_sees_the_sealed_inner_models() -> None:
    names = {m.__name__ for m in MODELS}
    assert {"ExportDocument", "ExportAccount", "Credentials", "PersonalDataValues"} <= names


@pytest.mark.parametrize("model", MODELS, ids=lambda m: m.__name__)
def test_every_datetime_field_is_a_zoned_timestamp(model: type[Contract]) -> None:
    assert _naked_datetimes(model, model.__name__) == []


@pytest.mark.parametrize("model", MODELS, ids=lambda m: m.__name__)
def test_every_datetime_in_the_schema_is_a_date_time(model: type[Contract]) -> None:
    """What a client generates from the schema: no timestamp typed as a bare string."""
    schema = str(model.model_json_schema())
    assert schema.count("'format': 'date-time'") >= len(_naked_or_not(model))


def _naked_or_not(model: type[BaseModel]) -> list[str]:
    return [
        name
        for name, info in model.model_fields.items()
        if "datetime" in str(info.annotation) or info.annotation is datetime
    ]


_ADAPTER = TypeAdapter(Timestamp)


@pytest.mark.parametrize(
    "moment",
    [
        datetime(2026, 12, 4, 2, 28, 17, 150188),  # noqa: DTZ001 - naive, as SQLite hands it back
        datetime(2026, 12, 4, 2, 28, 17, tzinfo=UTC),
        datetime(2026, 12, 4, 3, 28, 17, tzinfo=timezone(timedelta(hours=1))),
    ],
)
def test_a_timestamp_is_written_in_rfc3339_with_its_zone(moment: datetime) -> None:
    text = _ADAPTER.dump_json(_ADAPTER.validate_python(moment)).decode().strip('"')
    assert RFC3339.fullmatch(text), text


def test_a_naive_value_built_in_python_is_taken_as_utc() -> None:
    naive = datetime(2026, 1, 1)  # noqa: DTZ001 - what SQLite hands back
    assert _ADAPTER.validate_python(naive) == datetime(2026, 1, 1, tzinfo=UTC)


@pytest.mark.parametrize("text", ["2026-12-04 02:28:17.150188", "2026-12-04T02:28:17"])
def test_a_timestamp_without_its_zone_is_refused_on_the_wire(text: str) -> None:
    with pytest.raises(ValidationError, match="zone"):
        _ADAPTER.validate_json(f'"{text}"')


def test_an_export_built_from_sqlite_values_goes_out_in_rfc3339() -> None:
    """The reported bug: the account's times as SQLite returns them (naive UTC)."""
    naive = datetime(2026, 12, 4, 2, 28, 17, 150188)  # noqa: DTZ001
    document = ExportDocument(
        subject_id="s-1",
        personal_data={"name": "Ada"},
        account=ExportAccount(
            status="active", locale="en", key_version="1", created_at=naive, updated_at=naive
        ),
        exported_at=datetime.now(UTC),
    )
    wire = document.model_dump(mode="json")
    for text in (wire["account"]["created_at"], wire["account"]["updated_at"], wire["exported_at"]):
        assert RFC3339.fullmatch(text), text
    assert wire["account"]["created_at"] == "2026-12-04T02:28:17.150188Z"
    assert ExportDocument.model_validate_json(document.model_dump_json()) == document
