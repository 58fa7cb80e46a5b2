"""Writes of the privacy app (STYLE S1). Public names live here; the modules hold the code.

What each kind of request needs is declared in :mod:`apps.privacy.kinds`; the modules below
read that table: ``requests`` (receiving and staff actions), ``lifecycle`` (statuses),
``verification``, ``deadlines``, ``fulfilment`` (dispatch and the job runner), and by
responsibility ``erasure`` (its receipt's model section: ``receipts``), ``export``, ``flags``,
``rectification`` (with ``jobs``).
"""

from apps.privacy.services.erasure_check import ErasureCheck, check_subject, verify_erasure
from apps.privacy.services.export import (
    delete_export_files,
    export_link,
    open_download,
    reissue_download_link,
)
from apps.privacy.services.flags import (
    apply_limit_sensitive,
    apply_objection,
    apply_opt_out,
    apply_restriction,
)
from apps.privacy.services.fulfilment import dispatch_fulfilment, run_fulfilment
from apps.privacy.services.jobs import enqueue_fulfilment
from apps.privacy.services.lifecycle import TRANSITIONS, transition_privacy_request
from apps.privacy.services.maintenance import (
    replay_erasures,
    run_housekeeping,
    send_deadline_reminders,
)
from apps.privacy.services.notifications import Contact, looks_like_email
from apps.privacy.services.officer import (
    add_manual_step,
    add_request_note,
    approve_privacy_request,
    assign_privacy_request,
    deny_privacy_request,
    export_queue_csv,
    set_manual_step,
)
from apps.privacy.services.receipts import finalise_model_receipts, reconcile_model_receipts
from apps.privacy.services.rectification import (
    apply_rectification,
    correct_subject_data,
    find_pending_rectification,
    submit_rectification,
)
from apps.privacy.services.requests import (
    COMPLAINT_RIGHTS,
    Filing,
    create_privacy_request,
    extend_privacy_request,
    extension_refusal,
    file_privacy_request,
    fulfil_now,
    reject_privacy_request,
    resend,
)
from apps.privacy.services.verification import (
    close_portal_session,
    get_portal_session,
    get_signing_secret,
    open_portal_session,
    redeem_signed_token,
    rotate_signing_secret,
    sign_portal_token,
    start_email_verification,
    verify_privacy_request,
    verify_with_session,
    verify_with_token,
)

__all__ = [
    "COMPLAINT_RIGHTS",
    "TRANSITIONS",
    "Contact",
    "ErasureCheck",
    "Filing",
    "add_manual_step",
    "add_request_note",
    "apply_limit_sensitive",
    "apply_objection",
    "apply_opt_out",
    "apply_rectification",
    "apply_restriction",
    "approve_privacy_request",
    "assign_privacy_request",
    "check_subject",
    "close_portal_session",
    "correct_subject_data",
    "create_privacy_request",
    "delete_export_files",
    "deny_privacy_request",
    "dispatch_fulfilment",
    "enqueue_fulfilment",
    "export_link",
    "export_queue_csv",
    "extend_privacy_request",
    "extension_refusal",
    "file_privacy_request",
    "finalise_model_receipts",
    "find_pending_rectification",
    "fulfil_now",
    "get_portal_session",
    "get_signing_secret",
    "looks_like_email",
    "open_download",
    "open_portal_session",
    "reconcile_model_receipts",
    "redeem_signed_token",
    "reissue_download_link",
    "reject_privacy_request",
    "replay_erasures",
    "resend",
    "rotate_signing_secret",
    "run_fulfilment",
    "run_housekeeping",
    "send_deadline_reminders",
    "set_manual_step",
    "sign_portal_token",
    "start_email_verification",
    "submit_rectification",
    "transition_privacy_request",
    "verify_erasure",
    "verify_privacy_request",
    "verify_with_session",
    "verify_with_token",
]
