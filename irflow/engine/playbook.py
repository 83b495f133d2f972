"""Playbooks: YAML documents validated into typed specs, with errors that name the file and line."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from irflow.domain.resource_id import ResourceId
from irflow.engine import safe_yaml
from irflow.engine.templates import TemplateProblem, has_template, is_constant, references, render

STEP_ID = r"^[a-z0-9][a-z0-9_-]{0,63}$"
PLAYBOOK_NAME = r"^[a-z0-9][a-z0-9-]{0,79}$"
InputType = Literal["string", "int", "bool", "datetime", "resource_id", "list[string]", "list[resource_id]"]


class PlaybookError(ValueError):
    """A playbook that cannot be loaded; ``problems`` are ``file:line: message`` strings."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


class RetryPolicy(BaseModel):
    model_config = ConfigDict(extra="forbid")

    max_attempts: int = Field(default=3, ge=1, le=20)
    backoff: Literal["fixed", "exponential"] = "exponential"
    delay_s: float = Field(default=2.0, ge=0, le=600)
    max_delay_s: float = Field(default=60.0, ge=0, le=3600)

    def delay_before(self, attempt: int) -> float:
        """Seconds to wait before attempt number ``attempt`` (2, 3, …)."""
        if self.backoff == "fixed":
            return self.delay_s
        return min(self.max_delay_s, self.delay_s * 2 ** (attempt - 2))


class InputSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    type: InputType = "string"
    required: bool = True
    default: Any = None
    description: str = ""
    # A Sentinel entity kind, optionally narrowed to ARM resource types: "AzureResource:Microsoft.Storage/
    # storageAccounts" (see irflow/engine/sentinel_entities.py).
    from_entities: str | None = None
    # A secret or PHI: stored sealed (irflow/engine/sealing.py), audited as a fingerprint, never echoed.
    sensitive: bool = False

    @field_validator("from_entities")
    @classmethod
    def _known_entity_kind(cls, value: str | None) -> str | None:
        if value is not None:
            from irflow.engine.sentinel_entities import parse_entity_selector

            parse_entity_selector(value)
        return value


class SentinelMatch(BaseModel):
    """Which Sentinel incidents a rule takes; every condition given must hold."""

    model_config = ConfigDict(extra="forbid")

    title_contains: str | None = Field(default=None, min_length=1, max_length=200)
    entity_types: list[str] = Field(default_factory=list)
    resource_types: list[str] = Field(default_factory=list)
    severities: list[Literal["informational", "low", "medium", "high"]] = Field(default_factory=list)

    @field_validator("entity_types")
    @classmethod
    def _known_kinds(cls, value: list[str]) -> list[str]:
        from irflow.engine.sentinel_entities import parse_entity_selector

        for kind in value:
            parse_entity_selector(kind)
        return value

    @field_validator("resource_types")
    @classmethod
    def _arm_types(cls, value: list[str]) -> list[str]:
        from irflow.engine.sentinel_entities import parse_entity_selector

        for resource_type in value:
            parse_entity_selector(f"AzureResource:{resource_type}")
        return value


class TriggerRule(BaseModel):
    model_config = ConfigDict(extra="forbid")

    match: SentinelMatch = Field(default_factory=SentinelMatch)
    auto_start: bool = False


class Triggers(BaseModel):
    model_config = ConfigDict(extra="forbid")

    sentinel: list[TriggerRule] = Field(default_factory=list)


class StepSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    id: str = Field(pattern=STEP_ID)
    action: str
    with_: dict[str, Any] = Field(default_factory=dict, alias="with")
    for_each: str | list[Any] | None = None
    concurrency: int = Field(default=8, ge=1, le=64)
    requires_approval: bool = False
    retry: RetryPolicy = Field(default_factory=RetryPolicy)
    # stop: the run fails; continue: the next step runs; escalate: on-call is told (outbox), then stop.
    on_failure: Literal["stop", "continue", "escalate"] = "stop"
    # A condition over inputs and earlier steps' outputs (``{{ … }}``, true or false); false skips the step.
    when: str | None = Field(default=None, max_length=2000)
    # Seconds one target may take (plan and every attempt); past it the target fails as timed out.
    timeout: float | None = Field(default=None, gt=0, le=86400)
    # A gate rejected (or not decided within approval_timeout): skip the target, stop the run, or go on at a
    # later step ("goto <step id>").
    on_reject: str = Field(default="skip", pattern=r"^(skip|stop|goto [a-z0-9][a-z0-9_-]{0,63})$")
    approval_timeout: float = Field(default=7 * 24 * 3600, gt=0, le=30 * 24 * 3600)
    # Per-target pipelining: this for_each step starts for an item as soon as the previous step (a for_each
    # over the same list) finished for that item, not when it finished for every item.
    pipeline: bool = False
    description: str = ""

    @model_validator(mode="after")
    def _timeout_without_gate(self) -> StepSpec:
        if self.timeout is not None and self.requires_approval:
            raise ValueError(
                "timeout cannot be combined with requires_approval: the wait for a human would count"
            )
        return self


class Playbook(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=PLAYBOOK_NAME)
    version: int = Field(ge=1, le=2**31 - 1)  # the runs.playbook_version column is an INTEGER
    description: str = ""
    triggers: Triggers = Field(default_factory=Triggers)
    inputs: dict[str, InputSpec] = Field(default_factory=dict)
    steps: list[StepSpec] = Field(min_length=1)

    @field_validator("inputs")
    @classmethod
    def _input_names(cls, value: dict[str, InputSpec]) -> dict[str, InputSpec]:
        for name in value:
            if not re.fullmatch(r"[a-z][a-z0-9_]{0,63}", name):
                raise ValueError(f"input name {name!r} must be lowercase letters, digits and _")
        return value

    @model_validator(mode="after")
    def _unique_step_ids(self) -> Playbook:
        seen: set[str] = set()
        for step in self.steps:
            if step.id in seen:
                raise ValueError(f"step id {step.id!r} is used twice")
            seen.add(step.id)
        return self

    @model_validator(mode="after")
    def _pipelines(self) -> Playbook:
        """``pipeline: true`` joins a step to the previous one's per-target chain: both iterate the same list,
        and nothing in the chain waits for every target of a step (no ``steps.<id>`` of the chain read
        inside it, no ``on_reject`` but skip: stop and goto decide for the whole run, after a barrier)."""
        for position, step in enumerate(self.steps):
            if not step.pipeline:
                continue
            where = f"step {step.id!r} (pipeline: true)"
            previous = self.steps[position - 1] if position else None
            if previous is None:
                raise ValueError(f"{where}: the first step has no previous step to pipeline with")
            if step.for_each is None or previous.for_each is None:
                raise ValueError(f"{where}: it and the previous step {previous.id!r} both need for_each")
            if step.for_each != previous.for_each:
                raise ValueError(
                    f"{where}: for_each must be the same list as the previous step {previous.id!r} "
                    f"({previous.for_each!r}), so each target's chain is one item"
                )
            chain = pipeline_chain(self.steps, position)
            for member in chain:
                if member.on_reject != "skip":
                    raise ValueError(
                        f"step {member.id!r} is in a pipeline: on_reject must be skip "
                        "(stop and goto decide for every target at once)"
                    )
            earlier = {member.id for member in chain if member is not step}
            read = _steps_read(step)
            if "" in read:  # steps[...] with a computed key: it may read any of them
                read |= earlier
            if read & earlier:
                raise ValueError(
                    f"{where}: reads the outputs of {', '.join(sorted(read & earlier))}, not complete until "
                    "the pipeline ends; remove pipeline: true or read them in a later step"
                )
        return self

    @model_validator(mode="after")
    def _goto_later_steps(self) -> Playbook:
        ids = [step.id for step in self.steps]
        for position, step in enumerate(self.steps):
            if step.on_reject.startswith("goto "):
                target = step.on_reject.removeprefix("goto ")
                if target not in ids[position + 1 :]:
                    raise ValueError(f"step {step.id!r}: on_reject goes to {target!r}, not a later step")
        return self


