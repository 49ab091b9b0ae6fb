"""What every app shares and nothing else: the permission policy, the error family and its
handlers, API base views and pagination, htmx helpers, crypto, idempotency and the audit trail."""
