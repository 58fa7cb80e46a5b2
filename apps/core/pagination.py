from typing import Any

from rest_framework import pagination, serializers


class CursorPagination(pagination.CursorPagination):
    """Stable pages on append-heavy tables; clients pass ``?cursor=`` and ``?page_size=``."""

    ordering = "-id"
    page_size_query_param = "page_size"
    max_page_size = 500

    def get_page_size(self, request: Any) -> int:
        """``?page_size=`` as the schema says: a whole number from 1 (refused otherwise,
        where DRF would silently use the default); above ``max_page_size`` it is capped."""
        raw = request.query_params.get(self.page_size_query_param)
        if raw is None:
            return self.page_size
        if not raw.isascii() or not raw.isdigit() or int(raw) < 1:
            raise serializers.ValidationError(
                {self.page_size_query_param: ["A whole number from 1."]})
        return min(int(raw), self.max_page_size)
