"""The tenant's settings as an admin form, derived from the declarations
(``apps.core.tenant_settings``): one field per setting, typed, bounded, with its choices, its
help text and its default. The form validates each value with the declaration, exactly as
``PATCH /api/v1/settings`` does; an empty field means "the default" (the stored value is
removed)."""

from __future__ import annotations

import re
from typing import Any

from django import forms

from apps.core.tenant_settings import (
    RESET,
    Kind,
    SettingError,
    TenantSetting,
    apply_changes,
    tenant_settings,
)
from apps.tenants.models import Tenant


def _default_text(setting: TenantSetting) -> str:
    default = setting.default
    if default is None or default == []:
        return "none" if setting.kind != Kind.CHOICES else "all"
    if isinstance(default, list):
        return ", ".join(map(str, default))
    return str(default)


def _form_field(setting: TenantSetting) -> forms.Field:
    help_text = f"{setting.help} Default: {_default_text(setting)}."
    common: dict[str, Any] = {"required": False, "help_text": help_text,
                              "label": setting.name}
    kind = setting.kind
    if kind == Kind.INTEGER:
        return forms.IntegerField(min_value=setting.low, max_value=setting.high, **common)
    if kind == Kind.NUMBER:
        return forms.FloatField(min_value=setting.low, max_value=setting.high, **common)
    if kind == Kind.BOOLEAN:
        return forms.TypedChoiceField(
            choices=[("", "Default"), ("true", "Yes"), ("false", "No")],
            coerce=lambda v: v == "true", empty_value=None, **common)
    if kind == Kind.CHOICE:
        return forms.ChoiceField(
            choices=[("", f"Default ({_default_text(setting)})")]
            + [(c, c) for c in setting.choices], **common)
    if kind == Kind.CHOICES:
        return forms.MultipleChoiceField(choices=[(c, c) for c in setting.choices],
                                         widget=forms.CheckboxSelectMultiple, **common)
    if kind == Kind.TIME:
        return forms.CharField(max_length=5, widget=forms.TextInput(
            attrs={"placeholder": "HH:MM", "size": 6}), **common)
    if kind == Kind.DATES:
        return forms.CharField(widget=forms.Textarea(
            attrs={"rows": 2, "cols": 40, "placeholder": "2026-12-25, 2026-12-26"}), **common)
    if kind == Kind.MAPPING:
        return forms.JSONField(widget=forms.Textarea(attrs={"rows": 3, "cols": 60}), **common)
    raise ValueError(f"no form field for {kind}")  # pragma: no cover - declarations


def _initial(setting: TenantSetting, stored: dict[str, Any]) -> Any:
    if setting.name not in stored:
        return None
    value = setting.read(stored)
    if setting.kind == Kind.DATES:
        return ", ".join(value or [])
    if setting.kind == Kind.BOOLEAN and value is not None:
        return "true" if value else "false"
    return value


def _to_json(setting: TenantSetting, value: Any) -> Any:
    """The cleaned form value as the JSON value the declaration validates; ``RESET`` for
    an empty field."""
    if value in (None, "", [], {}):
        return RESET
    if setting.kind == Kind.DATES:
        return [part for part in re.split(r"[\s,;]+", value) if part]
    return value


class TenantSettingsFormMixin(forms.ModelForm):
    """Adds one field per declared setting to a ``Tenant`` form and writes them into
    ``Tenant.settings`` on save (keys no declaration knows are kept as they are)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        stored = self.instance.settings if self.instance and self.instance.pk else {}
        for setting in tenant_settings():
            if setting.name in self.fields and not self.is_bound:
                self.fields[setting.name].initial = _initial(setting, stored or {})

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        changes: dict[str, Any] = {}
        for setting in tenant_settings():
            if setting.name not in self.fields or setting.name in self.errors:
                continue
            value = _to_json(setting, cleaned.get(setting.name))
            if value is RESET:
                changes[setting.name] = RESET
                continue
            try:
                changes[setting.name] = setting.validate(value)
            except SettingError as exc:
                self.add_error(setting.name, str(exc))
        self.settings_changes = changes
        return cleaned

    def save(self, commit: bool = True) -> Tenant:
        instance = self.instance
        instance.settings = apply_changes(instance.settings or {},
                                          getattr(self, "settings_changes", {}))
        return super().save(commit)


def tenant_settings_form(base: type[forms.ModelForm]) -> type[forms.ModelForm]:
    """``base`` (the admin's Tenant form) with the settings' fields declared on it."""
    attrs: dict[str, Any] = {s.name: _form_field(s) for s in tenant_settings()}
    attrs["__module__"] = __name__
    return type("TenantSettingsForm", (TenantSettingsFormMixin, base), attrs)


def settings_fieldsets() -> list[tuple[str, dict[str, Any]]]:
    """The settings' fields grouped as declared, one fieldset per group."""
    groups: dict[str, list[str]] = {}
    for setting in tenant_settings():
        groups.setdefault(setting.group, []).append(setting.name)
    return [(f"Settings: {group}", {"fields": names})
            for group, names in groups.items()]
