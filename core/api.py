"""What every management API view (`/api/v1/`) shares: its base view and page-number pagination.

Errors are rendered by the one handler of `core.api_errors` (REST_FRAMEWORK's `EXCEPTION_HANDLER`);
the cursor pager of long lists (usage events, audit events) is `core.pagination`.
"""

from __future__ import annotations

from rest_framework import generics
from rest_framework.pagination import PageNumberPagination


class ManagementPagination(PageNumberPagination):
    """Page-number pagination: `?page=2&page_size=100`; 50 per page by default, at most 200."""

    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 200


class ManagementView(generics.GenericAPIView):
    """The base of every management API view. `service_fields` (`{service field: API field}`)
    renames the fields of a service's 400, so the error names what the client sent."""

    service_fields: dict[str, str] = {}
