from __future__ import annotations

from pathlib import Path

import pytest

from irflow.engine.playbook import PlaybookError, coerce_inputs, load_playbook, parse_playbook
from irflow.engine.templates import TemplateProblem, render

REPO = Path(__file__).resolve().parents[2]
SUB = "9b2f6c1d-4e8a-4f3b-a1c7-2d5e8f0a6b3c"
ACCOUNT = (
    f"/subscriptions/{SUB}/resourceGroups/rg-phi-prod/providers/Microsoft.Storage/storageAccounts/phiimaging"
)

VALID = """\
name: sample
version: 2
inputs:
  storage_accounts: {type: "list[resource_id]"}
steps:
  - id: isolate
    action: storage.isolate_account
    for_each: "{{ inputs.storage_accounts }}"
"""


def test_shipped_playbooks_are_valid() -> None:
    paths = sorted((REPO / "playbooks").glob("*.yaml"))
    assert paths
    for path in paths:
        loaded = load_playbook(path)
        assert loaded.spec.name == path.stem
        assert len(loaded.content_hash) == 64


def test_valid_playbook_loads() -> None:
    loaded = parse_playbook(VALID, "sample.yaml")
    assert loaded.spec.steps[0].action == "storage.isolate_account"
    assert loaded.spec.steps[0].retry.max_attempts == 3


@pytest.mark.parametrize(
    ("mutation", "line", "words"),
    [
        (("action: storage.isolate_account", "action: storage.nuke_account"), 7, "unknown action"),
        (("    for_each:", "    concurrency: 500\n    for_each:"), 8, "concurrency"),
        (("version: 2", "version: two"), 2, "version"),
        (("    for_each:", "    colour: blue\n    for_each:"), 8, "unknown field"),
        (("    for_each:", "    with: {acount: x}\n    for_each:"), 8, "has no parameter 'acount'"),
        (("  - id: isolate", "  - id: Isolate Step"), 6, "steps.0.id"),
    ],
)
def test_errors_name_file_and_line(mutation: tuple[str, str], line: int, words: str) -> None:
    text = VALID.replace(*mutation)
    with pytest.raises(PlaybookError) as caught:
        parse_playbook(text, "sample.yaml")
    problem = caught.value.problems[0]
    assert problem.startswith(f"sample.yaml:{line}:"), problem
    assert words in problem


def test_yaml_syntax_error_names_line() -> None:
    with pytest.raises(PlaybookError, match=r"sample.yaml:4: invalid YAML"):
        parse_playbook("name: x\nversion: 1\nsteps: [\n  - : :", "sample.yaml")


def test_missing_required_param_without_for_each() -> None:
    text = VALID.replace('    for_each: "{{ inputs.storage_accounts }}"\n', "")
    with pytest.raises(PlaybookError, match="needs parameter 'account'"):
        parse_playbook(text, "sample.yaml")


def test_inputs_are_coerced_and_checked() -> None:
    spec = parse_playbook(VALID).spec
    assert coerce_inputs(
        spec, {"storage_accounts": f"{ACCOUNT}, {ACCOUNT.replace('imaging', 'claims')}"}
    ) == {"storage_accounts": [ACCOUNT, ACCOUNT.replace("imaging", "claims")]}
    with pytest.raises(ValueError, match="not an Azure resource id"):
        coerce_inputs(spec, {"storage_accounts": "phiimaging"})
    with pytest.raises(ValueError, match="missing parameter 'storage_accounts'"):
        coerce_inputs(spec, {})
    with pytest.raises(ValueError, match="unknown parameter"):
        coerce_inputs(spec, {"storage_accounts": ACCOUNT, "extra": "1"})
    with pytest.raises(ValueError, match="same value twice"):
        coerce_inputs(spec, {"storage_accounts": f"{ACCOUNT},{ACCOUNT}"})


def test_templates_keep_types_and_refuse_unknown_names() -> None:
    assert render("{{ inputs.a }}", {"inputs": {"a": [1, 2]}}) == [1, 2]
    assert render({"x": ["{{ item }}"]}, {"item": "v"}) == {"x": ["v"]}
    with pytest.raises(TemplateProblem, match="has no attribute .b."):
        render("{{ inputs.b }}", {"inputs": {}})
    with pytest.raises(TemplateProblem, match="unsafe"):
        render("{{ item.__class__ }}", {"item": 1})
