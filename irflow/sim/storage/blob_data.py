"""The blob service data plane (``{primaryEndpoints.blob}`` = ``{base}/_data/{account}/blob/``), as
``azure.storage.blob`` (``BlobServiceClient`` / ``ContainerClient`` / ``BlobClient``) calls it:

- containers: Get and Set Container ACL (stored access policies), Create Container;
- blobs, for forensic copies (block blobs only; model: :class:`irflow.sim.storage.blob.Blob`): List Blobs
  (``include=snapshots,metadata,copy``, ``prefix``, ``maxresults`` / ``marker``), Get Blob (ranges,
  ``Content-MD5``), Get Blob Properties (HEAD), Snapshot Blob, Copy Blob (a source blob or snapshot of the
  simulator: synchronous, ``x-ms-copy-status: success``), Put Blob and Delete Blob. Container immutability
  is enforced: while a container has a legal hold, or its time-based retention policy covers a blob (blob
  creation + ``immutabilityPeriodSinceCreationInDays`` is still ahead on the tenant clock), overwriting or
  deleting that blob (or its snapshots) answers 409 ``BlobImmutableDueToLegalHold`` /
  ``BlobImmutableDueToPolicy``; new blobs and snapshots may still be written. The journal never holds blob
  bytes: a Put Blob body is journaled as ``{"size", "sha256"}`` (:func:`opaque_content`) and answers record
  :meth:`Blob.summary`.

Wire format of the blob service REST API, not ARM: XML bodies (``SignedIdentifiers``), ``x-ms-version``
required and echoed, errors as ``<Error><Code/><Message/></Error>`` with an ``x-ms-error-code`` header.

Pipeline (:func:`admit`): account → authentication → network rules (:mod:`irflow.sim.firewall`: 403
``AuthorizationFailure``) → ``x-ms-version`` → route → RBAC (the route's
operation, ``…/containers/getAcl/action`` / ``setAcl/action``, over the container's resource id) → latency /
injected error. Authentication is Microsoft Entra only: ``Authorization: Bearer <tenant token>``; a request
without it gets the storage service's 401 challenge (``authorization_uri``, ``resource_id``) that
``StorageBearerTokenCredentialPolicy`` follows. Shared Key signatures are not verified by the simulator: a
Shared Key request is refused 403 ``AuthenticationFailed`` (``KeyBasedAuthenticationNotPermitted`` when the
account has ``allowSharedKeyAccess: false``), as Azure refuses a bad signature. Network rules
(``publicNetworkAccess``, ``networkAcls``) are enforced against the caller's origin.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import hmac
import json
import re
import uuid
import xml.etree.ElementTree as ET
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime, parsedate_to_datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, unquote, urlsplit
from xml.sax.saxutils import escape

from irflow.sim import arm, errors, firewall
from irflow.sim.http import SimRequest, SimResponse
from irflow.sim.router import Route
from irflow.sim.storage import blocks, delegation
from irflow.sim.storage.blob import Blob, BlobContainer, StoredAccessPolicy

if TYPE_CHECKING:
    from irflow.sim.models import Tenant
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
    if firewall.check(tenant, request, account.properties) is not None:
        # A network refusal, not a missing role (storage-network-security): 403 AuthorizationFailure.
        raise StorageError(
            403, "AuthorizationFailure", "This request is not authorized to perform this operation."
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


# ---------------------------------------------------------------------------------------------- blobs
_OP = "Microsoft.Storage/storageAccounts/blobServices/containers"
CONTAINER_WRITE = f"{_OP}/write"  # Create Container with Microsoft Entra authorization
BLOB_READ = f"{_OP}/blobs/read"  # data actions of the Storage Blob Data roles
BLOB_WRITE = f"{_OP}/blobs/write"
BLOB_DELETE = f"{_OP}/blobs/delete"
GENERATE_USER_DELEGATION_KEY = (
    "Microsoft.Storage/storageAccounts/blobServices/generateUserDelegationKey/action"
)
DEFAULT_BLOB_CONTENT_TYPE = "application/octet-stream"
MAX_LIST_RESULTS = 5000
_BLOB_PATH = re.compile(r"^/_data/[^/]+/blob/[^/]+/.+", re.IGNORECASE)
_RANGE = re.compile(r"^bytes=(\d+)-(\d*)$")
_META_PREFIX = "x-ms-meta-"


class BlobRoute(Route):
    """A blob service route whose ``{blobName}`` spans slashes, as blob names do (``exports/2026/a.csv``)."""

    def compile(self) -> re.Pattern[str]:
        pattern = super().compile().pattern.replace("(?P<blobName>[^/]+)", "(?P<blobName>.+)")
        return re.compile(pattern, re.IGNORECASE)


class BlobUploadRequest(SimRequest):
    """A request carrying blob content. The journal records a request body through ``json()``; here it gets
    the content's size and SHA-256, never the bytes (which a JSON or XML evidence file would otherwise
    leave in the journal)."""

    def json(self) -> Any:
        return {"size": len(self.body), "sha256": hashlib.sha256(self.body).hexdigest()}


def opaque_content(request: SimRequest) -> SimRequest:
    """The request as the router should see it: a write with a body to a blob (Put Blob, Put Block …)
    becomes a :class:`BlobUploadRequest`; anything else is returned unchanged."""
    if request.method in ("PUT", "POST") and request.body and _BLOB_PATH.match(request.path):
        values = {f.name: getattr(request, f.name) for f in dataclasses.fields(request)}
        return BlobUploadRequest(**values)
    return request


def synthetic_content(name: str, size: int) -> bytes:
    """``size`` bytes of deterministic, obviously synthetic text for a scenario blob (same name and size,
    same bytes), so digests in tests are stable and nothing looks like real data."""
    out = bytearray()
    line = 0
    while len(out) < size:
        out += f"SYNTHETIC TEST DATA (irflow.sim) {name} line {line:06d}\n".encode()
        line += 1
    return bytes(out[:size])


def _http_time(value: datetime) -> str:
    return format_datetime(value.astimezone(UTC), usegmt=True)


def _md5(data: bytes) -> str:
    return base64.b64encode(hashlib.md5(data, usedforsecurity=False).digest()).decode("ascii")


def _base_headers(request: SimRequest) -> dict[str, str]:
    headers = {"x-ms-version": request.headers.get("x-ms-version") or ""}
    client_request_id = request.headers.get("x-ms-client-request-id")
    if client_request_id:
        headers["x-ms-client-request-id"] = client_request_id
    return headers


def _metadata(request: SimRequest) -> dict[str, str]:
    """``x-ms-meta-{name}`` request headers (names arrive lower-cased: :class:`irflow.sim.http.Headers`
    keeps no case, and offers no iteration, hence the private field)."""
    items: dict[str, str] = getattr(request.headers, "_items", {})
    return {k[len(_META_PREFIX) :]: v for k, v in items.items() if k.startswith(_META_PREFIX)}


def _invalid_header() -> StorageError:
    return StorageError(
        400, "InvalidHeaderValue", "The value for one of the HTTP headers is not in the correct format."
    )


def _not_implemented(request: SimRequest) -> StorageError:
    return StorageError(
        501,
        "NotImplemented",
        f"The simulated blob service (irflow.sim) does not implement {request.method} {request.path} "
        f"with query {sorted(request.query)}.",
    )


def _refuse_sub_resource(request: SimRequest) -> None:
    """Blob routes match any query; ``comp=`` sub-resources (tags, block lists, tiers …) are not simulated."""
    if request.query_param("comp") is not None:
        raise _not_implemented(request)


def _blob_not_found() -> StorageError:
    return StorageError(404, "BlobNotFound", "The specified blob does not exist.")


def _find_blob(container: BlobContainer, request: SimRequest) -> tuple[Blob, Blob]:
    """The base blob and the one addressed (itself, or its ``?snapshot=``)."""
    blob = container.blobs.get(request.params["blobName"])
    if blob is None:
        raise _blob_not_found()
    snapshot = request.query_param("snapshot")
    if not snapshot:
        return blob, blob
    found = blob.find_snapshot(snapshot)
    if found is None:
        raise _blob_not_found()
    return blob, found


def _condition_failed() -> StorageError:
    return StorageError(
        412, "ConditionNotMet", "The condition specified using HTTP conditional header(s) is not met."
    )


def _not_modified(request: SimRequest, blob: Blob) -> SimResponse:
    headers = {**_base_headers(request), "ETag": blob.etag, "Last-Modified": _http_time(blob.last_modified)}
    return SimResponse(304, None, headers, b"")


def _conditions_hold(request: SimRequest, blob: Blob | None, *, write: bool) -> bool:
    """``If-Match``, ``If-None-Match``, ``If-(Un)Modified-Since`` against a blob (None: absent). Raises 412
    (writes: 409 ``BlobAlreadyExists`` for ``If-None-Match: *``); returns False when a read answers 304."""
    if_match, if_none_match = request.headers.get("If-Match"), request.headers.get("If-None-Match")
    if if_match is not None and (blob is None or if_match.strip() not in ("*", blob.etag)):
        raise _condition_failed()
    if if_none_match is not None and blob is not None and if_none_match.strip() in ("*", blob.etag):
        if not write:
            return False
        if if_none_match.strip() == "*":
            raise StorageError(409, "BlobAlreadyExists", "The specified blob already exists.")
        raise _condition_failed()
    if blob is None:
        return True
    modified = blob.last_modified.astimezone(UTC).replace(microsecond=0)
    for name, must_be_after in (("If-Modified-Since", True), ("If-Unmodified-Since", False)):
        value = request.headers.get(name)
        if value is None:
            continue
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError) as exc:
            raise _invalid_header() from exc
        if (modified > when) != must_be_after:
            if must_be_after and not write:
                return False
            raise _condition_failed()
    return True


def _check_mutable(tenant: Tenant, container: BlobContainer, blob: Blob) -> None:
    """Container-level WORM: a legal hold freezes every blob; a time-based retention policy (locked or not)
    freezes each blob until its creation time plus the policy's days."""
    if container.has_legal_hold:
        raise StorageError(
            409,
            "BlobImmutableDueToLegalHold",
            "This operation is not permitted as the blob is immutable due to one or more legal holds.",
        )
    policy = container.immutability
    if policy is not None and tenant.now() < blob.created + timedelta(days=policy.days):
        raise StorageError(
            409,
            "BlobImmutableDueToPolicy",
            "This operation is not permitted as the blob is immutable due to a policy.",
        )


