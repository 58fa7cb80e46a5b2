"""The tenant settings registry: each per-tenant setting (``Tenant.settings`` JSON) is
declared once, here or in an app's own ``tenant_settings.py``, with its type, range or
choices, default and help text. Everything else is derived from the declarations:

* the readers: :meth:`TenantSetting.read` gives the stored value when it is valid, else the
  default (a bad stored value never breaks training, ingestion or a deadline);
* the API's validation (``GET|PATCH /api/v1/settings``): :func:`validate_changes` names
  every unknown key and every bad value;
* the admin's form (``apps.tenants.forms.TenantSettingsForm``): one field per declaration.

Adding a setting is one :func:`declare` call in the owning app's ``tenant_settings.py``
(found by :func:`load_declarations`, Django's module autodiscovery). Core imports no app:
choices that come from an app's own table are given as a callable.
"""

from __future__ import annotations

import math
import re
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from enum import StrEnum
from typing import Any

from apps.core.exceptions import ApplicationError


class Kind(StrEnum):
    INTEGER = "integer"
    NUMBER = "number"
    BOOLEAN = "boolean"
    CHOICE = "choice"          # one of ``choices``
    CHOICES = "choices"        # a list of distinct values out of ``choices``
    TIME = "time"              # "HH:MM" (UTC)
    DATES = "dates"            # a list of ISO dates, "YYYY-MM-DD"
    MAPPING = "mapping"        # a JSON object, checked by the declaration's ``check``


class SettingError(ValueError):
    """A value a setting does not accept; the message says why in plain words."""


_HH_MM = re.compile(r"^([01]?\d|2[0-3]):([0-5]\d)$")
Choices = Sequence[str] | Callable[[], Sequence[str]]


@dataclass(frozen=True)
class TenantSetting:
    name: str
    kind: Kind
    default: Any
    help: str
    group: str
    low: float | None = None
    high: float | None = None
    choices_source: Choices | None = field(default=None, repr=False)
    #: ``None`` is a value of its own (not "unset"): e.g. ``model_algorithms`` null = all.
    nullable: bool = False
    #: ``Kind.MAPPING`` only: returns the cleaned object or raises ``ValueError`` (whose
    #: message, or ``.message``, says why).
    check: Callable[[Any], Any] | None = field(default=None, repr=False, compare=False)

    @property
    def choices(self) -> tuple[str, ...]:
        source = self.choices_source
        if source is None:
            return ()
        return tuple(source() if callable(source) else source)

    def validate(self, value: Any) -> Any:
        """The value to store, or :class:`SettingError`. Strict: JSON types as declared
        (``true`` is not a number, ``"5"`` is not an integer); a whole float is accepted
        for an integer."""
        if value is None:
            if self.nullable:
                return None
            raise SettingError("may not be null")
        kind = self.kind
        if kind in (Kind.INTEGER, Kind.NUMBER):
            if isinstance(value, bool) or not isinstance(value, int | float):
                what = "a whole number" if kind == Kind.INTEGER else "a number"
                raise SettingError(f"must be {what}")
            if isinstance(value, float) and not math.isfinite(value):
                raise SettingError("must be a finite number")
            if kind == Kind.INTEGER:
                if isinstance(value, float) and not value.is_integer():
                    raise SettingError("must be a whole number")
                value = int(value)
            else:
                value = float(value)
            if self.low is not None and value < self.low:
                raise SettingError(f"must be at least {_fmt(self.low)}")
            if self.high is not None and value > self.high:
                raise SettingError(f"must be at most {_fmt(self.high)}")
            return value
        if kind == Kind.BOOLEAN:
            if not isinstance(value, bool):
                raise SettingError("must be true or false")
            return value
        if kind == Kind.CHOICE:
            if not isinstance(value, str) or value not in self.choices:
                raise SettingError(f"must be one of: {', '.join(self.choices)}")
            return value
        if kind == Kind.CHOICES:
            if not isinstance(value, list | tuple):
                raise SettingError("must be a list")
            allowed = self.choices
            bad = [v for v in value if not isinstance(v, str) or v not in allowed]
            if bad:
                raise SettingError(f"may only hold: {', '.join(allowed)}")
            return list(dict.fromkeys(value))
        if kind == Kind.TIME:
            if not isinstance(value, str) or not _HH_MM.match(value.strip()):
                raise SettingError("must be a time of day, HH:MM (UTC)")
            hours, minutes = value.strip().split(":")
            return f"{int(hours):02d}:{minutes}"
        if kind == Kind.DATES:
            if not isinstance(value, list | tuple):
                raise SettingError("must be a list of dates (YYYY-MM-DD)")
            days: list[str] = []
            for item in value:
                try:
                    if not isinstance(item, str):
                        raise ValueError
                    days.append(date.fromisoformat(item).isoformat())
                except ValueError:
                    raise SettingError(f"{str(item)[:40]!r} is not a date (YYYY-MM-DD)") from None
            return sorted(set(days))
        if kind == Kind.MAPPING:
            if not isinstance(value, dict):
                raise SettingError("must be an object")
            if self.check is None:
                return dict(value)
            try:
                return self.check(value)
            except (ValueError, TypeError, ApplicationError) as exc:
                raise SettingError(str(getattr(exc, "message", exc))) from None
        raise SettingError(f"unsupported kind {kind}")  # pragma: no cover - declarations

    def read(self, stored: Mapping[str, Any]) -> Any:
        """The effective value in a tenant's ``settings``: the stored one when valid, else
        the default."""
        if self.name not in stored:
            return self.default
        value = stored[self.name]
        if self.kind == Kind.DATES and isinstance(value, list | tuple):
            # Lenient per element: one mistyped holiday does not drop the others, ...
            value = [v for v in value if _is_date(v)]
        elif self.kind == Kind.CHOICES and isinstance(value, list | tuple):
            # ... nor one choice no longer offered (an algorithm since removed) the rest.
            allowed = self.choices
            value = [v for v in value if isinstance(v, str) and v in allowed]
        try:
            return self.validate(value)
        except SettingError:
            return self.default

    def describe(self) -> dict[str, Any]:
        """The declaration as JSON (the API's ``declarations``)."""
        out: dict[str, Any] = {"type": str(self.kind), "default": self.default,
                               "help": self.help, "group": self.group}
        if self.low is not None:
            out["minimum"] = self.low
        if self.high is not None:
            out["maximum"] = self.high
        if self.choices_source is not None:
            out["choices"] = list(self.choices)
        if self.nullable:
            out["nullable"] = True
        return out


