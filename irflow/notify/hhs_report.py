"""The data of the HHS OCR breach report (the breach portal form, 45 CFR 164.408), as JSON and CSV.

The model mirrors the portal's form (http://ocrnotifications.hhs.gov/, "Notice to the Secretary of HHS of
Breach of Unsecured Protected Health Information"): "Breach Affecting" (500 or more / fewer than 500
individuals) and the report type, the covered entity and its contact, business associate involvement, the
breach (dates, individuals affected, type, location, type of PHI, description), safeguards in place before the
breach, notice given and actions taken, and the attestation (Section 5) as who attested and when. Choice
lists use the portal's own labels, so the output can be copied into the form field by field. CSV: one header
row of dotted field names and one row per report (the annual log of breaches under 500 is several rows);
several values of one field are joined by ``"; "``.
The report describes a breach in aggregate: it holds no individual's PHI.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable
from datetime import date
from enum import StrEnum
from typing import Any, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator


class BreachAffecting(StrEnum):
    """The portal's first question; 45 CFR 164.408(b) ("500 or more") and (c) ("less than 500")."""

    FIVE_HUNDRED_OR_MORE = "500 or More Individuals"
    FEWER_THAN_500 = "Fewer Than 500 Individuals"

    @classmethod
    def for_count(cls, individuals: int) -> BreachAffecting:
        return cls.FIVE_HUNDRED_OR_MORE if individuals >= 500 else cls.FEWER_THAN_500


class ReportType(StrEnum):
    INITIAL = "Initial Breach Report"
    ADDENDUM = "Addendum to Previous Report"


class CoveredEntityType(StrEnum):
    HEALTH_PLAN = "Health Plan"
    HEALTHCARE_PROVIDER = "Healthcare Provider"
    HEALTHCARE_CLEARINGHOUSE = "Healthcare Clearing House"


class BreachType(StrEnum):
    HACKING_IT_INCIDENT = "Hacking/IT Incident"
    IMPROPER_DISPOSAL = "Improper Disposal"
    LOSS = "Loss"
    THEFT = "Theft"
    UNAUTHORIZED_ACCESS_DISCLOSURE = "Unauthorized Access/Disclosure"
    UNKNOWN = "Unknown"
    OTHER = "Other"


class BreachLocation(StrEnum):
    DESKTOP_COMPUTER = "Desktop Computer"
    ELECTRONIC_MEDICAL_RECORD = "Electronic Medical Record"
    EMAIL = "Email"
    LAPTOP = "Laptop"
    NETWORK_SERVER = "Network Server"
    OTHER_PORTABLE_ELECTRONIC_DEVICE = "Other Portable Electronic Device"
    PAPER_FILMS = "Paper/Films"
    OTHER = "Other"


class PhiType(StrEnum):
    CLINICAL = "Clinical"
    DEMOGRAPHIC = "Demographic"
    FINANCIAL = "Financial"
    OTHER = "Other"


class Safeguard(StrEnum):
    NONE = "None"
    PRIVACY_RULE = "Privacy Rule Safeguards (Training, Policies and Procedures, etc.)"
    SECURITY_ADMINISTRATIVE = "Security Rule Administrative Safeguards (Risk Analysis, Risk Management, etc.)"
    SECURITY_PHYSICAL = (
        "Security Rule Physical Safeguards (Facility Access Controls, Workstation Security, etc.)"
    )
    SECURITY_TECHNICAL = "Security Rule Technical Safeguards (Access Controls, Transmission Security, etc.)"


