"""The blob service data plane (``{primaryEndpoints.blob}`` = ``{base}/_data/{account}/blob/``): Get and Set
Container ACL, i.e. a container's stored access policies, as ``azure.storage.blob.ContainerClient`` calls
them.

Wire format of the blob service REST API, not ARM: XML bodies (``SignedIdentifiers``), ``x-ms-version``
required and echoed, errors as ``<Error><Code/><Message/></Error>`` with an ``x-ms-error-code`` header.

Pipeline (:func:`admit`): account → authentication → ``x-ms-version`` → route → RBAC (the route's
operation, ``…/containers/getAcl/action`` / ``setAcl/action``, over the container's resource id) → latency /
injected error. Authentication is Microsoft Entra only: ``Authorization: Bearer <tenant token>``; a request
without it gets the storage service's 401 challenge (``authorization_uri``, ``resource_id``) that
``StorageBearerTokenCredentialPolicy`` follows. Shared Key signatures are not verified by the simulator: a
Shared Key request is refused 403 ``AuthenticationFailed`` (``KeyBasedAuthenticationNotPermitted`` when the
account has ``allowSharedKeyAccess: false``), as Azure refuses a bad signature. Network rules
(``publicNetworkAccess``, ``networkAcls``) are not enforced on the data plane.
"""

from __future__ import annotations

import hmac
import re
import uuid
import xml.etree.ElementTree as ET
from datetime import UTC, datetime
from email.utils import format_datetime, parsedate_to_datetime
from typing import TYPE_CHECKING, Any
from xml.sax.saxutils import escape

from irflow.sim import arm, errors
from irflow.sim.http import SimRequest, SimResponse
from irflow.sim.storage.blob import BlobContainer, StoredAccessPolicy

if TYPE_CHECKING:
    from irflow.sim.models import Tenant
    from irflow.sim.router import Route
    from irflow.sim.storage.models import StorageAccount

DATA_PREFIX = "/_data/"
STORAGE_RESOURCE = "https://storage.azure.com"
XML_CONTENT_TYPE = "application/xml"
_ACCOUNT_PATH = re.compile(r"^/_data/([^/]+)/([^/]+)(?:/|$)")
_PUBLIC_ACCESS_HEADER = {"container": "Container", "blob": "Blob"}
_TIME = re.compile(r"^(\d{4}-\d{2}-\d{2})(?:T(\d{2}:\d{2}(?::\d{2})?)(?:\.(\d{1,7}))?)?(Z|[+-]\d{2}:\d{2})?$")


class StorageError(errors.ArmError):
    """A blob service error: rendered as the service's XML ``Error`` with ``x-ms-error-code``."""

    def response(self) -> SimResponse:
        request_id = str(uuid.uuid4())
        time = arm.format_time(datetime.now(UTC))
        message = f"{self.message}\nRequestId:{request_id}\nTime:{time}"
        xml = (
            '<?xml version="1.0" encoding="utf-8"?>'
            f"<Error><Code>{escape(self.code)}</Code><Message>{escape(message)}</Message></Error>"
        ).encode()
        headers = {
            **self.headers,
            "x-ms-error-code": self.code,
            "x-ms-request-id": request_id,
            "Content-Type": XML_CONTENT_TYPE,
        }
        return SimResponse(self.status, {"error": {"code": self.code, "message": self.message}}, headers, xml)


def _challenge(tenant: Tenant) -> dict[str, str]:
    return {
        "WWW-Authenticate": (
            f"Bearer authorization_uri=https://login.microsoftonline.com/{tenant.tenant_id}/oauth2/authorize "
            f"resource_id={STORAGE_RESOURCE}"
        )
    }


def _account_of(tenant: Tenant, request: SimRequest) -> StorageAccount:
    found = _ACCOUNT_PATH.match(request.path)
    account = tenant.find_storage_account(found.group(1)) if found else None
    if account is None or found is None or found.group(2).lower() != "blob":
        raise StorageError(404, "ResourceNotFound", "The specified resource does not exist.")
    return account


