"""Hooks other apps may listen to (cross-cutting only: STYLE S2).

:data:`privacy_request_status_changed` is sent by
:func:`apps.privacy.services.lifecycle.transition_privacy_request`, the one function every
status change goes through, inside the transaction that makes the change. Keyword
arguments: ``privacy_request`` (the request, already saved), ``previous`` and ``status``
(status values) and ``event`` (``"privacy_request.<status>"``, e.g.
``"privacy_request.awaiting_approval"``, the name a webhook uses). A receiver that sends
anything outside the database does it in ``transaction.on_commit``. The request carries
its pseudonymous ``subject_key``: a receiver must not pass it on.
"""

from django.dispatch import Signal

privacy_request_status_changed = Signal()
