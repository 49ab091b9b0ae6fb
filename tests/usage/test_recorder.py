"""Usage events are never lost: spooled to disk before they are queued, replayed after a crash."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from decimal import Decimal
from io import StringIO

import pytest
from asgiref.sync import sync_to_async
from django.core.management import call_command
from django.db import connections

from gateway.setup import gateway_create
from tests.factories import ResourceGroupFactory
from usage.models import UsageEvent
from usage.recorder import UsageRecorder, _encode, recover

pytestmark = pytest.mark.django_db(transaction=True)


def event_row(api_key, request_id: str) -> dict:
    gateway = api_key.gateway
    return {
        "request_id": request_id,
        "created_at": datetime(2026, 11, 22, 10, 0, tzinfo=UTC),
        "resource_group_id": gateway.resource_group_id,
        "gateway_id": gateway.pk,
        "api_key_id": api_key.pk,
        "api_key_name": api_key.name,
        "model_requested": "mock/echo",
        "status_code": 200,
        "input_tokens": 12,
        "output_tokens": 7,
        "total_tokens": 19,
        "cost_usd": Decimal("0.0000260000"),
    }


def test_events_of_a_process_killed_before_its_batch_was_written_are_recovered(tmp_path):
    _, api_key, _ = gateway_create(resource_group=ResourceGroupFactory(), name="g")

    async def record_then_die():
        recorder = UsageRecorder(directory=tmp_path)
        recorder._writer = asyncio.get_running_loop().create_future()  # the writer never gets to run
        recorder.record(event_row(api_key, "req_lost_1"))
        recorder.record(event_row(api_key, "req_lost_2"))
        return recorder._spool_path

    spool = asyncio.run(record_then_die())
    assert not UsageEvent.objects.exists()
    spool.rename(tmp_path / "999999999-1.jsonl")  # as if its process (a dead pid) had been killed

    assert recover(tmp_path) == 2
    assert recover(tmp_path) == 0  # the file was claimed and removed
    events = UsageEvent.objects.order_by("request_id")
    assert [e.request_id for e in events] == ["req_lost_1", "req_lost_2"]
    assert events[0].cost_usd == Decimal("0.000026") and events[0].total_tokens == 19


def test_an_event_written_and_also_recovered_is_kept_once(tmp_path):
    _, api_key, _ = gateway_create(resource_group=ResourceGroupFactory(), name="g")
    row = event_row(api_key, "req_twice")
    UsageEvent.objects.create(**row)
    (tmp_path / "999999999-2.jsonl").write_bytes(
        b'{"request_id": "req_twice", "created_at": "2026-11-22T10:00:00+00:00", "resource_group_id": %d, '
        b'"gateway_id": %d, "api_key_id": %d, "api_key_name": "k", "model_requested": "mock/echo", '
        b'"status_code": 200, "cost_usd": "0.000026"}\n'
        % (row["resource_group_id"], row["gateway_id"], row["api_key_id"])
    )

    assert recover(tmp_path) == 1
    assert UsageEvent.objects.filter(request_id="req_twice").count() == 1


def test_the_spool_is_emptied_once_everything_is_in_the_database(tmp_path):
    _, api_key, _ = gateway_create(resource_group=ResourceGroupFactory(), name="g")

    async def record_and_flush():
        recorder = UsageRecorder(directory=tmp_path)
        for i in range(5):
            recorder.record(event_row(api_key, f"req_{i}"))
        await recorder.flush()
        size = recorder._spool_path.stat().st_size
        await recorder.close()
        await sync_to_async(connections.close_all, thread_sensitive=True)()  # the writer thread's connection
        return size, recorder._spool_path.exists()

    size, still_there = asyncio.run(record_and_flush())
    assert UsageEvent.objects.count() == 5
    assert size == 0 and not still_there


def test_a_row_the_database_refuses_is_kept_aside_and_holds_up_no_other(tmp_path):
    _, api_key, _ = gateway_create(resource_group=ResourceGroupFactory(), name="g")
    refused = {**event_row(api_key, "req_refused"), "gateway_id": 10**9}  # no such gateway

    async def record_and_flush():
        recorder = UsageRecorder(directory=tmp_path)
        recorder.record(event_row(api_key, "req_before"))
        recorder.record(refused)
        recorder.record(event_row(api_key, "req_after"))
        await recorder.flush()
        await recorder.close()
        await sync_to_async(connections.close_all, thread_sensitive=True)()

    asyncio.run(record_and_flush())
    assert sorted(UsageEvent.objects.values_list("request_id", flat=True)) == ["req_after", "req_before"]
    kept = [line for path in (tmp_path / "rejected").iterdir() for line in path.read_bytes().splitlines()]
    assert len(kept) == 1 and b'"req_refused"' in kept[0]
    assert recover(tmp_path) == 0  # what was kept aside is not replayed as a spool


def test_usage_spool_shows_the_events_waiting_and_recover_writes_those_of_stopped_processes(tmp_path, settings):
    settings.DATA_DIR = tmp_path
    _, api_key, _ = gateway_create(resource_group=ResourceGroupFactory(), name="g")
    spool = tmp_path / "usage-spool"
    spool.mkdir()
    (spool / "999999999-1.jsonl").write_bytes(  # the spool of a process that was killed
        _encode(event_row(api_key, "req_waiting_1")) + _encode(event_row(api_key, "req_waiting_2"))
    )

    shown = StringIO()
    call_command("usage_spool", stdout=shown)
    assert "999999999-1.jsonl  pid 999999999 (stopped)  2 events  oldest 2026-11-22T10:00:00+00:00" in shown.getvalue()
    assert "2 usage events in 1 spool files (2 of stopped processes); 0 refused" in shown.getvalue()
    assert not UsageEvent.objects.exists()

    recovered = StringIO()
    call_command("usage_spool", "--recover", stdout=recovered)
    assert "wrote 2 usage events of stopped processes" in recovered.getvalue()
    assert "0 usage events in 0 spool files" in recovered.getvalue()
    assert UsageEvent.objects.count() == 2


def _intent(row: dict) -> dict:
    event = {k: v for k, v in row.items() if k not in ("status_code", "input_tokens", "output_tokens", "total_tokens")}
    event.pop("cost_usd")
    return {
        "event": event,
        "charge": {"input_tokens": 40, "output_tokens": 20, "cost_usd": "0.0004"},
        "limits": [],
        "lease_until": datetime(2026, 11, 22, 10, 11, tzinfo=UTC),
    }


def test_only_intents_without_an_event_become_interrupted_events_and_the_intents_file_stays_small(tmp_path):
    _, api_key, _ = gateway_create(resource_group=ResourceGroupFactory(), name="g")

    async def serve_then_die():
        recorder = UsageRecorder(directory=tmp_path)
        recorder._writer = asyncio.get_running_loop().create_future()  # nothing is written: it dies first
        padding = "x" * 2000
        for i in range(1000):  # 1,000 requests answered, ~2 MB of intents
            row = dict(event_row(api_key, f"req_done_{i}"), api_key_name=padding[:100])
            recorder.intend(row["request_id"], _intent(row) | {"pad": padding})
            recorder.record(row)
        for i in range(3):  # forwarded, never answered
            row = event_row(api_key, f"req_open_{i}")
            recorder.intend(row["request_id"], _intent(row))
        return recorder._spool_path, recorder._intents_path

    spool, intents = asyncio.run(serve_then_die())
    assert intents.stat().st_size < 1.1 * 2**20  # rewritten with the open intents as it grew
    dead = "999999998"
    spool.rename(tmp_path / f"{dead}-1.jsonl")
    intents.rename(tmp_path / f"{dead}-1.intents.jsonl")

    from usage.recorder import recover_intents

    assert recover_intents(tmp_path) == []  # waits: the same process's events are not written yet
    assert recover(tmp_path) == 1000
    interrupted = recover_intents(tmp_path)
    assert len(interrupted) == 3
    events = UsageEvent.objects.filter(error_code="interrupted").order_by("request_id")
    assert [e.request_id for e in events] == ["req_open_0", "req_open_1", "req_open_2"]
    assert {(e.status_code, e.input_tokens, e.output_tokens, e.total_tokens, e.cost_usd) for e in events} == {
        (500, 40, 20, 60, Decimal("0.0004"))
    }
    assert UsageEvent.objects.count() == 1003
    assert list(tmp_path.glob("*.jsonl*")) == []
