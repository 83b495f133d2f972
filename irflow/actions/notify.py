"""Notification actions: they put messages in the outbox (through the engine's notifier), never send inline.

The outbox stores a notification first and delivers it with retries; each outcome is audited. These actions
are idempotent per incident: the same step of the same incident to the same recipient queues one message,
however often the playbook runs.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from irflow.actions.base import Action, ActionError, Change, Plan, Result, StepContext, register
from irflow.redaction import fingerprint

Channel = Literal["email", "slack", "teams", "webhook"]


class EscalateParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    channel: Channel = Field(default="email", description="Outbox channel: email, slack, teams or webhook.")
    recipients: list[str] = Field(
        default_factory=list,
        description="E-mail addresses (email channel); chat channels post to their webhook.",
    )
    reason: str = Field(min_length=1, max_length=500, description="Why the team is called; no PHI.")
    actions: list[str] = Field(default_factory=list, description="What the team is asked to do.")
    template: str = Field(default="internal-escalation", pattern=r"^[a-z0-9-]{1,80}$")


@register
class Escalate(Action):
    """Escalate to the response team through the outbox (internal-escalation template, no PHI).

    Example::

        - id: escalate
          action: notify.escalate
          with:
            channel: email
            recipients: [soc-oncall@example.org]
            reason: "PHI storage contained; key rotation done; forensics next"
            actions: ["Confirm the scope", "Open the bridge"]
    """

    name = "notify.escalate"
    Params = EscalateParams
    permissions = ()  # touches no Azure resource
    target_param = None

    def _context(self, ctx: StepContext) -> dict[str, object]:
        params: EscalateParams = ctx.params  # type: ignore[assignment]
        return {"incident": ctx.incident, "reason": params.reason, "actions": params.actions, "step": ""}

    def _addressees(self, ctx: StepContext) -> list[str]:
        params: EscalateParams = ctx.params  # type: ignore[assignment]
        if params.channel != "email":
            return [params.channel]
        addresses = params.recipients or ctx.notifier.oncall_recipients()
        if not addresses:
            raise ActionError(
                "notify.escalate by email has no recipients: give `recipients` or set "
                "IRFLOW_ONCALL_RECIPIENTS"
            )
        return addresses

    def _pending(self, ctx: StepContext) -> list[str]:
        return [r for r in self._addressees(ctx) if not ctx.notifier.exists(self._key(ctx, r))]

    def _key(self, ctx: StepContext, recipient: str) -> str:
        params: EscalateParams = ctx.params  # type: ignore[assignment]
        return ctx.notifier.dedupe_key(
            ctx.incident["id"], self.name, params.template, params.reason, recipient
        )

    def plan(self, ctx: StepContext) -> Plan:
        params: EscalateParams = ctx.params  # type: ignore[assignment]
        self._require_notifier(ctx)
        ctx.notifier.preview(params.template, self._context(ctx))  # a template that cannot render fails here
        pending = self._pending(ctx)
        # The rendered subject carries the incident's title (free text): the plan, stored with the step and
        # shown in dry runs, names the template and the recipient's fingerprint instead.
        changes = [
            Change(
                field=f"outbox.{params.channel}",
                before=None,
                after=f"{params.template} to {fingerprint(address)}",
            )
            for address in pending
        ]
        notes = [] if pending else ["already queued for this incident"]
        return Plan(action=self.name, changes=changes, notes=notes)

    def apply(self, ctx: StepContext) -> Result:
        params: EscalateParams = ctx.params  # type: ignore[assignment]
        self._require_notifier(ctx)
        queued = [
            ctx.notifier.queue(
                channel=params.channel,
                template=params.template,
                recipient=recipient,
                context=self._context(ctx),
                incident_id=ctx.incident["id"],
                dedupe_key=self._key(ctx, recipient),
            )
            for recipient in self._pending(ctx)
        ]
        return Result(
            changed=bool(queued),
            changes=[Change(field=f"outbox.{params.channel}", before=None, after=n) for n in queued],
            outputs={"notifications": queued},
        )

    def verify(self, ctx: StepContext) -> bool:
        return not self._pending(ctx)

    @staticmethod
    def _require_notifier(ctx: StepContext) -> None:
        if ctx.notifier is None:
            raise ActionError("notify.* actions run inside the engine, which provides the outbox")


class ReminderParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    recipients: list[str] = Field(
        default_factory=list, description="E-mail addresses (default IRFLOW_COMPLIANCE_RECIPIENTS)."
    )


@register
class Reminder(Action):
    """Queue the incident's deadline reminders due today (T-30/14/7/3/1, overdue), each stage once.

    Example::

        - id: remind-compliance
          action: notify.reminder
          with: {recipients: [privacy-officer@example.org]}
    """

    name = "notify.reminder"
    Params = ReminderParams
    permissions = ()
    target_param = None

    def _addresses(self, ctx: StepContext) -> list[str]:
        params: ReminderParams = ctx.params  # type: ignore[assignment]
        Escalate._require_notifier(ctx)
        addresses = params.recipients or ctx.notifier.compliance_recipients()
        if not addresses:
            raise ActionError(
                "notify.reminder has no recipients: give `recipients` or set IRFLOW_COMPLIANCE_RECIPIENTS"
            )
        return addresses

    def plan(self, ctx: StepContext) -> Plan:
        due = ctx.notifier.reminders(ctx.incident["id"], self._addresses(ctx), preview=True)
        return Plan(
            action=self.name,
            changes=[Change(field="outbox.email", after=item) for item in due],
            notes=[] if due else ["no reminder due today"],
        )

    def apply(self, ctx: StepContext) -> Result:
        queued = ctx.notifier.reminders(ctx.incident["id"], self._addresses(ctx), preview=False)
        return Result(changed=bool(queued), outputs={"notifications": queued})

    def verify(self, ctx: StepContext) -> bool:
        return not ctx.notifier.reminders(ctx.incident["id"], self._addresses(ctx), preview=True)


class EntityContact(BaseModel):
    """164.404(c)(1)(E): how individuals reach the entity."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=200)
    toll_free_phone: str = Field(min_length=7, max_length=40)
    email: str = Field(min_length=3, max_length=200)
    website: str = Field(default="", max_length=300)
    postal_address: str = Field(min_length=5, max_length=300)
    hours: str = Field(default="", max_length=200)


