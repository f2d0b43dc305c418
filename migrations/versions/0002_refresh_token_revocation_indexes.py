"""refresh tokens: index revocation checks by family, and expiry for pruning

Access tokens are now refused once their family (`sid`) has a revoked refresh token,
read from the database on a cache miss; expired refresh tokens are deleted by writers.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25 17:10:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # The composite index serves lookups by family alone as well.
    op.create_index(
        "ix_refresh_tokens_family_id_revoked_at",
        "refresh_tokens",
        ["family_id", "revoked_at"],
        unique=False,
    )
    op.drop_index(op.f("ix_refresh_tokens_family_id"), table_name="refresh_tokens")
    op.create_index(
        op.f("ix_refresh_tokens_expires_at"), "refresh_tokens", ["expires_at"], unique=False
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_refresh_tokens_expires_at"), table_name="refresh_tokens")
    op.create_index(
        op.f("ix_refresh_tokens_family_id"), "refresh_tokens", ["family_id"], unique=False
    )
    op.drop_index("ix_refresh_tokens_family_id_revoked_at", table_name="refresh_tokens")