def _properties_headers(request: SimRequest, blob: Blob) -> dict[str, str]:
    """What Get Blob and Get Blob Properties answer about a blob (``x-ms-meta-*`` and ``x-ms-copy-*``
    included)."""
    headers = {
        **_base_headers(request),
        "ETag": blob.etag,
        "Last-Modified": _http_time(blob.last_modified),
        "x-ms-creation-time": _http_time(blob.created),
        "Content-Type": blob.content_type,
        "x-ms-blob-type": "BlockBlob",
        "Accept-Ranges": "bytes",
        "x-ms-lease-state": "available",
        "x-ms-lease-status": "unlocked",
        "x-ms-server-encrypted": "true",
    }
    headers.update({f"{_META_PREFIX}{k}": v for k, v in blob.metadata.items()})
    if blob.copy_info is not None:
        headers.update(
            {
                "x-ms-copy-id": blob.copy_info["id"],
                "x-ms-copy-source": blob.copy_info["source"],
                "x-ms-copy-status": blob.copy_info["status"],
                "x-ms-copy-progress": blob.copy_info["progress"],
                "x-ms-copy-completion-time": _http_time(blob.copy_info["completion_time"]),
            }
        )
    return headers


def _byte_range(request: SimRequest, size: int) -> tuple[int, int] | None:
    """``x-ms-range`` (else ``Range``) as ``(first, last)``, clamped to the blob; 416 past its end."""
    text = request.headers.get("x-ms-range") or request.headers.get("Range")
    if not text:
        return None
    found = _RANGE.match(text.strip())
    if not found:
        raise _invalid_header()
    first = int(found.group(1))
    last = int(found.group(2)) if found.group(2) else size - 1
    if first >= size or last < first:
        raise StorageError(
            416,
            "InvalidRange",
            "The range specified is invalid for the current size of the resource.",
            {"Content-Range": f"bytes */{size}"},
        )
    return first, min(last, size - 1)


