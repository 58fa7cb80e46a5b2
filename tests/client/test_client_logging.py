"""What README "Python client" says about httpx's request log in the tenant's own process: at
INFO it writes the full URL, and a recommendation call's URL holds the subject id in its query
string; the ``httpx`` logger at WARNING writes nothing of it. (No server: an httpx mock
transport answers. The lines are read by a handler on the ``httpx`` logger itself, which sees
them before this platform's masking filter on the root handlers would.)"""

from __future__ import annotations

import logging
from collections.abc import Iterator

import httpx
import pytest

from discreet_client import DiscreetClient

SUBJECT = "u-secret-123"


class _Lines(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


@pytest.fixture
def httpx_lines() -> Iterator[tuple[logging.Logger, _Lines]]:
    logger, handler = logging.getLogger("httpx"), _Lines()
    level = logger.level
    logger.addHandler(handler)
    yield logger, handler
    logger.removeHandler(handler)
    logger.setLevel(level)


def _recommend() -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"items": [], "personalized": False})

    with DiscreetClient("http://api.test", "dsk_x_y",
                        transport=httpx.MockTransport(answer)) as client:
        client.recommendations(SUBJECT, n=5)


def test_httpx_at_info_logs_the_url_with_the_subject_id(httpx_lines):
    logger, handler = httpx_lines
    logger.setLevel(logging.INFO)
    _recommend()
    assert any(f"subject={SUBJECT}" in line for line in handler.lines)


def test_the_httpx_logger_at_warning_keeps_it_out(httpx_lines):
    logger, handler = httpx_lines
    logger.setLevel(logging.WARNING)
    _recommend()
    assert handler.lines == []
