"""Filters of the portal and the emails to subjects: a request's kind and status in the
reader's language (``apps.privacy.i18n``)."""

from __future__ import annotations

from typing import Any

from django import template

from apps.privacy import i18n

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