# ---------------------------------------------------------------------------------------------- blob handlers
def list_blobs(tenant: Tenant, request: SimRequest) -> SimResponse:
    """``GET {blob}/{container}?restype=container&comp=list``: the ``EnumerationResults`` XML, names in
    order, each blob's snapshots (``include=snapshots``, oldest first) before the blob itself."""
    account, container = _container(tenant, request)
    if request.query_param("delimiter"):
        raise _not_implemented(request)  # hierarchical listing (BlobPrefix) is not simulated
    prefix = request.query_param("prefix") or ""
    include = {p.strip().lower() for p in (request.query_param("include") or "").split(",") if p.strip()}
    given_max = request.query_param("maxresults")
    try:
        max_results = int(given_max) if given_max is not None else MAX_LIST_RESULTS
    except ValueError as exc:
        raise _out_of_range("maxresults") from exc
    if max_results <= 0:
        raise _out_of_range("maxresults")
    max_results = min(max_results, MAX_LIST_RESULTS)
    items: list[tuple[tuple[str, int, str], Blob]] = []
    for name in sorted(n for n in container.blobs if n.startswith(prefix)):
        blob = container.blobs[name]
        if "snapshots" in include:
            items += [((name, 0, s.snapshot or ""), s) for s in sorted(blob.snapshots, key=_snapshot_key)]
        items.append(((name, 1, ""), blob))
    marker = request.query_param("marker") or ""
    if marker:
        start = _decode_marker(marker)
        items = [item for item in items if item[0] >= start]
    page, rest = items[:max_results], items[max_results:]
    next_marker = _encode_marker(rest[0][0]) if rest else ""
    endpoint = f"{request.base_url}/_data/{account.name}/blob/"
    parts = [
        '<?xml version="1.0" encoding="utf-8"?>',
        f'<EnumerationResults ServiceEndpoint="{_attr(endpoint)}" ContainerName="{_attr(container.name)}">',
    ]
    if prefix:
        parts.append(f"<Prefix>{escape(prefix)}</Prefix>")
    if marker:
        parts.append(f"<Marker>{escape(marker)}</Marker>")
    if given_max is not None:
        parts.append(f"<MaxResults>{max_results}</MaxResults>")
    parts.append("<Blobs>")
    parts += [_blob_xml(blob, include) for _, blob in page]
    parts.append("</Blobs>")
    parts.append(f"<NextMarker>{escape(next_marker)}</NextMarker>" if next_marker else "<NextMarker />")
    parts.append("</EnumerationResults>")
    summary = {
        "blobs": [{"name": b.name, "snapshot": b.snapshot} if b.snapshot else b.name for _, b in page],
        "nextMarker": next_marker or None,
    }
    headers = {**_base_headers(request), "Content-Type": XML_CONTENT_TYPE}
    return SimResponse(200, summary, headers, "".join(parts).encode("utf-8"))


