"""The `/v1/` data plane: a plain ASGI application, async end to end.

Per request: authenticate the key (cached, see registry), read and check the body, resolve the
model, ask the limit engine whether the request may go, forward it to the provider, pass the
answer back unchanged (plus `x-request-id`), then count its usage and queue its usage event.
No Django request, template or session machinery runs here, and a warm key costs no SQL.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import orjson
from asgiref.sync import sync_to_async
from django.db import InterfaceError, OperationalError

from core.client_address import scope_client_address
from core.db import unreachable
from core.redis import REDIS_ERRORS
from dataplane.errors import ProxyError, internal_error, invalid_api_key, invalid_request, service_unavailable
from dataplane.providers.base import ProviderClient, UpstreamError, UpstreamResponse, UpstreamStream
from dataplane.providers.mock import MockClient
from dataplane.providers.openai import OpenAICompatibleClient
from dataplane.registry import KeyContext, ModelRoute, Registry
from dataplane.throttle import InvalidKeyThrottle
from dataplane.validation import check_chat_body
from gateway.pricing import Prices, TokenUsage
from keys.models import ApiKeyStatus, SuspendedReason
from keys.services import api_keys_mark_used
from keys.tokens import hash_secret
from quotas import estimate as estimating
from quotas.counters import RedisCounters, make_counters, units_to_usd
from quotas.engine import MINUTE, Admission, Estimate, LimitEngine, LimitExceeded, LimitRule, StaleConfig
from quotas.models import Level
from quotas.periods import window_end, window_start
from usage.recorder import UsageRecorder
from usage.refusals import RefusalLog

log = logging.getLogger(__name__)

LAST_USED_WRITE_INTERVAL = 60.0  # seconds; `ApiKey.last_used_at` is written at most this often
GIL_SWITCH_INTERVAL_SECONDS = 0.0005
LAST_USED_FLUSH_SECONDS = 1.0  # the keys first used within this long are written in one UPDATE


def _now() -> datetime:
    return datetime.now(UTC)


def _header(scope, name: bytes) -> str:
    for key, value in scope["headers"]:
        if key == name:
            return value.decode("latin-1")
    return ""


def _secret_from(scope) -> str:
    authorization = _header(scope, b"authorization")
    if authorization[:7].lower() == "bearer ":
        return authorization[7:].strip()
    return _header(scope, b"api-key").strip()


async def _send_bytes(send, status: int, body: bytes, headers: list[tuple[bytes, bytes]]) -> None:
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


@dataclass(slots=True)
class _Seen:
    """What one request has shown so far, for the usage event of a refusal: when it came, the
    key it authenticated with, the model and stream it asked for, and whether a `_Meter` has
    taken over its metering (then no refusal event is written for it)."""

    now: datetime
    started: float
    endpoint: str
    key: KeyContext | None = None
    model: str = ""
    stream: bool = False
    metered: bool = field(default=False)


SEEN = "aigw.seen"  # the scope entry holding the request's `_Seen`


def _endpoint(path: str) -> str:
    """The usage event's endpoint name of a `/v1/` path: `chat.completions`, `models`…"""
    return path.removeprefix("/v1/").strip("/").replace("/", ".")[:64] or "unknown"


@dataclass(slots=True)
class _Meter:
    """One request's metering state: its usage event so far, admission, start time and prices."""

    event: dict
    admission: Admission
    started: float
    prices: Prices


class _Disconnect:
    """Watches `receive` for the client going away once the request body has been read."""

    def __init__(self, receive) -> None:
        self.happened = False
        self._task = asyncio.get_running_loop().create_task(self._watch(receive))

    async def _watch(self, receive) -> None:
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                self.happened = True
                return

    def stop(self) -> None:
        self._task.cancel()


