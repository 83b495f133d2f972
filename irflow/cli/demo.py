"""``irflow demo``: a complete breach drill on the embedded simulated tenant and a new SQLite database.

It plays the incident twice on purpose: the second run of the same playbook for the same incident, and a
dry run after it, must leave the simulated tenant untouched (no write in its journal).
"""

from __future__ import annotations

import json
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from irflow import clock
from irflow.audit import AuditChain
from irflow.cli.common import cli_actor, console, errors
from irflow.cli.demo_evidence import export_demo_package
from irflow.cli.display import short_target, timeline_table
from irflow.cli.runs import follow, report
from irflow.engine import runtime
from irflow.engine.incidents import FactsUpdate, update_facts
from irflow.engine.runs import submit_run
from irflow.engine.services.tokens import TokenCreate, create_token
from irflow.settings import Settings
from irflow.sim.models import Tenant
from irflow.sim.server import SimServer

PLAYBOOK = "storage-sas-exfiltration"
# The drill's compliance facts: the exports held records of 1,842 patients in four states; discovery is today.
DRILL_AFFECTED = {"TX": 612, "FL": 388, "NY": 120, "CO": 41}
DRILL_AFFECTED_TOTAL = 1842
# Where the drill's irflow calls from, configured on both sides as a deployment would be: the simulated
# tenant's firewalls see this origin (irflow.sim.firewall) and irflow knows it (IRFLOW_EGRESS_IPS), so
# isolation leaves it a data-plane path. A scenario's own ``caller`` section wins.
DEMO_EGRESS_IP = "192.0.2.10"
# The dashboard over the demo database: `irflow serve`'s default port, a token that expires the next day.
DASHBOARD_PORT = 8080
DASHBOARD_TOKEN_DAYS = 1


def target_accounts(tenant: Tenant) -> list[str]:
    """The accounts the scenario marks as holding PHI (tag ``data-classification: phi``)."""
    return [
        account.id
        for account in tenant.storage_accounts()
        if str(account.tags.get("data-classification", "")).lower() == "phi"
    ]


