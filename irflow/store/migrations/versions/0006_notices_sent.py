"""notices recorded as sent, discovery time zone and the facts of compliance clock v2

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-01
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("incidents", schema=None) as batch_op:
        batch_op.add_column(sa.Column("timezone", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("discovery_reason", sa.Text(), nullable=True))
        batch_op.add_column(sa.Column("hipaa", sa.Boolean(), nullable=False, server_default=sa.true()))
        batch_op.add_column(sa.Column("ca_facility", sa.Boolean(), nullable=False, server_default=sa.false()))
        batch_op.add_column(sa.Column("ba_agent_discovered_on", sa.Date(), nullable=True))
        batch_op.add_column(sa.Column("out_of_date_addresses", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("urgent", sa.Boolean(), nullable=False, server_default=sa.false()))
        batch_op.add_column(
            sa.Column("deceased_with_next_of_kin", sa.Integer(), nullable=False, server_default="0")
        )

    with op.batch_alter_table("deadlines", schema=None) as batch_op:
        batch_op.add_column(sa.Column("recipient", sa.String(length=120), nullable=False, server_default=""))
        batch_op.add_column(sa.Column("status_reason", sa.Text(), nullable=True))
        batch_op.add_column(sa.Column("sent_on", sa.Date(), nullable=True))
        batch_op.add_column(sa.Column("outer_bound", sa.Date(), nullable=True))
        batch_op.add_column(sa.Column("outer_basis", sa.Text(), nullable=True))
        batch_op.add_column(sa.Column("hipaa_treatment", sa.String(length=24), nullable=True))
        batch_op.drop_constraint("uq_deadlines_incident_kind_jurisdiction", type_="unique")
        batch_op.create_unique_constraint(
            "uq_deadlines_incident_kind_jurisdiction_recipient",
            ["incident_id", "kind", "jurisdiction", "recipient"],
        )

    op.create_table(
        "notices_sent",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("incident_id", sa.String(length=36), nullable=False),
        sa.Column("kind", sa.String(length=24), nullable=False),
        sa.Column("jurisdiction", sa.String(length=2), nullable=False),
        sa.Column("recipient", sa.String(length=120), nullable=False),
        sa.Column("sent_on", sa.Date(), nullable=False),
        sa.Column("method", sa.String(length=120), nullable=False),
        sa.Column("recipients_count", sa.Integer(), nullable=False),
        sa.Column("evidence_id", sa.String(length=36), nullable=True),
        sa.Column("author", sa.String(length=200), nullable=False),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["incident_id"], ["incidents.id"], name=op.f("fk_notices_sent_incident_id_incidents")
        ),
        sa.ForeignKeyConstraint(
            ["evidence_id"], ["evidence.id"], name=op.f("fk_notices_sent_evidence_id_evidence")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_notices_sent")),
        sa.UniqueConstraint(
            "incident_id", "kind", "jurisdiction", "recipient", name="uq_notices_sent_obligation"
        ),
    )
    with op.batch_alter_table("notices_sent", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_notices_sent_incident_id"), ["incident_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("notices_sent", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_notices_sent_incident_id"))
    op.drop_table("notices_sent")

    with op.batch_alter_table("deadlines", schema=None) as batch_op:
        batch_op.drop_constraint("uq_deadlines_incident_kind_jurisdiction_recipient", type_="unique")
        batch_op.create_unique_constraint(
            "uq_deadlines_incident_kind_jurisdiction", ["incident_id", "kind", "jurisdiction"]
        )
        for column in (
            "hipaa_treatment",
            "outer_basis",
            "outer_bound",
            "sent_on",
            "status_reason",
            "recipient",
        ):
            batch_op.drop_column(column)

    with op.batch_alter_table("incidents", schema=None) as batch_op:
        for column in (
            "deceased_with_next_of_kin",
            "urgent",
            "out_of_date_addresses",
            "ba_agent_discovered_on",
            "ca_facility",
            "hipaa",
            "discovery_reason",
            "timezone",
        ):
            batch_op.drop_column(column)
