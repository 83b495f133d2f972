"""ARM error responses: ``{"error": {"code": ..., "message": ...}}`` with an HTTP status.

Handlers raise :class:`ArmError`; the router turns it into the wire body. The helpers below carry the codes
and messages Azure Resource Manager uses, so SDK callers see the same ``e.error.code`` as against Azure.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from irflow.sim.http import SimResponse


class ArmError(Exception):
    """An ARM error answer: HTTP status, ARM error code, human message."""

    def __init__(self, status: int, code: str, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.headers = dict(headers or {})

    def body(self) -> dict[str, Any]:
        return {"error": {"code": self.code, "message": self.message}}

    def response(self) -> SimResponse:
        """The wire answer (ARM: a JSON error body; subclasses for other services override this)."""
        from irflow.sim.http import SimResponse

        return SimResponse(self.status, self.body(), dict(self.headers))


def missing_api_version() -> ArmError:
    return ArmError(
        400,
        "MissingApiVersionParameter",
        "The api-version query parameter (?api-version=) is required for all requests.",
    )


def invalid_request_content(detail: str) -> ArmError:
    return ArmError(
        400,
        "InvalidRequestContent",
        f"The request content was invalid and could not be deserialized: '{detail}'.",
    )


def invalid_values(*names: str) -> ArmError:
    """The storage resource provider's answer to a body or query value it does not accept."""
    return ArmError(
        400,
        "InvalidValuesForRequestParameters",
        f"Values for request parameters are invalid: {', '.join(names)}.",
    )


def subscription_not_found(subscription_id: str) -> ArmError:
    return ArmError(404, "SubscriptionNotFound", f"The subscription '{subscription_id}' could not be found.")


def resource_group_not_found(resource_group: str) -> ArmError:
    return ArmError(404, "ResourceGroupNotFound", f"Resource group '{resource_group}' could not be found.")


def resource_not_found(resource_type: str, name: str, resource_group: str) -> ArmError:
    return ArmError(
        404,
        "ResourceNotFound",
        f"The Resource '{resource_type}/{name}' under resource group '{resource_group}' was not found. "
        "For more details please go to https://aka.ms/ARMResourceNotFoundFix",
    )


def route_not_found(method: str, path: str) -> ArmError:
    return ArmError(
        404,
        "NotFound",
        f"No route for {method} {path}: the simulated tenant (irflow.sim) does not implement this operation.",
    )


def internal_server_error() -> ArmError:
    return ArmError(
        500,
        "InternalServerError",
        "Encountered internal server error. Diagnostic information: injected by the irflow.sim error rate.",
    )


def too_many_requests(retry_after: int) -> ArmError:
    """A 429 burst (the ``burst_rate`` knob): ARM or a resource provider asks the caller to wait
    ``Retry-After`` seconds; "some resource providers return 429 to report a temporary problem"
    (https://learn.microsoft.com/azure/azure-resource-manager/management/request-limits-and-throttling)."""
    return ArmError(
        429,
        "TooManyRequests",
        f"The request is being throttled. Please try again after '{retry_after}' seconds. "
        "Diagnostic information: injected by the irflow.sim burst rate.",
        {"Retry-After": str(retry_after)},
    )


def subscription_requests_throttled(
    kind: str, subscription_id: str, limit: int, retry_after: int
) -> ArmError:
    """ARM's 429 when a subscription/principal token bucket is empty."""
    singular = kind.removesuffix("s")
    return ArmError(
        429,
        "SubscriptionRequestsThrottled",
        f"Number of '{singular}' requests for subscription '{subscription_id}' actor '(principal)' exceeded "
        f"the limit of '{limit}' for time interval '00:00:01'. "
        f"Please try again after '{retry_after}' seconds.",
        {"Retry-After": str(retry_after)},
    )


def container_not_found() -> ArmError:
    """What the storage resource provider passes through from the blob service."""
    return ArmError(404, "ContainerNotFound", "The specified container does not exist.")


def public_access_not_permitted() -> ArmError:
    """Anonymous access asked for on a container of an account whose allowBlobPublicAccess is false."""
    return ArmError(
        409, "PublicAccessNotPermitted", "Public access is not permitted on this storage account."
    )


def immutability_policy_locked() -> ArmError:
    return ArmError(
        409,
        "ContainerImmutabilityPolicyLocked",
        "The requested operation is not allowed as the container has a locked immutability policy.",
    )


def immutability_policy_not_found() -> ArmError:
    return ArmError(
        404,
        "ImmutabilityPolicyNotFound",
        "The container does not have an immutability policy.",
    )


def missing_if_match() -> ArmError:
    return ArmError(
        400,
        "MissingRequiredHeader",
        "The If-Match header (the ETag of the immutability policy) is required for this operation.",
    )


def condition_not_met() -> ArmError:
    return ArmError(
        412,
        "ConditionNotMet",
        "The condition specified using HTTP conditional header(s) is not met.",
    )


def authorization_failed(object_id: str, operation: str, scope: str) -> ArmError:
    """ARM's 403 when the caller holds no role assignment granting ``operation`` over ``scope``."""
    return ArmError(
        403,
        "AuthorizationFailed",
        f"The client '{object_id}' with object id '{object_id}' does not have authorization to perform "
        f"action '{operation}' over scope '{scope}' or the scope is invalid. If access was recently granted, "
        "please refresh your credentials.",
    )
