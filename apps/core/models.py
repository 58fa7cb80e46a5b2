"""The base model every app builds on (STYLE S2). Tenant-owned rows inherit
``apps.tenants.scoping.TenantOwnedModel``, which builds on this one."""

from __future__ import annotations

from django.db import models


class BaseModel(models.Model):
    created_at = models.DateTimeField(auto_now_add=True, db_index=False)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        abstract = True