def admit(tenant: Tenant, request: SimRequest, route: Route | None) -> None:
    """Everything before a blob service handler; raises :class:`StorageError` to refuse."""
    account = _account_of(tenant, request)
    header = request.headers.get("Authorization")
    if not header:
        raise StorageError(
            401,
            "NoAuthenticationInformation",
            "Server failed to authenticate the request. Please refer to the information in the "
            "www-authenticate header.",
            _challenge(tenant),
        )
    scheme, _, token = header.partition(" ")
    if scheme.lower() == "sharedkey":
        if account.properties.get("allowSharedKeyAccess") is False:
            raise StorageError(
                403,
                "KeyBasedAuthenticationNotPermitted",
                "Key based authentication is not permitted on this storage account.",
            )
        raise StorageError(
            403,
            "AuthenticationFailed",
            "Server failed to authenticate the request. Make sure the value of Authorization header is "
            "formed correctly including the signature. (irflow.sim accepts only Microsoft Entra bearer "
            "tokens "
            "on the data plane.)",
        )
    if scheme.lower() != "bearer" or not hmac.compare_digest(token.strip().encode(), tenant.token.encode()):
        raise StorageError(
            401,
            "InvalidAuthenticationInfo",
            "Server failed to authenticate the request. Please refer to the information in the "
            "www-authenticate header.",
            _challenge(tenant),
        )
    if not request.headers.get("x-ms-version"):
        raise StorageError(
            400, "MissingRequiredHeader", "An HTTP header that's mandatory for this request is not specified."
        )
    if route is None:
        raise StorageError(
            501,
            "NotImplemented",
            f"The simulated blob service (irflow.sim) does not implement {request.method} {request.path} "
            f"with query {sorted(request.query)}.",
        )
    if route.operation:
        container = request.params.get("containerName", "")
        scope = f"{account.id}/blobServices/default/containers/{container}"
        if tenant.rbac.denial(route.operation, scope):
            raise StorageError(
                403,
                "AuthorizationPermissionMismatch",
                "This request is not authorized to perform this operation using this permission.",
            )
    faults = tenant.faults
    if faults.latency_ms:
        tenant.sleep(faults.latency_ms / 1000.0)
    if faults.error_rate and tenant.random.random() < faults.error_rate:
        raise StorageError(
            500, "InternalError", "Server encountered an internal error. Please try again after some time."
        )


# ---------------------------------------------------------------------------------------------- helpers
def _container(tenant: Tenant, request: SimRequest) -> tuple[StorageAccount, BlobContainer]:
    account = _account_of(tenant, request)
    found = account.blob_service.containers.get(request.params["containerName"].lower())
    if found is None:
        raise StorageError(404, "ContainerNotFound", "The specified container does not exist.")
    return account, found


def _headers(request: SimRequest, container: BlobContainer) -> dict[str, str]:
    headers = {
        "ETag": container.etag,
        "Last-Modified": format_datetime(container.last_modified.astimezone(UTC), usegmt=True),
        "x-ms-version": request.headers.get("x-ms-version") or "",
    }
    client_request_id = request.headers.get("x-ms-client-request-id")
    if client_request_id:
        headers["x-ms-client-request-id"] = client_request_id
    return headers


def blob_time(value: datetime) -> str:
    """Times in blob service XML: UTC, seven fractional digits (``2026-03-02T09:30:00.0000000Z``)."""
    return arm.format_time(value)


def parse_time(text: str) -> datetime:
    """An ISO 8601 UTC time as SAS and stored access policies take it (``2026-03-02``, ``…T09:30Z``,
    ``…T09:30:00.1234567Z``)."""
    found = _TIME.match(text.strip())
    if not found:
        raise ValueError(text)
    date, clock, fraction, zone = found.groups()
    clock = clock or "00:00:00"
    if clock.count(":") == 1:
        clock += ":00"
    micro = (fraction or "0").ljust(6, "0")[:6]
    offset = "+00:00" if zone in (None, "Z") else zone
    return datetime.fromisoformat(f"{date}T{clock}.{micro}{offset}").astimezone(UTC)


def signed_identifiers_xml(policies: list[StoredAccessPolicy]) -> bytes:
    parts = ['<?xml version="1.0" encoding="utf-8"?><SignedIdentifiers>']
    for policy in policies:
        parts.append(f"<SignedIdentifier><Id>{escape(policy.id)}</Id><AccessPolicy>")
        if policy.start is not None:
            parts.append(f"<Start>{blob_time(policy.start)}</Start>")
        if policy.expiry is not None:
            parts.append(f"<Expiry>{blob_time(policy.expiry)}</Expiry>")
        if policy.permission is not None:
            parts.append(f"<Permission>{escape(policy.permission)}</Permission>")
        parts.append("</AccessPolicy></SignedIdentifier>")
    parts.append("</SignedIdentifiers>")
    return "".join(parts).encode("utf-8")