def _snapshot_key(blob: Blob) -> str:
    return blob.snapshot or ""


def _out_of_range(name: str) -> StorageError:
    return StorageError(
        400,
        "OutOfRangeQueryParameterValue",
        "One of the query parameters specified in the request URI is outside the permissible range "
        f"({name}).",
    )


def _encode_marker(key: tuple[str, int, str]) -> str:
    return base64.urlsafe_b64encode(json.dumps(list(key)).encode()).decode("ascii")


def _decode_marker(marker: str) -> tuple[str, int, str]:
    try:
        name, flag, snapshot = json.loads(base64.urlsafe_b64decode(marker.encode("ascii")))
        return str(name), int(flag), str(snapshot)
    except (ValueError, TypeError) as exc:
        raise _invalid_query("marker") from exc


def _invalid_query(name: str) -> StorageError:
    return StorageError(
        400,
        "InvalidQueryParameterValue",
        f"Value for one of the query parameters specified in the request URI is invalid ({name}).",
    )


def _attr(value: str) -> str:
    return escape(value, {'"': "&quot;"})


def _blob_xml(blob: Blob, include: set[str]) -> str:
    parts = [f"<Blob><Name>{escape(blob.name)}</Name>"]
    if blob.snapshot:
        parts.append(f"<Snapshot>{blob.snapshot}</Snapshot>")
    parts.append(
        "<Properties>"
        f"<Creation-Time>{_http_time(blob.created)}</Creation-Time>"
        f"<Last-Modified>{_http_time(blob.last_modified)}</Last-Modified>"
        f"<Etag>{blob.etag.strip(chr(34))}</Etag>"
        f"<Content-Length>{blob.size}</Content-Length>"
        f"<Content-Type>{escape(blob.content_type)}</Content-Type>"
        f"<Content-MD5>{blob.content_md5}</Content-MD5>"
        "<BlobType>BlockBlob</BlobType><AccessTier>Hot</AccessTier><AccessTierInferred>true</AccessTierInferred>"
        "<LeaseStatus>unlocked</LeaseStatus><LeaseState>available</LeaseState>"
        "<ServerEncrypted>true</ServerEncrypted>"
    )
    if "copy" in include and blob.copy_info is not None:
        info = blob.copy_info
        parts.append(
            f"<CopyId>{info['id']}</CopyId><CopySource>{escape(info['source'])}</CopySource>"
            f"<CopyStatus>{info['status']}</CopyStatus><CopyProgress>{info['progress']}</CopyProgress>"
            f"<CopyCompletionTime>{_http_time(info['completion_time'])}</CopyCompletionTime>"
        )
    parts.append("</Properties>")
    if "metadata" in include:
        parts.append("<Metadata>")
        parts += [f"<{k}>{escape(v)}</{k}>" for k, v in blob.metadata.items()]
        parts.append("</Metadata>")
    parts.append("</Blob>")
    return "".join(parts)


