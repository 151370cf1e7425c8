"""Settings for reaching Vault and caching unwrapped keys.

Only file paths are configured here: the bootstrap credential (AppRole secret id, Kubernetes
service-account JWT or token) is read from its file at login time, so no secret ever sits in an
environment file, a settings object or a repr.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

AuthMethod = Literal["approle", "kubernetes", "token"]

DEFAULT_K8S_JWT_PATH = Path("/var/run/secrets/kubernetes.io/serviceaccount/token")


class VaultConfig(BaseModel):
    """Where Vault is, how to log in, which mounts to use and how long to cache data keys."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    url: str = "http://127.0.0.1:8200"
    auth_method: AuthMethod = "approle"
    role_id_file: Path | None = None
    secret_id_file: Path | None = None
    approle_mount: str = "approle"
    kubernetes_role: str | None = None
    kubernetes_jwt_path: Path = DEFAULT_K8S_JWT_PATH
    kubernetes_mount: str = "kubernetes"
    token_file: Path | None = None
    transit_mount: str = "transit"
    kv_mount: str = "secret"
    request_timeout_s: float = Field(default=5.0, gt=0)
    key_cache_ttl_s: float = Field(default=300, gt=0)
    key_cache_size: int = Field(default=10_000, ge=1)

    @model_validator(mode="after")
    def _credentials_for_method(self) -> Self:
        missing: list[str] = []
        if self.auth_method == "approle":
            missing = [
                name for name in ("role_id_file", "secret_id_file") if getattr(self, name) is None
            ]
        elif self.auth_method == "kubernetes" and not self.kubernetes_role:
            missing = ["kubernetes_role"]
        elif self.auth_method == "token" and self.token_file is None:
            missing = ["token_file"]
        if missing:
            raise ValueError(f"auth_method={self.auth_method!r} requires {', '.join(missing)}")
        return self
