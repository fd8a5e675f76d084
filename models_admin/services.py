from __future__ import annotations


def operations_mark_failed() -> int:
    """Mark long operations (pulls, pushes, creates) left running by a dead process as failed."""
    return 0
