"""Hostile playbooks through the real CLI: each ends within the time bound, under the memory bound, with a
clear message naming the file and line, a non-zero exit and no traceback; afterwards the same database still
runs a normal playbook."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from hostile import irflow

from irflow.sim.models import Tenant
from irflow.sim.server import SimServer

pytestmark = pytest.mark.slow

HEADER = 'name: hostile\nversion: 1\ninputs:\n  n: {type: string, required: false, default: "7"}\n'
ACCOUNT_INPUT = '  accounts: {type: "list[resource_id]", required: false}\n'


def _step(value: str, *, action: str = "storage.isolate_account", param: str = "account") -> str:
    return f"steps:\n  - id: one\n    action: {action}\n    with:\n      {param}: {value}\n"


# The classic "billion laughs": nine anchors, each a list of nine aliases of the one before (9^9 leaves).
_LOL = ", ".join(['"lol"'] * 9)
_BOMB = "".join(
    f"{name}: &{name} [{', '.join([f'*{prev}'] * 9) if prev else _LOL}]\n"
    for prev, name in zip([None, *"abcdefgh"], "abcdefghi", strict=True)
)

# name -> (file bytes, line of the first problem, words of the message)
LOAD_TIME: dict[str, tuple[bytes, int, str]] = {
    "alias-bomb": (_BOMB.encode(), 4, "expands to more than"),
    "deep-nesting": (
        b"name: deep\nversion: 1\nsteps: " + b"[" * 5000 + b"]" * 5000 + b"\n",
        3,
        "nested more",
    ),
    "not-utf8": ((HEADER + "description: caf\xe9\n" + _step('"{{ n }}"')).encode("latin-1"), 5, "not UTF-8"),
    "python-tag": (
        (HEADER + 'description: !!python/object/apply:os.system ["touch /tmp/owned"]\n').encode(),
        5,
        "is not allowed",
    ),
    "thirty-digit-version": (
        HEADER.replace("version: 1", "version: 123456789012345678901234567890").encode(),
        2,
        "integer out of range",
    ),
    "nul-byte": ((HEADER + "description: a\x00b\n").encode(), 5, "NUL byte"),
    "nul-escape": ((HEADER + 'description: "a\\0b"\n').encode(), 5, "NUL character"),
    "duplicate-key": ((HEADER + "name: other\n" + _step("x")).encode(), 5, "duplicate key 'name'"),
    "oversize": ((HEADER + "description: " + "x" * 300_000 + "\n").encode(), 1, "larger than 256 KiB"),
    "recursive-alias": ((HEADER + "description: &r [*r]\n").encode(), 5, "alias refers to a node"),
    "infinite-number": ((HEADER + "description: 1.0e+999\n").encode(), 5, "not a finite number"),
    "division-by-zero": ((HEADER + _step('"{{ 1/0 }}"')).encode(), 9, "ZeroDivisionError"),
    "huge-string": ((HEADER + _step("\"{{ 'B' * 200000000 }}\"")).encode(), 9, "more than 1,000,000"),
    "huge-range": ((HEADER + _step('"{{ range(10**7) | list }}"')).encode(), 9, "range() of 10,000,000"),
    "jinja-syntax": ((HEADER + _step('"{{ inputs.n | }}"')).encode(), 9, "syntax error"),
    "undefined-input": ((HEADER + _step('"{{ inputs.nope }}"')).encode(), 9, "undefined input 'nope'"),
    "statement": (
        (
            HEADER + _step('"{% for i in range(9) %}{% for j in range(9) %}x{% endfor %}{% endfor %}"')
        ).encode(),
        9,
        "only {{ expressions }}",
    ),
    "wrong-literal-type": (
        (
            HEADER
            + ACCOUNT_INPUT
            + "steps:\n  - id: one\n    action: storage.rotate_account_keys\n"
            + '    for_each: "{{ inputs.accounts }}"\n    with:\n      keys: [key3]\n'
        ).encode(),
        11,
        "steps.0.with.keys.0: Input should be 'key1' or 'key2'",
    ),
}

# Templates only the run can judge (the value comes from a parameter): the run fails, cleanly.
RUN_TIME: dict[str, tuple[str, str, str]] = {
    "string-plus-int": ('"{{ inputs.n + 1 }}"', "x", "TypeError"),
    "range-from-input": ('"{{ range(inputs.n | int) | list }}"', "10000000", "range() of 10,000,000"),
    "repeat-from-input": ("\"{{ 'B' * (inputs.n | int) }}\"", "200000000", "more than 1,000,000"),
}


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    with SimServer(Tenant.demo()) as sim:
        workdir = tmp_path_factory.mktemp("hostile")
        yield {
            **sim.connection_info()["env"],
            "IRFLOW_DATABASE_URL": f"sqlite:///{workdir / 'irflow.db'}",
            "IRFLOW_QUEUE_POLLING_INTERVAL": "0.05",
            "IRFLOW_ONCALL_RECIPIENTS": "soc-oncall@example.org",
            "IRFLOW_SUBSCRIPTION": sim.subscription_id or "",
        }


def _clean_failure(result, *words: str) -> None:  # type: ignore[no-untyped-def]
    output = result.stdout + result.stderr
    assert result.returncode != 0, output
    assert "Traceback" not in output, output
    for word in words:
        assert word in output, output


@pytest.mark.parametrize("case", sorted(LOAD_TIME))
def test_validate_refuses(case: str, env: dict[str, str], tmp_path: Path) -> None:
    content, line, words = LOAD_TIME[case]
    path = tmp_path / f"{case}.yaml"
    path.write_bytes(content)
    result = irflow("playbooks", "validate", str(path), env=env)
    assert result.returncode == 1
    _clean_failure(result, f"{path}:{line}: ", words)


@pytest.mark.parametrize("case", sorted(LOAD_TIME))
def test_dry_run_refuses(case: str, env: dict[str, str], tmp_path: Path) -> None:
    content, line, words = LOAD_TIME[case]
    path = tmp_path / f"{case}.yaml"
    path.write_bytes(content)
    _clean_failure(irflow("run", str(path), "--dry-run", env=env), f"{path}:{line}: ", words)


@pytest.mark.parametrize("case", sorted(RUN_TIME))
def test_run_time_template_failure_fails_the_run(case: str, env: dict[str, str], tmp_path: Path) -> None:
    template, value, words = RUN_TIME[case]
    path = tmp_path / f"{case}.yaml"
    path.write_text(HEADER + _step(template))
    validated = irflow("playbooks", "validate", str(path), env=env)
    assert validated.returncode == 0, validated.stderr
    result = irflow("run", str(path), "--dry-run", "--param", f"n={value}", "--json", env=env)
    assert result.returncode == 1
    _clean_failure(result, "failed", words)
    _normal_playbook_runs(env)  # the failed run is ended, not stuck: it blocks no later run


def _normal_playbook_runs(env: dict[str, str]) -> None:
    account = (
        f"/subscriptions/{env['IRFLOW_SUBSCRIPTION']}/resourceGroups/rg-phi-prod/providers/"
        "Microsoft.Storage/storageAccounts/phiimaging"
    )
    result = irflow(
        "run", "storage-sas-exfiltration", "--dry-run", "--param", f"storage_accounts={account}", env=env
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "dry run: nothing was changed" in result.stdout


def test_database_still_runs_a_normal_playbook(env: dict[str, str]) -> None:
    """Last in the module: after every hostile playbook above, on the same database."""
    _normal_playbook_runs(env)


@pytest.mark.postgres
@pytest.mark.parametrize("case", ["nul-byte", "nul-escape", "thirty-digit-version", "huge-string"])
def test_dry_run_refuses_on_postgresql(
    case: str, postgres_url: str, env: dict[str, str], tmp_path: Path
) -> None:
    """NUL characters and out-of-range integers used to reach PostgreSQL and come back as tracebacks; the
    same PostgreSQL database runs a normal playbook afterwards."""
    content, line, words = LOAD_TIME[case]
    path = tmp_path / f"{case}.yaml"
    path.write_bytes(content)
    on_postgres = {**env, "IRFLOW_DATABASE_URL": postgres_url}
    _clean_failure(irflow("run", str(path), "--dry-run", env=on_postgres), f"{path}:{line}: ", words)
    _normal_playbook_runs(on_postgres)
