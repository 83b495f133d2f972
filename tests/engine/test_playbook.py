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


@pytest.mark.parametrize(
    ("template", "words"),
    [
        ("{{ 1/0 }}", "ZeroDivisionError"),
        ("{{ 'B' * 200000000 }}", "more than 1,000,000"),
        ("{{ range(10**7) | list }}", "range() of 10,000,000"),
        ("{{ 10 ** 100000 }}", "larger than 2^4096"),
        ("{{ '%0999999999d' % 1 }}", "% is not allowed"),
        ("{{ 'x'.center(10**9) }}", "'center'"),
        ("{{ '{:>999999999}'.format(1) }}", "'format'"),
        ("{{ range(10000) | map('string') | join('x' * 100000) }}", "|join would hold more"),
        ("{{ ('a' * 100000) | replace('', 'b' * 100000) }}", "|replace would hold more"),
        ("{{ ([('a' * 1000)] * 1000) * 1000 }}", "more than 1,000,000"),
        ("{{ inputs.n ~ inputs.n }}", "~ operator"),
        ("{% for i in range(9) %}x{% endfor %}", "only {{ expressions }}"),
        ("{{ lipsum(1000000) }}", "'lipsum' is undefined"),
        ("{{ inputs.n.__class__ }}", "unsafe"),
        ("{{ " + "(" * 5000 + "1" + ")" * 5000 + " }}", "nested too deeply"),
    ],
)
def test_hostile_templates_end_as_one_clear_error(template: str, words: str) -> None:
    with pytest.raises(TemplateProblem) as caught:
        render(template, {"inputs": {"n": "7"}})
    assert words in str(caught.value)


def test_template_errors_do_not_echo_input_values() -> None:
    context = {"inputs": {"ssn": "123-45-6789", "password": "hunter2-Correct", "n": "x"}}
    for template in (
        "{{ inputs[inputs.ssn] }}",
        "{{ inputs[inputs.password] }}",
        "{{ dict(a=1)[inputs.ssn] }}",
    ):
        with pytest.raises(TemplateProblem) as caught:
            render(template, context)
        message = str(caught.value)
        assert "123-45-6789" not in message and "hunter2" not in message, message
        assert "has no attribute" in message or "KeyError" in message, message
    with pytest.raises(TemplateProblem, match="'dict object' has no attribute 'missing'"):
        render("{{ inputs.missing }}", context)
    with pytest.raises(TemplateProblem, match=r"can only concatenate str \(not \"int\"\) to str"):
        render("{{ inputs.n + 1 }}", context)


def test_bounded_templates_still_render_what_playbooks_use() -> None:
    context = {"inputs": {"accounts": ["a", "b"], "keys": ["/v/keys/k1"]}, "incident": {"prior_state": {}}}
    assert render("{{ inputs.accounts | length }} account(s)", context) == "2 account(s)"
    assert render("{{ inputs['keys'][0].rsplit('/keys/', 1)[1] }}", context) == "k1"
    assert (
        render("{{ inputs.accounts | select('in', incident.prior_state.get('x', {})) | list }}", context)
        == []
    )
    assert render("{{ inputs.accounts + ['c'] }}", context) == ["a", "b", "c"]


@pytest.mark.parametrize(
    ("text", "line", "words"),
    [
        (VALID.replace("version: 2", "version: 2\nname: again"), 3, "duplicate key 'name'"),
        (VALID.replace("version: 2", "version: 123456789012345678901234567890"), 2, "integer out of range"),
        (VALID + "description: !!python/name:os.system\n", 9, "is not allowed"),
        (VALID + 'description: "a\\0b"\n', 9, "NUL character"),
        (VALID.replace('"{{ inputs.storage_accounts }}"', '"{{ inputs.accounts }}"'), 8, "undefined input"),
        (
            VALID.replace('"{{ inputs.storage_accounts }}"', '"{{ steps.later }}"'),
            8,
            "no earlier step 'later'",
        ),
        (VALID.replace('"{{ inputs.storage_accounts }}"', '"{{ inputz }}"'), 8, "unknown name 'inputz'"),
        (VALID.replace('"{{ inputs.storage_accounts }}"', '"{{ inputs. }}"'), 8, "syntax error"),
    ],
)
def test_untrusted_yaml_and_templates_name_file_and_line(text: str, line: int, words: str) -> None:
    with pytest.raises(PlaybookError) as caught:
        parse_playbook(text, "sample.yaml")
    problem = caught.value.problems[0]
    assert problem.startswith(f"sample.yaml:{line}:"), problem
    assert words in problem


def test_literal_params_are_checked_against_the_action_schema() -> None:
    text = (
        VALID.replace("storage.isolate_account", "storage.rotate_account_keys") + "    with: {keys: key1}\n"
    )
    with pytest.raises(
        PlaybookError, match=r"sample.yaml:9: steps.0.with.keys: Input should be a valid list"
    ):
        parse_playbook(text, "sample.yaml")


def test_anchors_and_aliases_within_bounds_still_load() -> None:
    text = VALID.replace(
        "inputs:", "description: &d shared\ntriggers: {sentinel: [{match: {title_contains: *d}}]}\ninputs:"
    )
    assert parse_playbook(text).spec.triggers.sentinel[0].match.title_contains == "shared"
