"""The tenant's sub-processors (GDPR Art. 28(2)/(4), Art. 30(1)(d)-(e)): whom the tenant
lets process its subjects' data besides Discreet, where, and under which safeguards. They
are listed in the records of processing; the platform itself sends no subject data to them."""

from __future__ import annotations

from django.db import models
from django.utils.translation import gettext_lazy as _

from apps.tenants.scoping import TenantOwnedModel


class SubProcessor(TenantOwnedModel):
    """One sub-processor of a tenant, as its records of processing list it."""

    class TransferMechanism(models.TextChoices):
        NONE = "none", _("No transfer outside the EEA")
        ADEQUACY = "adequacy", _("Adequacy decision (GDPR Art. 45)")
        SCC = "scc", _("Standard contractual clauses (Art. 46(2)(c))")
        BCR = "bcr", _("Binding corporate rules (Art. 47)")
        DEROGATION = "derogation", _("Derogation for a specific situation (Art. 49)")

    name = models.CharField(max_length=200)
    purpose = models.TextField(help_text=_("What it does with the data, in plain words."))
    location = models.CharField(
        max_length=200, help_text=_("Where the data is processed, e.g. 'Frankfurt, Germany "
                                    "(EU)'."))
    transfer_mechanism = models.CharField(
        max_length=16, choices=TransferMechanism.choices, default=TransferMechanism.NONE,
        help_text=_("The legal ground of a transfer outside the EEA, if there is one."))
    safeguards = models.TextField(
        help_text=_("The contract and the technical and organisational safeguards (e.g. "
                    "'DPA of 2026-01-10; encryption at rest; EU data residency')."))

    class Meta:
        ordering = ["tenant_id", "name"]
        verbose_name = _("sub-processor")
        verbose_name_plural = _("sub-processors")
        constraints = [
            models.UniqueConstraint(fields=["tenant", "name"], name="subprocessor_unique_name"),
        ]

    def __str__(self) -> str:
        return self.name

    @property
    def is_transfer(self) -> bool:
        """A transfer to a third country (GDPR Chapter V)."""
        return self.transfer_mechanism != self.TransferMechanism.NONE
