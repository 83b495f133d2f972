"""The HHS breach report data: every field of the OCR breach portal form, as JSON and CSV."""

from __future__ import annotations

import csv
import io
import json
from datetime import date

import pytest
from pydantic import ValidationError

from irflow.notify.hhs_report import (
    FIELDS,
    ActionTaken,
    BreachAffecting,
    BreachLocation,
    BreachType,
    HhsBreachReport,
    PhiType,
    Safeguard,
    to_csv,
    to_json,
)

# The portal form, section by section, as dotted field names of the model.
PORTAL_FIELDS = {
    "report": ["breach_affecting", "report_type", "previous_report_id"],
    "covered entity": [
        "covered_entity.name",
        "covered_entity.type",
        "covered_entity.address.street1",
        "covered_entity.address.city",
        "covered_entity.address.state",
        "covered_entity.address.zip",
        "covered_entity.contact.name",
        "covered_entity.contact.phone",
        "covered_entity.contact.email",
    ],
    "business associate": [
        "business_associate.involved",
        "business_associate.name",
        "business_associate.address.street1",
        "business_associate.address.city",
        "business_associate.address.state",
        "business_associate.address.zip",
        "business_associate.contact.name",
        "business_associate.contact.phone",
        "business_associate.contact.email",
    ],
    "breach dates": [
        "breach.start_date",
        "breach.end_date",
        "breach.discovery_start_date",
        "breach.discovery_end_date",
    ],
    "individuals": ["breach.individuals_affected"],
    "type of breach": ["breach.types", "breach.types_other"],
    "location": ["breach.locations", "breach.locations_other"],
    "type of PHI": ["breach.phi_types", "breach.phi_types_other"],
    "description": ["breach.description"],
    "safeguards": ["safeguards_in_place"],
    "notice": [
        "notice.individual_notice_start_date",
        "notice.individual_notice_end_date",
        "notice.substitute_notice_required",
        "notice.media_notice_required",
        "notice.media_notice_date",
        "notice.state_attorney_general_notified",
        "notice.state_attorney_general_notice_date",
        "notice.state_attorneys_general",
    ],
    "actions": ["actions_taken", "actions_taken_other"],
    "attestation": ["attestation.accurate", "attestation.name", "attestation.attested_on"],
}


def sample_report(**changes: object) -> HhsBreachReport:
    data = {
        "breach_affecting": "500 or More Individuals",
        "covered_entity": {
            "name": "Example Health Clinic",
            "type": "Healthcare Provider",
            "address": {
                "street1": "100 Example Street",
                "city": "Springfield",
                "state": "ZZ",
                "zip": "00000",
            },
            "contact": {"name": "Privacy Officer", "phone": "1-800-555-0100", "email": "privacy@example.org"},
        },
        "business_associate": {
            "involved": True,
            "name": "Example Cloud Services LLC",
            "address": {"street1": "1 Vendor Way", "city": "Shelbyville", "state": "ZZ", "zip": "00001"},
            "contact": {"name": "BA Privacy", "phone": "1-800-555-0102", "email": "privacy@ba.example.net"},
        },
        "breach": {
            "start_date": "2025-02-10",
            "end_date": "2025-02-14",
            "discovery_start_date": "2025-02-17",
            "individuals_affected": 1234,
            "types": ["Hacking/IT Incident", "Unauthorized Access/Disclosure"],
            "locations": ["Network Server", "Other"],
            "locations_other": "Cloud object storage",
            "phi_types": ["Demographic", "Clinical"],
            "description": "A shared access signature to a storage account was exposed; it is revoked.",
        },
        "safeguards_in_place": [Safeguard.PRIVACY_RULE.value, Safeguard.SECURITY_TECHNICAL.value],
        "notice": {
            "individual_notice_start_date": "2025-03-10",
            "individual_notice_end_date": "2025-03-14",
            "media_notice_required": True,
            "media_notice_date": "2025-03-10",
            "state_attorney_general_notified": True,
            "state_attorney_general_notice_date": "2025-03-11",
            "state_attorneys_general": ["ZZ"],
        },
        "actions_taken": [ActionTaken.ADOPTED_ENCRYPTION.value, ActionTaken.CREDIT_MONITORING.value],
        "attestation": {"accurate": True, "name": "Privacy Officer", "attested_on": "2025-03-12"},
    }
    data.update(changes)
    return HhsBreachReport.model_validate(data)


def test_the_model_covers_every_portal_field() -> None:
    expected = [name for names in PORTAL_FIELDS.values() for name in names]
    missing = [name for name in expected if name not in FIELDS]
    assert not missing


def test_the_portal_choice_lists() -> None:
    assert {t.value for t in BreachType} >= {
        "Hacking/IT Incident",
        "Unauthorized Access/Disclosure",
        "Theft",
        "Loss",
        "Improper Disposal",
        "Other",
    }
    assert {loc.value for loc in BreachLocation} >= {
        "Network Server",
        "Email",
        "Electronic Medical Record",
        "Laptop",
        "Desktop Computer",
        "Other Portable Electronic Device",
        "Paper/Films",
        "Other",
    }
    assert {p.value for p in PhiType} == {"Demographic", "Financial", "Clinical", "Other"}


