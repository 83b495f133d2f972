"""The api-versions Azure Resource Manager serves, per resource type, and the check every ARM request passes.

ARM routes a request to a resource provider by the resource type of its path and the ``api-version`` query
parameter; a version the type does not serve is refused before the provider (or RBAC) sees the request:

- no ``api-version``: 400 ``MissingApiVersionParameter`` (:func:`irflow.sim.errors.missing_api_version`);
- a value that is not an api-version at all (``YYYY-MM-DD`` with an optional ``-preview`` style suffix): 400
  ``InvalidApiVersionParameter``, "The api-version '{v}' is invalid. The supported versions are '{list}'."
  (the answer ARM gives for its own types, e.g. https://github.com/Azure/azure-cli/issues/28038);
- a well-formed version the resource type does not serve: 400 ``NoRegisteredProviderFound``, "No registered
  resource provider found for location '{location}' and API version '{v}' for type '{type}'. The supported
  api-versions are '{list}'. The supported locations are '{locations}'."
  (https://learn.microsoft.com/azure/azure-resource-manager/troubleshooting/error-register-resource-provider).

The table lists, per resource type, the versions published in azure-rest-api-specs
(``specification/<service>/resource-manager/<Namespace>/{stable,preview}/<version>/``) that the simulator's
handlers speak, plus the versions the pinned SDKs send (AZURE_NOTES.md: storage 2026-09-01, Key Vault
management 2026-05-15, network 2026-03-01, diagnostic settings 2021-05-01-preview). A child type is served
from the version its parent gained it (``since``). Only ARM paths are checked here: data planes version
themselves differently (``x-ms-version`` for blobs; Log Analytics and Graph carry the version in the path).
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from irflow.sim import errors

# specification/storage/resource-manager/Microsoft.Storage/{stable,preview}/*
_STORAGE = (
    "2015-05-01-preview", "2015-06-15", "2016-01-01", "2016-05-01", "2016-12-01", "2017-06-01", "2017-10-01",
    "2018-02-01", "2018-03-01-preview", "2018-07-01", "2018-11-01", "2019-04-01", "2019-06-01",
    "2020-08-01-preview", "2021-01-01", "2021-02-01", "2021-04-01", "2021-06-01", "2021-08-01", "2021-09-01",
    "2022-05-01", "2022-09-01", "2023-01-01", "2023-04-01", "2023-05-01", "2024-01-01", "2025-01-01",
    "2025-06-01", "2026-09-01",
)  # fmt: skip
# specification/keyvault/resource-manager/Microsoft.KeyVault/{stable,preview}/*
_KEYVAULT = (
    "2015-06-01", "2016-10-01", "2018-02-14", "2018-02-14-preview", "2019-09-01", "2020-04-01-preview",
    "2021-04-01-preview", "2021-06-01-preview", "2021-10-01", "2021-11-01-preview", "2022-02-01-preview",
    "2022-07-01", "2022-11-01", "2023-02-01", "2023-07-01", "2024-04-01-preview", "2024-11-01",
    "2024-12-01-preview", "2025-05-01", "2026-02-01", "2026-05-15",
)  # fmt: skip
# 2026-02-01 is the version from which new vaults default to the Azure RBAC permission model (AZURE_NOTES.md;
# https://learn.microsoft.com/azure/key-vault/general/rbac-access-policy).
# specification/network/resource-manager/Microsoft.Network/stable/*
_NETWORK = (
    "2015-06-15", "2016-03-30", "2016-06-01", "2016-07-01", "2016-08-01", "2016-09-01", "2016-10-01",
    "2016-11-01", "2016-12-01", "2017-03-01", "2017-04-01", "2017-06-01", "2017-08-01", "2017-09-01",
    "2017-10-01", "2017-11-01", "2018-01-01", "2018-02-01", "2018-04-01", "2018-06-01", "2018-07-01",
    "2018-08-01", "2018-10-01", "2018-11-01", "2018-12-01", "2019-02-01", "2019-04-01", "2019-06-01",
    "2019-07-01", "2019-08-01", "2019-09-01", "2019-11-01", "2019-12-01", "2020-03-01", "2020-04-01",
    "2020-05-01", "2020-06-01", "2020-07-01", "2020-08-01", "2020-11-01", "2021-02-01", "2021-03-01",
    "2021-05-01", "2021-08-01", "2022-01-01", "2022-05-01", "2022-07-01", "2022-09-01", "2022-11-01",
    "2023-02-01", "2023-04-01", "2023-05-01", "2023-06-01", "2023-09-01", "2023-11-01", "2024-01-01",
    "2024-03-01", "2024-05-01", "2024-07-01", "2024-10-01", "2025-01-01", "2025-03-01", "2025-05-01",
    "2025-07-01", "2025-09-01", "2026-01-01", "2026-03-01",
)  # fmt: skip
# specification/monitor/resource-manager/Microsoft.Insights/{stable,preview}/*/diagnosticsSettings*.json,
# subscriptionDiagnosticsSettings*.json
_DIAGNOSTIC_SETTINGS = ("2015-07-01", "2016-09-01", "2017-05-01-preview", "2021-05-01-preview")
# specification/operationalinsights/resource-manager/Microsoft.OperationalInsights/{stable,preview}/*
_OPERATIONAL_INSIGHTS = (
    "2015-03-20", "2015-11-01-preview", "2020-03-01-preview", "2020-08-01", "2020-10-01", "2021-06-01",
    "2021-12-01-preview", "2022-10-01", "2023-09-01", "2025-02-01",
)  # fmt: skip
# specification/authorization/resource-manager/Microsoft.Authorization/{stable,preview}/*
_AUTHORIZATION = (
    "2015-06-01", "2015-07-01", "2017-10-01-preview", "2018-01-01-preview", "2018-07-01-preview",
    "2018-09-01-preview", "2020-03-01-preview", "2020-04-01-preview", "2020-08-01-preview",
    "2020-10-01-preview", "2022-01-01-preview", "2022-04-01", "2022-05-01-preview",
)  # fmt: skip


def _since(versions: tuple[str, ...], first: str) -> tuple[str, ...]:
    return tuple(v for v in versions if v[:10] >= first)


# lower-cased "Namespace/type[/childType…]" → versions served
SUPPORTED: dict[str, tuple[str, ...]] = {
    "microsoft.storage/storageaccounts": _STORAGE,
    "microsoft.storage/storageaccounts/blobservices": _since(_STORAGE, "2018-07-01"),
    "microsoft.storage/storageaccounts/blobservices/containers": _since(_STORAGE, "2018-02-01"),
    "microsoft.storage/skus": _since(_STORAGE, "2017-06-01"),
    "microsoft.keyvault/vaults": _KEYVAULT,
    "microsoft.keyvault/vaults/accesspolicies": _since(_KEYVAULT, "2018-02-14"),
    "microsoft.network/networksecuritygroups": _NETWORK,
    "microsoft.network/virtualnetworks": _NETWORK,
    "microsoft.network/virtualnetworks/subnets": _NETWORK,
    "microsoft.network/virtualnetworks/virtualnetworkpeerings": _since(_NETWORK, "2016-06-01"),
    "microsoft.network/locations": _NETWORK,
    "microsoft.insights/diagnosticsettings": _DIAGNOSTIC_SETTINGS,
    "microsoft.operationalinsights/workspaces": _OPERATIONAL_INSIGHTS,
    "microsoft.authorization": _AUTHORIZATION,
}
# ARM's own types (no /providers/ segment: subscriptions, resource groups), answered by ARM itself
# (specification/resources/resource-manager/Microsoft.Resources/stable/*)
RESOURCES = (
    "2014-04-01", "2015-01-01", "2015-11-01", "2016-02-01", "2016-06-01", "2016-07-01", "2016-09-01",
    "2017-05-10", "2018-02-01", "2018-05-01", "2019-05-01", "2019-07-01", "2019-10-01", "2020-06-01",
    "2020-10-01", "2021-01-01", "2021-04-01", "2022-09-01", "2023-07-01", "2024-03-01", "2024-07-01",
    "2024-11-01", "2025-03-01", "2025-04-01",
)  # fmt: skip

_WELL_FORMED = re.compile(r"^\d{4}-\d{2}-\d{2}(-(preview|privatepreview|alpha|beta|rc))?$", re.IGNORECASE)


def resource_type(path: str) -> str | None:
    """``Namespace/type[/childType…]`` of an ARM path (the innermost ``/providers/`` segment wins: a
    diagnostic setting of a blob service is a ``Microsoft.Insights/diagnosticSettings``), or None for ARM's
    own types."""
    found = None
    for match in re.finditer(r"/providers/", path, re.IGNORECASE):
        found = match
    if found is None:
        return None
    segments = [s for s in path[found.end() :].split("/") if s]
    if not segments:
        return None
    namespace, rest = segments[0], segments[1:]
    return "/".join([namespace, *rest[0::2]])


def supported(type_name: str) -> tuple[str, ...] | None:
    """The versions a type is served in: its own entry, else its closest listed parent (``…/listKeys`` is an
    action of ``storageAccounts``), else its namespace's."""
    parts = type_name.lower().split("/")
    while parts:
        versions = SUPPORTED.get("/".join(parts))
        if versions is not None:
            return versions
        parts.pop()
    return None


