"""Writes of the privacy app (STYLE S1). Public names live here; the modules hold the code."""

from apps.privacy.services.erasure_check import ErasureCheck, check_subject, verify_erasure
from apps.privacy.services.export import (
    delete_export_files,
    export_link,
    open_download,
    reissue_download_link,
)
from apps.privacy.services.flags import apply_consent_flags
from apps.privacy.services.fulfilment import run_fulfilment
from apps.privacy.services.jobs import enqueue_fulfilment
from apps.privacy.services.maintenance import (
    replay_erasures,
    run_housekeeping,
    send_deadline_reminders,
)
from apps.privacy.services.notifications import Contact, looks_like_email
from apps.privacy.services.rectification import apply_rectification
from apps.privacy.services.requests import (
    COMPLAINT_RIGHTS,
    TRANSITIONS,
    create_privacy_request,
    extend_privacy_request,
    fulfil_now,
    reject_privacy_request,
    resend,
    transition_privacy_request,
    verify_privacy_request,
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
    verify_with_session,
    verify_with_token,
)

__all__ = [
    "COMPLAINT_RIGHTS",
    "TRANSITIONS",
    "Contact",
    "ErasureCheck",
    "apply_consent_flags",
    "apply_rectification",
    "check_subject",
    "close_portal_session",
    "create_privacy_request",
    "delete_export_files",
    "enqueue_fulfilment",
    "export_link",
    "extend_privacy_request",
    "fulfil_now",
    "get_portal_session",
    "get_signing_secret",
    "looks_like_email",
    "open_download",
    "open_portal_session",
    "redeem_signed_token",
    "reissue_download_link",
    "reject_privacy_request",
    "replay_erasures",
    "resend",
    "rotate_signing_secret",
    "run_fulfilment",
    "run_housekeeping",
    "send_deadline_reminders",
    "sign_portal_token",
    "start_email_verification",
    "transition_privacy_request",
    "verify_erasure",
    "verify_privacy_request",
    "verify_with_session",
    "verify_with_token",
]
