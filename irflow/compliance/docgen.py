"""Write the jurisdiction section of ``docs/compliance.md`` from the packaged jurisdiction data.

``python -m irflow.compliance.docgen`` rewrites the text between the two marker comments of the document;
``--check`` only reports whether that text is up to date (exit status 1 when it is not). Everything
outside the markers is left as it is.
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

from irflow.compliance.states import (
    DATA_DIR_NAME,
    JURISDICTIONS_FILE,
    ConditionalRule,
    HipaaTreatment,
    IndividualNotice,
    Jurisdiction,
    JurisdictionTable,
    LawEnforcement,
    RegulatorNotice,
    RegulatorTiming,
    load_jurisdiction_table,
)

BEGIN_MARKER = "<!-- BEGIN GENERATED: jurisdictions (python -m irflow.compliance.docgen) -->"
END_MARKER = "<!-- END GENERATED: jurisdictions -->"
DEFAULT_DOC = Path(__file__).resolve().parents[2] / "docs" / "compliance.md"

_HIPAA_TEXT = {
    HipaaTreatment.EXEMPT: "exempt",
    HipaaTreatment.DEEMED_WITH_DUTIES: "deemed compliant",
    HipaaTreatment.NOT_DEEMED: "not deemed",
    HipaaTreatment.NOT_VERIFIED: "not verified",
}


class MarkerError(ValueError):
    """The document does not hold exactly one pair of markers, in order."""


def _cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


def _individual(notice: IndividualNotice) -> str:
    if notice.window is None:
        return "no fixed window (promptly / without unreasonable delay; see the note)"
    return f"{notice.window.describe()} after {notice.clock_starts.value}"


def _threshold(notice: RegulatorNotice) -> str:
    return "any resident" if notice.min_residents == 1 else f"{notice.min_residents:,}+ residents"


def _timing(notice: RegulatorNotice) -> str:
    days = notice.days
    text = {
        RegulatorTiming.DAYS_AFTER_START: f"{days} days after the clock start",
        RegulatorTiming.BUSINESS_DAYS_AFTER_START: f"{days} business days after the clock start",
        RegulatorTiming.WITH_INDIVIDUAL_NOTICE: "no later than the resident notice",
        RegulatorTiming.BEFORE_INDIVIDUAL_NOTICE: "before the resident notice",
        RegulatorTiming.DAYS_AFTER_INDIVIDUAL_NOTICE: f"{days} days after the resident notice",
        RegulatorTiming.BUSINESS_DAYS_AFTER_INDIVIDUAL_NOTICE: (
            f"{days} business days after the resident notice"
        ),
        RegulatorTiming.BUSINESS_DAYS_AFTER_HHS_NOTICE: f"{days} business days after notifying HHS",
        RegulatorTiming.UNSPECIFIED: "no separate date",
    }[notice.timing]
    if notice.outer_limit is not None:
        text += f", or {notice.outer_limit.describe()} after the clock start if sooner"
    return text


def _regulators(row: Jurisdiction) -> str:
    if not row.regulators.notices:
        return "none"
    return "; ".join(f"{n.who} ({_threshold(n)}): {_timing(n)}" for n in row.regulators.notices)


def _after_delay(le: LawEnforcement) -> str:
    if not le.permitted:
        return "no delay provided"
    text = "no fixed window" if le.after_delay is None else f"within {le.after_delay.describe()}"
    return text + ("; regulator notices delayed too" if le.tolls_regulator else "")


def _hipaa(row: Jurisdiction) -> str:
    text = _HIPAA_TEXT[row.hipaa.treatment]
    if row.hipaa.treatment is HipaaTreatment.DEEMED_WITH_DUTIES:
        duties = ", ".join(row.hipaa.surviving_duties) or "nothing"
        text += f"; still owed: {duties}"
    return text


def _checked(row: Jurisdiction) -> str:
    groups = (row.individual, row.regulators, row.law_enforcement, row.hipaa)
    statute = sum(1 for g in groups if g.checked.value == "statute")
    return f"{statute}/4 statute"


def _summary(table: JurisdictionTable) -> list[str]:
    rows = table.jurisdictions
    groups = [g for r in rows for g in (r.individual, r.regulators, r.law_enforcement, r.hipaa)]
    checked = Counter(g.checked.value for g in groups)
    hipaa = Counter(r.hipaa.treatment for r in rows)
    fixed = sum(1 for r in rows if r.individual.window is not None)
    treatments = ", ".join(f"{_HIPAA_TEXT[t]} {hipaa[t]}" for t in HipaaTreatment if hipaa[t])
    return [
        f'{len(rows)} jurisdictions; {fixed} set a fixed resident-notice window, the others only "without '
        f'unreasonable delay". Of the {len(groups)} cited field groups, {checked["statute"]} were checked '
        f"against the statute's text and {checked['secondary']} only against a secondary source. HIPAA "
        f"treatment: {treatments}.",
    ]


def _table(rows: Sequence[Jurisdiction]) -> list[str]:
    lines = [
        "| code | jurisdiction | residents | regulators | after a law-enforcement delay "
        "| HIPAA-regulated entities | checked | verified |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for row in rows:
        cells = (
            row.code,
            row.name,
            _individual(row.individual),
            _regulators(row),
            _after_delay(row.law_enforcement),
            _hipaa(row),
            _checked(row),
            row.verified.isoformat(),
        )
        lines.append("| " + " | ".join(_cell(c) for c in cells) + " |")
    return lines


def _sources(rows: Sequence[Jurisdiction]) -> list[str]:
    lines: list[str] = []
    for row in rows:
        lines.append(f"- **{row.code}** ({_cell(row.name)})")
        named = (
            ("residents", row.individual),
            ("regulators", row.regulators),
            ("law enforcement", row.law_enforcement),
            ("HIPAA", row.hipaa),
        )
        for label, group in named:
            line = f"  - {label}: {_cell(group.citation)} ({group.checked.value}) <{group.source}>"
            if group.note:
                line += f". {_cell(group.note)}"
            lines.append(line)
        for notice in row.regulators.notices:
            if notice.note:
                lines.append(f"  - {_cell(notice.who)}: {_cell(notice.note)}")
        if row.notes:
            lines.append(f"  - {_cell(row.notes)}")
    return lines


def _conditional(rules: Sequence[ConditionalRule]) -> list[str]:
    if not rules:
        return []
    lines = ["", "#### Rules that apply only when the organisation says so", ""]
    for rule in rules:
        after = "no fixed window" if rule.after_delay is None else f"within {rule.after_delay.describe()}"
        lines.append(
            f"- **{rule.key}** ({rule.jurisdiction}, when `{rule.applies_when.value}`): "
            f"{_cell(', '.join(rule.recipients))} within {rule.window.describe()} "
            f"after {rule.clock_starts.value} "
            f"(holidays: {rule.holiday_calendar}); after a law-enforcement delay: {after}. "
            f"{_cell(rule.citation)} ({rule.checked.value}) <{rule.source}>, "
            f"verified {rule.verified.isoformat()}."
        )
        if rule.note:
            lines.append(f"  {_cell(rule.note)}")
    return lines


def render_section(table: JurisdictionTable) -> str:
    """The Markdown that belongs between the markers (without the markers themselves)."""
    rows = sorted(table.jurisdictions, key=lambda r: r.code)
    lines = [
        f"_Generated from `irflow/compliance/{DATA_DIR_NAME}/{JURISDICTIONS_FILE}` by "
        "`python -m irflow.compliance.docgen`; edit the data file, not this section._",
        "",
        *_summary(table),
        "",
        "`statute` means the provision's own text was read (on the legislature's site or a copy of it); "
        "`secondary` means only a law-firm chart, an agency page or a similar summary was. "
        "Business days skip weekends and the public holidays of each row's calendar in the `holidays` "
        "library (`US-XX`: federal and that jurisdiction's holidays), except days on which offices need "
        "not close: Texas's optional holidays (Tex. Gov't Code § 662.003(b)) and California's Susan B. "
        "Anthony Day and Diwali count as business days (`NOT_OFFICE_CLOSING` in "
        "`irflow/compliance/states.py`), so a date is never later than the law allows. "
        '"Clock start" is the row\'s `clock_starts`.',
        "",
        *_table(rows),
        "",
        "#### Citations and sources",
        "",
        *_sources(rows),
        *_conditional(table.conditional_rules),
    ]
    return "\n".join(lines) + "\n"


def replace_section(document: str, section: str) -> str:
    """``document`` with the text between the markers replaced by ``section``."""
    if document.count(BEGIN_MARKER) != 1 or document.count(END_MARKER) != 1:
        raise MarkerError(f"expected exactly one {BEGIN_MARKER!r} and one {END_MARKER!r}")
    head, rest = document.split(BEGIN_MARKER)
    if END_MARKER not in rest:
        raise MarkerError("the end marker comes before the begin marker")
    tail = rest.split(END_MARKER)[1]
    return f"{head}{BEGIN_MARKER}\n{section}{END_MARKER}{tail}"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m irflow.compliance.docgen", description=__doc__)
    parser.add_argument("--doc", type=Path, default=DEFAULT_DOC, help="the Markdown file to update")
    parser.add_argument("--check", action="store_true", help="only report whether the section is up to date")
    args = parser.parse_args(argv)
    try:
        document = args.doc.read_text(encoding="utf-8")
        updated = replace_section(document, render_section(load_jurisdiction_table()))
    except (OSError, MarkerError) as exc:
        print(f"docgen: {exc}", file=sys.stderr)
        return 2
    if args.check:
        if updated != document:
            print(f"docgen: the jurisdiction section of {args.doc} is out of date; run without --check")
            return 1
        return 0
    if updated != document:
        args.doc.write_text(updated, encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
