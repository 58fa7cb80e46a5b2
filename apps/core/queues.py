from enum import StrEnum


class Queue(StrEnum):
    """Celery queues. One worker consuming all of them is the default deployment."""

    DEFAULT = "celery"
