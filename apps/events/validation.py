"""Checks on client-supplied text shared by ingestion and the catalog."""

from __future__ import annotations


def is_clean_text(value: str) -> bool:
    """Whether ``value`` can be stored and echoed as it is: no NUL character (PostgreSQL
    text and jsonb refuse it) and valid Unicode (JSON lets a client send a lone surrogate,
    which no UTF-8 encoder accepts)."""
    if "\x00" in value:
        return False
    if value.isascii():
        return True
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def reported_name(name: object, limit: int = 64) -> str:
    """A client-sent key as it may appear in a report: cut short, made printable."""
    text = str(name)[:limit]
    return text if is_clean_text(text) else text.encode("utf-8", "backslashreplace").decode(
        "utf-8").replace("\x00", "\\x00")
