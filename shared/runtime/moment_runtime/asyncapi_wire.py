"""What FastStream's AsyncAPI output leaves out of the wire contract, added to the document.

FastStream describes payloads only. A client generated from the document alone also needs: the
headers each message really carries (CloudEvents binary mode, request/reply, MACs), which payload
goes with which `ce_type` on a topic that carries several, the models sealed inside boxes, and the
`{instance}` parameter of the reply topics. It must not be told of a correlation id that events
never carry. docs/contract.md is the prose of all this; tests/contract/test_asyncapi_wire.py holds
the documents to it, and test_asyncapi_valid.py to the AsyncAPI parser.
"""

from __future__ import annotations

import importlib
import pkgutil
from typing import Any
from urllib.parse import quote, unquote

import moment_contracts
from moment_contracts import catalogue, topics
from moment_contracts.base import Contract
from moment_contracts.envelope import CONTENT_TYPE, CORRELATION_ID, REPLY_TO, SPECVERSION

Json = dict[str, Any]
_COMMANDS_SUFFIX = ".commands"
_REPLY_ADDRESS = f"{topics.REPLY_PREFIX}{{instance}}"
_SCHEMAS = "#/components/schemas/"


def _text(description: str, **rules: Any) -> Json:
    return {"type": "string", "description": description, **rules}


_VISIBLE = r"^[\x21-\x7e]+$"
_CLOUDEVENTS: Json = {
    "ce_specversion": {"type": "string", "const": SPECVERSION},
    "ce_id": _text(
        "Unique per event; on a request, the request id",
        minLength=1,
        maxLength=128,
        pattern=_VISIBLE,
    ),
    "ce_source": _text("Who sent it, e.g. /moment/identity or /storefront", minLength=1),
    "ce_time": _text("RFC 3339 with its zone; optional, the consumer's clock if absent"),
    "ce_subject": _text(
        "The pseudonymous subject id (also the record key); never personal data",
        maxLength=128,
        pattern=_VISIBLE,
    ),
    "content-type": {"type": "string", "const": CONTENT_TYPE},
    "traceparent": _text("W3C trace context", maxLength=256),
    "tracestate": _text("W3C trace context", maxLength=512),
}
_REQUEST: Json = {
    REPLY_TO: _text(
        "The requester's reply topic; without it, or if it doesn't exist, no reply is sent",
        pattern=r"^replies\.[A-Za-z0-9._-]{1,200}$",
    ),
    CORRELATION_ID: _text("Copied onto the reply", maxLength=128, pattern=_VISIBLE),
}
_REPLY: Json = {
    CORRELATION_ID: _text(
        "The request's correlation_id, or its ce_id if it had none", maxLength=128
    ),
    "moment_reply_kid": _text("Identity only, to a request with a reply_key: the sealing key id"),
    "moment_reply_mac": _text("Identity only: HMAC-SHA256, base64url (docs/contract.md)"),
}
_PRODUCER: Json = {
    "moment_producer_kid": _text("The producer's MAC key version, v1, v2, ..."),
    "moment_producer_mac": _text("HMAC-SHA256 of the record, lower-case hex (docs/contract.md)"),
}
# The record key: events by the principal they are about, requests unkeyed unless they name one.
_KEY: Json = _text(
    "The pseudonymous id of the principal the message is about (UTF-8), or none (docs/contract.md,"
    " Keys and ordering)"
)
_CORRELATION = {"location": f"$message.header#/{CORRELATION_ID}"}


def _contracts_by_name() -> dict[str, type[Contract]]:
    for module in pkgutil.iter_modules(moment_contracts.__path__):
        importlib.import_module(f"moment_contracts.{module.name}")
    found: dict[str, type[Contract]] = {}
    pending: list[type[Contract]] = [Contract]
    while pending:
        for sub in pending.pop().__subclasses__():
            found[sub.__name__] = sub
            pending.append(sub)
    return found


