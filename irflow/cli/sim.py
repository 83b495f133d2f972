"""``irflow sim …``: the simulated Azure tenant as a process.

``irflow sim serve`` prints exactly one JSON line on stdout, ``{"endpoint", "ca_file", "token",
"subscription_id", "env"}``, then serves over HTTPS until SIGINT or SIGTERM. Logs go to stderr.
Also runnable without the main CLI: ``python -m irflow.cli.sim serve``.
"""

from __future__ import annotations

import json
import logging
import signal
import sys
import threading
from pathlib import Path
from typing import Annotated, Any

import typer

from irflow.sim.scenario import FAULT_PROFILES, load_scenario, packaged_scenarios
from irflow.sim.server import SimServer
from irflow.sim.throttle import BucketLimit

log = logging.getLogger("irflow.sim")

sim_app = typer.Typer(
    help="Simulated Azure tenant (storage accounts, blob container ACLs, key vaults) for tests and drills.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)


def _log_to_stderr(level: str) -> None:
    """stdout carries the one JSON line and nothing else: irflow.sim logs go to stderr only."""
    if level.upper() not in logging.getLevelNamesMapping():
        typer.echo(f"error: unknown log level {level!r}", err=True)
        raise typer.Exit(2)
    if not any(getattr(h, "_irflow_sim_stderr", False) for h in log.handlers):
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        handler._irflow_sim_stderr = True  # type: ignore[attr-defined]
        log.addHandler(handler)
    log.propagate = False
    log.setLevel(level.upper())


@sim_app.callback()
def _sim() -> None:
    """Simulated Azure tenant."""


@sim_app.command()
def serve(
    port: Annotated[int, typer.Option(min=0, max=65535, help="TCP port; 0 picks a free one.")] = 0,
    host: Annotated[str, typer.Option(help="Address to listen on (loopback by default).")] = "127.0.0.1",
    scenario: Annotated[
        str, typer.Option(help="Scenario YAML file, or the name of a packaged scenario.")
    ] = "demo",
    latency_ms: Annotated[
        int | None,
        typer.Option(min=0, help="Delay added to every Azure call (ms); default: the scenario's, else 0."),
    ] = None,
    error_rate: Annotated[
        float | None,
        typer.Option(
            min=0.0,
            max=1.0,
            help="Share of Azure calls answered 500 InternalServerError; default: the scenario's, else 0.",
        ),
    ] = None,
    throttle: Annotated[
        bool | None,
        typer.Option(
            "--throttle/--no-throttle",
            help="Enforce ARM's token buckets per subscription and principal (429 "
            "SubscriptionRequestsThrottled with Retry-After); default: the scenario's, else off.",
        ),
    ] = None,
    throttle_reads: Annotated[
        str | None,
        typer.Option(help="Read bucket as BURST or BURST/PER_SECOND (ARM: 250/25)."),
    ] = None,
    throttle_writes: Annotated[
        str | None,
        typer.Option(help="Write bucket as BURST or BURST/PER_SECOND (ARM: 200/10)."),
    ] = None,
    throttle_deletes: Annotated[
        str | None,
        typer.Option(help="Delete bucket as BURST or BURST/PER_SECOND (ARM: 200/10)."),
    ] = None,
    timeout_rate: Annotated[
        float | None,
        typer.Option(
            min=0.0,
            max=1.0,
            help="Share of Azure calls that hang --timeout-seconds, then get no answer (the connection is "
            "closed); default: the scenario's, else 0.",
        ),
    ] = None,
    timeout_seconds: Annotated[
        float | None,
        typer.Option(min=0.0, help="How long a timed-out call hangs (s); default: the scenario's, else 30."),
    ] = None,
    reset_rate: Annotated[
        float | None,
        typer.Option(
            min=0.0,
            max=1.0,
            help="Share of Azure calls whose connection is reset (TCP RST, no answer) at once; default: the "
            "scenario's, else 0.",
        ),
    ] = None,
    burst_rate: Annotated[
        float | None,
        typer.Option(
            min=0.0,
            max=1.0,
            help="Share of ARM calls that open a 429 burst on their subscription: every call on it answers "
            "429 TooManyRequests with Retry-After until --burst-retry-after seconds have passed; default: "
            "the scenario's, else 0.",
        ),
    ] = None,
    burst_retry_after: Annotated[
        int | None,
        typer.Option(min=1, help="Length of a 429 burst, the Retry-After it announces (s); default 2."),
    ] = None,
    fault_profile: Annotated[
        str | None,
        typer.Option(
            help="A named set of fault knobs, applied before the other flags: "
            + "; ".join(
                f"{name}: {', '.join(f'{k}={v}' for k, v in knobs.items())}"
                for name, knobs in FAULT_PROFILES.items()
            )
            + ".",
        ),
    ] = None,
    lro_seconds: Annotated[
        float | None,
        typer.Option(
            min=0.0,
            help="Duration of long-running operations (NSG rules, peerings), in seconds; default: the "
            "scenario's, else 0 (done at the first poll).",
        ),
    ] = None,
    lro_fail_rate: Annotated[
        float | None,
        typer.Option(
            min=0.0,
            max=1.0,
            help="Share of long-running operations that end Failed (InternalServerError), nothing changed; "
            "default: the scenario's, else 0.",
        ),
    ] = None,
    lro_retry_after: Annotated[
        int | None,
        typer.Option(
            min=0,
            help="Retry-After (s) of running operations' answers; 0 lets the client's polling interval "
            "decide; default: the scenario's, else 1.",
        ),
    ] = None,
    seed: Annotated[
        int | None,
        typer.Option(
            help="Seed of the error-rate, timeout, reset, 429-burst and LRO-failure draws (repeatable)."
        ),
    ] = None,
    page_size: Annotated[int | None, typer.Option(min=1, help="List page size (nextLink beyond it).")] = None,
    deny: Annotated[
        list[str] | None,
        typer.Option(
            help="Deny an Azure RBAC operation as OPERATION or OPERATION@SCOPE (403 AuthorizationFailed); "
            "repeatable, added to the scenario's rbac.deny.",
        ),
    ] = None,
    caller_ip: Annotated[
        str | None,
        typer.Option(
            help="The public IPv4 address storage and Key Vault firewalls see callers come from; "
            "default: the scenario's caller, else the connection's peer address (never allow-listed).",
        ),
    ] = None,
    caller_subnet: Annotated[
        str | None,
        typer.Option(help="The subnet resource id callers come from (virtualNetworkRules); default: none."),
    ] = None,
    log_level: Annotated[str, typer.Option(help="Log level of irflow.sim on stderr.")] = "WARNING",
) -> None:
    """Serve the simulated tenant over HTTPS with a throw-away CA until SIGINT/SIGTERM."""
    _log_to_stderr(log_level)
    source = Path(scenario) if Path(scenario).is_file() else scenario
    if not isinstance(source, Path) and scenario.removesuffix(".yaml") not in packaged_scenarios():
        typer.echo(
            f"error: no scenario file {scenario!r} and no packaged scenario of that name "
            f"(packaged: {', '.join(packaged_scenarios())})",
            err=True,
        )
        raise typer.Exit(2)
    kwargs: dict[str, Any] = {"seed": seed}
    if page_size is not None:
        kwargs["page_size"] = page_size
    try:
        limits = {
            kind: BucketLimit.parse(text)
            for kind, text in (
                ("reads", throttle_reads),
                ("writes", throttle_writes),
                ("deletes", throttle_deletes),
            )
            if text is not None
        }
        tenant = load_scenario(source, **kwargs)
    except ValueError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc
    if fault_profile is not None:
        if fault_profile not in FAULT_PROFILES:
            typer.echo(
                f"error: no fault profile {fault_profile!r} (profiles: {', '.join(FAULT_PROFILES)})", err=True
            )
            raise typer.Exit(2)
        tenant.configure_faults(FAULT_PROFILES[fault_profile])
    # Command-line knobs win over the fault profile and the scenario's ``faults:`` section.
    if latency_ms is not None:
        tenant.faults.latency_ms = latency_ms
    if error_rate is not None:
        tenant.faults.error_rate = error_rate
    if throttle is not None:
        tenant.faults.throttle = throttle
    for kind, limit in limits.items():
        tenant.faults.set_limit(kind, limit.burst, limit.per_second)
    knobs: dict[str, Any] = {
        "timeout_rate": timeout_rate,
        "timeout_s": timeout_seconds,
        "reset_rate": reset_rate,
        "burst_rate": burst_rate,
        "burst_retry_after": burst_retry_after,
    }
    lro = {"duration_s": lro_seconds, "failure_rate": lro_fail_rate, "retry_after": lro_retry_after}
    knobs = {k: v for k, v in knobs.items() if v is not None}
    if any(v is not None for v in lro.values()):
        knobs["lro"] = {k: v for k, v in lro.items() if v is not None}
    try:
        tenant.configure_faults(knobs)
    except ValueError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc
    for rule in deny or []:
        permission, _, scope = rule.partition("@")
        try:
            tenant.deny(permission, scope or "/")
        except ValueError as exc:
            typer.echo(f"error: --deny {rule!r}: {exc}", err=True)
            raise typer.Exit(2) from exc
    if caller_ip is not None or caller_subnet is not None:
        current = tenant.caller_origin
        try:
            tenant.set_caller_origin(
                caller_ip if caller_ip is not None else (current.ip if current else None),
                caller_subnet if caller_subnet is not None else (current.subnet_id if current else None),
            )
        except ValueError as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(2) from exc

    stop = threading.Event()
    previous = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGINT, signal.SIGTERM)}
    server = SimServer(tenant, host=host, port=port)
    try:
        try:
            server.start()
        except OSError as exc:
            typer.echo(f"error: cannot serve on {host}:{port}: {exc}", err=True)
            raise typer.Exit(1) from exc
        sys.stdout.write(json.dumps(server.connection_info()) + "\n")
        sys.stdout.flush()
        stop.wait()
    finally:
        server.stop()
        for sig, old in previous.items():
            signal.signal(sig, old)


if __name__ == "__main__":
    sim_app()