def check(path: str, api_version: str | None, *, location: str, locations: Iterable[str]) -> None:
    """Raise Azure's 400 when ARM would refuse ``api_version`` for ``path``."""
    if not api_version:
        raise errors.missing_api_version()
    type_name = resource_type(path)
    versions = supported(type_name) if type_name else RESOURCES
    if versions is None:
        return  # a type with no entry has no route either: the route check answers for it
    if not _WELL_FORMED.match(api_version):
        raise invalid_api_version(api_version, versions)
    if api_version.lower() in (v.lower() for v in versions):
        return
    if type_name is None:
        raise invalid_api_version(api_version, versions)
    namespace, _, kind = type_name.partition("/")
    raise errors.ArmError(
        400,
        "NoRegisteredProviderFound",
        f"No registered resource provider found for location '{location}' and API version '{api_version}' "
        f"for type '{kind or namespace}'. The supported api-versions are '{', '.join(reversed(versions))}'. "
        f"The supported locations are '{', '.join(sorted(set(locations)))}'.",
    )


def invalid_api_version(api_version: str, versions: tuple[str, ...]) -> errors.ArmError:
    return errors.ArmError(
        400,
        "InvalidApiVersionParameter",
        f"The api-version '{api_version[:64]}' is invalid. The supported versions are "
        f"'{','.join(reversed(versions))}'.",
    )