def pipeline_chain(steps: list[StepSpec], position: int) -> list[StepSpec]:
    """The pipeline the step at ``position`` belongs to: its head and every pipelined step after it."""
    head = position
    while head > 0 and steps[head].pipeline:
        head -= 1
    end = head + 1
    while end < len(steps) and steps[end].pipeline:
        end += 1
    return steps[head:end]


def _steps_read(step: StepSpec) -> set[str]:
    """The ids of earlier steps whose outputs a step's templates read (``steps.<id>``; "" for a computed
    key)."""
    sources = [step.when, step.for_each, step.with_]
    found: set[str] = set()
    for value in sources:
        for _, source in _template_strings(value, ()):
            try:
                found |= {attribute or "" for name, attribute in references(source) if name == "steps"}
            except TemplateProblem:
                continue  # reported by the template check, with its line
    return found


@dataclass(frozen=True)
class LoadedPlaybook:
    spec: Playbook
    content: str
    content_hash: str
    source: str


def content_hash(content: str) -> str:
    return hashlib.sha256(content.encode("utf-8")).hexdigest()


def parse_playbook(content: str, source: str = "<playbook>") -> LoadedPlaybook:
    """Parse and validate YAML text within the bounds of :mod:`irflow.engine.safe_yaml`; errors carry
    ``source:line``."""
    try:
        node = safe_yaml.compose(content)
        data = safe_yaml.construct(node) if node is not None else None
    except safe_yaml.UnsafeYaml as exc:
        raise PlaybookError([f"{source}:{exc.line}: {exc.message}"]) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f"{mark.line + 1}" if mark is not None else "1"
        problem = getattr(exc, "problem", None) or str(exc)
        raise PlaybookError([f"{source}:{line}: invalid YAML: {problem}"]) from None
    if node is None:
        raise PlaybookError([f"{source}:1: empty playbook"])
    lines: dict[tuple[Any, ...], int] = {}
    _index_lines(node, (), lines)
    if not isinstance(data, dict):
        raise PlaybookError([f"{source}:1: a playbook is a mapping (name, version, steps, …)"])
    try:
        spec = Playbook.model_validate(data)
    except ValidationError as exc:
        raise PlaybookError(
            [f"{source}:{_line_for(err['loc'], lines)}: {_describe(err)}" for err in exc.errors()]
        ) from None
    found = [*_check_registry(spec), *_check_templates(spec)]
    problems = [f"{source}:{_line_for(loc, lines)}: {msg}" for loc, msg in sorted(found, key=_by_place)]
    if problems:
        raise PlaybookError(problems)
    return LoadedPlaybook(spec=spec, content=content, content_hash=content_hash(content), source=source)


def load_playbook(path: Path) -> LoadedPlaybook:
    try:
        with path.open("rb") as handle:
            raw = handle.read(safe_yaml.MAX_BYTES + 1)
        content = safe_yaml.decode(raw)
    except OSError as exc:
        raise PlaybookError([f"{path}: cannot read: {exc.strerror}"]) from None
    except safe_yaml.UnsafeYaml as exc:
        raise PlaybookError([f"{path}:{exc.line}: {exc.message}"]) from None
    return parse_playbook(content, str(path))


def find_playbook(name_or_path: str, playbooks_dir: Path) -> Path:
    """A playbook file by path, or by name in the playbooks directory."""
    candidate = Path(name_or_path)
    if candidate.suffix in (".yaml", ".yml") or candidate.is_file():
        if candidate.is_file():
            return candidate
        raise PlaybookError([f"{name_or_path}: no such playbook file"])
    for directory in _playbook_dirs(playbooks_dir):
        for suffix in (".yaml", ".yml"):
            path = directory / f"{name_or_path}{suffix}"
            if path.is_file():
                return path
    known = ", ".join(sorted(p.stem for d in _playbook_dirs(playbooks_dir) for p in d.glob("*.y*ml")))
    raise PlaybookError([f"no playbook named {name_or_path!r} (known: {known or 'none'})"])