def _invalid_xml() -> StorageError:
    return StorageError(400, "InvalidXmlDocument", "XML specified is not syntactically valid.")


def _invalid_node(detail: str) -> StorageError:
    return StorageError(
        400,
        "InvalidXmlNodeValue",
        f"The value for one of the XML nodes is not in the correct format. {detail}",
    )


def parse_signed_identifiers(body: bytes) -> list[StoredAccessPolicy]:
    """The ``SignedIdentifiers`` document of Set Container ACL (an empty body clears every policy)."""
    if not body.strip():
        return []
    if b"<!DOCTYPE" in body.upper() or b"<!ENTITY" in body.upper():
        raise _invalid_xml()
    try:
        root = ET.fromstring(body)  # noqa: S314 - no DTDs (refused above), size bounded by the server
    except ET.ParseError as exc:
        raise _invalid_xml() from exc
    if root.tag != "SignedIdentifiers":
        raise _invalid_xml()
    policies = []
    for node in root:
        if node.tag != "SignedIdentifier":
            raise _invalid_xml()
        identifier = (node.findtext("Id") or "").strip()
        access = node.find("AccessPolicy")
        values: dict[str, Any] = {}
        if access is not None:
            for field, tag in (("start", "Start"), ("expiry", "Expiry"), ("permission", "Permission")):
                text = access.findtext(tag)
                if text is not None and text.strip():
                    values[field] = text.strip()
        try:
            for field in ("start", "expiry"):
                if field in values:
                    values[field] = parse_time(values[field])
            policies.append(StoredAccessPolicy(identifier, **values))
        except ValueError as exc:
            raise _invalid_node(str(exc)) from exc
    return policies


def _check_modified_conditions(request: SimRequest, container: BlobContainer) -> None:
    modified = container.last_modified.astimezone(UTC).replace(microsecond=0)
    for name, must_be_after in (("If-Modified-Since", True), ("If-Unmodified-Since", False)):
        value = request.headers.get(name)
        if value is None:
            continue
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError) as exc:
            raise StorageError(
                400,
                "InvalidHeaderValue",
                "The value for one of the HTTP headers is not in the correct format.",
            ) from exc
        if (modified > when) != must_be_after:
            raise StorageError(
                412, "ConditionNotMet", "The condition specified using HTTP conditional header(s) is not met."
            )


# ---------------------------------------------------------------------------------------------- handlers
def get_container_acl(tenant: Tenant, request: SimRequest) -> SimResponse:
    """``GET {blob}/{container}?restype=container&comp=acl``: the stored access policies (XML) and, when the
    container is public, ``x-ms-blob-public-access``."""
    _, container = _container(tenant, request)
    headers = {**_headers(request, container), "Content-Type": XML_CONTENT_TYPE}
    if container.public_access != "None":
        headers["x-ms-blob-public-access"] = container.public_access.lower()
    summary = {
        "publicAccess": container.public_access,
        "signedIdentifiers": [p.to_dict() for p in container.access_policies],
    }
    return SimResponse(200, summary, headers, signed_identifiers_xml(container.access_policies))


def set_container_acl(tenant: Tenant, request: SimRequest) -> SimResponse:
    """``PUT {blob}/{container}?restype=container&comp=acl``: replaces the stored access policies with the
    body's and sets public access from ``x-ms-blob-public-access`` (absent: private). Honours ``If-Match``."""
    account, container = _container(tenant, request)
    _check_modified_conditions(request, container)
    policies = parse_signed_identifiers(request.body)
    header = request.headers.get("x-ms-blob-public-access")
    public_access = "None"
    if header is not None:
        if header.lower() not in _PUBLIC_ACCESS_HEADER:
            raise StorageError(
                400,
                "InvalidHeaderValue",
                "The value for one of the HTTP headers is not in the correct format.",
            )
        public_access = _PUBLIC_ACCESS_HEADER[header.lower()]
    try:
        container.set_access_policies(
            policies,
            public_access=public_access,
            public_access_allowed=account.allows_blob_public_access,
            when=tenant.now(),
        )
    except errors.ArmError as exc:  # the model's errors, in the blob service's format
        raise StorageError(exc.status, exc.code, exc.message) from exc
    except ValueError as exc:
        raise _invalid_node(str(exc)) from exc
    return SimResponse(200, None, _headers(request, container))
