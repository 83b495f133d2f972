"""In-process mount: the tenant answers every ``requests`` call to one base URL, through ``responses``.

Official Azure SDK clients use ``requests`` by default, so they run unchanged against the tenant::

    with mount(tenant):
        client = StorageManagementClient(credential, tenant.default_subscription_id)
        client.storage_accounts.get_properties("rg-phi-prod", "phipatientexports")

Nothing passes through: a request to any other host fails with ``ConnectionError`` unless the caller
registers it on the yielded :class:`responses.RequestsMock`.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

import responses

from irflow.sim.http import SimRequest
from irflow.sim.urls import router

if TYPE_CHECKING:
    from requests import PreparedRequest

    from irflow.sim.models import Tenant

DEFAULT_BASE_URL = "https://management.azure.com"
_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")


def _callback(tenant: Tenant):
    def answer(prepared: PreparedRequest) -> tuple[int, dict[str, str], bytes]:
        body = prepared.body
        if body is not None and not isinstance(body, (bytes, str)):
            body = b"".join(chunk if isinstance(chunk, bytes) else chunk.encode() for chunk in body)
        request = SimRequest.from_url(
            prepared.method or "GET", prepared.url or "", dict(prepared.headers), body
        )
        response = router.dispatch(tenant, request)
        headers, body = response.wire_headers(), response.encoded()
        if request.method == "HEAD":
            # What an HTTP server does for HEAD: the length of the body it would send, and no body.
            headers.setdefault("Content-Length", str(len(body)))
            body = b""
        return response.status, headers, body

    return answer


@contextmanager
def mount(tenant: Tenant, base_url: str = DEFAULT_BASE_URL) -> Iterator[responses.RequestsMock]:
    """Serve ``tenant`` at ``base_url`` (scheme and host, e.g. ``https://management.azure.com``) for the
    duration of the block. Yields the active ``responses.RequestsMock``."""
    base = base_url.rstrip("/")
    pattern = re.compile(re.escape(base) + r"(/.*)?$", re.IGNORECASE)
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        for method in _METHODS:
            mock.add_callback(method, pattern, callback=_callback(tenant), content_type=None)
        yield mock
