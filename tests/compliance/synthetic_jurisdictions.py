"""Synthetic jurisdiction rows for the clock's tests: each mirrors one shape of rule a real statute has (named
in ``notes``), so the clock's handling of that shape is pinned independently of the packaged data's content.
"""

from __future__ import annotations

from collections.abc import Mapping

from irflow.compliance.states import ConditionalRule, Jurisdiction, parse_jurisdiction_table

_SRC = "https://example.org/synthetic"


def _group(extra: str) -> str:
    return f"citation: synthetic {extra}, source: {_SRC}, checked: secondary"


def _row(
    code: str,
    *,
    window: str,
    clock: str = "discovery",
    regulators: str = "[]",
    le: str = "permitted: true",
    hipaa: str = "treatment: not_deemed",
    calendar: str | None = None,
    notes: str = "",
) -> str:
    return f"""
  - code: {code}
    name: Synthetic {code}
    individual: {{{_group("individual")}, window: {window}, clock_starts: {clock}}}
    regulators: {{{_group("regulators")}, notices: {regulators}}}
    law_enforcement: {{{_group("law enforcement")}, {le}}}
    hipaa: {{{_group("hipaa")}, {hipaa}}}
    holiday_calendar: {calendar or "US-" + code}
    verified: "2026-12-01"
    notes: "{notes}"
"""


TEXT = (
    "jurisdictions:"
    # Maine 10 M.R.S. 1348: 30 days; 7 business days after a law-enforcement delay ends; AG with residents.
    + _row(
        "ME",
        window="{days: 30}",
        regulators="[{who: Attorney General, min_residents: 1, timing: with_individual_notice}]",
        le="permitted: true, after_delay: {days: 7, business_days: true}",
        notes="shape of 10 M.R.S. 1348",
    )
    # Maryland Com. Law 14-3504: 45 days; 7 days after a delay; AG before residents; deemed with the AG duty.
    + _row(
        "MD",
        window="{days: 45}",
        regulators="[{who: Attorney General, min_residents: 1, timing: before_individual_notice}]",
        le="permitted: true, after_delay: {days: 7}",
        hipaa="treatment: deemed_with_duties, surviving_duties: [Attorney General]",
        notes="shape of Md. Code Com. Law 14-3504",
    )
    # Louisiana R.S. 51:3074 / LAC 16:III.701: 60 days; AG within 10 days after residents; not verified.
    + _row(
        "LA",
        window="{days: 60}",
        regulators=(
            "[{who: Attorney General, min_residents: 1, timing: days_after_individual_notice, days: 10}]"
        ),
        hipaa="treatment: not_verified",
        notes="shape of La. R.S. 51:3074",
    )
    # New York GBL 899-aa: no fixed window; AG within 5 business days of notifying HHS; DoS and State Police.
    + _row(
        "NY",
        window="null",
        regulators=(
            "[{who: Attorney General, min_residents: 1, timing: business_days_after_hhs_notice, days: 5},"
            " {who: Department of State, min_residents: 1, timing: with_individual_notice}]"
        ),
        hipaa="treatment: deemed_with_duties, surviving_duties: [Attorney General]",
        notes="shape of N.Y. Gen. Bus. Law 899-aa",
    )
    # New Mexico 57-12C-6 and -8: 45 days; AG for more than 1000; HIPAA-regulated entities exempt.
    + _row(
        "NM",
        window="{days: 45}",
        regulators="[{who: Attorney General, min_residents: 1001, timing: days_after_start, days: 45}]",
        hipaa="treatment: exempt",
        notes="shape of N.M. Stat. 57-12C",
    )
    # Puerto Rico 10 L.P.R.A. 4051-4055: 10 days to the Department of Consumer Affairs; no delay provision.
    + _row(
        "PR",
        window="{days: 10}",
        regulators=(
            "[{who: Department of Consumer Affairs, min_residents: 1, timing: days_after_start, days: 10}]"
        ),
        le="permitted: false",
        notes="shape of 10 L.P.R.A. 4052",
    )
    # Texas Bus. & Com. 521.053: 60 days; AG within 30 days for 250 or more; here the delay tolls the AG too.
    + _row(
        "TX",
        window="{days: 60}",
        regulators="[{who: Attorney General, min_residents: 250, timing: days_after_start, days: 30}]",
        le="permitted: true, tolls_regulator: true",
        notes="shape of Tex. Bus. & Com. Code 521.053",
    )
    # Colorado C.R.S. 6-1-716: 30 days after determination; AG for 500 or more (delay not applied to the AG).
    + _row(
        "CO",
        window="{days: 30}",
        clock="determination",
        regulators="[{who: Attorney General, min_residents: 500, timing: days_after_start, days: 30}]",
        notes="shape of C.R.S. 6-1-716",
    )
    # A business-day window over Vermont's holidays (Vermont's own AG notice is 14 business days).
    + _row(
        "VT",
        window="{days: 10, business_days: true}",
        regulators="[{who: Attorney General, min_residents: 1, timing: business_days_after_start, days: 14}]",
        notes="shape of 9 V.S.A. 2435 (business days)",
    )
    # Illinois 815 ILCS 530/50: AG within 5 business days of notifying HHS (for HIPAA entities).
    + _row(
        "IL",
        window="null",
        regulators=(
            "[{who: Attorney General, min_residents: 1, timing: business_days_after_hhs_notice, days: 5}]"
        ),
        hipaa="treatment: deemed_with_duties, surviving_duties: [Attorney General]",
        notes="shape of 815 ILCS 530/50",
    )
    + """
conditional_rules:
  - key: ca_health_facility
    citation: synthetic Cal. Health & Safety Code 1280.15
    source: https://example.org/synthetic
    checked: secondary
    jurisdiction: CA
    applies_when: ca_licensed_health_facility
    recipients: [California Department of Public Health, affected patient]
    window: {days: 15, business_days: true}
    clock_starts: discovery
    after_delay: {days: 15, business_days: true}
    holiday_calendar: US-CA
    verified: "2026-12-01"
"""
)

_TABLE = parse_jurisdiction_table(TEXT)
ROWS: Mapping[str, Jurisdiction] = {row.code: row for row in _TABLE.jurisdictions}
RULES: Mapping[str, ConditionalRule] = {rule.key: rule for rule in _TABLE.conditional_rules}
