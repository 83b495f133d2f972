"""The catalog: playbooks with their inputs, actions with their parameter schemas and permissions."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from irflow.actions.base import all_actions
from irflow.engine.playbook import PlaybookError, list_playbooks, load_playbook


class PlaybookStepView(BaseModel):
    id: str
    action: str
    requires_approval: bool


class PlaybookView(BaseModel):
    name: str
    version: int | None
    description: str
    valid: bool
    problems: list[str] = Field(description="Why the playbook does not load (empty when valid).")
    sha256: str | None
    inputs: dict[str, dict[str, Any]] = Field(description="Each input's type, whether required, default.")
    triggers: dict[str, Any]
    steps: list[PlaybookStepView]


class ActionView(BaseModel):
    name: str
    summary: str
    params_schema: dict[str, Any] = Field(description="JSON Schema of the action's parameters.")
    target_param: str | None
    permissions: list[str]


def playbooks(playbooks_dir: Path) -> list[PlaybookView]:
    views = []
    for path in list_playbooks(playbooks_dir):
        try:
            loaded = load_playbook(path)
        except PlaybookError as exc:
            views.append(
                PlaybookView(
                    name=path.stem,
                    version=None,
                    description="",
                    valid=False,
                    problems=[p.replace(str(path), path.name) for p in exc.problems],
                    sha256=None,
                    inputs={},
                    triggers={},
                    steps=[],
                )
            )
            continue
        spec = loaded.spec
        views.append(
            PlaybookView(
                name=spec.name,
                version=spec.version,
                description=spec.description,
                valid=True,
                problems=[],
                sha256=loaded.content_hash,
                inputs={k: v.model_dump(mode="json") for k, v in spec.inputs.items()},
                triggers=spec.triggers.model_dump(mode="json"),
                steps=[
                    PlaybookStepView(id=s.id, action=s.action, requires_approval=s.requires_approval)
                    for s in spec.steps
                ],
            )
        )
    return views


def actions() -> list[ActionView]:
    return [
        ActionView(
            name=name,
            summary=action.summary(),
            params_schema=action.Params.model_json_schema(),
            target_param=action.target_param,
            permissions=list(action.permissions),
        )
        for name, action in all_actions().items()
    ]