def _fmt(number: float) -> str:
    return str(int(number)) if float(number).is_integer() and abs(number) < 1e15 else str(number)


def _is_date(value: Any) -> bool:
    try:
        date.fromisoformat(value)
    except (TypeError, ValueError):
        return False
    return isinstance(value, str)


_registry: dict[str, TenantSetting] = {}
_lock = threading.Lock()
_loaded = False


def declare(name: str, kind: Kind, *, default: Any, help: str, group: str,
            low: float | None = None, high: float | None = None,
            choices: Choices | None = None, nullable: bool = False,
            check: Callable[[Any], Any] | None = None) -> TenantSetting:
    """Declare one tenant setting (once: a second declaration of a name is an error, unless
    it is the same declaration, as when a module is imported twice)."""
    setting = TenantSetting(name=name, kind=kind, default=default, help=help, group=group,
                            low=low, high=high, choices_source=choices, nullable=nullable,
                            check=check)
    with _lock:
        existing = _registry.get(name)
        if existing is not None and existing != setting:
            raise ValueError(f"tenant setting {name!r} is declared twice")
        _registry[name] = setting
    return setting


def load_declarations() -> None:
    """Import every installed app's ``tenant_settings`` module (once)."""
    global _loaded
    if _loaded:
        return
    from django.utils.module_loading import autodiscover_modules

    autodiscover_modules("tenant_settings")
    _loaded = True


def tenant_settings() -> list[TenantSetting]:
    """Every declared setting, by group then name."""
    load_declarations()
    return sorted(_registry.values(), key=lambda s: (s.group, s.name))


def get_setting(name: str) -> TenantSetting:
    load_declarations()
    return _registry[name]


def declared_setting(name: str) -> TenantSetting | None:
    """The declaration of ``name`` if one is registered (no discovery: safe at import)."""
    return _registry.get(name)


def effective_settings(stored: Mapping[str, Any]) -> dict[str, Any]:
    """Every declared setting's effective value for a tenant's stored ``settings``."""
    return {s.name: s.read(stored) for s in tenant_settings()}


def validate_changes(changes: Any) -> tuple[dict[str, Any], dict[str, list[str]]]:
    """``(valid changes, errors by field)`` for a PATCH body: ``{name: value}``, where
    ``null`` resets a non-nullable setting to its default (the key is removed). Unknown
    names are errors; so is a body that is not an object (under ``non_field_errors``)."""
    if not isinstance(changes, Mapping):
        return {}, {"non_field_errors": ["Send a JSON object of setting names and values."]}
    load_declarations()
    valid: dict[str, Any] = {}
    errors: dict[str, list[str]] = {}
    for name, value in changes.items():
        setting = _registry.get(name) if isinstance(name, str) else None
        if setting is None:
            errors[str(name)[:100]] = ["Unknown setting."]
            continue
        if value is None and not setting.nullable:
            valid[name] = RESET
            continue
        try:
            valid[name] = setting.validate(value)
        except SettingError as exc:
            errors[name] = [str(exc)]
    return valid, errors


class _Reset:
    def __repr__(self) -> str:
        return "RESET"


#: In the valid changes: remove the stored value (the default applies again).
RESET: Any = _Reset()


def apply_changes(stored: Mapping[str, Any], changes: Mapping[str, Any]) -> dict[str, Any]:
    """The new ``settings`` dict: ``stored`` with ``changes`` (from
    :func:`validate_changes`) applied."""
    result = dict(stored)
    for name, value in changes.items():
        if value is RESET:
            result.pop(name, None)
        else:
            result[name] = value
    return result
