"""Batches: files and batch records in the database, checked up front, run on Celery.

`store` keeps them; `validation` reads an input; `execution` runs lanes of chunks on the
workers; `finalize` makes the output and error files once; `progress` tells the tenant.
"""

from pipeline.batches.execution import BatchRunner, Lane, lease_s
from pipeline.batches.finalize import finalize
from pipeline.batches.store import BatchStore, FileInfo, NewItem

__all__ = ["BatchRunner", "BatchStore", "FileInfo", "Lane", "NewItem", "finalize", "lease_s"]