class ProxyApp:
    """The ASGI application mounted at `/v1/`."""

    def __init__(self) -> None:
        from django.conf import settings

        # The usage writer's thread shares the GIL with the event loop: a request that arrives
        # while it builds a batch waits at most this long for it (Python's default is 5 ms).
        sys.setswitchinterval(GIL_SWITCH_INTERVAL_SECONDS)
        self.max_body_bytes = settings.AIGW_MAX_BODY_BYTES
        self.tpm_estimate = settings.AIGW_TPM_ESTIMATE  # "o200k" or "characters"
        # An intent's lease: by then its request has ended, whatever the upstream did.
        self.intent_lease = timedelta(seconds=settings.AIGW_UPSTREAM_TIMEOUT_SECONDS + 60)
        counters = make_counters()
        # The config versions live beside the counters: in Redis, or in this process's memory.
        if isinstance(counters, RedisCounters):
            self.registry = Registry(counters.read_versions)
        else:
            self.registry = Registry()
        # On one Redis server a warm key's versions are read with its limit check (`_admit`).
        self.one_round_trip = isinstance(counters, RedisCounters) and counters.one_server
        self.throttle = InvalidKeyThrottle.from_settings()
        self.limits = LimitEngine(counters)
        # Counters that Redis can lose count each stored usage event their rebuild missed.
        self.recorder = UsageRecorder(after_write=None if counters.durable else self.limits.after_write)
        self.refusals = RefusalLog(self.recorder.record, per_minute=settings.AIGW_REFUSAL_EVENTS_PER_MINUTE)
        self.clients: dict[str, ProviderClient] = {"mock": MockClient(), "openai": OpenAICompatibleClient()}
        self._last_used_written: dict[int, float] = {}  # key id -> monotonic time it was noted
        self._used: list[int] = []  # key ids whose last use is written in the next batch
        self._background: set[asyncio.Task] = set()

    async def close(self) -> None:
        """Write queued usage events and close upstream and Redis connections."""
        self.refusals.close()
        await self.recorder.close()
        for client in self.clients.values():
            await client.close()
        await self.throttle.close()
        close = getattr(self.limits.counters, "close", None)
        if close is not None:
            await close()

    async def __call__(self, scope, receive, downstream) -> None:
        """Serve one `/v1/` request. Errors are answered OpenAI-shaped: a `ProxyError` as it
        says; the database or Redis unreachable as 503 `service_unavailable` with `retry-after`;
        anything else (a statement the database refuses included) as 500 `internal_error` naming
        the request id, logged with its traceback.
        An error after the answer has started is logged and ends the answer. An error answered
        before a request was forwarded (a refusal) is a usage event too (`_refused`)."""
        request_id = "req_" + uuid.uuid4().hex
        base_headers = [(b"x-request-id", request_id.encode())]
        started = False
        seen = scope[SEEN] = _Seen(_now(), time.perf_counter(), _endpoint(scope["path"]))

        async def send(message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await downstream(message)

        try:
            path, method = scope["path"].rstrip("/"), scope["method"]
            if path == "/v1/chat/completions":
                if method != "POST":
                    raise ProxyError(405, "method_not_allowed", "Use POST for /v1/chat/completions.")
                await self._chat(scope, receive, send, request_id, base_headers)
            elif path in ("/v1/models", "/v1/key", "/v1/quotas"):
                if method != "GET":
                    raise ProxyError(405, "method_not_allowed", f"Use GET for {path}.")
                handler = {"/v1/models": self._models, "/v1/key": self._key, "/v1/quotas": self._quotas}[path]
                await handler(scope, send, base_headers)
            else:
                raise ProxyError(404, "unknown_url", f"Unknown request URL: {method} {scope['path']}.")
        except ProxyError as error:
            await self._answer_error(send, started, base_headers, error)
            self._refused(scope, seen, request_id, error)
        except (OperationalError, InterfaceError) as exc:
            if not unreachable(exc):  # a statement the database refuses: a bug
                log.exception("request %s failed", request_id)
                answer = internal_error(request_id)
            else:
                log.warning("request %s: the database is unreachable: %s", request_id, exc)
                answer = service_unavailable("database")
            await self._answer_error(send, started, base_headers, answer)
            self._refused(scope, seen, request_id, answer)
        except REDIS_ERRORS as exc:
            log.warning("request %s: Redis is unreachable: %s", request_id, exc)
            answer = service_unavailable("counters (Redis)")
            await self._answer_error(send, started, base_headers, answer)
            self._refused(scope, seen, request_id, answer)
        except Exception:
            log.exception("request %s failed", request_id)
            answer = internal_error(request_id)
            await self._answer_error(send, started, base_headers, answer)
            self._refused(scope, seen, request_id, answer)

    def _refused(self, scope, seen: _Seen, request_id: str, error: ProxyError) -> None:
        """Queue the usage event of a request answered with `error` before it was forwarded:
        status and error code, zero tokens and cost, no provider; the key, gateway, group and
        model where they were known, and the client's address (never the secret). Through
        `RefusalLog`, so a flood of refusals is counted, not written row by row. Never raises."""
        if seen.metered:
            return  # forwarded: its own usage event says how it ended
        key = seen.key
        try:
            self.refusals.refuse(
                {
                    "request_id": request_id,
                    "created_at": seen.now,
                    "resource_group_id": key.resource_group_id if key else None,
                    "gateway_id": key.gateway_id if key else None,
                    "api_key_id": key.key_id if key else None,
                    "api_key_name": key.key_name[:100] if key else "",
                    "endpoint": seen.endpoint,
                    "model_requested": seen.model[:200],
                    "stream": seen.stream,
                    "status_code": error.status,
                    "error_code": error.code[:64],
                    "cost_usd": Decimal(0),
                    "latency_ms": int((time.perf_counter() - seen.started) * 1000),
                    "client_address": scope_client_address(scope)[:64],
                }
            )
        except Exception:
            log.exception("the refusal of request %s could not be recorded", request_id)

    @staticmethod
    async def _answer_error(send, started: bool, base_headers, error: ProxyError) -> None:
        if started:
            log.warning("the answer had started; it ends here without %s", error.code)
            return
        headers = [*base_headers, (b"content-type", b"application/json")]
        headers += [(k.encode(), v.encode()) for k, v in error.headers.items()]
        await _send_bytes(send, error.status, error.body(), headers)

    # --- authentication ---------------------------------------------------------------------

    async def _authenticate(self, scope, now: datetime) -> KeyContext:
        secret = _secret_from(scope)
        hashed_secret = hash_secret(secret) if secret else ""
        self.throttle.check(scope, hashed_secret)  # an address over the invalid-key limit: 429
        key = await self.registry.key(hashed_secret) if secret else None
        if key is None:
            await self.throttle.count_invalid(scope)
            raise invalid_api_key()
        self.throttle.remember_valid(hashed_secret)
        scope[SEEN].key = key
        self._check_key(key, now)
        return key

    def _cached_key(self, scope) -> tuple[KeyContext, list[str], tuple] | None:
        """The request's key as this process has it cached, if it has limits to check in Redis
        anyway (see `Registry.cached`); None otherwise (then `_authenticate` asks)."""
        secret = _secret_from(scope)
        if not secret:
            return None
        hit = self.registry.cached(hash_secret(secret))
        return hit if hit is not None and hit[0].limits else None

    def _check_key(self, key: KeyContext, now: datetime) -> None:
        """Refuse a key that may not be used now: revoked or expired (401), its gateway disabled
        or the key suspended by an admin (403)."""
        if key.status == ApiKeyStatus.REVOKED:
            raise ProxyError(401, "key_revoked", "This API key has been revoked.", type="authentication_error")
        if key.status == ApiKeyStatus.EXPIRED or (key.expires_at is not None and key.expires_at <= now):
            raise ProxyError(401, "key_expired", "This API key has expired.", type="authentication_error")
        if not key.gateway_serves:
            raise ProxyError(
                403,
                "gateway_disabled",
                f"The gateway '{key.gateway_name}' is disabled.",
                type="permission_error",
            )
        if key.status == ApiKeyStatus.SUSPENDED and key.suspended_reason != SuspendedReason.TOKEN_QUOTA:
            raise ProxyError(
                403, "key_suspended", "This API key has been suspended by an admin.", type="permission_error"
            )
        self._touch(key.key_id)

    def _touch(self, key_id: int) -> None:
        """Note that the key was used: `last_used_at` is written at most once a
        LAST_USED_WRITE_INTERVAL per key, for every key noted within LAST_USED_FLUSH_SECONDS in one
        UPDATE (with 50,000 busy keys, one statement a second, not 800)."""
        now = time.monotonic()
        if now - self._last_used_written.get(key_id, -LAST_USED_WRITE_INTERVAL) < LAST_USED_WRITE_INTERVAL:
            return
        if len(self._last_used_written) >= 100_000:
            self._last_used_written.clear()
        self._last_used_written[key_id] = now
        self._used.append(key_id)
        if len(self._used) == 1:
            task = asyncio.get_running_loop().create_task(self._write_used())
            self._background.add(task)
            task.add_done_callback(self._background.discard)

    async def _write_used(self) -> None:
        await asyncio.sleep(LAST_USED_FLUSH_SECONDS)
        used, self._used = self._used, []
        try:
            await sync_to_async(api_keys_mark_used, thread_sensitive=True)(api_key_ids=used, at=_now())
        except Exception as exc:  # a write that can wait for the next use: never a request's error
            log.warning("last use of %d API keys not written: %s", len(used), exc)

    # --- request body -------------------------------------------------------------------------

    async def _read_json(self, receive) -> dict:
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise invalid_request("The client closed the connection before the body was read.")
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body_bytes:
                raise invalid_request(
                    f"The request body is over the limit of {self.max_body_bytes:,} bytes.", status=413
                )
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        try:
            body = orjson.loads(b"".join(chunks))
        except orjson.JSONDecodeError:
            raise invalid_request("The request body is not valid JSON.") from None
        if not isinstance(body, dict):
            raise invalid_request("The request body must be a JSON object.")
        return body

    async def _route(self, key: KeyContext, model_name) -> ModelRoute:
        if not isinstance(model_name, str) or not model_name:
            raise invalid_request("You must provide a model parameter.", param="model")
        route = await self.registry.model(model_name)
        if route is None or (key.allowed_models is not None and model_name not in key.allowed_models):
            raise ProxyError(
                404,
                "model_not_found",
                f"The model '{model_name}' does not exist or this API key may not use it.",
                param="model",
            )
        return route

    # --- endpoints ----------------------------------------------------------------------------

    async def _models(self, scope, send, base_headers) -> None:
        key = await self._authenticate(scope, _now())
        routes = await self.registry.models()
        data = [
            {"id": name, "object": "model", "created": 0, "owned_by": route.provider_name}
            for name, route in sorted(routes.items())
            if key.allowed_models is None or name in key.allowed_models
        ]
        await _send_bytes(
            send,
            200,
            orjson.dumps({"object": "list", "data": data}),
            [*base_headers, (b"content-type", b"application/json")],
        )

    async def _key(self, scope, send, base_headers) -> None:
        """GET /v1/key: the calling key's own record and every limit on it, with what is used
        and what remains in the current window (like OpenRouter's GET /key)."""
        now = _now()
        key = await self._authenticate(scope, now)
        used = await self.limits.usage_of(key.limits, now)
        limits = [_limit_report(rule, value, now) for rule, value in zip(key.limits, used, strict=True)]
        payload = {
            "id": key.key_id,
            "quotaEntityId": f"api_key_id_{key.key_id}",
            "name": key.key_name,
            "gateway": {"id": key.gateway_id, "name": key.gateway_name},
            "status": key.status,
            "expiresAt": _iso(key.expires_at) if key.expires_at else None,
            "limits": limits,
        }
        await _send_bytes(send, 200, orjson.dumps(payload), [*base_headers, (b"content-type", b"application/json")])

    async def _quotas(self, scope, send, base_headers) -> None:
        """GET /v1/quotas?quotaEntityId=api_key_id_<id>: the calling key's own spend budget in
        Vercel's shape; 404 `{"error": "Quota not found"}` when it has none (Vercel quotas API)."""
        now = _now()
        key = await self._authenticate(scope, now)
        from urllib.parse import parse_qs

        query = parse_qs(scope.get("query_string", b"").decode())
        entity = (query.get("quotaEntityId") or [""])[0]
        headers = [*base_headers, (b"content-type", b"application/json")]
        if not entity:
            body = {"error": "quotaEntityId is required", "field": "quotaEntityId"}
            await _send_bytes(send, 400, orjson.dumps(body), headers)
            return
        budget = key.own_budget
        if entity != f"api_key_id_{key.key_id}" or budget is None:
            await _send_bytes(send, 404, orjson.dumps({"error": "Quota not found"}), headers)
            return
        rule = LimitRule("spend", Level.API_KEY, key.key_id, 0, budget.refresh_period, group_id=key.resource_group_id)
        (spent,) = await self.limits.usage_of((rule,), now)
        payload = {
            "quotaEntityId": entity,
            "apiKeyName": key.key_name,
            "limitAmount": float(budget.limit_usd),
            "currentSpend": float(units_to_usd(spent)),
            "refreshPeriod": budget.refresh_period,
            "active": budget.active,
        }
        await _send_bytes(send, 200, orjson.dumps(payload), headers)

    async def _chat(self, scope, receive, send, request_id: str, base_headers) -> None:
        """POST /v1/chat/completions. The steps, in order: authenticate the key, read and check
        the body, resolve the model, estimate the request (only when a limit needs it), admit it
        against the limits (`_admit`), forward it upstream, then answer whole or relay the stream,
        and settle and meter it (`_finish`). The request's intent is written before it is
        forwarded, so that it is metered even if this process dies. The awaits are these and no
        more."""
        started = time.perf_counter()
        now = _now()
        seen: _Seen = scope[SEEN]
        key, body, route, estimate, admission = await self._admit(scope, receive, now, seen)
        stream = seen.stream
        base_headers = base_headers + [(k.encode(), v.encode()) for k, v in admission.rate_limit_headers().items()]

        output_cap = estimating.max_output_tokens(body, route.max_output_tokens) if key.has_hard_limit else None
        upstream_body, usage_hidden = _upstream_body(body, route, stream, output_cap)
        meter = _Meter(
            event=_usage_event(request_id, now, key, route, stream),
            admission=admission,
            started=started,
            prices=route.prices,
        )
        charge, limits = admission.interrupted(estimate, route.prices, key.has_hard_limit)
        seen.metered = True  # from here on `_finish`, or the intent, writes its usage event
        self.recorder.intend(
            request_id,
            {"event": meter.event, "charge": charge, "limits": limits, "lease_until": now + self.intent_lease},
        )
        client = self.clients[route.provider_kind]
        try:
            answer = await client.chat(route, upstream_body, stream)
        except UpstreamError as error:
            raise self._forward_failed(meter, error) from None

        if isinstance(answer, UpstreamResponse):
            await self._answer_whole(send, answer, meter, base_headers, client)
        else:
            await self._answer_stream(receive, send, answer, meter, base_headers, usage_hidden, client)

    async def _admit(self, scope, receive, now: datetime, seen: _Seen):
        """Authenticate, read and check the body, route and admit the request. Returns (key,
        body, route, estimate, admission).

        A warm key with limits costs one Redis round trip here: its cached snapshot is checked
        and admitted while the same round trip reads its group's and the catalog's versions
        (`Registry.cached`, `LimitEngine.admit(versions=…)`). If either changed since it was
        cached, or the cached snapshot refuses the request, the admission is given back and the
        request is taken again from the start with what the database holds now: a change holds
        from the next request (SPEC §3), and nothing is counted twice.

        Raises:
            ProxyError: the request is refused (401, 403, 404, 400, 413, 429)."""
        body_read: list = []  # the body once read (the client sends it once), or the error reading it
        hit = self._cached_key(scope) if self.one_round_trip else None
        if hit is not None:
            key, names, expected = hit
            try:
                self._check_key(key, now)
                body, route, estimate = await self._request(receive, key, seen, body_read)
                return (
                    key,
                    body,
                    route,
                    estimate,
                    await self.limits.admit(key, key.limits, now, estimate, versions=(names, expected)),
                )
            except LimitExceeded as exceeded:  # by limits that are current: the versions were read with them
                seen.key = key
                raise _over_limit(exceeded) from None
            except (ProxyError, StaleConfig):
                pass  # changed, or refused by what this process had cached: taken again as it is now
        key = await self._authenticate(scope, now)
        body, route, estimate = await self._request(receive, key, seen, body_read)
        try:
            admission = await self.limits.admit(key, key.limits, now, estimate)
        except LimitExceeded as exceeded:
            raise _over_limit(exceeded) from None
        return key, body, route, estimate, admission

    async def _request(
        self, receive, key: KeyContext, seen: _Seen, body_read: list
    ) -> tuple[dict, ModelRoute, Estimate]:
        """Read (once: kept in `body_read`) and check the body, resolve its model for `key` and
        estimate it. Returns (body, route, estimate).

        Raises:
            ProxyError: a bad body (400, 413), an unknown model (404), or a file part under a
                hard limit (400)."""
        if not body_read:
            try:
                body_read.append(await self._read_json(receive))
            except ProxyError as error:
                body_read.append(error)
        if isinstance(body_read[0], ProxyError):
            raise body_read[0]
        body = body_read[0]
        if isinstance(body.get("model"), str):
            seen.model = body["model"]
        seen.stream = body.get("stream") is True
        route = await self._route(key, body.get("model"))
        messages = check_chat_body(body)
        return body, route, _estimate(key, body, messages, route, self.tpm_estimate)

    def _forward_failed(self, meter: _Meter, error: UpstreamError) -> ProxyError:
        """Meter a request the provider did not answer (502, or 504 on a timeout) and give the
        error to answer with."""
        status, code = _upstream_failure(error)
        self._finish(meter, None, status, error_code=code)
        return ProxyError(status, code, str(error), type="upstream_error")

    async def _answer_whole(
        self, send, answer: UpstreamResponse, meter: _Meter, base_headers, client: ProviderClient
    ) -> None:
        meter.event["upstream_request_id"] = answer.upstream_request_id[:200]
        if answer.status >= 300:
            status, code = _upstream_failure_status(answer.status)
            self._finish(meter, None, status, error_code=code)
            if status == answer.status:  # a client error the provider explains: pass it through
                headers = [*base_headers, (b"content-type", answer.content_type.encode())]
                await _send_bytes(send, status, answer.body, headers)
                return
            raise ProxyError(status, code, f"The provider answered with HTTP {answer.status}.", type="upstream_error")
        try:
            usage = client.usage(orjson.loads(answer.body).get("usage"))
        except (orjson.JSONDecodeError, AttributeError):
            self._finish(meter, None, 502, error_code="upstream_error")
            raise ProxyError(
                502, "upstream_error", "The provider's answer was not JSON.", type="upstream_error"
            ) from None
        self._finish(meter, usage, 200)
        headers = [*base_headers, (b"content-type", answer.content_type.encode())]
        await _send_bytes(send, 200, answer.body, headers)

    async def _answer_stream(
        self,
        receive,
        send,
        answer: UpstreamStream,
        meter: _Meter,
        base_headers,
        usage_hidden: bool,
        client: ProviderClient,
    ) -> None:
        """Relay an SSE answer event by event as it arrives (until the client goes away; the
        upstream is read to its end regardless, for its usage), then settle and meter it. The
        usage chunk that we asked for (`usage_hidden`) is not passed on. Per event this loop does
        no more than look for a `data:` payload and, in the rare event that mentions "usage",
        parse it (`_usage_report`)."""
        meter.event["upstream_request_id"] = answer.upstream_request_id[:200]
        await send(_stream_start(base_headers))
        disconnect = _Disconnect(receive)
        usage: TokenUsage | None = None
        first_token_at: float | None = None  # time.perf_counter() at the first data event
        status, error_code = 200, ""
        buffer = b""
        try:
            async for chunk in answer.chunks:
                buffer += chunk.replace(b"\r\n", b"\n")
                while (end := buffer.find(b"\n\n")) != -1:
                    raw_event, buffer = buffer[: end + 2], buffer[end + 2 :]
                    forward = True
                    data = _sse_payload(raw_event)
                    if data is not None:
                        if first_token_at is None:
                            first_token_at = time.perf_counter()
                        if b'"usage"' in data:
                            usage, forward = _usage_report(data, usage, usage_hidden, client)
                    if forward and not disconnect.happened:
                        await send({"type": "http.response.body", "body": raw_event, "more_body": True})
            if buffer.strip() and not disconnect.happened:  # an unterminated last event
                await send({"type": "http.response.body", "body": buffer, "more_body": True})
        except UpstreamError as error:
            status, error_code = _upstream_failure(error)
            log.warning("stream %s broke off: %s", meter.event["request_id"], error)
        finally:
            await answer.close()
            disconnect.stop()
            self._finish_stream(meter, usage, first_token_at, status, error_code, disconnect.happened)
        await send({"type": "http.response.body", "body": b"", "more_body": False})

    def _finish_stream(
        self,
        meter: _Meter,
        usage: TokenUsage | None,
        first_token_at: float | None,
        status: int,
        error_code: str,
        client_disconnected: bool,
    ) -> None:
        """Settle and meter a streamed answer: whether the client went away, the time to the first
        token (ms, from `first_token_at`, a `time.perf_counter()` reading), then `_finish`."""
        event = meter.event
        event["client_disconnected"] = client_disconnected
        if first_token_at is not None:
            event["time_to_first_token_ms"] = int((first_token_at - meter.started) * 1000)
        # Usage that the provider reported is charged even if the stream broke off later.
        self._finish(meter, usage, status if usage is None else 200, error_code=error_code)

    # --- metering -----------------------------------------------------------------------------

    def _finish(self, meter: _Meter, usage: TokenUsage | None, status: int, *, error_code: str = "") -> None:
        """Count the usage against the limits and queue the usage event (spooled at once, stored
        once the limits are settled). A failed request (no usage reported) is recorded with zero
        tokens and zero cost."""
        usage = usage or TokenUsage()
        event = meter.event
        event.update(
            status_code=status,
            error_code=error_code,
            input_tokens=usage.input_tokens,
            cached_input_tokens=usage.cached_input_tokens,
            cache_write_tokens=usage.cache_write_tokens,
            output_tokens=usage.output_tokens,
            reasoning_tokens=usage.reasoning_tokens,
            total_tokens=usage.total_tokens,
            latency_ms=int((time.perf_counter() - meter.started) * 1000),
            cost_usd=meter.prices.cost(usage),
        )
        if not meter.admission.rules:
            self.recorder.record(event)
            return
        task = asyncio.get_running_loop().create_task(self.limits.settle(meter.admission, usage, event["cost_usd"]))
        self._background.add(task)
        task.add_done_callback(self._background.discard)
        self.recorder.record(event, settled=task)


_ONE_MINUTE = timedelta(minutes=1)


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _limit_report(rule: LimitRule, value: int, now: datetime) -> dict[str, Any]:
    """One limit of GET /v1/key: its limit, what is used and what remains in the current window
    (USD for a spend budget, else tokens or requests; `value` in the counters' units), and the
    window's start and reset (see `_limit_window`)."""
    money = rule.kind == "spend"
    starts_at, resets_at = _limit_window(rule, now)
    return {
        "type": {"tokens": "token_quota", "spend": "spend_budget", "tpm": "tpm", "rpm": "rpm"}[rule.kind],
        "level": rule.level,
        "limit": float(units_to_usd(rule.limit)) if money else rule.limit,
        "used": float(units_to_usd(value)) if money else value,
        "remaining": float(units_to_usd(max(rule.limit - value, 0))) if money else max(rule.limit - value, 0),
        "unit": "usd" if money else ("requests" if rule.kind == "rpm" else "tokens"),
        "refreshPeriod": rule.period,
        "mode": "hard" if rule.hard or rule.kind in ("tpm", "rpm") else "soft",
        "windowStart": starts_at,
        "resetsAt": resets_at,
    }


def _limit_window(rule: LimitRule, now: datetime) -> tuple[str | None, str | None]:
    """The start and the reset of `rule`'s window around `now` (ISO 8601 UTC); both None for a
    lifetime limit, which never resets."""
    if rule.period == MINUTE:
        start = now.replace(second=0, microsecond=0)
        return _iso(start), _iso(start.replace(second=0) + _ONE_MINUTE)
    end = window_end(rule.period, now)  # None: a lifetime limit
    if not end:
        return None, None
    return _iso(window_start(rule.period, now)), _iso(end)


def _sse_payload(raw_event: bytes) -> bytes | None:
    """The `data:` payload of one SSE event, or None for comments, other fields and the final
    `[DONE]`."""
    for line in raw_event.split(b"\n"):
        if line.startswith(b"data:"):
            data = line[5:].strip()
            return None if data == b"[DONE]" else data
    return None


def _code(error: UpstreamError) -> str:
    return "upstream_timeout" if error.timeout else "upstream_error"


def _upstream_failure(error: UpstreamError) -> tuple[int, str]:
    """Our status and error code for a provider that failed to answer: 504 on a timeout, else 502."""
    return (504 if error.timeout else 502), _code(error)


def _estimate(key: KeyContext, body: dict, messages: list, route: ModelRoute, by: str) -> Estimate:
    """What the request may use (tokens, and USD at the route's prices), for the limits that
    must admit it before it runs: the prompt estimate for TPM (`by`: AIGW_TPM_ESTIMATE), and for hard limits the bound
    (`quotas.estimate.prompt_bound` + `output_bound`); zero when none of the key's limits needs one.

    Raises:
        ProxyError: 400 naming the `param` that a hard limit cannot bound (a file part).
    """
    if not key.needs_estimate:
        return Estimate()
    prompt_bound = output_bound = 0
    if key.has_hard_limit:
        try:
            prompt_bound = estimating.prompt_bound(body)
        except estimating.Unbounded as unbounded:
            raise ProxyError(400, "unsupported_for_hard_limits", str(unbounded), param=unbounded.param) from None
        output_bound = estimating.output_bound(body, route.max_output_tokens)
    return Estimate.of(estimating.prompt_tokens(messages, by), prompt_bound, output_bound, route.prices)


def _over_limit(exceeded: LimitExceeded) -> ProxyError:
    """The 429 for a request a limit refused, with `retry-after` (seconds) when it is known."""
    headers = {}
    if exceeded.retry_after is not None:
        headers["retry-after"] = str(exceeded.retry_after)
    return ProxyError(429, exceeded.code, exceeded.message, type=exceeded.type, headers=headers)


def _upstream_body(body: dict, route: ModelRoute, stream: bool, output_cap: int | None) -> tuple[dict, bool]:
    """The body to send upstream (the route's upstream model), and whether we asked a stream
    for its usage chunk ourselves (`stream_options.include_usage`), so that it is not passed on.
    With an `output_cap` (tokens per choice; a key under a hard limit), the output limit that
    its bound assumed goes upstream too: `max_completion_tokens` is set when the body has no
    limit, and a larger limit than the model's is lowered to it."""
    upstream_body = dict(body, model=route.upstream_model)
    if output_cap is not None:
        limits = [field for field in ("max_completion_tokens", "max_tokens") if isinstance(body.get(field), int)]
        for field in limits:
            upstream_body[field] = min(body[field], output_cap)
        if not limits:
            upstream_body["max_completion_tokens"] = output_cap
    if stream and not (body.get("stream_options") or {}).get("include_usage"):
        upstream_body["stream_options"] = {**(body.get("stream_options") or {}), "include_usage": True}
        return upstream_body, True
    return upstream_body, False


def _usage_event(request_id: str, now: datetime, key: KeyContext, route: ModelRoute, stream: bool) -> dict:
    """A request's usage event as far as it is known before forwarding (`_finish` completes it)."""
    return {
        "request_id": request_id,
        "created_at": now,
        "resource_group_id": key.resource_group_id,
        "gateway_id": key.gateway_id,
        "api_key_id": key.key_id,
        "api_key_name": key.key_name,
        "endpoint": "chat.completions",
        "model_requested": route.name,
        "provider": route.provider_name,
        "model_served": route.upstream_model,
        "stream": stream,
    }


def _stream_start(base_headers) -> dict:
    """The `http.response.start` message of a relayed stream (200, SSE, not cached)."""
    return {
        "type": "http.response.start",
        "status": 200,
        "headers": [
            *base_headers,
            (b"content-type", b"text/event-stream; charset=utf-8"),
            (b"cache-control", b"no-cache"),
        ],
    }


def _usage_report(
    data: bytes, usage: TokenUsage | None, usage_hidden: bool, client: ProviderClient
) -> tuple[TokenUsage | None, bool]:
    """For an SSE payload that mentions "usage": the usage it reports (else `usage`, unchanged),
    and whether to pass the event on (not our own usage chunk, one without choices)."""
    try:
        parsed = orjson.loads(data)
    except orjson.JSONDecodeError:
        return usage, True
    if isinstance(parsed, dict) and parsed.get("usage"):
        return client.usage(parsed["usage"]), not (usage_hidden and not parsed.get("choices"))
    return usage, True


def _upstream_failure_status(upstream_status: int) -> tuple[int, str]:
    """Our status for a failed upstream answer: the provider's own 4xx (but 401/403, which mean
    our credential is wrong) passes through; everything else is 502 `upstream_error`."""
    if 400 <= upstream_status < 500 and upstream_status not in (401, 403):
        return upstream_status, "upstream_client_error"
    return 502, "upstream_error"