class ActionTaken(StrEnum):
    ADOPTED_ENCRYPTION = "Adopted encryption technologies"
    CHANGED_PASSWORDS = "Changed password/strengthened password requirements"
    NEW_RISK_MANAGEMENT_PLAN = "Created a new/updated Security Rule Risk Management Plan"
    NEW_TECHNICAL_SAFEGUARDS = "Implemented new technical safeguards"
    PERIODIC_EVALUATIONS = "Implemented periodic technical and nontechnical evaluations"
    IMPROVED_PHYSICAL_SECURITY = "Improved physical security"
    NEW_RISK_ANALYSIS = "Performed a new/updated Security Rule Risk Analysis"
    BA_TRAINING = "Provided business associate with additional training on HIPAA requirements"
    CREDIT_MONITORING = "Provided individuals with free credit monitoring"
    REVISED_BA_CONTRACTS = "Revised business associate contracts"
    REVISED_POLICIES = "Revised policies and procedures"
    SANCTIONED_WORKFORCE = "Sanctioned workforce members involved (including termination)"
    MITIGATED_HARM = "Took steps to mitigate harm"
    TRAINED_WORKFORCE = "Trained or retrained workforce members"
    OTHER = "Other"


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", str_strip_whitespace=True)


class Address(_Model):
    street1: str = Field(min_length=1, max_length=200)
    street2: str = Field(default="", max_length=200)
    city: str = Field(min_length=1, max_length=100)
    state: str = Field(min_length=2, max_length=2)
    zip: str = Field(min_length=5, max_length=10)


class Contact(_Model):
    name: str = Field(min_length=1, max_length=200)
    phone: str = Field(min_length=7, max_length=40)
    email: str = Field(min_length=3, max_length=200)


class CoveredEntity(_Model):
    name: str = Field(min_length=1, max_length=300)
    type: CoveredEntityType
    address: Address
    contact: Contact


class BusinessAssociate(_Model):
    involved: bool
    name: str | None = None
    address: Address | None = None
    contact: Contact | None = None

    @model_validator(mode="after")
    def _named_when_involved(self) -> Self:
        if self.involved and not self.name:
            raise ValueError("a business associate involved in the breach needs a name")
        return self


class Breach(_Model):
    start_date: date
    end_date: date | None = None
    discovery_start_date: date
    discovery_end_date: date | None = None
    individuals_affected: int = Field(ge=1)
    types: list[BreachType] = Field(min_length=1)
    types_other: str = ""
    locations: list[BreachLocation] = Field(min_length=1)
    locations_other: str = ""
    phi_types: list[PhiType] = Field(min_length=1)
    phi_types_other: str = ""
    description: str = Field(min_length=1, max_length=4000)

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if self.end_date and self.end_date < self.start_date:
            raise ValueError("breach end date is before its start date")
        if self.discovery_start_date < self.start_date:
            raise ValueError("discovery date is before the breach start date")
        if self.discovery_end_date and self.discovery_end_date < self.discovery_start_date:
            raise ValueError("discovery end date is before discovery start date")
        for label, values, other in (
            ("types", self.types, self.types_other),
            ("locations", self.locations, self.locations_other),
            ("phi_types", self.phi_types, self.phi_types_other),
        ):
            if "Other" in values and not other:
                raise ValueError(f"breach {label} includes Other: describe it in {label}_other")
        return self


class Notice(_Model):
    individual_notice_start_date: date | None = None
    individual_notice_end_date: date | None = None
    substitute_notice_required: bool = False
    media_notice_required: bool = False
    media_notice_date: date | None = None
    state_attorney_general_notified: bool = False
    state_attorney_general_notice_date: date | None = None
    state_attorneys_general: list[str] = Field(default_factory=list)

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if self.media_notice_date and not self.media_notice_required:
            raise ValueError("a media notice date is given but media notice is marked not required")
        if self.state_attorney_general_notice_date and not self.state_attorney_general_notified:
            raise ValueError("an attorney general notice date is given but none is marked notified")
        return self


class Attestation(_Model):
    """Section 5 of the portal: the submitter attests that the information is accurate. irflow records that
    the named person attested and on which day; the portal's own wording (its FOIA and publication notice) is
    shown there, not reproduced here."""

    accurate: bool
    name: str = Field(min_length=1, max_length=200)
    attested_on: date

    @model_validator(mode="after")
    def _attested(self) -> Self:
        if not self.accurate:
            raise ValueError(
                "the portal accepts a report only when its accuracy is attested (accurate: true)"
            )
        return self


