"""The AsyncAPI documents can be used alone (issue 10): every message declares the headers it
really carries, names its ce_type, and carries a correlation id only where one travels; every
payload on identity.commands is tied to its ce_type; the sealed plaintexts are schemas; the reply
topics declare their parameter."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import pytest

from moment_contracts import catalogue, topics
from moment_contracts.sealed import SealedBox

DOCS = Path(__file__).resolve().parents[2] / "docs" / "asyncapi"
DOCUMENTS = {path.stem: json.loads(path.read_text()) for path in sorted(DOCS.glob("*.json"))}
REQUIRED = {"ce_specversion", "ce_id", "ce_source", "ce_type"}


def _messages() -> list[tuple[str, str, dict[str, Any], str]]:
    """(service, component key, message, channel address) for every message of every channel."""
    found = []
    for service, document in DOCUMENTS.items():
        components = document["components"]["messages"]
        for channel in document["channels"].values():
            for ref in channel["messages"].values():
                key = ref["$ref"].rsplit("/", 1)[1]
                found.append((service, key, components[unquote(key)], channel["address"]))
    return found


MESSAGES = _messages()


@pytest.mark.parametrize(("service", "key", "message", "address"), MESSAGES, ids=lambda v: "")
def test_every_message_declares_its_headers(
    service: str, key: str, message: dict[str, Any], address: str
) -> None:
    headers = message["headers"]
    assert set(headers["required"]) >= REQUIRED, key
    assert {"ce_time", "ce_subject", "content-type", "traceparent"} <= set(headers["properties"])
    correlated = address.endswith(".commands") or address.startswith(topics.REPLY_PREFIX)
    assert ("correlationId" in message) == correlated, key
    if address.endswith(".commands"):
        assert {"reply_to", "correlation_id"} <= set(headers["properties"]), key
    if address.startswith(topics.REPLY_PREFIX):
        assert "correlation_id" in headers["required"], key


def test_each_request_on_identity_commands_is_tied_to_its_ce_type() -> None:
    identity = [
        (m["headers"]["properties"]["ce_type"].get("const"), m["payload"]["$ref"])
        for service, _, m, address in MESSAGES
        if service == "identity" and address == topics.IDENTITY_COMMANDS
    ]
    expected = {
        (model.ce_type, f"#/components/schemas/{model.__name__}")
        for model in catalogue.TOPIC_MESSAGES[topics.IDENTITY_COMMANDS]
    }
    assert set(identity) == expected
    assert len(identity) == len(expected)


def test_the_sealed_plaintexts_are_schemas_and_each_box_names_its_own() -> None:
    schemas = DOCUMENTS["identity"]["components"]["schemas"]
    assert {m.__name__ for m in catalogue.SEALED_PLAINTEXTS} <= set(schemas)
    for (outer, field), inner in catalogue.SEALED_FIELDS.items():
        if outer.__name__ in schemas:
            assert schemas[outer.__name__]["properties"][field]["x-sealed-plaintext"] == (
                inner.__name__
            )


@pytest.mark.parametrize("service", sorted(DOCUMENTS))
def test_a_reply_topic_declares_its_instance_parameter(service: str) -> None:
    for channel in DOCUMENTS[service]["channels"].values():
        if "{instance}" in channel["address"]:
            assert "instance" in channel["parameters"]


def test_every_sealed_box_of_every_message_is_mapped_to_its_plaintext() -> None:
    messages = {m for ms in catalogue.TOPIC_MESSAGES.values() for m in ms}
    messages |= {*catalogue.IDENTITY_REPLIES, *catalogue.AUDIT_REPLIES}
    boxes = {
        (model, name)
        for model in messages
        for name, info in model.model_fields.items()
        if info.annotation is SealedBox
    }
    assert boxes == set(catalogue.SEALED_FIELDS)
