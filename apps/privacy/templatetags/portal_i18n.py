"""Filters of the portal, the transparency page and the emails to subjects: a request's kind
and status, a store's category, an erasure receipt's model section and what a request
changed, in the reader's language (``apps.privacy.i18n``)."""

from __future__ import annotations

from typing import Any

from django import template

from apps.core.subject_data import category_name as _category_name
from apps.privacy import i18n
from apps.privacy.services.receipts import model_label, model_text

register = template.Library()


@register.filter
def kind_name(privacy_request: Any) -> str:
    return i18n.kind_name(privacy_request)


@register.filter
def status_name(privacy_request: Any) -> str:
    return i18n.status_name(privacy_request)


@register.filter
def legal_basis_name(purpose: Any) -> str:
    return i18n.legal_basis_name(purpose)


@register.filter
def category_name(category: Any) -> str:
    """A subject-data store's category (declared, or as a receipt recorded it)."""
    return _category_name(category)


@register.filter
def receipt_model_label(section: Any) -> str | None:
    """An erasure receipt's model status; ``None`` when the stored one must be shown."""
    return model_label(section) if isinstance(section, dict) else None


@register.filter
def receipt_model_text(section: Any) -> str | None:
    """An erasure receipt's model sentence; ``None`` when the stored (English) one must be
    shown (a receipt written before its fields were kept)."""
    return model_text(section) if isinstance(section, dict) else None


@register.filter
def applied_changes(applied: Any) -> list[dict[str, str]]:
    return i18n.applied_changes(applied)