def get_blob(tenant: Tenant, request: SimRequest) -> SimResponse:
    """``GET {blob}/{container}/{name}[?snapshot=]``: the content (206 with ``Content-Range`` for a range;
    ``Content-MD5`` of what is sent when it is the whole blob or ``x-ms-range-get-content-md5: true``,
    ``x-ms-blob-content-md5`` of the whole blob with a range)."""
    _refuse_sub_resource(request)
    _, container = _container(tenant, request)
    _, blob = _find_blob(container, request)
    if not _conditions_hold(request, blob, write=False):
        return _not_modified(request, blob)
    headers = _properties_headers(request, blob)
    span = _byte_range(request, blob.size)
    if span is None:
        headers["Content-MD5"] = blob.content_md5
        return SimResponse(200, blob.summary(), headers, blob.content)
    first, last = span
    part = blob.content[first : last + 1]
    headers["Content-Range"] = f"bytes {first}-{last}/{blob.size}"
    headers["x-ms-blob-content-md5"] = blob.content_md5
    if (request.headers.get("x-ms-range-get-content-md5") or "").lower() == "true":
        headers["Content-MD5"] = _md5(part)
    return SimResponse(206, {**blob.summary(), "range": [first, last]}, headers, part)


def get_blob_properties(tenant: Tenant, request: SimRequest) -> SimResponse:
    """``HEAD {blob}/{container}/{name}[?snapshot=]``: the properties as headers, no body. The payload is
    the content, so that ``Content-Length`` is the blob's size (see :class:`irflow.sim.urls.SimRouter` for
    HEAD answers in the ``responses`` mount)."""
    _refuse_sub_resource(request)
    _, container = _container(tenant, request)
    _, blob = _find_blob(container, request)
    if not _conditions_hold(request, blob, write=False):
        return _not_modified(request, blob)
    headers = {
        **_properties_headers(request, blob),
        "Content-MD5": blob.content_md5,
        "x-ms-access-tier": "Hot",
        "x-ms-access-tier-inferred": "true",
    }
    return SimResponse(200, blob.summary(), headers, blob.content)


