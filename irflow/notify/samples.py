"""Placeholder contexts for every template: obviously fictitious values, never real PHI.

Used by the tests and by template checks (an operator's own ``IRFLOW_TEMPLATES_DIR`` must render these
and keep every required section, see :data:`REQUIRED_SECTIONS`).
"""

from __future__ import annotations

import copy
from typing import Any

ENTITY = {
    "name": "Example Health Clinic",
    "toll_free_phone": "1-800-555-0100",
    "hours": "Monday to Friday, 8 a.m. to 6 p.m. Eastern",
    "email": "privacy@example.org",
    "website": "https://example.org/breach-notice",
    "postal_address": "100 Example Street, Springfield, ZZ 00000",
}
BREACH = {
    "description": "An unauthorized person obtained a file-sharing link to a storage account that held "
    "copies of patient appointment records. The link was disabled as soon as we learned of it.",
    "date": "2025-02-10",
    "end_date": "2025-02-14",
    "discovery_date": "2025-02-17",
}
PHI_TYPES = ["Names", "Dates of service", "Medical record numbers", "Health insurance member numbers"]
PROTECTIVE_STEPS = [
    "Review the statements you receive from your health insurer and tell them about any service you did "
    "not receive.",
    "Enroll in the free credit monitoring we offer; the enrollment code is in the enclosed sheet.",
    "Consider placing a fraud alert or security freeze with the three nationwide credit bureaus.",
]
RESPONSE = {
    "investigation": "We are working with outside forensic experts to learn exactly what was accessed.",
    "mitigation": "We revoked the link, rotated every access key and are offering free credit monitoring.",
    "prevention": "We now block public links to storage that holds health information and have "
    "retrained staff.",
}

_SAMPLES: dict[str, dict[str, Any]] = {
    "individual-notice": {
        "recipient_name": "Pat Placeholder",
        "entity": ENTITY,
        "breach": BREACH,
        "phi_types": PHI_TYPES,
        "protective_steps": PROTECTIVE_STEPS,
        "response": RESPONSE,
        "incident": {"reference": "INC-0000"},
    },
    "media-notice": {
        "entity": ENTITY,
        "breach": BREACH,
        "phi_types": PHI_TYPES,
        "protective_steps": PROTECTIVE_STEPS,
        "response": RESPONSE,
        "jurisdiction": "the State of Example",
        "affected_in_jurisdiction": 1234,
        "release_date": "2025-03-01",
        "media_contact": {"name": "Media Relations", "phone": "1-800-555-0101", "email": "press@example.org"},
    },
    "substitute-notice": {
        "entity": ENTITY,
        "breach": BREACH,
        "phi_types": PHI_TYPES,
        "protective_steps": PROTECTIVE_STEPS,
        "response": RESPONSE,
        "substitute": {
            "form": "web posting",
            "posted_from": "2025-03-10",
            "posted_until": "2025-06-08",
            "toll_free_phone": "1-800-555-0103",
            "toll_free_active_until": "2025-06-08",
        },
    },
    "urgent-notice": {
        "entity": ENTITY,
        "breach": BREACH,
        "phi_types": PHI_TYPES,
        "urgent_steps": [
            "Call your bank now and ask it to watch for payments you did not make.",
            "Change the password of your patient portal account today.",
        ],
        "written_notice_by": "2025-04-18",
    },
    "next-of-kin-notice": {
        "entity": ENTITY,
        "recipient_name": "Alex Placeholder",
        "decedent_name": "Pat Placeholder",
        "breach": BREACH,
        "phi_types": PHI_TYPES,
        "protective_steps": PROTECTIVE_STEPS,
        "response": RESPONSE,
    },
    "ba-to-ce-notice": {
        "business_associate": {
            "name": "Example Cloud Services LLC",
            "contact_name": "Privacy Officer",
            "contact_phone": "1-800-555-0102",
            "contact_email": "privacy@ba.example.net",
        },
        "covered_entity": {"name": ENTITY["name"], "contact_name": "Chief Privacy Officer"},
        "agreement_reference": "BAA-0000",
        "breach": BREACH,
        "phi_types": PHI_TYPES,
        "individuals": [
            {
                "identifier": "PLACEHOLDER-ID-0001",
                "name": "Pat Placeholder",
                "last_known_address": "1 Any St",
            },
            {"identifier": "PLACEHOLDER-ID-0002", "name": "Sam Sample"},
        ],
        "individuals_total": 2,
        "identification_complete": True,
        "protective_steps": PROTECTIVE_STEPS,
        "response": RESPONSE,
        "pending_information": [],
    },
    "internal-escalation": {
        "incident": {
            "id": "00000000-0000-0000-0000-000000000000",
            "title": "SAS exfiltration on storage account phistore01",
            "severity": "high",
            "status": "containing",
            "url": "https://irflow.example.org/ui/incidents/00000000-0000-0000-0000-000000000000",
        },
        "reason": "Step rotate-keys failed after 5 attempts",
        "step": "rotate-keys",
        "actions": ["Approve the manual key rotation", "Page the storage owner"],
    },
    "deadline-reminder": {
        "incident": {"id": "00000000-0000-0000-0000-000000000000", "title": "SAS exfiltration"},
        "obligation": {
            "kind": "individuals",
            "jurisdiction": "US",
            "due": "2025-04-18",
            "basis": "45 CFR 164.404(b)",
            "notes": "",
        },
        "days_left": 7,
    },
}


