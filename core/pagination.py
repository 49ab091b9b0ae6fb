"""The one cursor pager of usage events and audit events, shared by the management API and the
console's Logs and Audit trail pages: newest first (`created_at`, then `id`, descending), 50
rows a page by default (`?page_size=`, at most 500), `?cursor=` an opaque token. Pages hold
while new rows arrive: a row written after the first page is read never shifts the later ones.
An unreadable cursor is a 404 (`{"detail": "Invalid cursor"}` in the API, the 404 page in the
console).
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

from django.core.exceptions import ObjectDoesNotExist
from django.db.models import QuerySet
from django.http import Http404, HttpRequest
from rest_framework.exceptions import NotFound
from rest_framework.pagination import CursorPagination
from rest_framework.request import Request


class NewestFirstPagination(CursorPagination):
    """DRF's cursor pagination in our order: follow `next` and `previous`; `?page_size=` 50 by
    default, at most 500. The API's responses are `{"next": url|null, "previous": url|null,
    "results": [...]}`."""

    ordering = ("-created_at", "-id")
    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 500


@dataclass(frozen=True)
class CursorPage:
    """One console page: its rows, and the query strings (without `?`) of the older and newer
    pages, None at either end. The query strings keep every other parameter (the filters)."""

    rows: list
    next_query: str | None
    previous_query: str | None


def cursor_page(queryset: QuerySet, request: HttpRequest) -> CursorPage:
    """The page of `queryset` that `request`'s `?cursor=` and `?page_size=` name, read with
    `NewestFirstPagination` exactly as the API reads it (one query of `page_size + 1` rows).

    Raises:
        Http404: for an unreadable cursor.
    """
    pager = NewestFirstPagination()
    try:
        rows = pager.paginate_queryset(queryset, Request(request)) or []
    except (NotFound, ObjectDoesNotExist) as error:
        raise Http404("Invalid cursor.") from error

    def query(link: str | None) -> str | None:
        return urlsplit(link).query if link else None

    return CursorPage(list(rows), query(pager.get_next_link()), query(pager.get_previous_link()))
