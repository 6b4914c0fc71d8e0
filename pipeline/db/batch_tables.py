"""The tables of batches: uploaded files, batch records and one row per batch item.

File bytes live in the database (`files.content`), like the rest of a batch: every process
on every host that reaches the database reads them, with no shared disk to mount, and a
file goes with its tenant's other rows. The size limit (`batch_file_max_bytes`) keeps a row
within what SQLite and PostgreSQL hold comfortably.
"""

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, Integer, LargeBinary, String
from sqlalchemy.orm import Mapped, mapped_column

from pipeline.db.tables import Base


class FileRecord(Base):
    """An uploaded file (`purpose=batch`) or a batch's output or error file."""

    __tablename__ = "files"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    tenant: Mapped[str] = mapped_column(String(64))
    purpose: Mapped[str] = mapped_column(String(32))
    filename: Mapped[str] = mapped_column(String(255))
    size: Mapped[int] = mapped_column("bytes", Integer)
    created_at: Mapped[datetime]
    expires_at: Mapped[datetime]
    content: Mapped[bytes] = mapped_column(LargeBinary)

    __table_args__ = (
        Index("ix_files_tenant", "tenant", "id"),
        Index("ix_files_expires_at", "expires_at"),
    )


class BatchRecord(Base):
    """A batch: what it runs, where it is, its counts and its files."""

    __tablename__ = "batches"

    # Time-ordered ids: listing newest first is ordering by id.
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    tenant: Mapped[str] = mapped_column(String(64))
    key_id: Mapped[str | None] = mapped_column(String(32))
    # "gateway": promptbus runs each item; "provider": handed to the provider's batch API.
    mode: Mapped[str] = mapped_column(String(16))
    endpoint: Mapped[str] = mapped_column(String(64))
    input_file_id: Mapped[str | None] = mapped_column(String(64))
    completion_window: Mapped[str] = mapped_column(String(8))
    status: Mapped[str] = mapped_column(String(16))
    metadata_: Mapped[dict[str, Any] | None] = mapped_column("metadata", JSON)
    errors: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    total: Mapped[int] = mapped_column(Integer, default=0)
    completed: Mapped[int] = mapped_column(Integer, default=0)
    failed: Mapped[int] = mapped_column(Integer, default=0)
    output_file_id: Mapped[str | None] = mapped_column(String(64))
    error_file_id: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime]
    expires_at: Mapped[datetime]
    in_progress_at: Mapped[datetime | None]
    finalizing_at: Mapped[datetime | None]
    completed_at: Mapped[datetime | None]
    failed_at: Mapped[datetime | None]
    expired_at: Mapped[datetime | None]
    cancelling_at: Mapped[datetime | None]
    cancelled_at: Mapped[datetime | None]

    __table_args__ = (
        Index("ix_batches_tenant", "tenant", "id"),
        Index("ix_batches_status", "status"),
    )


class BatchItem(Base):
    """One request of a batch, keyed by (batch, custom_id): its one result, once written."""

    __tablename__ = "batch_items"

    batch_id: Mapped[str] = mapped_column(
        ForeignKey("batches.id", ondelete="CASCADE"), primary_key=True
    )
    custom_id: Mapped[str] = mapped_column(String(256), primary_key=True)
    # Its line in the input (0-based): chunks of work are ranges of lines.
    line: Mapped[int] = mapped_column(Integer)
    # The request, already read into promptbus's own GenerateRequest (JSON).
    request: Mapped[dict[str, Any]] = mapped_column(JSON)
    # pending, then ok or error (written once, by whichever run of the item finishes first),
    # or cancelled or expired when the batch ended before it ran.
    status: Mapped[str] = mapped_column(String(16))
    # The item's output or error line (OpenAI's batch output line), once finished.
    result: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    finished_at: Mapped[datetime | None]

    __table_args__ = (Index("ix_batch_items_line", "batch_id", "line"),)
