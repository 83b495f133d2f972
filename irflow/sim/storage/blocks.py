"""Block blobs written in blocks: Put Block (``PUT {blob}/{c}/{name}?comp=block&blockid=…``) and Put
Block List (``PUT …?comp=blocklist``, ``<BlockList><Latest>…</Latest></BlockList>``), as ``upload_blob``
sends content larger than its single-put size (https://learn.microsoft.com/en-us/rest/api/storageservices/
put-block, …/put-block-list). Uncommitted blocks are kept per container and blob name; block ids are
base64, at most 64 bytes decoded, and of one length per blob (else 400 ``InvalidBlobOrBlock`` /
``InvalidBlockList``). Committing obeys the container's immutability as Put Blob does.
"""

from __future__ import annotations

import base64
import binascii
import xml.etree.ElementTree as ET
from typing import TYPE_CHECKING

from irflow.sim.http import SimRequest, SimResponse

if TYPE_CHECKING:
    from irflow.sim.models import Tenant


def _block_id(value: str | None) -> str:
    from irflow.sim.storage.blob_data import StorageError

    try:
        decoded = base64.b64decode((value or "").encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError):
        decoded = b""
    if not decoded or len(decoded) > 64:
        raise StorageError(400, "InvalidQueryParameterValue", "The specified blockid is not valid (blockid).")
    return value or ""


def put_block(tenant: Tenant, request: SimRequest) -> SimResponse:
    from irflow.sim.storage.blob_data import StorageError, _base_headers, _container, _md5

    _, container = _container(tenant, request)
    block_id = _block_id(request.query_param("blockid"))
    name = request.params["blobName"]
    pending = container.uncommitted_blocks.setdefault(name, {})
    if pending and len(next(iter(pending))) != len(block_id):
        raise StorageError(
            400, "InvalidBlobOrBlock", "The specified blob or block content is invalid (block id length)."
        )
    given_md5 = request.headers.get("Content-MD5")
    if given_md5 is not None and given_md5.strip() != _md5(request.body):
        raise StorageError(400, "Md5Mismatch", "The MD5 value specified in the request did not match.")
    pending[block_id] = request.body
    headers = {
        **_base_headers(request),
        "Content-MD5": _md5(request.body),
        "x-ms-request-server-encrypted": "true",
    }
    return SimResponse(201, {"blob": name, "block": block_id, "size": len(request.body)}, headers)


def put_block_list(tenant: Tenant, request: SimRequest) -> SimResponse:
    from irflow.sim.storage.blob_data import (
        DEFAULT_BLOB_CONTENT_TYPE,
        StorageError,
        _base_headers,
        _check_mutable,
        _conditions_hold,
        _container,
        _http_time,
        _invalid_xml,
        _metadata,
        _write,
    )

    _, container = _container(tenant, request)
    name = request.params["blobName"]
    if b"<!DOCTYPE" in request.body.upper() or b"<!ENTITY" in request.body.upper():
        raise _invalid_xml()
    try:
        root = ET.fromstring(request.body or b"")  # noqa: S314 - no DTDs (refused above), size bounded
    except ET.ParseError as exc:
        raise _invalid_xml() from exc
    if root.tag != "BlockList" or any(n.tag not in ("Latest", "Uncommitted", "Committed") for n in root):
        raise _invalid_xml()
    pending = container.uncommitted_blocks.get(name, {})
    parts = []
    for node in root:
        block = (node.text or "").strip()
        # Committed blocks of an earlier version are not kept by the simulator: only uncommitted ones count.
        if node.tag == "Committed" or block not in pending:
            raise StorageError(400, "InvalidBlockList", "The specified block list is invalid.")
        parts.append(pending[block])
    existing = container.blobs.get(name)
    _conditions_hold(request, existing, write=True)
    if existing is not None:
        _check_mutable(tenant, container, existing)
    content_type = request.headers.get("x-ms-blob-content-type") or DEFAULT_BLOB_CONTENT_TYPE
    blob = _write(container, name, b"".join(parts), content_type, _metadata(request), tenant.now())
    container.uncommitted_blocks.pop(name, None)
    headers = {
        **_base_headers(request),
        "ETag": blob.etag,
        "Last-Modified": _http_time(blob.last_modified),
        "x-ms-request-server-encrypted": "true",
    }
    return SimResponse(201, blob.summary(), headers)
