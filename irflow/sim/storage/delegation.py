"""User delegation keys and the user-delegation SAS that cross-account copies carry (blob data plane).

- Get User Delegation Key: ``POST {blob}/?restype=service&comp=userdelegationkey`` with ``<KeyInfo><Start/>
  <Expiry/></KeyInfo>``; the expiry must lie within seven days of now
  (https://learn.microsoft.com/en-us/rest/api/storageservices/get-user-delegation-key). The key's value is
  a secret: registered with the tenant so the journal never shows it.
- A user-delegation SAS is checked as Azure documents it
  (https://learn.microsoft.com/en-us/rest/api/storageservices/create-user-delegation-sas): signed with the
  value of a key this account issued (HMAC-SHA256 over the version-2025 string-to-sign), inside its own
  ``st``/``se`` window and its key's ``skt``/``ske`` window, with read permission, for this very blob (or
  snapshot), and from a key issued after the account's last ``revokeUserDelegationKeys``.
- Copy Blob across accounts (https://learn.microsoft.com/en-us/rest/api/storageservices/copy-blob): the
  destination's credentials do not authorise the source; the source must be public or carry a SAS, else 404
  ``CannotVerifyCopySource``. Account and service SAS (signed with an account key) are not verified by the
  simulator and refused (stricter than Azure). The source account's firewall sees the storage service, not
  the caller: a source behind a firewall (public network access not Enabled, or default action Deny) refuses
  the copy, 403 ``CannotVerifyCopySource`` ("Copy blobs between storage accounts with network restrictions",
  https://learn.microsoft.com/en-us/troubleshoot/azure/azure-storage/copy-blobs-between-storage-accounts-network-restriction:
  server-side copy is not supported through a firewall allow-list).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING
from urllib.parse import parse_qs
from xml.sax.saxutils import escape

from irflow.sim.http import SimRequest, SimResponse

if TYPE_CHECKING:
    from irflow.sim.models import Tenant
    from irflow.sim.storage.blob import BlobContainer
    from irflow.sim.storage.models import StorageAccount

MAX_KEY_LIFETIME = timedelta(days=7)
KEY_VERSION = "2025-07-05"


@dataclass(frozen=True)
class UserDelegationKey:
    value: str  # base64; a secret
    signed_oid: str
    signed_tid: str
    start: datetime
    expiry: datetime
    issued_at: datetime
    service: str = "b"
    version: str = KEY_VERSION


def _storage_error(status: int, code: str, message: str) -> Exception:
    from irflow.sim.storage.blob_data import StorageError

    return StorageError(status, code, message)


def _time(text: str) -> datetime:
    from irflow.sim.storage.blob_data import parse_time

    return parse_time(text)


def _stamp(value: datetime) -> str:
    """How SAS and key times are written: whole seconds, ``Z``."""
    return value.strftime("%Y-%m-%dT%H:%M:%SZ")


def get_user_delegation_key(tenant: Tenant, request: SimRequest) -> SimResponse:
    from irflow.sim.storage.blob_data import XML_CONTENT_TYPE, _account_of, _base_headers, _invalid_xml

    account = _account_of(tenant, request)
    if b"<!DOCTYPE" in request.body.upper() or b"<!ENTITY" in request.body.upper():
        raise _invalid_xml()
    try:
        root = ET.fromstring(request.body or b"")  # noqa: S314 - no DTDs (refused above), size bounded
        start_text, expiry_text = root.findtext("Start"), root.findtext("Expiry")
        if root.tag != "KeyInfo" or not expiry_text:
            raise ValueError("KeyInfo needs an Expiry")
        now = tenant.now()
        start = _time(start_text) if start_text else now
        expiry = _time(expiry_text)
    except (ET.ParseError, ValueError) as exc:
        raise _invalid_xml() from exc
    if expiry <= start or expiry > now + MAX_KEY_LIFETIME or expiry <= now:
        raise _storage_error(
            400,
            "InvalidXmlNodeValue",
            "The value for one of the XML nodes is not in the correct format: the key's Expiry must be after "
            "its Start, in the future, and within seven days of now.",
        )
    value = base64.b64encode(secrets.token_bytes(32)).decode("ascii")
    tenant.issue_secret(value)
    key = UserDelegationKey(value, tenant.principal_id, tenant.tenant_id, start, expiry, issued_at=now)
    account.user_delegation_keys.append(key)
    xml = (
        '<?xml version="1.0" encoding="utf-8"?><UserDelegationKey>'
        f"<SignedOid>{key.signed_oid}</SignedOid><SignedTid>{key.signed_tid}</SignedTid>"
        f"<SignedStart>{_stamp(start)}</SignedStart><SignedExpiry>{_stamp(expiry)}</SignedExpiry>"
        f"<SignedService>{key.service}</SignedService><SignedVersion>{key.version}</SignedVersion>"
        f"<Value>{escape(value)}</Value></UserDelegationKey>"
    ).encode()
    summary = {"signedOid": key.signed_oid, "signedStart": _stamp(start), "signedExpiry": _stamp(expiry)}
    return SimResponse(200, summary, {**_base_headers(request), "Content-Type": XML_CONTENT_TYPE}, xml)


_STRING_TO_SIGN_FIELDS = (
    "skoid", "sktid", "skt", "ske", "sks", "skv", "saoid", "suoid", "scid", "skdutid", "sduoid",
)  # fmt: skip


def string_to_sign(query: dict[str, str], account: str, container: str, blob: str) -> str:
    """The user-delegation SAS string-to-sign (service version 2025-07-05 and later)."""
    parts = [
        query.get("sp", ""),
        query.get("st", ""),
        query.get("se", ""),
        f"/blob/{account}/{container}/{blob}",
    ]
    parts += [query.get(name, "") for name in _STRING_TO_SIGN_FIELDS]
    parts += [query.get(name, "") for name in ("sip", "spr", "sv", "sr", "snapshot", "ses")]
    parts += ["", ""]  # srh, srq: signed request headers and query parameters (refused when present)
    parts += [query.get(name, "") for name in ("rscc", "rscd", "rsce", "rscl", "rsct")]
    return "\n".join(parts)


def _unauthorised() -> Exception:
    return _storage_error(404, "CannotVerifyCopySource", "The specified resource does not exist.")


def _refused(detail: str) -> Exception:
    return _storage_error(
        403,
        "CannotVerifyCopySource",
        f"This request is not authorized to perform this operation. ({detail})",
    )


def check_user_delegation_sas(
    tenant: Tenant, account: StorageAccount, container: str, blob: str, snapshot: str, raw_query: str
) -> None:
    """Raise unless ``raw_query`` is a valid, unrevoked user-delegation SAS granting read on the blob."""
    query = {k: v[0] for k, v in parse_qs(raw_query, keep_blank_values=True).items()}
    if "sig" not in query:
        raise _unauthorised()
    if "skoid" not in query:
        raise _refused(
            "only user-delegation SAS are verified by irflow.sim; account keys are never simulated"
        )
    if query.get("srh") or query.get("srq"):
        raise _refused("signed request headers or query parameters are not simulated")
    now = tenant.now()
    try:
        window = (_time(query["st"]) if query.get("st") else None, _time(query["se"]))
        key_window = (_time(query["skt"]), _time(query["ske"]))
    except (KeyError, ValueError) as exc:
        raise _refused("the SAS times are missing or malformed") from exc
    if (window[0] is not None and now < window[0]) or now > window[1]:
        raise _refused("the SAS is not valid at this time")
    if not key_window[0] <= now <= key_window[1]:
        raise _refused("the user delegation key is not valid at this time")
    if "r" not in query.get("sp", ""):
        raise _refused("the SAS does not grant read")
    if query.get("sr") not in ("b", "bs") or (query.get("sr") == "bs") != bool(snapshot):
        raise _refused("the SAS is not for this blob")
    if query.get("snapshot", "") != snapshot:
        raise _refused("the SAS is not for this snapshot")
    expected = query["sig"].encode()
    revoked = account.user_delegation_keys_revoked_at
    for key in account.user_delegation_keys:
        if (key.signed_oid, _stamp(key.start), _stamp(key.expiry)) != (
            query.get("skoid"),
            _stamp(key_window[0]),
            _stamp(key_window[1]),
        ):
            continue
        digest = hmac.new(
            base64.b64decode(key.value),
            string_to_sign(query, account.name, container, blob).encode("utf-8"),
            hashlib.sha256,
        ).digest()
        if hmac.compare_digest(base64.b64encode(digest), expected):
            if revoked is not None and key.issued_at <= revoked:
                raise _refused("the user delegation key was revoked (revokeUserDelegationKeys)")
            return
    raise _refused("Signature did not match")


def authorise_copy_source(
    tenant: Tenant,
    source: StorageAccount,
    destination: StorageAccount,
    container: BlobContainer,
    blob: str,
    snapshot: str,
    raw_query: str,
) -> bool:
    """Whether a copy may read its source. Same account: the request's own authorisation (the caller
    checks RBAC). Another account: raises unless the source passes its firewall and is public or carries a
    valid user-delegation SAS."""
    if source is destination:
        return True
    acls = source.properties.get("networkAcls") or {}
    if (
        source.properties.get("publicNetworkAccess", "Enabled") != "Enabled"
        or acls.get("defaultAction") == "Deny"
    ):
        raise _refused("the source account's firewall does not admit the storage service's copy")
    public = container.public_access != "None" and source.allows_blob_public_access
    if raw_query and "sig=" in raw_query:
        check_user_delegation_sas(tenant, source, container.name, blob, snapshot, raw_query)
        return False
    if not public:
        raise _unauthorised()
    return False