def _headers(address: str, model: type[Contract] | None) -> Json:
    """The headers schema of one message: what really travels with it."""
    properties = dict(_CLOUDEVENTS)
    required = ["ce_specversion", "ce_id", "ce_source", "ce_type"]
    if model is None:
        properties["ce_type"] = _text("Any other type: acknowledged and ignored")
    else:
        properties["ce_type"] = {"type": "string", "const": model.ce_type}
        properties["ce_dataschema"] = {"type": "string", "const": model.dataschema()}
    if address.endswith(_COMMANDS_SUFFIX):
        properties |= _REQUEST
    elif address == _REPLY_ADDRESS:
        properties |= _REPLY
        required.append(CORRELATION_ID)
    elif address == topics.AUDIT_EVENTS:
        properties |= _PRODUCER
    return {"type": "object", "properties": properties, "required": required}


def _models_of(message: Json, known: dict[str, type[Contract]]) -> list[type[Contract] | None]:
    """The contract behind each payload choice of a message (None: not a contract)."""
    payload = message.get("payload", {})
    refs = [choice.get("$ref", "") for choice in payload.get("oneOf", [payload])]
    return [known.get(ref.removeprefix(_SCHEMAS)) for ref in refs]


def _message(address: str, model: type[Contract] | None, payload: Json, title: str) -> Json:
    message: Json = {
        "title": title,
        "contentType": CONTENT_TYPE,
        "headers": _headers(address, model),
        "payload": payload,
    }
    message["bindings"] = {"kafka": {"bindingVersion": "0.4.0", "key": _KEY}}
    if model is not None:
        message["name"] = model.ce_type
        message["summary"] = (model.__doc__ or model.__name__).strip().split("\n\n")[0]
    if address.endswith(_COMMANDS_SUFFIX) or address == _REPLY_ADDRESS:
        message["correlationId"] = dict(_CORRELATION)
    return message


def _split(document: Json, channel_id: str, known: dict[str, type[Contract]]) -> None:
    """One message per ce_type on the channel, each with its headers."""
    channel = document["channels"][channel_id]
    address = channel["address"]
    components = document["components"]["messages"]
    new_refs: dict[str, Json] = {}
    for ref in channel["messages"].values():
        old_key = unquote(ref["$ref"].rsplit("/", 1)[1])
        old = components.pop(old_key)
        choices = old.get("payload", {}).get("oneOf", [old.get("payload", {})])
        for model, payload in zip(_models_of(old, known), choices, strict=True):
            name = model.__name__ if model is not None else "OtherType"
            key = f"{address}:{model.ce_type if model else name}:Message"
            components[key] = _message(address, model, payload, key)
            new_refs[name] = {"$ref": f"#/components/messages/{_quote(key)}"}
    channel["messages"] = new_refs
    if "{instance}" in address:
        channel["parameters"] = {
            "instance": {"description": "The client instance's own id: [A-Za-z0-9._-]{1,200}"}
        }
    for operation in document["operations"].values():
        if operation["channel"]["$ref"] == f"#/channels/{_quote(channel_id)}":
            operation["messages"] = [
                {"$ref": f"#/channels/{_quote(channel_id)}/messages/{name}"} for name in new_refs
            ]


def _quote(key: str) -> str:
    """A key as FastStream writes it in a $ref."""
    return quote(key, safe=":")


def _add_sealed(document: Json) -> None:
    """The plaintexts sealed inside boxes, as schemas a client generates types from."""
    schemas = document["components"]["schemas"]
    if "SealedBox" not in schemas:
        return
    for model in catalogue.SEALED_PLAINTEXTS:
        schema = model.model_json_schema(ref_template=_SCHEMAS + "{model}")
        for name, definition in schema.pop("$defs", {}).items():
            schemas.setdefault(name, definition)
        schema["description"] = (
            f"{schema.get('description', model.__name__)}\n\nSealed: the JSON inside a SealedBox "
            f"(docs/contract.md, Sealed boxes). Its type name {model.ce_type} is never on the wire."
        )
        schemas[model.__name__] = schema
    for (outer, field), inner in catalogue.SEALED_FIELDS.items():
        properties = schemas.get(outer.__name__, {}).get("properties", {})
        if field in properties:
            properties[field] = {
                "allOf": [{"$ref": f"{_SCHEMAS}SealedBox"}],
                "description": f"Sealed; the plaintext is {inner.__name__}",
                "x-sealed-plaintext": inner.__name__,
            }


def complete(document: Json) -> Json:
    """The generated document, with the headers, ce_types, sealed models and parameters added."""
    known = _contracts_by_name()
    for channel_id in list(document.get("channels", {})):
        _split(document, channel_id, known)
    _add_sealed(document)
    return document
