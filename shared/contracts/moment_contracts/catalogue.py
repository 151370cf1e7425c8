"""Every message type per topic: the single source for consumers' registries and for the docs."""

from __future__ import annotations

from moment_contracts import audit, identity, topics
from moment_contracts.base import Contract

TOPIC_MESSAGES: dict[str, tuple[type[Contract], ...]] = {
    topics.IDENTITY_COMMANDS: (identity.GetSealingKey, identity.RegisterUser, identity.Login),
    topics.IDENTITY_EVENTS: (identity.UserRegistered,),
    topics.AUDIT_EVENTS: (audit.PersonalDataAccessed,),
}
