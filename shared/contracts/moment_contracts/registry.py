"""Which message types a consumer understands, and the typed decoding that turns bytes into them."""

from __future__ import annotations

from collections.abc import Iterable

from pydantic import ValidationError

from moment_contracts.base import Contract


class DecodeError(ValueError):
    """Why a message can't be processed. `reason` is a stable code; the text never quotes values."""

    reason = "malformed"


class MalformedMessage(DecodeError):
    reason = "malformed"


class SchemaViolation(DecodeError):
    reason = "schema-violation"


class UnknownMessageType(DecodeError):
    reason = "unknown-type"


class OversizedMessage(DecodeError):
    reason = "oversized"


class MessageRegistry:
    def __init__(self, models: Iterable[type[Contract]] = ()) -> None:
        self._models: dict[str, type[Contract]] = {}
        for model in models:
            self.register(model)

    def register(self, model: type[Contract]) -> None:
        self._models[model.ce_type] = model

    def types(self) -> frozenset[str]:
        return frozenset(self._models)

    def model_for(self, ce_type: str) -> type[Contract]:
        try:
            return self._models[ce_type]
        except KeyError:
            raise UnknownMessageType(f"unsupported type or version {ce_type!r}") from None

    def decode(self, ce_type: str, body: bytes) -> Contract:
        model = self.model_for(ce_type)
        try:
            return model.model_validate_json(body)
        except ValidationError as exc:
            if any(err["type"] == "json_invalid" for err in exc.errors()):
                raise MalformedMessage("the body is not valid JSON") from None
            # Locations and error kinds only: pydantic's default text would quote the input values.
            where = sorted({".".join(map(str, err["loc"])) or "<body>" for err in exc.errors()})
            raise SchemaViolation(f"{model.ce_type} invalid at {', '.join(where)}") from None
