"""Identity signs each sealing key it hands out with its Transit token-signing key (once per key),
so storefront clients that trust that public key can check they seal to identity and nobody else."""

from __future__ import annotations

import base64

from moment_contracts.identity import SealingKey
from moment_contracts.sealed import endorsement_statement
from moment_crypto.vault import VaultClient


class KeyEndorser:
    def __init__(self, vault: VaultClient, key_name: str) -> None:
        self._vault = vault
        self._key_name = key_name
        self._endorsed: dict[str, SealingKey] = {}

    async def endorse(self, key: SealingKey) -> SealingKey:
        if key.kid not in self._endorsed:
            statement = endorsement_statement(key.kid, key.public_key)
            _, version, signature = (await self._vault.sign(self._key_name, statement)).split(":")
            raw = base64.b64decode(signature)
            self._endorsed = {
                key.kid: key.model_copy(
                    update={
                        "signer_kid": f"{self._key_name}:{version}",
                        "signature": base64.urlsafe_b64encode(raw).decode().rstrip("="),
                    }
                )
            }
        return self._endorsed[key.kid]