class Response(BaseModel):
    """164.404(c)(1)(D): what the entity is doing."""

    model_config = ConfigDict(extra="forbid")

    investigation: str = Field(min_length=1, max_length=2000)
    mitigation: str = Field(min_length=1, max_length=2000)
    prevention: str = Field(min_length=1, max_length=2000)


class DraftNoticesParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    entity: EntityContact
    description: str = Field(min_length=1, max_length=4000, description="What happened, in plain language.")
    phi_types: list[str] = Field(min_length=1, description="Types of unsecured PHI involved.")
    protective_steps: list[str] = Field(min_length=1, description="Steps individuals should take.")
    response: Response
    media_contact: dict[str, str] = Field(
        default_factory=dict, description="name, phone, email for the press."
    )


@register
class DraftNotices(Action):
    """Draft the notices the incident's deadlines call for, for the compliance team to review.

    The individual notice (every element of 164.404(c)) always, and a media notice (164.406) for each state
    with a media obligation. Dates come from the incident's facts. Drafts are stored in the outbox with status
    ``draft`` — never sent — and each is drafted once per incident.

    Example::

        - id: draft-notices
          action: notify.draft_notices
          with:
            entity: {name: Example Health, toll_free_phone: 1-800-555-0100, email: privacy@example.org,
                     postal_address: "100 Example Street, Springfield"}
            description: "{{ inputs.what_happened }}"
            phi_types: [Names, Dates of service]
            protective_steps: ["Review your insurer's statements"]
            response: {investigation: "...", mitigation: "...", prevention: "..."}
    """

    name = "notify.draft_notices"
    Params = DraftNoticesParams
    permissions = ()
    target_param = None

    def _drafts(self, ctx: StepContext) -> list[tuple[str, str, dict[str, object]]]:
        params: DraftNoticesParams = ctx.params  # type: ignore[assignment]
        Escalate._require_notifier(ctx)
        view = ctx.notifier.incident_facts(ctx.incident["id"])
        facts = view["facts"]
        if not facts["discovered_at"]:
            raise ActionError("notices need the discovery date: record it with `irflow incidents facts`")
        base = {
            "entity": params.entity.model_dump(),
            "breach": {
                "description": params.description,
                "date": facts["breach_start"] or "",
                "end_date": facts["breach_end"] or "",
                # day 0 in the organisation's time zone, not the UTC date of discovered_at
                "discovery_date": facts.get("discovered_on") or facts["discovered_at"][:10],
            },
            "phi_types": params.phi_types,
            "protective_steps": params.protective_steps,
            "response": params.response.model_dump(),
        }
        drafts: list[tuple[str, str, dict[str, object]]] = [
            (
                "individual-notice",
                "individuals",
                {
                    **base,
                    "recipient_name": "[name of the individual]",
                    "incident": {"reference": view["id"][:8]},
                },
            ),
        ]
        affected = facts["affected_by_state"] or {}
        for deadline in view["deadlines"]:
            if deadline["kind"] == "media":
                state = deadline["jurisdiction"]
                drafts.append(
                    (
                        "media-notice",
                        f"media {state}",
                        {
                            **base,
                            "jurisdiction": state,
                            "affected_in_jurisdiction": affected.get(state, 0),
                            "release_date": deadline["due"],
                            "media_contact": params.media_contact
                            or {
                                "name": params.entity.name,
                                "phone": params.entity.toll_free_phone,
                                "email": params.entity.email,
                            },
                        },
                    )
                )
        return drafts

    def _key(self, ctx: StepContext, template: str, label: str) -> str:
        return ctx.notifier.dedupe_key(ctx.incident["id"], self.name, template, label)

    def _missing(self, ctx: StepContext) -> list[tuple[str, str, dict[str, object]]]:
        return [d for d in self._drafts(ctx) if not ctx.notifier.exists(self._key(ctx, d[0], d[1]))]

    def plan(self, ctx: StepContext) -> Plan:
        missing = self._missing(ctx)
        return Plan(
            action=self.name,
            changes=[Change(field=f"drafts.{label}", after=template) for template, label, _ in missing],
            notes=[] if missing else ["every notice already drafted"],
        )

    def apply(self, ctx: StepContext) -> Result:
        drafted = []
        for template, label, context in self._missing(ctx):
            made = ctx.notifier.draft(
                template=template,
                context=context,
                incident_id=ctx.incident["id"],
                dedupe_key=self._key(ctx, template, label),
                label=label,
            )
            if made:
                drafted.append(made)
        return Result(changed=bool(drafted), outputs={"drafts": drafted})

    def verify(self, ctx: StepContext) -> bool:
        return not self._missing(ctx)