def sample_context(template: str) -> dict[str, Any]:
    """A deep copy of the placeholder context for *template* (with or without its suffix)."""
    return copy.deepcopy(_SAMPLES[template.split(".", 1)[0]])


def sample_templates() -> list[str]:
    return sorted(_SAMPLES)


# The headings each template must keep, in order. 164.404(c)(1)(A)–(E) for individuals and media.
_NOTICE_SECTIONS = (
    "WHAT HAPPENED",  # (A) what happened, date of breach, date of discovery
    "WHAT INFORMATION WAS INVOLVED",  # (B) types of unsecured PHI
    "WHAT YOU CAN DO",  # (C) steps individuals should take
    "WHAT WE ARE DOING",  # (D) investigate, mitigate, protect
    "FOR MORE INFORMATION",  # (E) contact procedures
)
REQUIRED_SECTIONS: dict[str, tuple[str, ...]] = {
    "individual-notice": _NOTICE_SECTIONS,
    "media-notice": (
        "WHAT HAPPENED",
        "WHAT INFORMATION WAS INVOLVED",
        "WHAT AFFECTED INDIVIDUALS CAN DO",
        "WHAT WE ARE DOING",
        "FOR MORE INFORMATION",
    ),
    # 164.404(d)(2): the 164.404(c) content, and where to learn whether one's information is included.
    "substitute-notice": (
        "WHAT HAPPENED",
        "WHAT INFORMATION WAS INVOLVED",
        "IS YOUR INFORMATION INCLUDED?",
        "WHAT YOU CAN DO",
        "WHAT WE ARE DOING",
        "FOR MORE INFORMATION",
    ),
    # 164.404(d)(3): in addition to the written notice, which the call announces.
    "urgent-notice": (
        "URGENT CALL SCRIPT",
        "WHAT HAPPENED",
        "WHAT INFORMATION WAS INVOLVED",
        "WHAT YOU SHOULD DO NOW",
        "WRITTEN NOTICE TO FOLLOW",
    ),
    # 164.404(d)(1)(ii): the 164.404(c) content, to the next of kin or personal representative.
    "next-of-kin-notice": _NOTICE_SECTIONS,
    "ba-to-ce-notice": (
        "DESCRIPTION OF THE BREACH",
        "TYPES OF UNSECURED PHI INVOLVED",
        "IDENTIFICATION OF AFFECTED INDIVIDUALS",
        "STEPS INDIVIDUALS SHOULD TAKE TO PROTECT THEMSELVES",
        "WHAT WE ARE DOING",
        "INFORMATION STILL TO FOLLOW",
        "CONTACT AT THE BUSINESS ASSOCIATE",
    ),
    "internal-escalation": ("ESCALATION",),
    "deadline-reminder": ("DEADLINE REMINDER",),
}
