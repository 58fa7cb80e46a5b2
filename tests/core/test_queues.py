"""Tasks land on their workload's queue (apps.core.queues), so a training worker can be kept
apart from privacy requests."""

from __future__ import annotations

from django.conf import settings

from platform_site.celery import app


def _queue(task_name: str) -> str:
    return app.amqp.router.route({}, task_name)["queue"].name


def test_tasks_are_routed_by_workload() -> None:
    default = settings.CELERY_TASK_DEFAULT_QUEUE
    assert _queue("apps.privacy.tasks.fulfil_privacy_request_task") == f"{default}.privacy"
    assert _queue("apps.modeling.tasks.train_model_task") == f"{default}.training"
    assert _queue("apps.events.tasks.enforce_history_cap_task") == f"{default}.ingest"
    assert _queue("apps.audit.tasks.verify_audit_chain_task") == default


def test_every_registered_task_has_a_declared_queue() -> None:
    app.loader.import_default_modules()
    declared = {queue.name for queue in settings.CELERY_TASK_QUEUES}
    ours = [name for name in app.tasks if name.startswith("apps.")]
    assert ours
    for name in ours:
        assert _queue(name) in declared, name


def test_each_queue_has_its_own_binding() -> None:
    """A message is published to an exchange with a routing key: two queues bound alike
    would both receive it, and a task would run once per queue."""
    queues = list(app.amqp.queues.values())
    bindings = {(queue.exchange.name, queue.routing_key) for queue in queues}
    assert len(bindings) == len(queues)
    for queue in queues:
        assert queue.routing_key == queue.name