def put_blob(tenant: Tenant, request: SimRequest) -> SimResponse:
    """``PUT {blob}/{container}/{name}``: Put Blob (``x-ms-blob-type: BlockBlob``; 201), or Copy Blob when
    ``x-ms-copy-source`` is present (202). Overwriting a blob that is immutable answers 409."""
    _refuse_sub_resource(request)
    _, container = _container(tenant, request)
    name = request.params["blobName"]
    source = request.headers.get("x-ms-copy-source")
    if source is not None:
        return _copy_blob(tenant, request, container, name, source)
    blob_type = request.headers.get("x-ms-blob-type")
    if blob_type is None:
        raise StorageError(
            400, "MissingRequiredHeader", "An HTTP header that's mandatory for this request is not specified."
        )
    if blob_type != "BlockBlob":
        raise _not_implemented(request)  # page and append blobs are not simulated
    content = request.body
    given_md5 = request.headers.get("Content-MD5")
    if given_md5 is not None and given_md5.strip() != _md5(content):
        raise StorageError(
            400,
            "Md5Mismatch",
            "The MD5 value specified in the request did not match with the MD5 value calculated by the "
            "server.",
        )
    existing = container.blobs.get(name)
    _conditions_hold(request, existing, write=True)
    if existing is not None:
        _check_mutable(tenant, container, existing)
    content_type = request.headers.get("x-ms-blob-content-type") or DEFAULT_BLOB_CONTENT_TYPE
    blob = _write(container, name, content, content_type, _metadata(request), tenant.now())
    headers = {
        **_base_headers(request),
        "ETag": blob.etag,
        "Last-Modified": _http_time(blob.last_modified),
        "Content-MD5": blob.content_md5,
        "x-ms-request-server-encrypted": "true",
    }
    return SimResponse(201, blob.summary(), headers)


def _write(
    container: BlobContainer,
    name: str,
    content: bytes,
    content_type: str,
    metadata: dict[str, str],
    when: datetime,
) -> Blob:
    blob = container.blobs.get(name)
    if blob is None:
        blob = Blob(name, content, content_type, when, when, dict(metadata))
        container.blobs[name] = blob
    else:
        blob.write(content, content_type, metadata, when)
    return blob


_SOURCE_PATH = re.compile(r"^/_data/([^/]+)/blob/([^/]+)/(.+)$", re.IGNORECASE)


def _copy_source(tenant: Tenant, request: SimRequest, source_url: str) -> tuple[Blob, str]:
    """The blob (or snapshot) a copy source URL names, and the URL to record (without SAS or other query
    parameters, save ``snapshot``). Only the simulator's own blob endpoints (same scheme and host as the
    request) are sources: the simulator never reaches out."""
    parts = urlsplit(source_url.strip())
    found = _SOURCE_PATH.match(unquote(parts.path))
    if f"{parts.scheme}://{parts.netloc}".lower() != request.base_url.lower() or found is None:
        raise StorageError(
            400,
            "CannotVerifyCopySource",
            "irflow.sim copies only from blobs of its own blob endpoints "
            f"({request.base_url}/_data/{{account}}/blob/{{container}}/{{blob}}).",
        )
    account_name, container_name, blob_name = found.groups()
    account = tenant.find_storage_account(account_name)
    container = account.blob_service.containers.get(container_name.lower()) if account else None
    blob = container.blobs.get(blob_name) if container else None
    snapshot = (parse_qs(parts.query).get("snapshot") or [""])[0]
    if blob is not None and snapshot:
        blob = blob.find_snapshot(snapshot)
    if account is None or container is None or blob is None:
        raise StorageError(404, "CannotVerifyCopySource", "The specified blob does not exist.")
    # Another account's source needs its own authorisation: public, or a valid user-delegation SAS.
    destination = _account_of(tenant, request)
    same_account = delegation.authorise_copy_source(
        tenant, account, destination, container, blob_name, snapshot, parts.query
    )
    scope = f"{account.id}/blobServices/default/containers/{container_name}"
    if same_account and tenant.rbac.denial(BLOB_READ, scope):
        raise StorageError(
            403,
            "CannotVerifyCopySource",
            "This request is not authorized to perform this operation using this permission.",
        )
    recorded = f"{parts.scheme}://{parts.netloc}{parts.path}" + (f"?snapshot={snapshot}" if snapshot else "")
    return blob, recorded


