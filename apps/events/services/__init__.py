"""Writes of the events app (STYLE S1). Public names live here; the modules hold the code."""

from apps.events.services.catalog import (
    MAX_ITEMS_PER_BATCH,
    ItemUpsertReport,
    deactivate_item,
    upsert_items,
)
from apps.events.services.history import (
    HistoryCapReport,
    enforce_history_cap,
    request_history_cap,
    run_history_cap_job,
)
from apps.events.services.ingestion import (
    MAX_EVENTS_PER_BATCH,
    IngestReport,
    Reason,
    Status,
    ingest_events,
)
from apps.events.services.schema import (
    DEFAULT_EVENT_PROPERTIES,
    DEFAULT_EVENT_TYPES,
    DEFAULT_ITEM_ATTRIBUTES,
    provision_event_schema,
)

__all__ = [
    "DEFAULT_EVENT_PROPERTIES",
    "DEFAULT_EVENT_TYPES",
    "DEFAULT_ITEM_ATTRIBUTES",
    "MAX_EVENTS_PER_BATCH",
    "MAX_ITEMS_PER_BATCH",
    "HistoryCapReport",
    "IngestReport",
    "ItemUpsertReport",
    "Reason",
    "Status",
    "deactivate_item",
    "enforce_history_cap",
    "ingest_events",
    "provision_event_schema",
    "request_history_cap",
    "run_history_cap_job",
    "upsert_items",
]
