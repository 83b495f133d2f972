"""Process settings, read from the environment (prefix ``IRFLOW_``) and an optional ``.env`` file.

Build them with :func:`get_settings`; nothing is read at import time.
"""

from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

# usgov-dod: Azure Government DoD (IL5) tenants: Azure Government ARM and Log Analytics, the DoD Graph.
AzureCloud = Literal["public", "usgov", "usgov-dod", "china", "custom"]
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


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
    # Seconds to open a connection and to wait for an answer (azure-core's default is 300 s each: a
    # black-holed endpoint would hold a step for ten minutes per attempt). Log Analytics gets its own server
    # timeout (180 s by default) plus this read timeout.
    azure_connect_timeout: float = Field(default=10.0, gt=0, le=300)
    azure_read_timeout: float = Field(default=60.0, gt=0, le=600)

    # irflow's own way in (see irflow/azure/principal.py): containment never removes irflow's access, and
    # isolation leaves this origin allowed for the data-plane work that follows.
    self_object_id: str | None = None
    egress_ips: str = ""
    subnet_id: str | None = None

    # The organisation's time zone (IANA name): it decides the calendar date of discovery (day 0).
    timezone: str = "America/New_York"

    sentinel_secret: SecretStr | None = None
    # Object ids (comma-separated) of the managed identities allowed to post to the Sentinel webhook with an
    # Entra ID token (with entra_tenant_id and entra_audience).
    sentinel_callers: str = ""
    # Anonymous refused requests (401) per client IP: a token bucket of this size, refilled at this rate per
    # second; past it the API answers 429 with Retry-After before reading the credential.
    api_refusal_burst: int = Field(default=60, ge=1, le=1_000_000)
    api_refusal_rate: float = Field(default=1.0, gt=0, le=100_000)
    # HMAC key of recipient and secret fingerprints; unset: one generated on first use, kept in the database.
    fingerprint_key: SecretStr | None = Field(default=None, min_length=16)
    # Fernet key sealing free text, sensitive inputs and DBOS's data at rest (irflow/store/sealed.py);
    # unset: one generated on first use, kept in the database (set it from Key Vault in production).
    data_key: SecretStr | None = None
    # Microsoft Entra ID bearer tokens (users' app roles, senders' managed identities): accepted when both
    # the tenant and irflow's app id URI are set. The authority defaults to the cloud's sign-in host.
    entra_tenant_id: str | None = None
    entra_audience: str | None = None
    entra_authority: str | None = None
    # Dashboard sessions (/ui): the key that signs the session cookie (unset: one generated on first use and
    # kept in the database, so every replica shares it) and how long a sign-in lasts.
    ui_session_secret: SecretStr | None = Field(default=None, min_length=32)
    ui_session_minutes: int = Field(default=480, ge=1, le=7 * 24 * 60)
    # "Sign in with Microsoft" (authorization code flow with PKCE, irflow/ui/entra_sign_in.py):
    # the dashboard's app registration (client id), its client secret (unset: a public client), the scope
    # asked for (unset: the first IRFLOW_ENTRA_AUDIENCE + "/.default") and the redirect URI registered for it
    # (unset: this server's own https://HOST/ui/auth/callback as the request names it).
    ui_client_id: str | None = None
    ui_client_secret: SecretStr | None = None
    ui_scope: str | None = None
    ui_redirect_uri: str | None = None
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

    # Audit anchors (irflow/engine/anchor.py): the chain head written as WORM blobs into a container of an
    # evidence storage account (ARM id) under a locked time-based immutability policy. Six years by default:
    # HIPAA keeps its documentation six years (45 CFR 164.316(b)(2)(i)).
    anchor_account_id: str | None = None
    anchor_container: str = Field(
        default="irflow-audit-anchors", pattern=r"^[a-z0-9](?:-?[a-z0-9])+$", min_length=3, max_length=63
    )
    anchor_prefix: str = Field(default="chain", max_length=200)
    anchor_retention_days: int = Field(default=2190, ge=1, le=146000)

    # Engine: a stable id per replica (DBOS executor id), by default this host's name; the embedded SQLite
    # mode runs one replica. See docs/operations.md.
    executor_id: str = Field(
        default_factory=lambda: default_executor_id(), pattern=r"^[A-Za-z0-9._:@-]{1,100}$"
    )
    # Seconds a replica may stay silent (no heartbeat) before a live replica recovers its workflows.
    replica_lease: float = Field(default=30.0, ge=1, le=3600)
    # Runs one replica executes at once (the rest wait in the runs queue for any replica).
    run_worker_concurrency: int = Field(default=8, ge=1, le=1000)
    # Scheduled work inside workers (cron with seconds): outbox delivery with its retries; deadline reminders.
    outbox_schedule: str = "*/30 * * * * *"
    reminder_schedule: str = "0 0 * * * *"
    log_level: str = "INFO"
    log_format: Literal["auto", "json", "console"] = "auto"
    # SQLite only: "full" syncs every commit to disk (survives an OS crash or power loss); "normal" syncs at
    # checkpoints only (survives a killed process, may lose the last commits on power loss): see store/db.py.
    sqlite_synchronous: Literal["full", "normal"] = "full"
    # Polling of DBOS queues (seconds); tests lower it.
    queue_polling_interval: float = Field(default=0.2, gt=0)

    def sentinel_caller_ids(self) -> frozenset[str]:
        return frozenset(item.strip().lower() for item in self.sentinel_callers.split(",") if item.strip())

    @field_validator("database_url")
    @classmethod
    def _known_scheme(cls, value: str) -> str:
        if not value.startswith(("sqlite", "postgresql")):
            raise ValueError("IRFLOW_DATABASE_URL must be a sqlite:// or postgresql+psycopg:// URL")
        return value

    @field_validator("outbox_schedule", "reminder_schedule")
    @classmethod
    def _cron(cls, value: str) -> str:
        from croniter import croniter

        if not croniter.is_valid(value, second_at_beginning=True):
            raise ValueError("not a cron expression (six fields, seconds first: '*/30 * * * * *')")
        return value

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        from irflow.compliance.models import zone

        zone(value)
        return value

    @field_validator("anchor_account_id")
    @classmethod
    def _anchor_account(cls, value: str | None) -> str | None:
        if value:
            from irflow.domain.resource_id import ResourceId

            rid = ResourceId.parse(value)
            if rid.full_type.lower() != "microsoft.storage/storageaccounts":
                raise ValueError("IRFLOW_ANCHOR_ACCOUNT_ID must be the ARM id of a storage account")
        return value or None

    @field_validator("log_level")
    @classmethod
    def _known_level(cls, value: str) -> str:
        level = value.strip().upper()
        if level not in LOG_LEVELS:
            raise ValueError(f"unknown log level; use one of {', '.join(LOG_LEVELS)}")
        return level

    @field_validator("data_key")
    @classmethod
    def _fernet_key(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            from irflow.engine.sealing import check_data_key

            check_data_key(value.get_secret_value())
        return value

    @field_validator("egress_ips")
    @classmethod
    def _public_egress(cls, value: str) -> str:
        from irflow.domain.ip_rules import parse_public_ipv4

        parse_public_ipv4(value)  # the CLI names the setting
        return value

    @field_validator("subnet_id")
    @classmethod
    def _subnet_id(cls, value: str | None) -> str | None:
        value = (value or "").strip()
        if value and not re.fullmatch(
            r"(?i)/subscriptions/[^/]+/resourceGroups/[^/]+/providers/Microsoft\.Network/virtualNetworks/[^/]+"
            r"/subnets/[^/]+",
            value,
        ):
            raise ValueError(
                "IRFLOW_SUBNET_ID must be a subnet resource id: /subscriptions/<id>/resourceGroups/<group>/"
                "providers/Microsoft.Network/virtualNetworks/<vnet>/subnets/<subnet>"
            )
        return value or None

    @field_validator("azure_ca_bundle")
    @classmethod
    def _ca_exists(cls, value: Path | None) -> Path | None:
        if value is not None and not value.is_file():
            raise ValueError(f"IRFLOW_AZURE_CA_BUNDLE: no such file: {value}")
        return value


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()


def default_executor_id() -> str:
    """This host's name, as a DBOS executor id: stable across restarts of a replica on the same host
    (a Kubernetes StatefulSet pod, a VM); set IRFLOW_EXECUTOR_ID where host names are not stable."""
    import re
    import socket

    name = re.sub(r"[^A-Za-z0-9.-]", "-", socket.gethostname())[:100].strip("-.")
    return name or "local"


def reset_settings_cache() -> None:
    get_settings.cache_clear()


def recipients(value: str) -> list[str]:
    """A comma-separated address list, blanks dropped."""
    return [item.strip() for item in value.split(",") if item.strip()]