def _copy_blob(
    tenant: Tenant, request: SimRequest, container: BlobContainer, name: str, source_url: str
) -> SimResponse:
    """Copy Blob within the simulator: synchronous, so the answer already says ``success``. Without
    ``x-ms-meta-*`` headers the source's metadata is copied, as Azure does."""
    source, recorded = _copy_source(tenant, request, source_url)
    existing = container.blobs.get(name)
    _conditions_hold(request, existing, write=True)
    if existing is not None:
        _check_mutable(tenant, container, existing)
    when = tenant.now()
    metadata = _metadata(request) or dict(source.metadata)
    blob = _write(container, name, source.content, source.content_type, metadata, when)
    copy_id = str(uuid.uuid4())
    blob.copy_info = {
        "id": copy_id,
        "source": recorded,
        "status": "success",
        "progress": f"{source.size}/{source.size}",
        "completion_time": when,
    }
    headers = {
        **_base_headers(request),
        "ETag": blob.etag,
        "Last-Modified": _http_time(blob.last_modified),
        "x-ms-copy-id": copy_id,
        "x-ms-copy-status": "success",
    }
    return SimResponse(202, blob.summary(), headers)


def snapshot_blob(tenant: Tenant, request: SimRequest) -> SimResponse:
    """``PUT {blob}/{container}/{name}?comp=snapshot``: 201 with ``x-ms-snapshot`` (allowed under a legal
    hold or retention policy: a snapshot is a new, read-only object)."""
    _, container = _container(tenant, request)
    if request.query_param("snapshot"):
        raise _invalid_query("snapshot")
    blob, _ = _find_blob(container, request)
    _conditions_hold(request, blob, write=True)
    snapshot = blob.take_snapshot(tenant.now())
    metadata = _metadata(request)
    if metadata:
        snapshot.metadata = metadata
    headers = {
        **_base_headers(request),
        "x-ms-snapshot": snapshot.snapshot or "",
        "ETag": blob.etag,
        "Last-Modified": _http_time(blob.last_modified),
        "x-ms-request-server-encrypted": "false",
    }
    return SimResponse(201, snapshot.summary(), headers)


def delete_blob(tenant: Tenant, request: SimRequest) -> SimResponse:
    """``DELETE {blob}/{container}/{name}[?snapshot=]`` (202). A blob with snapshots needs
    ``x-ms-delete-snapshots: include`` (or ``only``), else 409 ``SnapshotsPresent``; immutable blobs 409."""
    _refuse_sub_resource(request)
    _, container = _container(tenant, request)
    blob, target = _find_blob(container, request)
    _conditions_hold(request, target, write=True)
    headers = _base_headers(request)
    if target is not blob:
        _check_mutable(tenant, container, target)
        blob.snapshots.remove(target)
        return SimResponse(202, {"deleted": {"name": blob.name, "snapshot": target.snapshot}}, headers)
    mode = (request.headers.get("x-ms-delete-snapshots") or "").lower()
    if mode not in ("", "include", "only"):
        raise _invalid_header()
    if not mode and blob.snapshots:
        raise StorageError(
            409, "SnapshotsPresent", "This operation is not permitted because the blob has snapshots."
        )
    _check_mutable(tenant, container, blob)
    if mode == "only":
        blob.snapshots.clear()
    else:
        del container.blobs[blob.name]
    return SimResponse(202, {"deleted": {"name": blob.name, "snapshots": mode or None}}, headers)