def list_playbooks(playbooks_dir: Path) -> list[Path]:
    seen: dict[str, Path] = {}
    for directory in _playbook_dirs(playbooks_dir):
        for path in sorted(directory.glob("*.y*ml")):
            seen.setdefault(path.stem, path)
    return [seen[name] for name in sorted(seen)]


def _playbook_dirs(configured: Path) -> list[Path]:
    """The configured directory, then the one shipped beside the package (source checkouts)."""
    shipped = Path(__file__).resolve().parents[2] / "playbooks"
    dirs = [configured]
    if shipped.is_dir() and shipped.resolve() != configured.resolve():
        dirs.append(shipped)
    return [d for d in dirs if d.is_dir()]


def _index_lines(node: yaml.Node, path: tuple[Any, ...], lines: dict[tuple[Any, ...], int]) -> None:
    lines[path] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            key = key_node.value
            lines[(*path, key)] = key_node.start_mark.line + 1
            _index_lines(value_node, (*path, key), lines)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            _index_lines(item, (*path, index), lines)


def _line_for(loc: tuple[Any, ...], lines: dict[tuple[Any, ...], int]) -> int:
    for cut in range(len(loc), -1, -1):
        if loc[:cut] in lines:
            return lines[loc[:cut]]
    return 1


def _describe(err: dict[str, Any]) -> str:
    where = ".".join(str(part) for part in err["loc"])
    message = err["msg"]
    if err["type"] == "extra_forbidden":
        message = "unknown field"
    return f"{where}: {message}" if where else message


def _check_registry(spec: Playbook) -> list[tuple[tuple[Any, ...], str]]:
    """Every step names a registered action, and its literal params fit the action's params model."""
    from irflow.actions.base import all_actions

    actions = all_actions()
    problems: list[tuple[tuple[Any, ...], str]] = []
    for index, step in enumerate(spec.steps):
        loc = ("steps", index)
        action = actions.get(step.action)
        if action is None:
            problems.append(
                (
                    (*loc, "action"),
                    f"steps.{index}.action: unknown action {step.action!r} (known: {', '.join(actions)})",
                )
            )
            continue
        fields = action.Params.model_fields
        for key in step.with_:
            if key not in fields:
                problems.append(
                    (
                        (*loc, "with", key),
                        f"steps.{index}.with.{key}: {step.action} has no parameter {key!r} "
                        f"(parameters: {', '.join(fields)})",
                    )
                )
        problems += _check_literal_params(action, step, loc)
        given = set(step.with_) | ({action.target_param} if step.for_each and action.target_param else set())
        for name, field in fields.items():
            if field.is_required() and name not in given:
                problems.append(
                    ((*loc, "with"), f"steps.{index}.with: {step.action} needs parameter {name!r}")
                )
    return problems


def _by_place(problem: tuple[tuple[Any, ...], str]) -> tuple[str, ...]:
    return tuple(f"{part:08d}" if isinstance(part, int) else str(part) for part in problem[0])


# --- validation of templates and literal params (what `irflow playbooks validate` adds to the schema) -------
def _check_templates(spec: Playbook) -> list[tuple[tuple[Any, ...], str]]:
    """Every template compiles, reads only declared inputs and earlier steps, and a template that reads
    nothing renders (so ``{{ 1/0 }}`` fails here, not in the middle of a containment)."""
    problems: list[tuple[tuple[Any, ...], str]] = []
    earlier: list[str] = []
    for index, step in enumerate(spec.steps):
        loc = ("steps", index)
        names = {"inputs", "steps", "incident"}
        if step.for_each is not None:
            for path, source in _template_strings(step.for_each, (*loc, "for_each")):
                problems += _template_problems(spec, earlier, names, path, source)
            names = names | {"item"}
        for key, value in step.with_.items():
            for path, source in _template_strings(value, (*loc, "with", key)):
                problems += _template_problems(spec, earlier, names, path, source)
        earlier.append(step.id)
    return problems


