from __future__ import annotations


def replies_mark_interrupted() -> int:
    return 0
