"""sealed free text: columns that may hold PHI become text sealed with the data key; approval comments

Titles, discovery reasons, risk-assessment factors, notification recipients/subjects/bodies/errors, run and
step errors, evidence sources/locations/contents/metadata are written sealed (irflow/store/sealed.py), which
needs unbounded text columns. Rows written before this revision stay readable as plain text.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-01
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

WIDENED = {
    "incidents": [("title", sa.String(length=300))],
    "notifications": [("recipient", sa.String(length=2000)), ("subject", sa.String(length=500))],
    "evidence": [("source", sa.String(length=2000)), ("location", sa.String(length=2000))],
}


def upgrade() -> None:
    for table, columns in WIDENED.items():
        with op.batch_alter_table(table, schema=None) as batch_op:
            for name, old in columns:
                batch_op.alter_column(name, existing_type=old, type_=sa.Text(), existing_nullable=False)
    with op.batch_alter_table("evidence", schema=None) as batch_op:
        batch_op.alter_column(
            "metadata",
            existing_type=sa.JSON().with_variant(sa.dialects.postgresql.JSONB(), "postgresql"),
            type_=sa.Text(),
            existing_nullable=False,
            postgresql_using="metadata::text",
        )
    with op.batch_alter_table("steps", schema=None) as batch_op:
        batch_op.add_column(sa.Column("decision_comment", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("steps", schema=None) as batch_op:
        batch_op.drop_column("decision_comment")
    with op.batch_alter_table("evidence", schema=None) as batch_op:
        batch_op.alter_column(
            "metadata",
            existing_type=sa.Text(),
            type_=sa.JSON().with_variant(sa.dialects.postgresql.JSONB(), "postgresql"),
            existing_nullable=False,
            postgresql_using="metadata::jsonb",
        )
    for table, columns in WIDENED.items():
        with op.batch_alter_table(table, schema=None) as batch_op:
            for name, old in columns:
                batch_op.alter_column(name, existing_type=sa.Text(), type_=old, existing_nullable=False)
