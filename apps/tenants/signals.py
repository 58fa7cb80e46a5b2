"""Signals the tenancy layer sends for the layers above it to act on.

``subject_data_viewed``: a member opened subject data in the admin (privacy invariant 5).
Sent by :class:`apps.tenants.admin.AuditedSubjectDataAdminMixin` with ``tenant``, ``user``,
``target`` (a row, or a ``(model label, "")`` pair for a list page), ``model``,
``rows_shown`` and ``subject_key``; the audit app records it (``AuditConfig.ready``). Sent
with ``send``, not ``send_robust``: when the entry cannot be written, the page fails rather
than show subject data unaudited.
"""

from django.dispatch import Signal

subject_data_viewed = Signal()
