"""Transparency for subjects and regulators (issue 19): the public "how recommendations
work" page (DSA Art. 27) and the records of processing (GDPR Art. 30), both generated from
the platform's live configuration, plus the tenant's sub-processor registry."""
