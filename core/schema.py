"""drf-spectacular hooks: the error responses every management API operation can give.

Each view documents its own specific errors (a 409 for an existing budget, a 400 naming the
field…); this hook adds, where a view did not, the ones that follow from the API's common rules
(SPEC §5): 401 without valid credentials, 403 for a role that may not act, 404 for an object
that does not exist or is in another resource group, 400 for a body or filter that is invalid,
413 for a body over `AIGW_API_MAX_BODY_BYTES`, and, for operations that take an
`Idempotency-Key`, 409 and 422.
"""

from __future__ import annotations

ERROR_SCHEMA = {
    "type": "object",
    "description": 'DRF\'s error: `{"detail": "…"}`, or `{"<field>": ["<message>"]}` for invalid input.',
    "additionalProperties": True,
}

_COMMON = {
    "401": "No valid credentials: send `Authorization: Bearer aigwp_…` or use the console session.",
    "403": "The user's role in the resource group does not allow this.",
}
_BODY = {
    "400": 'The body is invalid: `{"<field>": ["<message>"]}`.',
    "413": "The body is larger than AIGW_API_MAX_BODY_BYTES.",
    "415": "The body is not JSON (`Content-Type: application/json`).",
}
_IDEMPOTENCY = {
    "409": "A request with this Idempotency-Key is still being processed.",
    "422": "This Idempotency-Key was used with another request.",
}


def _add(responses: dict, code: str, description: str) -> None:
    if code not in responses:
        responses[code] = {
            "description": description,
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
        }


def add_common_error_responses(result: dict, generator, request, public) -> dict:
    """POSTPROCESSING_HOOKS entry: add the common error responses to every `/api/v1/` operation."""
    result.setdefault("components", {}).setdefault("schemas", {})["Error"] = ERROR_SCHEMA
    for path, operations in result.get("paths", {}).items():
        if not path.startswith("/api/v1/"):
            continue
        for method, operation in operations.items():
            if method not in {"get", "post", "put", "patch", "delete"}:
                continue
            responses = operation.setdefault("responses", {})
            for code, description in _COMMON.items():
                _add(responses, code, description)
            if "{" in path:
                _add(responses, "404", "No such object, or it is in a resource group the user is not a member of.")
            if method in {"post", "put", "patch"}:
                for code, description in _BODY.items():
                    _add(responses, code, description)
            if any(p.get("name") == "Idempotency-Key" for p in operation.get("parameters", [])):
                for code, description in _IDEMPOTENCY.items():
                    _add(responses, code, description)
            if any(p.get("name") == "page" and p.get("in") == "query" for p in operation.get("parameters", [])):
                _add(responses, "404", 'The page does not exist: `{"detail": "Invalid page."}`.')
            if method == "get" and operation.get("parameters"):
                _add(responses, "400", 'A query parameter is invalid: `{"<parameter>": ["<message>"]}`.')
    return result
