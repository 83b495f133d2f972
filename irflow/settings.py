"""Process settings, read from the environment (prefix ``IRFLOW_``) and an optional ``.env`` file.

Build them with :func:`get_settings`; nothing is read at import time.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

AzureCloud = Literal["public", "usgov", "china", "custom"]


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="IRFLOW_", env_file=".env", extra="ignore")

    database_url: str = "sqlite:///./irflow.db"

    azure_cloud: AzureCloud = "public"
    arm_endpoint: str | None = None
    logs_endpoint: str | None = None
    graph_endpoint: str | None = None
    authority: str | None = None
    azure_ca_bundle: Path | None = None
    azure_token: SecretStr | None = None
    # Seconds between polls of a long-running Azure operation without a Retry-After (the SDK default is 30).
    azure_lro_polling_interval: float | None = Field(default=None, ge=0, le=300)

    # irflow's own way in (see irflow/azure/principal.py): containment never removes irflow's access, and
    # isolation leaves this origin allowed for the data-plane work that follows.
    self_object_id: str | None = None
    egress_ips: str = ""
    subnet_id: str | None = None

    sentinel_secret: SecretStr | None = None
    # Microsoft Entra ID bearer tokens (users' app roles, senders' managed identities): accepted when both
    # the tenant and irflow's app id URI are set. The authority defaults to the cloud's sign-in host.
    entra_tenant_id: str | None = None
    entra_audience: str | None = None
    entra_authority: str | None = None
    # A remote irflow: the CLI reads through its API with this bearer token instead of the local database.
    url: str | None = None
    token: SecretStr | None = None
    playbooks_dir: Path = Path("playbooks")
    templates_dir: Path = Path("notifications")

    # Notifications (the outbox's channels). Secrets and webhook URLs are SecretStr: never printed.
    smtp_host: str | None = None
    smtp_port: int = Field(default=25, ge=1, le=65535)
    smtp_from: str | None = None
    smtp_starttls: bool = True
    smtp_username: str | None = None
    smtp_password: SecretStr | None = None
    slack_webhook_url: SecretStr | None = None
    teams_webhook_url: SecretStr | None = None
    notify_webhook_url: SecretStr | None = None
    notify_webhook_secret: SecretStr | None = None
    # Comma-separated addresses: deadline reminders; escalations (notify.escalate by e-mail).
    compliance_recipients: str = ""
    oncall_recipients: str = ""

    # Engine: a stable id per replica (DBOS executor id); the embedded SQLite mode runs one replica.
    executor_id: str = "local"
    log_level: str = "INFO"
    log_format: Literal["auto", "json", "console"] = "auto"
    # Polling of DBOS queues (seconds); tests lower it.
    queue_polling_interval: float = Field(default=0.2, gt=0)

    @field_validator("database_url")
    @classmethod
    def _known_scheme(cls, value: str) -> str:
        if not value.startswith(("sqlite", "postgresql")):
            raise ValueError("IRFLOW_DATABASE_URL must be a sqlite:// or postgresql+psycopg:// URL")
        return value

    @field_validator("azure_ca_bundle")
    @classmethod
    def _ca_exists(cls, value: Path | None) -> Path | None:
        if value is not None and not value.is_file():
            raise ValueError(f"IRFLOW_AZURE_CA_BUNDLE: no such file: {value}")
        return value


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()


def reset_settings_cache() -> None:
    get_settings.cache_clear()


def recipients(value: str) -> list[str]:
    """A comma-separated address list, blanks dropped."""
    return [item.strip() for item in value.split(",") if item.strip()]