class HhsBreachReport(_Model):
    breach_affecting: BreachAffecting
    report_type: ReportType = ReportType.INITIAL
    previous_report_id: str | None = None
    covered_entity: CoveredEntity
    business_associate: BusinessAssociate
    breach: Breach
    safeguards_in_place: list[Safeguard] = Field(min_length=1)
    notice: Notice
    actions_taken: list[ActionTaken] = Field(min_length=1)
    actions_taken_other: str = ""
    attestation: Attestation

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        expected = BreachAffecting.for_count(self.breach.individuals_affected)
        if self.breach_affecting is not expected:
            raise ValueError(
                f"breach_affecting is {self.breach_affecting.value!r} but {self.breach.individuals_affected} "
                f"individuals are affected: {expected.value!r} (45 CFR 164.408(b),(c))"
            )
        if self.report_type is ReportType.ADDENDUM and not self.previous_report_id:
            raise ValueError("an addendum names the previous report (previous_report_id)")
        if Safeguard.NONE in self.safeguards_in_place and len(self.safeguards_in_place) > 1:
            raise ValueError("safeguards_in_place: None cannot be combined with other safeguards")
        if ActionTaken.OTHER in self.actions_taken and not self.actions_taken_other:
            raise ValueError("actions taken include Other: describe it in actions_taken_other")
        return self

    def to_json(self, *, indent: int | None = 2) -> str:
        return self.model_dump_json(indent=indent)

    def flat(self) -> dict[str, str]:
        """Every field, dotted name → text, in the form's order (absent values are empty strings)."""
        values = dict(_flatten(self.model_dump(mode="json"), ""))
        return {name: _cell(values.get(name)) for name in FIELDS}  # an absent nested model: empty cells


def _flatten(value: Any, prefix: str) -> Iterable[tuple[str, Any]]:
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _flatten(item, f"{prefix}.{key}" if prefix else key)
    else:
        yield prefix, value


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "Yes" if value else "No"
    if isinstance(value, list):
        return "; ".join(str(v) for v in value)
    return str(value)


def _all_fields() -> list[str]:
    """The CSV columns: every leaf of the model, nested optional models included."""

    def walk(model: type[BaseModel], prefix: str) -> Iterable[str]:
        for name, field in model.model_fields.items():
            dotted = f"{prefix}.{name}" if prefix else name
            nested = next(
                (
                    t
                    for t in (field.annotation, *getattr(field.annotation, "__args__", ()))
                    if isinstance(t, type) and issubclass(t, BaseModel)
                ),
                None,
            )
            if nested is not None:
                yield from walk(nested, dotted)
            else:
                yield dotted

    return list(walk(HhsBreachReport, ""))


FIELDS: tuple[str, ...] = tuple(_all_fields())


def to_json(reports: HhsBreachReport | Iterable[HhsBreachReport], *, indent: int | None = 2) -> str:
    """One report as a JSON object, several as a JSON array."""
    if isinstance(reports, HhsBreachReport):
        return reports.to_json(indent=indent)
    return json.dumps([r.model_dump(mode="json") for r in reports], indent=indent)


def to_csv(reports: HhsBreachReport | Iterable[HhsBreachReport]) -> str:
    """A header row of :data:`FIELDS` and one row per report."""
    items = [reports] if isinstance(reports, HhsBreachReport) else list(reports)
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=FIELDS, lineterminator="\r\n", extrasaction="raise")
    writer.writeheader()
    for report in items:
        writer.writerow({k: _neutralize(v) for k, v in report.flat().items()})
    return out.getvalue()


def _neutralize(text: str) -> str:
    """Keep a spreadsheet from running a cell as a formula (CSV injection)."""
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text
