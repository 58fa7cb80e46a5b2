"""The admin's sidebar by task, built from ``settings.CONSOLE_NAVIGATION`` (one list).

Each entry is a model label or an admin URL name; an entry whose model is not registered,
or that the user may not view, is left out, and registered models the list does not name
appear under "More", so nothing registered is unreachable."""

from __future__ import annotations

from typing import Any

from django.apps import apps
from django.conf import settings
from django.contrib import admin
from django.http import HttpRequest
from django.urls import NoReverseMatch, reverse


def _model_item(request: HttpRequest, label: str, title: str | None = None,
                icon: str | None = None) -> dict[str, Any] | None:
    try:
        model = apps.get_model(label)
    except (LookupError, ValueError):
        return None
    model_admin = admin.site._registry.get(model)
    if model_admin is None or not model_admin.has_view_permission(request):
        return None
    opts = model._meta
    return {"title": title or str(opts.verbose_name_plural).capitalize(),
            "icon": icon or "chevron_right",
            "link": reverse(f"admin:{opts.app_label}_{opts.model_name}_changelist")}


def _entry_item(request: HttpRequest, entry: str | tuple[str, str, str]
                ) -> dict[str, Any] | None:
    name, title, icon = (entry, None, None) if isinstance(entry, str) else entry
    if ":" not in name:
        return _model_item(request, name, title, icon)
    try:
        link = reverse(name)
    except NoReverseMatch:
        return None
    return {"title": title or name, "icon": icon or "chevron_right", "link": link}


def listed_labels() -> set[str]:
    labels = set()
    for _group, _icon, entries in settings.CONSOLE_NAVIGATION:
        for entry in entries:
            name = entry if isinstance(entry, str) else entry[0]
            if ":" not in name:
                labels.add(name.lower())
    return labels


def sidebar_navigation(request: HttpRequest) -> list[dict[str, Any]]:
    """Unfold's ``SIDEBAR["navigation"]`` for this request."""
    groups = []
    for title, _icon, entries in settings.CONSOLE_NAVIGATION:
        items = [item for entry in entries if (item := _entry_item(request, entry))]
        if items:
            groups.append({"title": title, "separator": True, "collapsible": False,
                           "items": items})
    listed = listed_labels()
    more = [item for model in admin.site._registry
            if model._meta.label_lower not in listed
            and (item := _model_item(request, model._meta.label_lower))]
    if more:
        groups.append({"title": "More", "separator": True, "collapsible": True,
                       "items": sorted(more, key=lambda i: i["title"])})
    return groups
