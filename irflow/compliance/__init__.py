"""The compliance clock: HIPAA breach-notification (45 CFR 164.400-414) and state-law deadlines.

Pure code: every date is an input, nothing reads the system clock; the only file read is the packaged
jurisdiction data.
"""

from irflow.compliance.clock import (
    add_business_days,
    add_days_tolled,
    annual_log_due,
    compute_obligations,
    tolling_periods,
)
from irflow.compliance.models import (
    ComplianceResult,
    IncidentFacts,
    LawEnforcementDelay,
    Obligation,
    ObligationKind,
    ObligationStatus,
    OralStatement,
    Role,
    SentNotice,
    TollingPeriod,
    WrittenStatement,
)
from irflow.compliance.states import Jurisdiction, load_jurisdictions, parse_jurisdictions

__all__ = [
    "ComplianceResult",
    "IncidentFacts",
    "Jurisdiction",
    "LawEnforcementDelay",
    "Obligation",
    "ObligationKind",
    "ObligationStatus",
    "OralStatement",
    "Role",
    "SentNotice",
    "TollingPeriod",
    "WrittenStatement",
    "add_business_days",
    "add_days_tolled",
    "annual_log_due",
    "compute_obligations",
    "load_jurisdictions",
    "parse_jurisdictions",
    "tolling_periods",
]