def run_demo(*, scenario: str, as_json: bool, workdir: Path) -> int:
    tenant = Tenant.from_scenario(scenario)
    targets = target_accounts(tenant)
    if not targets:
        errors.print(f"scenario {scenario} has no storage account tagged data-classification=phi")
        return 2
    run_dir = (workdir / datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")).resolve()
    run_dir.mkdir(parents=True, exist_ok=True)
    origin = tenant.caller_origin or tenant.set_caller_origin(ip=DEMO_EGRESS_IP)
    assert origin is not None
    with SimServer(tenant) as server:
        settings = Settings(
            database_url=f"sqlite:///{run_dir / 'irflow.db'}",
            azure_cloud="custom",
            arm_endpoint=server.endpoint,
            authority=server.endpoint,
            azure_ca_bundle=Path(server.ca_file),
            azure_token=server.token,
            queue_polling_interval=0.05,
            oncall_recipients="soc-oncall@example.org",
            egress_ips=origin.ip or "",
            subnet_id=origin.subnet_id,
        )
        svc = runtime.launch(settings)
        try:
            summary = _drill(svc, tenant, targets, quiet=as_json)
            # The evidence package (anchored audit chain, report, manifest): see docs/evidence.md.
            summary["evidence_package"] = export_demo_package(svc, tenant, run_dir, summary["incident_id"])
            summary["ok"] = summary["ok"] and summary["evidence_package"]["verified"]
            summary["dashboard"] = _dashboard(svc, run_dir / "irflow.db", summary["incident_id"])
        finally:
            runtime.shutdown()
    summary["database"] = str(run_dir / "irflow.db")
    if as_json:
        console.print_json(json.dumps(summary, default=str))
    else:
        console.print(f"\ndatabase: {summary['database']}", markup=False)
        console.print(
            f"  inspect it with: IRFLOW_DATABASE_URL=sqlite:///{summary['database']} irflow audit verify",
            markup=False,
        )
    if not as_json:
        package = summary["evidence_package"]
        console.print(
            f"  audit chain anchored at event #{package['anchored_seq']}; package re-verified offline: "
            f"{'ok' if package['verified'] else 'FAILED ' + '; '.join(package['problems'])}",
            markup=False,
        )
        console.print(f"\nevidence package: {package['path']}", markup=False)
        console.print(f"  re-verify it with: irflow audit verify-package {package['path']}", markup=False)
        board = summary["dashboard"]
        console.print(f"\ndashboard: {board['url']}", markup=False)
        console.print(f"  serve the demo database with: {board['command']}", markup=False, soft_wrap=True)
        console.print(
            f"  sign in with this API token ({board['role']}, valid {DASHBOARD_TOKEN_DAYS} day, shown once):",
            markup=False,
        )
        console.print(board["token"], markup=False, soft_wrap=True)
    return 0 if summary["ok"] else 1


def _dashboard(svc: runtime.Services, database: Path, incident_id: str) -> dict[str, str]:
    """How to look at the drill in the dashboard: the serve command, the incident's address, and a short-lived
    API token of the demo database (created like ``irflow tokens create``, audited)."""
    token = create_token(
        svc.db,
        TokenCreate(name="demo-dashboard", role="admin", expires_days=DASHBOARD_TOKEN_DAYS),
        actor=cli_actor(),
    )
    return {
        "url": f"http://127.0.0.1:{DASHBOARD_PORT}/ui/incidents/{incident_id}",
        "command": (
            f"IRFLOW_DATABASE_URL=sqlite:///{database} irflow serve --no-workers --port {DASHBOARD_PORT}"
        ),
        "role": token.role,
        "token": token.token,
    }


def _drill(svc: runtime.Services, tenant: Tenant, targets: list[str], *, quiet: bool) -> dict[str, Any]:
    say = (lambda *a, **k: None) if quiet else console.print
    say(
        f"[bold]irflow demo[/]: simulated tenant with {len(tenant.storage_accounts())} storage accounts; "
        f"{len(targets)} hold PHI and are exposed:"
    )
    for target in targets:
        say(f"  {short_target(target)}")
    params = {"storage_accounts": ",".join(targets)}

    say("\n[bold]1. containment run[/]")
    first = submit_run(
        svc, PLAYBOOK, params, actor=cli_actor(), auto_approve=True, title="Demo: SAS exfiltration"
    )
    view = follow(svc, first.run_id, quiet=quiet, live=False)
    if not quiet:
        report(view, as_json=False)
    writes_after_first = len(tenant.journal.writes())

    say("\n[bold]2. the same playbook again, same incident[/] (must change nothing)")
    second = submit_run(
        svc, PLAYBOOK, params, actor=cli_actor(), auto_approve=True, incident_id=first.incident_id
    )
    second_view = follow(svc, second.run_id, quiet=quiet, live=False)
    writes_after_second = len(tenant.journal.writes())

    say("\n[bold]3. dry run[/] (must write nothing)")
    third = submit_run(svc, PLAYBOOK, params, actor=cli_actor(), dry_run=True, incident_id=first.incident_id)
    dry_view = follow(svc, third.run_id, quiet=True)
    if not quiet:
        report(dry_view, as_json=False)
    writes_after_dry = len(tenant.journal.writes())

    discovered = clock.now().replace(hour=0, minute=0, second=0, microsecond=0)
    facts = update_facts(
        svc.db,
        first.incident_id,
        FactsUpdate(
            discovered_at=discovered, affected_total=DRILL_AFFECTED_TOTAL, affected_by_state=DRILL_AFFECTED
        ),
        actor="cli:privacy-officer",
    )

    accounts = {a.id: a.summary() for a in tenant.storage_accounts()}
    regenerations = Counter(
        (entry.path.split("/")[8], (entry.body or {}).get("keyName"))
        for entry in tenant.journal.writes()
        if entry.route == "storage.accounts.regenerate_key"
    )
    checks = {
        "run_succeeded": view["status"] == "succeeded",
        "rerun_succeeded": second_view["status"] == "succeeded",
        "dry_run_succeeded": dry_view["status"] == "succeeded",
        "every_target_isolated": all(
            accounts[t]["networkAcls"] == {"defaultAction": "Deny", "bypass": "None"}
            and accounts[t]["allowBlobPublicAccess"] is False
            for t in targets
        ),
        "deadlines_computed": any(d["kind"] == "individuals" for d in facts.deadlines),
        "each_key_regenerated_once": all(
            regenerations[(short_target(t), key)] == 1 for t in targets for key in ("key1", "key2")
        )
        and sum(regenerations.values()) == 2 * len(targets),
        "rerun_wrote_nothing": writes_after_second == writes_after_first,
        "dry_run_wrote_nothing": writes_after_dry == writes_after_second,
    }
    with svc.db.transaction() as session:
        chain = AuditChain()
        events = [
            {
                "seq": e.seq,
                "ts": e.ts.isoformat(),
                "actor": e.actor,
                "type": e.type,
                "payload": json.loads(e.payload),
            }
            for e in chain.events(session, incident_id=first.incident_id)
        ]
        verdict = chain.verify(session)
    checks["audit_chain_intact"] = verdict.ok

    if not quiet:
        console.print(timeline_table(events))
        console.print(f"\n{verdict.describe()}", markup=False)
        console.print("\n[bold]simulated tenant after the drill[/]")
        for account_id, state in accounts.items():
            mark = "target" if account_id in targets else "bystander"
            keys = ", ".join(f"{k} {regenerations[(state['name'], k)]}x" for k in ("key1", "key2"))
            console.print(
                f"  {state['name']:<22} {mark:<9} publicNetworkAccess={state['publicNetworkAccess']} "
                f"defaultAction={state['networkAcls']['defaultAction']} "
                f"allowBlobPublicAccess={state['allowBlobPublicAccess']} keys regenerated: {keys}",
                markup=False,
            )
        console.print(
            f"\n[bold]notification deadlines[/] (drill facts: {DRILL_AFFECTED_TOTAL} patients, "
            f"discovered {discovered.date()})"
        )
        for deadline in facts.deadlines:
            console.print(
                f"  {deadline['due']}  {deadline['kind']:<16} {deadline['jurisdiction']:<3} "
                f"{deadline['basis'][:90]}",
                markup=False,
            )
        rerun_writes = writes_after_second - writes_after_first
        dry_writes = writes_after_dry - writes_after_second
        console.print(
            f"  journal: {len(tenant.journal.entries())} requests; writes: {writes_after_first} by the run, "
            f"{rerun_writes} by the re-run, {dry_writes} by the dry run",
            markup=False,
        )
        for name, ok in checks.items():
            console.print(
                f"  [{'green' if ok else 'red'}]{'ok  ' if ok else 'FAIL'}[/] {name.replace('_', ' ')}"
            )
    # A notice recorded as sent: its obligation is met, and HHS, due with it (164.408(b)), moves to that day.
    from irflow.engine.incidents import NoticeSentInput, incident_view, record_notice_sent

    day0 = incident_view(svc.db, first.incident_id)["facts"]["discovered_on"]
    hhs_before = next(d["due"] for d in facts.deadlines if d["kind"] == "hhs")
    notice = NoticeSentInput(
        kind="individuals", sent_on=day0, method="first_class_mail", count=DRILL_AFFECTED_TOTAL
    )
    recorded = record_notice_sent(svc.db, first.incident_id, notice, author="cli:privacy-officer")
    after = {(d["kind"], d["jurisdiction"]): d for d in recorded.deadlines}
    checks["notice_recorded_met"] = after[("individuals", "US")]["status"] == "met"
    checks["dependent_deadline_moved"] = after[("hhs", "US")]["due"] == day0 != hhs_before
    say(
        f"\n[bold]individual notice recorded as sent on {day0}[/]: individuals "
        f"{after[('individuals', 'US')]['status']}; hhs due {hhs_before} -> {after[('hhs', 'US')]['due']}"
    )
    return {
        "ok": all(checks.values()),
        "checks": checks,
        "incident_id": first.incident_id,
        "runs": {"containment": first.run_id, "rerun": second.run_id, "dry_run": third.run_id},
        "audit": {"events": verdict.events, "ok": verdict.ok},
        "deadlines": recorded.deadlines,
        "finished_at": clock.now().isoformat(),
    }
