"""Table-driven vectors of the compliance clock: each names the rule it checks and its expected dates were
worked out by hand (calendar and holiday lists checked against the holidays library's published dates).

Rows: ``synthetic`` (tests/compliance/synthetic_jurisdictions.py, one row per shape of state rule) or
``packaged`` (irflow/compliance/data/jurisdictions.yaml). Discovery is Monday 2026-03-02 unless a vector says
otherwise; HIPAA's 60 days then end on Friday 2026-05-01.

Federal rules: https://www.ecfr.gov/current/title-45/subtitle-A/subchapter-C/part-164/subpart-D
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

import pytest
from synthetic_jurisdictions import ROWS, RULES

from irflow.compliance import IncidentFacts, compute_obligations, load_jurisdictions
from irflow.compliance.models import discovery_date
from irflow.compliance.states import load_conditional_rules

ABSENT: dict[str, Any] = {"absent": True}


@dataclass(frozen=True)
class V:
    id: str
    rule: str
    facts: dict[str, Any]
    expect: dict[tuple[str, ...], dict[str, Any]]
    rows: str = "synthetic"
    warning: str = ""
    at: tuple[str, str] | None = None  # (ISO time, IANA zone): discovery given as a moment
    extra: dict[str, Any] = field(default_factory=dict)


def e(**attrs: Any) -> dict[str, Any]:
    return attrs


def sent(kind: str, on: str, jurisdiction: str = "US") -> dict[str, str]:
    return {"kind": kind, "jurisdiction": jurisdiction, "on": on}


D = date.fromisoformat
CDPH = "ca_health_facility:California Department of Public Health"

VECTORS: list[V] = [
    # --- time zone: day 0 is the calendar day of discovery in the organisation's zone (164.404(a)(2), (b))
    V(
        "tz-evening-eastern",
        "164.404(a)(2): 20:00 Eastern on 1 Jan is 1 Jan",
        {},
        {("individuals",): e(due="2026-03-02")},
        at=("2026-01-01T20:00", "America/New_York"),
    ),
    V(
        "tz-utc-instant-in-eastern",
        "164.404(a)(2): 01:00 UTC on 2 Jan is 1 Jan in New York",
        {},
        {("individuals",): e(due="2026-03-02")},
        at=("2026-01-02T01:00+00:00", "America/New_York"),
    ),
    V(
        "tz-same-instant-in-utc",
        "164.404(a)(2): the same instant for a UTC organisation is 2 Jan",
        {},
        {("individuals",): e(due="2026-03-03")},
        at=("2026-01-02T01:00+00:00", "UTC"),
    ),
    V(
        "tz-new-years-eve-log",
        "164.408(c): 23:30 on 31 Dec Eastern stays in the old year's log",
        {},
        {("hhs_annual_log",): e(due="2027-03-01"), ("individuals",): e(due="2027-03-01")},
        at=("2026-12-31T23:30", "America/New_York"),
    ),
    V(
        "tz-0459z-is-old-year",
        "164.408(c): 04:59 UTC on 1 Jan is 23:59 on 31 Dec Eastern",
        {},
        {("hhs_annual_log",): e(due="2027-03-01")},
        at=("2027-01-01T04:59+00:00", "America/New_York"),
    ),
    V(
        "tz-0500z-is-new-year",
        "164.408(c): 05:00 UTC on 1 Jan is midnight Eastern: the next year's log",
        {},
        {("hhs_annual_log",): e(due="2028-02-29")},
        at=("2027-01-01T05:00+00:00", "America/New_York"),
    ),
    V(
        "tz-honolulu",
        "164.404(a)(2): 08:00 UTC on 1 Jun is 22:00 on 31 May in Honolulu",
        {},
        {("individuals",): e(due="2026-07-30")},
        at=("2026-06-01T08:00+00:00", "Pacific/Honolulu"),
    ),
    V(
        "tz-tokyo",
        "164.404(a)(2): 16:00 UTC on 1 Jan is 2 Jan in Tokyo",
        {},
        {("individuals",): e(due="2026-03-03")},
        at=("2026-01-01T16:00+00:00", "Asia/Tokyo"),
    ),
    V(
        "tz-dst-gap",
        "164.404(a)(2): a time in the spring-forward gap still falls on its day",
        {},
        {("individuals",): e(due="2026-05-07")},
        at=("2026-03-08T02:30", "America/New_York"),
    ),
    V(
        "tz-dst-fold",
        "164.404(a)(2): an ambiguous fall-back time still falls on its day",
        {},
        {("individuals",): e(due="2026-12-31")},
        at=("2026-11-01T01:30", "America/New_York"),
    ),
    V(
        "tz-leap-day-pacific",
        "164.404(a)(2), (b): 07:00 UTC on 1 Mar 2028 is 29 Feb in Los Angeles",
        {},
        {("individuals",): e(due="2028-04-29")},
        at=("2028-03-01T07:00+00:00", "America/Los_Angeles"),
    ),
    V(
        "tz-chicago-evening",
        "164.404(a)(2): 21:30 Central on 2 Mar is 2 Mar",
        {},
        {("individuals",): e(due="2026-05-01")},
        at=("2026-03-02T21:30", "America/Chicago"),
    ),
    # --- leap years and year end (164.404(b) 60 calendar days; 164.408(c) 60 days after year end) -----------
    V(
        "leap-60-days-into-feb-29",
        "164.404(b): 31 Dec 2027 + 60 days = 29 Feb 2028",
        {"discovered_on": "2027-12-31"},
        {("individuals",): e(due="2028-02-29"), ("hhs_annual_log",): e(due="2028-02-29")},
    ),
    V(
        "leap-year-first-day",
        "164.404(b), 164.408(c): 1 Jan 2028",
        {"discovered_on": "2028-01-01"},
        {("individuals",): e(due="2028-03-01"), ("hhs_annual_log",): e(due="2029-03-01")},
    ),
    V(
        "leap-discovered-on-feb-29",
        "164.404(b): from 29 Feb 2024",
        {"discovered_on": "2024-02-29"},
        {("individuals",): e(due="2024-04-29"), ("hhs_annual_log",): e(due="2025-03-01")},
    ),
    V(
        "year-end-2026",
        "164.404(b), 164.408(c): 31 Dec 2026",
        {"discovered_on": "2026-12-31"},
        {("individuals",): e(due="2027-03-01"), ("hhs_annual_log",): e(due="2027-03-01")},
    ),
    V(
        "year-end-2100-not-leap",
        "164.408(c): 2100 is not a leap year",
        {"discovered_on": "2099-12-31"},
        {("hhs_annual_log",): e(due="2100-03-01"), ("individuals",): e(due="2100-03-01")},
    ),
    V(
        "leap-mid-january-2028",
        "164.404(b): 15 Jan 2028 + 60 counts 29 Feb",
        {"discovered_on": "2028-01-15", "affected_total": 600},
        {("individuals",): e(due="2028-03-15")},
    ),
    V(
        "non-leap-mid-january-2027",
        "164.404(b): 15 Jan 2027 + 60",
        {"discovered_on": "2027-01-15"},
        {("individuals",): e(due="2027-03-16")},
    ),
    V(
        "year-end-2028",
        "164.404(b), 164.408(c): 31 Dec 2028",
        {"discovered_on": "2028-12-31"},
        {("individuals",): e(due="2029-03-01"), ("hhs_annual_log",): e(due="2029-03-01")},
    ),
    # --- 499 / 500 / 501 (164.408(b),(c); 164.406(a); state thresholds) -------------------------------------
    V(
        "hhs-499",
        "164.408(c): fewer than 500: the annual log",
        {"affected_total": 499},
        {("hhs",): ABSENT, ("hhs_annual_log",): e(due="2027-03-01")},
    ),
    V(
        "hhs-500",
        "164.408(b): 500 or more: with the individual notice",
        {"affected_total": 500},
        {("hhs",): e(due="2026-05-01"), ("hhs_annual_log",): ABSENT},
    ),
    V(
        "hhs-501",
        "164.408(b): 500 or more",
        {"affected_total": 501},
        {("hhs",): e(due="2026-05-01"), ("hhs_annual_log",): ABSENT},
    ),
    V(
        "media-500",
        "164.406(a): more than 500 residents: 500 is not enough",
        {"affected_total": 500, "affected_by_state": {"LA": 500}},
        {("media", "LA"): ABSENT},
    ),
    V(
        "media-501",
        "164.406(a): more than 500 residents of a State",
        {"affected_total": 501, "affected_by_state": {"LA": 501}},
        {("media", "LA"): e(due="2026-05-01")},
    ),
    V(
        "media-499-each-state",
        "164.406(a): counted per State, not in total",
        {"affected_total": 998, "affected_by_state": {"LA": 499, "TX": 499}},
        {("media", "LA"): ABSENT, ("media", "TX"): ABSENT, ("hhs",): e(due="2026-05-01")},
    ),
    V(
        "regulator-249",
        "Tex. Bus. & Com. 521.053 shape: 250 or more",
        {"affected_total": 249, "affected_by_state": {"TX": 249}},
        {("state_regulator", "TX"): ABSENT},
    ),
    V(
        "regulator-250",
        "Tex. Bus. & Com. 521.053 shape: 250 or more, 30 days",
        {"affected_total": 250, "affected_by_state": {"TX": 250}},
        {("state_regulator", "TX"): e(due="2026-04-01")},
    ),
    V(
        "regulator-499",
        "C.R.S. 6-1-716 shape: 500 or more",
        {"affected_total": 499, "affected_by_state": {"CO": 499}},
        {("state_regulator", "CO"): ABSENT},
    ),
    V(
        "regulator-500",
        "C.R.S. 6-1-716 shape: 500 or more, 30 days",
        {"affected_total": 500, "affected_by_state": {"CO": 500}},
        {("state_regulator", "CO"): e(due="2026-04-01")},
    ),
    V(
        "regulator-1000-exempt",
        "N.M. 57-12C-10 shape: more than 1000",
        {"affected_total": 1000, "affected_by_state": {"NM": 1000}},
        {("state_regulator", "NM"): ABSENT},
    ),
    V(
        "regulator-1001-exempt",
        "N.M. 57-12C-8 shape: more than 1000, exempt for HIPAA entities",
        {"affected_total": 1001, "affected_by_state": {"NM": 1001}},
        {("state_regulator", "NM"): e(due="2026-04-16", status="not_required", hipaa="exempt")},
    ),
    # --- law-enforcement delay, two readings (164.412(a),(b)) -----------------------------------------------
    V(
        "le-oral-ended-before-due",
        "164.412(b): oral, 30 days, ended before day 60",
        {"law_enforcement_delay": {"oral": {"given_on": "2026-03-10"}}},
        {("individuals",): e(due="2026-05-01", outer="2026-05-31")},
    ),
    V(
        "le-oral-in-force-on-due",
        "164.412(b): oral in force on day 60: due the day it ends",
        {"law_enforcement_delay": {"oral": {"given_on": "2026-04-20"}}},
        {("individuals",): e(due="2026-05-20", outer="2026-05-31")},
    ),
    V(
        "le-oral-on-the-due-date",
        "164.412(b): oral given on day 60: both readings agree",
        {"law_enforcement_delay": {"oral": {"given_on": "2026-05-01"}}},
        {("individuals",): e(due="2026-05-31", outer=None)},
    ),
    V(
        "le-oral-after-due",
        "164.412: a statement after the deadline moves nothing",
        {"law_enforcement_delay": {"oral": {"given_on": "2026-05-02"}}},
        {("individuals",): e(due="2026-05-01", outer=None, notes="began after this deadline")},
    ),
    V(
        "le-oral-then-written-in-time",
        "164.412(a),(b): written within 30 days continues the oral delay",
        {
            "law_enforcement_delay": {
                "oral": {"given_on": "2026-03-10"},
                "written": {"given_on": "2026-04-01", "until": "2026-06-08"},
            }
        },
        {("individuals",): e(due="2026-06-08", outer="2026-07-30")},
        warning="followed within 30 days by a written statement",
    ),
    V(
        "le-oral-then-written-late-gap",
        "164.412(b): written after 30 days is a delay of its own",
        {
            "law_enforcement_delay": {
                "oral": {"given_on": "2026-03-03"},
                "written": {"given_on": "2026-04-10", "until": "2026-04-20"},
            }
        },
        {("individuals",): e(due="2026-05-01", outer="2026-06-10")},
        warning="more than 30 days after",
    ),
    V(
        "le-oral-then-written-late-in-force",
        "164.412(b): the lapsed oral delay is not revived by a late written one",
        {
            "law_enforcement_delay": {
                "oral": {"given_on": "2026-04-10"},
                "written": {"given_on": "2026-05-20", "until": "2026-06-01"},
            }
        },
        {("individuals",): e(due="2026-05-10", outer="2026-06-12")},
        warning="more than 30 days after",
    ),
    V(
        "le-written-on-day-zero",
        "164.412(a): written on the discovery day, ended before day 60",
        {"law_enforcement_delay": {"written": {"given_on": "2026-03-02", "until": "2026-03-20"}}},
        {("individuals",): e(due="2026-05-01", outer="2026-05-19")},
    ),
    V(
        "le-written-long",
        "164.412(a): for the time period specified by the official",
        {"law_enforcement_delay": {"written": {"given_on": "2026-04-01", "until": "2026-09-01"}}},
        {("individuals",): e(due="2026-09-01", outer="2026-10-01")},
    ),
    V(
        "le-annual-log-in-delay",
        "164.408(c), 164.412: the log date inside a delay is flagged, not moved",
        {
            "discovered_on": "2026-12-01",
            "law_enforcement_delay": {"written": {"given_on": "2026-12-10", "until": "2027-04-01"}},
        },
        {
            ("hhs_annual_log",): e(due="2027-03-01", outer="2027-04-01"),
            ("individuals",): e(due="2027-04-01", outer="2027-05-22"),
        },
        warning="the annual HHS log (45 CFR 164.408(c)) is due on 2027-03-01, inside the law-enforcement",
    ),
    V(
        "le-ba-contract",
        "164.410(b), 164.412(b): the BA's 10-day contract window in an oral delay",
        {
            "role": "business_associate",
            "ba_contract_days": 10,
            "law_enforcement_delay": {"oral": {"given_on": "2026-03-02"}},
        },
        {("ba_to_ce",): e(due="2026-04-01", outer="2026-04-11")},
    ),
    V(
        "le-hhs-follows-individuals",
        "164.408(b), 164.412: HHS keeps the individual notice's readings",
        {"affected_total": 600, "law_enforcement_delay": {"oral": {"given_on": "2026-04-20"}}},
        {("hhs",): e(due="2026-05-20", outer="2026-05-31")},
    ),
    # --- per-jurisdiction post-delay rules; regulators tolled only where the statute says so ----------------
    V(
        "le-maine-7-business-days",
        "10 M.R.S. 1348(3) shape: 7 business days after the delay (Patriots' Day)",
        {"affected_by_state": {"ME": 5}, "law_enforcement_delay": {"oral": {"given_on": "2026-03-20"}}},
        {("state_residents", "ME"): e(due="2026-04-29", outer=None)},
    ),
    V(
        "le-maine-delay-ended-early",
        "10 M.R.S. 1348(3) shape: 7 business days after an early end, if sooner",
        {
            "affected_by_state": {"ME": 5},
            "law_enforcement_delay": {"written": {"given_on": "2026-03-02", "until": "2026-03-10"}},
        },
        {("state_residents", "ME"): e(due="2026-03-19", outer="2026-04-01")},
    ),
    V(
        "le-maryland-7-days",
        "Md. Com. Law 14-3504(d) shape: 7 days after the delay",
        {
            "affected_by_state": {"MD": 5},
            "hipaa": False,
            "law_enforcement_delay": {"oral": {"given_on": "2026-04-01"}},
        },
        {("state_residents", "MD"): e(due="2026-05-08")},
    ),
    V(
        "le-puerto-rico-no-delay",
        "10 L.P.R.A. 4052 shape: no delay provision: not moved",
        {"affected_by_state": {"PR": 5}, "law_enforcement_delay": {"oral": {"given_on": "2026-03-03"}}},
        {
            ("state_residents", "PR"): e(
                due="2026-03-12", notes="does not provide for a law-enforcement delay"
            )
        },
    ),
    V(
        "le-texas-regulator-tolled",
        "statute tolls the AG notice too: the two readings apply",
        {
            "affected_total": 300,
            "affected_by_state": {"TX": 300},
            "law_enforcement_delay": {"oral": {"given_on": "2026-03-20"}},
        },
        {("state_regulator", "TX"): e(due="2026-04-19", outer="2026-05-01")},
    ),
    V(
        "le-colorado-regulator-not-tolled",
        "statute silent on the AG notice: not moved",
        {
            "affected_total": 600,
            "affected_by_state": {"CO": 600},
            "law_enforcement_delay": {"oral": {"given_on": "2026-03-20"}},
        },
        {
            ("state_regulator", "CO"): e(due="2026-04-01", outer=None),
            ("state_residents", "CO"): e(due="2026-04-19", outer="2026-05-01"),
        },
    ),
    V(
        "le-ca-facility-15-business-days",
        "Cal. H&S 1280.15(b) shape: 15 business days after the delay",
        {"ca_facility": True, "law_enforcement_delay": {"oral": {"given_on": "2026-03-10"}}},
        {("state_regulator", "CA", CDPH): e(due="2026-04-30")},
    ),
    V(
        "le-ca-facility-delay-ended-early",
        "Cal. H&S 1280.15(b) shape: a delay that ended before the 15 business days leaves them standing",
        {
            "ca_facility": True,
            "law_enforcement_delay": {"written": {"given_on": "2026-03-02", "until": "2026-03-04"}},
        },
        {("state_regulator", "CA", CDPH): e(due="2026-03-23", outer=None)},
    ),
    # --- HIPAA treatment of each kind (the data's hipaa.treatment) ------------------------------------------
    V(
        "hipaa-exempt",
        "N.M. 57-12C-8(C) shape: HIPAA-regulated entities exempt",
        {"affected_by_state": {"NM": 5}},
        {
            ("state_residents", "NM"): e(
                due="2026-04-16",
                status="not_required",
                hipaa="exempt",
                notes="exempts HIPAA-regulated entities",
            )
        },
    ),
    V(
        "hipaa-deemed-duty-survives",
        "Md. 14-3507(d) shape: deemed compliant, the AG notice survives",
        {"affected_by_state": {"MD": 5}},
        {
            ("state_residents", "MD"): e(status="not_required", hipaa="deemed_with_duties"),
            ("state_regulator", "MD"): e(due="2026-05-01", status="open", hipaa="deemed_with_duties"),
        },
    ),
    V(
        "hipaa-deemed-duty-ends",
        "N.Y. GBL 899-aa(2)(b) shape: deemed, only the named duty survives",
        {"affected_by_state": {"NY": 5}},
        {
            ("state_regulator", "NY", "Department of State"): e(status="not_required"),
            ("state_regulator", "NY", "Attorney General"): e(status="open", due="2027-03-08"),
        },
    ),
    V(
        "hipaa-not-deemed",
        "10 M.R.S. 1348 shape: HIPAA notice does not satisfy the statute",
        {"affected_by_state": {"ME": 5}},
        {("state_residents", "ME"): e(due="2026-04-01", status="open", hipaa="not_deemed")},
    ),
    V(
        "hipaa-not-verified",
        "La. R.S. 51:3074 shape: not verified is treated as owed",
        {"affected_by_state": {"LA": 5}},
        {
            ("state_residents", "LA"): e(
                due="2026-05-01", status="open", hipaa="not_verified", notes="not verified"
            )
        },
    ),
    V(
        "hipaa-off-state-in-full",
        "--no-hipaa: not PHI of a HIPAA entity: the state law in full",
        {"affected_by_state": {"NM": 5}, "hipaa": False},
        {("state_residents", "NM"): e(due="2026-04-16", status="open", hipaa=None), ("individuals",): ABSENT},
    ),
    V(
        "hipaa-off-no-hhs-anchor",
        "815 ILCS 530/50 shape: 'after notifying HHS' without HIPAA is not computed",
        {"affected_by_state": {"IL": 5}, "hipaa": False},
        {("state_regulator", "IL"): ABSENT},
        warning="no HHS notice is computed",
    ),
    # --- business days over holidays (each row's holiday calendar) ------------------------------------------
    V(
        "bd-vermont-christmas-new-year",
        "9 V.S.A. 2435 shape: 10 business days over 25 Dec and 1 Jan",
        {"discovered_on": "2026-12-21", "affected_by_state": {"VT": 5}},
        {("state_residents", "VT"): e(due="2027-01-06")},
    ),
    V(
        "bd-vermont-town-meeting-day",
        "9 V.S.A. 2435(b)(3) shape: 14 business days over Town Meeting Day",
        {"affected_by_state": {"VT": 5}},
        {("state_regulator", "VT"): e(due="2026-03-23"), ("state_residents", "VT"): e(due="2026-03-17")},
    ),
    V(
        "bd-ny-thanksgiving",
        "N.Y. GBL 899-aa(9) shape: 5 business days after HHS, over Thanksgiving",
        {
            "discovered_on": "2026-10-01",
            "affected_total": 600,
            "affected_by_state": {"NY": 5},
            "sent": [sent("hhs", "2026-11-25")],
        },
        {("state_regulator", "NY", "Attorney General"): e(due="2026-12-03")},
    ),
    V(
        "bd-illinois-independence-day",
        "815 ILCS 530/50 shape: 5 business days after HHS, over 3 July observed",
        {
            "discovered_on": "2026-06-01",
            "affected_total": 600,
            "affected_by_state": {"IL": 5},
            "sent": [sent("hhs", "2026-07-02")],
        },
        {("state_regulator", "IL"): e(due="2026-07-10")},
    ),
    V(
        "bd-illinois-mlk-day",
        "815 ILCS 530/50 shape: 5 business days after the annual log, over MLK Day",
        {"affected_by_state": {"IL": 5}, "sent": [sent("hhs_annual_log", "2027-01-15")]},
        {("state_regulator", "IL"): e(due="2027-01-25")},
    ),
    V(
        "bd-ca-facility-thanksgiving",
        "Cal. H&S 1280.15(b) shape: 15 business days over Thanksgiving and the day after",
        {"discovered_on": "2026-11-20", "ca_facility": True},
        {
            ("state_regulator", "CA", CDPH): e(due="2026-12-15"),
            ("state_residents", "CA", "ca_health_facility:affected patient"): e(due="2026-12-15"),
        },
    ),
    V(
        "bd-ca-facility-no-holiday",
        "Cal. H&S 1280.15(b) shape: 15 business days",
        {"ca_facility": True},
        {("state_regulator", "CA", CDPH): e(due="2026-03-23")},
    ),
    # --- dependent deadlines from recorded send dates -------------------------------------------------------
    V(
        "dep-la-ag-from-sent",
        "La. R.S. 51:3074 / LAC 16:III.701 shape: AG 10 days after residents were notified",
        {"affected_by_state": {"LA": 5}, "sent": [sent("state_residents", "2026-03-20", "LA")]},
        {("state_residents", "LA"): e(status="met"), ("state_regulator", "LA"): e(due="2026-03-30")},
    ),
    V(
        "dep-la-ag-before-sent",
        "La. shape: until residents are notified, counted from their due date",
        {"affected_by_state": {"LA": 5}},
        {("state_regulator", "LA"): e(due="2026-05-11", notes="until its send date")},
    ),
    V(
        "dep-la-residents-late",
        "La. shape: residents notified late; the AG counts from the actual date",
        {"affected_by_state": {"LA": 5}, "sent": [sent("state_residents", "2026-05-05", "LA")]},
        {
            ("state_residents", "LA"): e(status="late", notes="4 days after the due date"),
            ("state_regulator", "LA"): e(due="2026-05-15"),
        },
    ),
    V(
        "dep-ny-ag-from-hhs-sent",
        "N.Y. GBL 899-aa(9) shape: 5 business days after notifying HHS",
        {"affected_total": 600, "affected_by_state": {"NY": 5}, "sent": [sent("hhs", "2026-04-10")]},
        {("state_regulator", "NY", "Attorney General"): e(due="2026-04-17"), ("hhs",): e(status="met")},
    ),
    V(
        "dep-md-before-individuals",
        "Md. 14-3504(h) shape: AG before the notice to residents (the HIPAA notice)",
        {"affected_by_state": {"MD": 5}, "sent": [sent("individuals", "2026-03-20")]},
        {("state_regulator", "MD"): e(due="2026-03-20")},
    ),
    V(
        "dep-md-ag-first-met",
        "Md. shape: the AG told the day before residents: met",
        {
            "affected_by_state": {"MD": 5},
            "sent": [sent("individuals", "2026-03-20"), sent("state_regulator", "2026-03-19", "MD")],
        },
        {("state_regulator", "MD"): e(status="met")},
    ),
    V(
        "dep-md-ag-after-late",
        "Md. shape: the AG told after residents: late",
        {
            "affected_by_state": {"MD": 5},
            "sent": [sent("individuals", "2026-03-20"), sent("state_regulator", "2026-03-21", "MD")],
        },
        {("state_regulator", "MD"): e(status="late")},
    ),
    V(
        "dep-hhs-contemporaneous",
        "164.408(b): HHS contemporaneously with the individual notice actually sent",
        {"affected_total": 600, "sent": [sent("individuals", "2026-03-20")]},
        {("individuals",): e(status="met", due="2026-05-01"), ("hhs",): e(due="2026-03-20", status="open")},
    ),
    V(
        "dep-hhs-met",
        "164.408(b): both sent the same day",
        {"affected_total": 600, "sent": [sent("individuals", "2026-03-20"), sent("hhs", "2026-03-20")]},
        {("hhs",): e(status="met")},
    ),
    V(
        "dep-me-ag-with-residents",
        "10 M.R.S. 1348(5) shape: AG with the resident notice actually sent",
        {"affected_by_state": {"ME": 5}, "sent": [sent("state_residents", "2026-03-15", "ME")]},
        {("state_regulator", "ME"): e(due="2026-03-15")},
    ),
    V(
        "dep-individuals-late",
        "164.404(b): sent after day 60 is late",
        {"sent": [sent("individuals", "2026-05-04")]},
        {("individuals",): e(status="late", notes="3 days after the due date")},
    ),
    V(
        "dep-late-within-outer-bound",
        "164.404(b), 164.412: late under the stricter reading, within the other",
        {
            "law_enforcement_delay": {"oral": {"given_on": "2026-03-10"}},
            "sent": [sent("individuals", "2026-05-10")],
        },
        {("individuals",): e(status="late", notes="within the outer bound 2026-05-31")},
    ),
    V(
        "dep-unmatched-sent",
        "a recorded notice that matches no obligation is reported",
        {"sent": [sent("media", "2026-03-20", "TX")]},
        {("media", "TX"): ABSENT},
        warning="matches no obligation",
    ),
    # --- substitute notice (164.404(d)(2)), urgent (d)(3), next of kin (d)(1)(ii) ---------------------------
    V(
        "subst-none",
        "164.404(d)(2): no out-of-date addresses, no substitute notice",
        {"out_of_date_addresses": 0},
        {("substitute_notice",): ABSENT},
    ),
    V(
        "subst-9",
        "164.404(d)(2)(i): fewer than 10: alternative written notice, telephone or other means",
        {"out_of_date_addresses": 9},
        {("substitute_notice",): e(due="2026-05-01", basis="164.404(d)(2)(i)")},
    ),
    V(
        "subst-10",
        "164.404(d)(2)(ii): 10 or more: web posting 90 days or major media, toll-free number",
        {"affected_total": 20, "out_of_date_addresses": 10},
        {("substitute_notice",): e(due="2026-05-01", basis="164.404(d)(2)(ii)", notes="until 2026-07-30")},
    ),
    V(
        "subst-11-posting-from-sent",
        "164.404(d)(2)(ii)(A): 90 days from the posting",
        {"affected_total": 20, "out_of_date_addresses": 11, "sent": [sent("individuals", "2026-03-20")]},
        {("substitute_notice",): e(basis="164.404(d)(2)(ii)", notes="until 2026-06-18")},
    ),
    V(
        "subst-next-of-kin",
        "164.404(d)(2): not owed for next of kin with out-of-date addresses",
        {"out_of_date_addresses": 3},
        {("substitute_notice",): e(notes="next of kin")},
    ),
    V(
        "urgent",
        "164.404(d)(3): urgent: telephone in addition to the written notice",
        {"urgent": True},
        {("urgent_notice",): e(due="2026-05-01", basis="164.404(d)(3)")},
    ),
    V(
        "next-of-kin",
        "164.404(d)(1)(ii): deceased: next of kin or personal representative by first-class mail",
        {"deceased_with_next_of_kin": 2},
        {("individuals",): e(notes="164.404(d)(1)(ii)")},
    ),
    # --- business associate as agent (164.404(a)(2)) --------------------------------------------------------
    V(
        "agent-earlier",
        "164.404(a)(2): the agent's discovery is the covered entity's",
        {"affected_total": 600, "ba_agent_discovered_on": "2026-02-20"},
        {("individuals",): e(due="2026-04-21", notes="imputed"), ("hhs",): e(due="2026-04-21")},
    ),
    V(
        "agent-later",
        "164.404(a)(2): a later agent discovery changes nothing",
        {"ba_agent_discovered_on": "2026-03-05"},
        {("individuals",): e(due="2026-05-01")},
        warning="not before the covered entity",
    ),
    V(
        "agent-for-ba-role",
        "164.410: imputation is to the covered entity, not the BA",
        {"role": "business_associate", "ba_agent_discovered_on": "2026-02-20"},
        {("ba_to_ce",): e(due="2026-05-01")},
        warning="ignored for role business_associate",
    ),
    V(
        "agent-moves-state-window",
        "164.404(a)(2) day 0 for the state window too",
        {"affected_by_state": {"ME": 5}, "ba_agent_discovered_on": "2026-02-20"},
        {("state_residents", "ME"): e(due="2026-03-22")},
    ),
    V(
        "agent-previous-year-log",
        "164.404(a)(2), 164.408(c): the agent's year decides the log",
        {"discovered_on": "2026-01-05", "ba_agent_discovered_on": "2025-12-30"},
        {("hhs_annual_log",): e(due="2026-03-01")},
    ),
    # --- the packaged data: rules the issue names -----------------------------------------------------------
    V(
        "data-la-ag-10-days-after-residents",
        "La. Admin. Code 16:III.701: AG within 10 days of notifying residents",
        {"affected_by_state": {"LA": 5}, "sent": [sent("state_residents", "2026-03-20", "LA")]},
        {("state_regulator", "LA"): e(due="2026-03-30")},
        rows="packaged",
    ),
    V(
        "data-ny-ag-5-business-days-after-hhs",
        "N.Y. GBL 899-aa(9): AG within 5 business days of notifying HHS",
        {"affected_total": 600, "affected_by_state": {"NY": 5}, "sent": [sent("hhs", "2026-04-10")]},
        {("state_regulator", "NY", "Attorney General (copy of the HHS breach notice)"): e(due="2026-04-17")},
        rows="packaged",
    ),
    V(
        "data-pr-daco-10-days",
        "10 L.P.R.A. 4052: Department of Consumer Affairs within 10 days",
        {"affected_by_state": {"PR": 5}},
        {("state_regulator", "PR"): e(due="2026-03-12")},
        rows="packaged",
    ),
    V(
        "data-nm-exempt",
        "N.M. Stat. 57-12C-8(C): HIPAA-regulated entities exempt",
        {"affected_by_state": {"NM": 5}},
        {("state_residents", "NM"): e(status="not_required", hipaa="exempt")},
        rows="packaged",
    ),
    V(
        "data-me-7-business-days-after-delay",
        "10 M.R.S. 1348(3): 7 business days after the delay ends",
        {"affected_by_state": {"ME": 5}, "law_enforcement_delay": {"oral": {"given_on": "2026-03-20"}}},
        {("state_residents", "ME"): e(due="2026-04-29")},
        rows="packaged",
    ),
]


def _facts(vector: V) -> IncidentFacts:
    base: dict[str, Any] = {"role": "covered_entity", "discovered_on": "2026-03-02", "affected_total": 10}
    base.update(vector.facts)
    if vector.at is not None:
        base["discovered_on"] = discovery_date(datetime.fromisoformat(vector.at[0]), vector.at[1])
    counted = sum(base.get("affected_by_state", {}).values())
    base["affected_total"] = max(base["affected_total"], counted)
    return IncidentFacts.model_validate(base)


def _key(key: tuple[str, ...]) -> tuple[str, str, str]:
    kind, jurisdiction, recipient = (*key, "", "")[:3]
    return kind, jurisdiction or "US", recipient


def _match(obligations, key: tuple[str, str, str]):  # type: ignore[no-untyped-def]
    kind, jurisdiction, recipient = key
    found = [
        o
        for o in obligations
        if o.kind.value == kind
        and o.jurisdiction == jurisdiction
        and (o.recipient == recipient or (recipient != "" and o.recipient.startswith(recipient)))
    ]
    return found


def test_there_are_at_least_80_vectors_each_citing_its_rule() -> None:
    assert len(VECTORS) >= 80
    assert len({v.id for v in VECTORS}) == len(VECTORS)
    assert all(v.rule.strip() for v in VECTORS)


@pytest.mark.parametrize("vector", VECTORS, ids=[v.id for v in VECTORS])
def test_vector(vector: V) -> None:
    facts = _facts(vector)
    if vector.rows == "packaged":
        result = compute_obligations(facts, load_jurisdictions(), load_conditional_rules())
    else:
        result = compute_obligations(facts, ROWS, RULES)
    for raw_key, expected in vector.expect.items():
        key = _key(raw_key)
        found = _match(result.obligations, key)
        if expected.get("absent"):
            assert not found, f"{vector.rule}: {key} should not be owed"
            continue
        assert len(found) == 1, f"{vector.rule}: {key} in {[o.key for o in result.obligations]}"
        ob = found[0]
        if "due" in expected:
            assert ob.due == D(expected["due"]), vector.rule
        if "outer" in expected:
            outer = expected["outer"]
            assert ob.outer_bound == (D(outer) if outer else None), vector.rule
            if outer:
                assert ob.outer_basis, vector.rule
        if "status" in expected:
            assert ob.status.value == expected["status"], (vector.rule, ob.notes)
        if "hipaa" in expected:
            assert ob.hipaa_treatment == expected["hipaa"], vector.rule
        if "notes" in expected:
            assert expected["notes"] in ob.notes, (vector.rule, ob.notes)
        if "basis" in expected:
            assert expected["basis"] in ob.basis, (vector.rule, ob.basis)
    if vector.warning:
        assert any(vector.warning in w for w in result.warnings), (vector.rule, result.warnings)
