"""deploy/sentinel: the ARM template's structure, resource types and api-versions that exist."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

TEMPLATE = Path(__file__).resolve().parents[2] / "deploy" / "sentinel" / "irflow-sentinel.json"

# api-versions published for each type (azure-rest-api-specs, specification/<service>/resource-manager/...):
#   web/.../Microsoft.Web/stable/2016-06-01/logicAppsManagementClient.json (connections)
#   logic/.../Microsoft.Logic/stable/2019-05-01/logic.json
#   authorization/.../Microsoft.Authorization/stable/2022-04-01/authorization-RoleAssignmentsCalls.json
#   securityinsights/.../Microsoft.SecurityInsights/stable/2023-02-01/AutomationRules.json
PUBLISHED = {
    "Microsoft.Web/connections": {"2016-06-01"},
    "Microsoft.Logic/workflows": {"2016-06-01", "2019-05-01"},
    "Microsoft.Authorization/roleAssignments": {"2020-04-01-preview", "2022-04-01"},
    "Microsoft.SecurityInsights/automationRules": {"2021-10-01", "2022-11-01", "2023-02-01", "2024-03-01"},
}
TOP_LEVEL = {"$schema", "contentVersion", "metadata", "parameters", "variables", "resources", "outputs"}


def _template() -> dict[str, Any]:
    return json.loads(TEMPLATE.read_text())


def _by_type(template: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    return [r for r in template["resources"] if r["type"] == kind]


def test_the_template_is_a_deployment_template_with_published_types_and_api_versions() -> None:
    template = _template()
    assert set(template) <= TOP_LEVEL
    assert (
        template["$schema"]
        == "https://schema.management.azure.com/schemas/2019-04-01/deploymentTemplate.json#"
    )
    assert re.fullmatch(r"\d+\.\d+\.\d+\.\d+", template["contentVersion"])
    for resource in template["resources"]:
        assert {"type", "apiVersion", "name"} <= set(resource), resource
        assert resource["apiVersion"] in PUBLISHED[resource["type"]], (
            resource["type"],
            resource["apiVersion"],
        )
    assert {r["type"] for r in template["resources"]} == set(PUBLISHED)


def test_every_parameter_and_variable_referenced_is_declared() -> None:
    template = _template()
    text = TEMPLATE.read_text()
    used_parameters = set(re.findall(r"parameters\('([A-Za-z]\w*)'\)", text))
    used_variables = set(re.findall(r"variables\('([A-Za-z]\w*)'\)", text))
    assert used_parameters <= set(template["parameters"]), used_parameters - set(template["parameters"])
    assert used_variables <= set(template["variables"]), used_variables - set(template["variables"])
    for name, spec in template["parameters"].items():
        assert spec["type"] in ("string", "bool", "int", "object", "array", "securestring"), name


def test_the_logic_app_forwards_the_incident_with_its_managed_identity() -> None:
    template = _template()
    (workflow,) = _by_type(template, "Microsoft.Logic/workflows")
    assert workflow["identity"] == {"type": "SystemAssigned"}
    definition = workflow["properties"]["definition"]
    (trigger,) = definition["triggers"].values()
    # The Microsoft Sentinel connector's incident trigger: a webhook subscription on /incident-creation.
    assert trigger["type"] == "ApiConnectionWebhook"
    assert trigger["inputs"]["path"] == "/incident-creation"
    assert "['azuresentinel']" in trigger["inputs"]["host"]["connection"]["name"]
    (action,) = definition["actions"].values()
    assert action["type"] == "Http"
    inputs = action["inputs"]
    assert inputs["method"] == "POST" and inputs["body"] == "@triggerBody()"
    assert inputs["uri"] == "[parameters('irflowWebhookUrl')]"
    assert inputs["authentication"] == {
        "type": "ManagedServiceIdentity",
        "audience": "[parameters('irflowAudience')]",
    }
    connection = workflow["properties"]["parameters"]["$connections"]["value"]["azuresentinel"]
    assert connection["connectionProperties"]["authentication"]["type"] == "ManagedServiceIdentity"
    (api_connection,) = _by_type(template, "Microsoft.Web/connections")
    assert api_connection["properties"]["parameterValueType"] == "Alternative"  # managed-identity connection
    assert "'azuresentinel'" in api_connection["properties"]["api"]["id"]


def test_automation_rules_run_the_logic_app_on_creation_and_update() -> None:
    template = _template()
    rules = _by_type(template, "Microsoft.SecurityInsights/automationRules")
    assert {r["properties"]["triggeringLogic"]["triggersWhen"] for r in rules} == {"Created", "Updated"}
    for rule in rules:
        assert rule["scope"] == "[variables('workspaceScope')]"
        logic = rule["properties"]["triggeringLogic"]
        assert logic["isEnabled"] is True and logic["triggersOn"] == "Incidents"
        (action,) = rule["properties"]["actions"]
        assert action["actionType"] == "RunPlaybook"
        assert action["actionConfiguration"]["logicAppResourceId"] == (
            "[resourceId('Microsoft.Logic/workflows', parameters('logicAppName'))]"
        )
        assert 1 <= rule["properties"]["order"] <= 1000
    (assignment,) = _by_type(template, "Microsoft.Authorization/roleAssignments")
    # Microsoft Sentinel Automation Contributor (built-in role id).
    assert template["variables"]["automationContributorRoleId"] == "f4c81013-99ee-4d62-a7ee-b3f1f648599a"
    assert "automationContributorRoleId" in assignment["properties"]["roleDefinitionId"]