def _leaf(document: dict, dotted: str) -> object:  # type: ignore[type-arg]
    value: object = document
    for part in dotted.split("."):
        assert isinstance(value, dict) and part in value, f"{dotted} missing from the JSON"
        value = value[part]
    return value


def test_json_contains_every_field() -> None:
    report = sample_report()
    document = json.loads(to_json(report))
    for name in FIELDS:
        _leaf(document, name)
    assert document["breach"]["individuals_affected"] == 1234
    assert document["breach"]["discovery_start_date"] == "2025-02-17"
    assert document["notice"]["media_notice_date"] == "2025-03-10"
    assert document["notice"]["state_attorney_general_notice_date"] == "2025-03-11"
    assert HhsBreachReport.model_validate(document) == report
    assert json.loads(to_json([report, report])) == [document, document]


def test_csv_has_every_field_as_a_column_and_one_row_per_report() -> None:
    text = to_csv(
        [
            sample_report(),
            sample_report(report_type="Addendum to Previous Report", previous_report_id="OCR-0001"),
        ]
    )
    rows = list(csv.DictReader(io.StringIO(text)))
    assert list(rows[0].keys()) == list(FIELDS)
    first, second = rows
    assert first["covered_entity.name"] == "Example Health Clinic"
    assert first["business_associate.involved"] == "Yes"
    assert first["breach.types"] == "Hacking/IT Incident; Unauthorized Access/Disclosure"
    assert first["breach.locations"] == "Network Server; Other"
    assert first["breach.locations_other"] == "Cloud object storage"
    assert first["breach.phi_types"] == "Demographic; Clinical"
    assert first["breach.start_date"] == "2025-02-10" and first["breach.end_date"] == "2025-02-14"
    assert first["notice.individual_notice_start_date"] == "2025-03-10"
    assert first["notice.substitute_notice_required"] == "No"
    assert first["safeguards_in_place"].startswith("Privacy Rule Safeguards")
    assert "Provided individuals with free credit monitoring" in first["actions_taken"]
    assert first["previous_report_id"] == ""
    assert (
        second["report_type"] == "Addendum to Previous Report" and second["previous_report_id"] == "OCR-0001"
    )


def test_csv_without_a_business_associate_keeps_the_columns() -> None:
    text = to_csv(sample_report(business_associate={"involved": False}))
    header, row = list(csv.reader(io.StringIO(text)))
    assert header == list(FIELDS)
    values = dict(zip(header, row, strict=True))
    assert values["business_associate.involved"] == "No" and values["business_associate.name"] == ""


def test_csv_cells_cannot_become_formulas() -> None:
    breach = sample_report().breach.model_dump(mode="json") | {"description": '=HYPERLINK("x")'}
    row = next(csv.DictReader(io.StringIO(to_csv(sample_report(breach=breach)))))
    assert row["breach.description"].startswith("'=")


@pytest.mark.parametrize(
    "changes",
    [
        {"business_associate": {"involved": True}},
        {"safeguards_in_place": ["None", Safeguard.PRIVACY_RULE.value]},
        {"actions_taken": ["Other"]},
        {"report_type": "Addendum to Previous Report"},
        {"notice": {"media_notice_required": False, "media_notice_date": "2025-03-10"}},
    ],
)
def test_inconsistent_reports_are_refused(changes: dict) -> None:  # type: ignore[type-arg]
    with pytest.raises(ValidationError):
        sample_report(**changes)


def test_breach_dates_are_checked() -> None:
    breach = sample_report().breach.model_dump(mode="json")
    with pytest.raises(ValidationError, match="discovery"):
        sample_report(breach=breach | {"discovery_start_date": "2025-01-01"})
    with pytest.raises(ValidationError, match="locations_other"):
        sample_report(breach=breach | {"locations_other": ""})
    assert sample_report().breach.start_date == date(2025, 2, 10)


@pytest.mark.parametrize(("count", "affecting"), [(499, "Fewer Than 500 Individuals"),
                                                 (500, "500 or More Individuals"),
                                                 (501, "500 or More Individuals")])  # fmt: skip
def test_breach_affecting_follows_the_count(count: int, affecting: str) -> None:
    # 45 CFR 164.408(b): "500 or more"; (c): "less than 500"; the portal's "Breach Affecting" question
    breach = {**sample_report().breach.model_dump(mode="json"), "individuals_affected": count}
    assert BreachAffecting.for_count(count).value == affecting
    assert sample_report(breach=breach, breach_affecting=affecting).breach_affecting.value == affecting
    other = next(b.value for b in BreachAffecting if b.value != affecting)
    with pytest.raises(ValidationError, match="breach_affecting"):
        sample_report(breach=breach, breach_affecting=other)


def test_the_attestation_is_required_and_must_be_given() -> None:
    with pytest.raises(ValidationError, match="attestation"):
        HhsBreachReport.model_validate(
            {k: v for k, v in sample_report().model_dump(mode="json").items() if k != "attestation"}
        )
    with pytest.raises(ValidationError, match="accuracy is attested"):
        sample_report(attestation={"accurate": False, "name": "P", "attested_on": "2025-03-12"})
    row = next(csv.DictReader(io.StringIO(to_csv(sample_report()))))
    assert row["breach_affecting"] == "500 or More Individuals"
    assert row["attestation.accurate"] == "Yes" and row["attestation.name"] == "Privacy Officer"