def create_container(tenant: Tenant, request: SimRequest) -> SimResponse:
    """``PUT {blob}/{container}?restype=container``: 201, or 409 ``ContainerAlreadyExists``;
    ``x-ms-blob-public-access`` and ``x-ms-meta-*`` as in Azure (e.g. an evidence container)."""
    _refuse_sub_resource(request)
    account = _account_of(tenant, request)
    name = request.params["containerName"]
    if name.lower() in account.blob_service.containers:
        raise StorageError(409, "ContainerAlreadyExists", "The specified container already exists.")
    header = request.headers.get("x-ms-blob-public-access")
    if header is not None and header.lower() not in _PUBLIC_ACCESS_HEADER:
        raise _invalid_header()
    public_access = _PUBLIC_ACCESS_HEADER[header.lower()] if header is not None else "None"
    try:
        container = tenant.add_container(
            account.name, name, public_access=public_access, metadata=_metadata(request)
        )
    except errors.ArmError as exc:
        if exc.status == 400:
            raise StorageError(
                400, "InvalidResourceName", "The specified resource name contains invalid characters."
            ) from exc
        raise StorageError(exc.status, exc.code, exc.message) from exc
    return SimResponse(201, {"name": container.name}, _headers(request, container))


_DATA_CONTAINER = "/_data/{accountName}/blob/{containerName}"
_DATA_BLOB = _DATA_CONTAINER + "/{blobName}"

# Added to the blob data plane after the container ACL routes (irflow.sim.urls): most specific first.
ROUTES = [
    Route(
        "GET",
        _DATA_CONTAINER,
        list_blobs,
        "storage.blob.list_blobs",
        operation=BLOB_READ,
        query=(("restype", "container"), ("comp", "list")),
    ),
    Route(
        "PUT",
        _DATA_CONTAINER,
        create_container,
        "storage.blob.create_container",
        operation=CONTAINER_WRITE,
        query=(("restype", "container"),),
    ),
    BlobRoute(
        "PUT",
        _DATA_BLOB,
        snapshot_blob,
        "storage.blob.snapshot_blob",
        operation=BLOB_WRITE,
        query=(("comp", "snapshot"),),
    ),
    BlobRoute(
        "PUT",
        _DATA_BLOB,
        blocks.put_block,
        "storage.blob.put_block",
        operation=BLOB_WRITE,
        query=(("comp", "block"),),
    ),
    BlobRoute(
        "PUT",
        _DATA_BLOB,
        blocks.put_block_list,
        "storage.blob.put_block_list",
        operation=BLOB_WRITE,
        query=(("comp", "blocklist"),),
    ),
    Route(
        "POST",
        "/_data/{accountName}/blob",
        delegation.get_user_delegation_key,
        "storage.blob.get_user_delegation_key",
        read_only=True,  # hands out a signing key, changes no resource (as listKeys)
        operation=GENERATE_USER_DELEGATION_KEY,
        query=(("restype", "service"), ("comp", "userdelegationkey")),
    ),
    BlobRoute("PUT", _DATA_BLOB, put_blob, "storage.blob.put_blob", operation=BLOB_WRITE),
    BlobRoute("GET", _DATA_BLOB, get_blob, "storage.blob.get_blob", operation=BLOB_READ),
    BlobRoute(
        "HEAD", _DATA_BLOB, get_blob_properties, "storage.blob.get_blob_properties", operation=BLOB_READ
    ),
    BlobRoute("DELETE", _DATA_BLOB, delete_blob, "storage.blob.delete_blob", operation=BLOB_DELETE),
]