def _template_strings(value: Any, path: tuple[Any, ...]) -> list[tuple[tuple[Any, ...], str]]:
    if isinstance(value, str):
        return [(path, value)] if has_template(value) else []
    if isinstance(value, dict):
        return [found for key, item in value.items() for found in _template_strings(item, (*path, key))]
    if isinstance(value, list):
        return [found for i, item in enumerate(value) for found in _template_strings(item, (*path, i))]
    return []


def _template_problems(
    spec: Playbook, earlier: list[str], names: set[str], path: tuple[Any, ...], source: str
) -> list[tuple[tuple[Any, ...], str]]:
    where = ".".join(map(str, path))
    try:
        used = list(references(source))
        if is_constant(source):
            render(source, {})
    except TemplateProblem as exc:
        return [(path, f"{where}: template {exc}")]
    problems = []
    for name, attribute in used:
        if name not in names:
            problems.append(
                (path, f"{where}: unknown name {name!r} (templates read {', '.join(sorted(names))})")
            )
        elif name == "inputs" and attribute is not None and attribute not in spec.inputs:
            declared = ", ".join(spec.inputs) or "none"
            problems.append((path, f"{where}: undefined input {attribute!r} (inputs: {declared})"))
        elif name == "steps" and attribute is not None and attribute not in earlier:
            problems.append(
                (
                    path,
                    f"{where}: no earlier step {attribute!r} (earlier steps: {', '.join(earlier) or 'none'})",
                )
            )
    return problems


def _check_literal_params(
    action: Any, step: StepSpec, loc: tuple[Any, ...]
) -> list[tuple[tuple[Any, ...], str]]:
    """Params written as plain values are checked against the action's params model now; templated ones
    can only be checked when the run renders them."""
    literals = {key: value for key, value in step.with_.items() if not has_template(value)}
    if not literals:
        return []
    try:
        action.Params.model_validate(literals)
    except ValidationError as exc:
        return [
            (
                (*loc, "with", *err["loc"]),
                f"steps.{loc[1]}.with.{'.'.join(map(str, err['loc']))}: {err['msg']}",
            )
            for err in exc.errors()
            if err["loc"] and err["loc"][0] in literals and err["type"] != "missing"
        ]
    return []


def coerce_inputs(spec: Playbook, raw: dict[str, str | list[Any] | Any]) -> dict[str, Any]:
    """Turn CLI/API parameters into typed inputs; raises ValueError naming the input."""
    unknown = sorted(set(raw) - set(spec.inputs))
    if unknown:
        takes = ", ".join(spec.inputs) or "none"
        raise ValueError(f"unknown parameter(s) {', '.join(unknown)}; {spec.name} takes: {takes}")
    values: dict[str, Any] = {}
    for name, input_spec in spec.inputs.items():
        if name not in raw:
            if input_spec.required and input_spec.default is None:
                raise ValueError(f"missing parameter {name!r} ({input_spec.type}): {input_spec.description}")
            values[name] = input_spec.default
            continue
        try:
            values[name] = _coerce(input_spec.type, raw[name])
        except ValueError as exc:
            if input_spec.sensitive:
                raise ValueError(
                    f"parameter {name!r}: not a valid {input_spec.type} (the value is sensitive: not shown)"
                ) from None
            raise ValueError(f"parameter {name!r}: {exc}") from None
    return values


def _coerce(kind: str, value: Any) -> Any:
    if kind.startswith("list["):
        items = [v.strip() for v in value.split(",") if v.strip()] if isinstance(value, str) else list(value)
        if not items:
            raise ValueError("needs at least one value")
        inner = kind[5:-1]
        coerced = [_coerce(inner, item) for item in items]
        if len(set(map(str, coerced))) != len(coerced):
            raise ValueError("lists the same value twice")
        return coerced
    if kind == "resource_id":
        return str(ResourceId.parse(str(value)))
    if kind == "int":
        return int(value)
    if kind == "bool":
        if isinstance(value, bool):
            return value
        if str(value).lower() in ("true", "yes", "1"):
            return True
        if str(value).lower() in ("false", "no", "0"):
            return False
        raise ValueError(f"not a boolean: {value!r}")
    return str(value)
