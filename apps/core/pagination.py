from rest_framework import pagination


class CursorPagination(pagination.CursorPagination):
    """Stable pages on append-heavy tables; clients pass ``?cursor=`` and ``?page_size=``."""

    ordering = "-id"
    page_size_query_param = "page_size"
    max_page_size = 500
