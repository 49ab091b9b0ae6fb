"""`aigw`: the management API from a terminal or a script (SPEC §6).

Configuration comes from the environment: `AIGW_URL` (default `http://127.0.0.1:8000`) and
`AIGW_TOKEN`, a personal API token (console → API tokens, or `manage.py create_api_token USER`).
Every command prints a table for people, or the API's JSON with `--json` for scripts.

Exit codes: 0 done; 1 the API refused or failed (one line on stderr: `error: <message>`);
2 a usage error (a bad option, no `AIGW_TOKEN`); 3 the server at `AIGW_URL` cannot be reached.

This module talks HTTP only (httpx) and never imports Django, so it runs anywhere the package
is installed.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from decimal import Decimal
from typing import Annotated, Any, NoReturn

import httpx
import typer
from rich import box
from rich.console import Console
from rich.table import Table

DEFAULT_URL = "http://127.0.0.1:8000"
TIMEOUT_SECONDS = 30.0
REFRESH_PERIODS = ("none", "daily", "weekly", "monthly")

EXIT_API_ERROR = 1
EXIT_USAGE = 2
EXIT_CONNECT = 3

app = typer.Typer(
    help="Manage aigw gateways, API keys, budgets and usage through the management API.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
gateways_app = typer.Typer(help="AI gateways: list, create, duplicate, delete.", no_args_is_help=True)
api_keys_app = typer.Typer(help="API keys: list, create (with a budget), rotate, revoke.", no_args_is_help=True)
quotas_app = typer.Typer(help="Spend budgets of API keys (Vercel-compatible quotas).", no_args_is_help=True)
app.add_typer(gateways_app, name="gateways")
app.add_typer(api_keys_app, name="api-keys")
app.add_typer(quotas_app, name="quotas")

JsonOption = Annotated[bool, typer.Option("--json", help="Print the API's JSON instead of a table.")]
RefreshOption = Annotated[
    str, typer.Option("--refresh-period", help="When the budget starts over (UTC): none, daily, weekly, monthly.")
]

# The terminal's width, or 200 columns when piped, so that rows are never wrapped in a file.
out = Console(soft_wrap=True, width=shutil.get_terminal_size((200, 24)).columns)


# HTTP ---------------------------------------------------------------------------------------


def fail(message: str, code: int = EXIT_API_ERROR) -> NoReturn:
    """Print `error: <message>` (one line) on stderr and exit with `code`."""
    one_line = " ".join(str(message).split())
    print(f"error: {one_line}", file=sys.stderr)
    raise typer.Exit(code)


def error_message(response: httpx.Response) -> str:
    """One sentence from an error answer: DRF's `{"detail"}` or `{"<field>": [...]}`, the quotas
    API's `{"error", "field"}`, or OpenAI's `{"error": {"message"}}`; else the status line."""
    try:
        body = response.json()
    except ValueError:
        return f"HTTP {response.status_code} {response.reason_phrase}"
    if isinstance(body, dict):
        error = body.get("error")
        if isinstance(error, dict) and error.get("message"):
            return str(error["message"])
        if isinstance(error, str):
            return error
        if "detail" in body:
            return str(body["detail"])
        parts = []
        for field, messages in body.items():
            text = "; ".join(str(m) for m in messages) if isinstance(messages, list) else str(messages)
            parts.append(text if field == "non_field_errors" else f"{field}: {text}")
        if parts:
            return ", ".join(parts)
    return f"HTTP {response.status_code} {response.reason_phrase}"


def send(method: str, path: str, *, params: dict | None = None, body: dict | None = None) -> httpx.Response:
    """Send one request to `AIGW_URL/api/v1/<path>` with the token and return the answer as is.
    Exits 2 without `AIGW_TOKEN` and 3 when the server cannot be reached. The token is never
    printed."""
    token = os.environ.get("AIGW_TOKEN", "").strip()
    if not token:
        fail("AIGW_TOKEN is not set; create a personal API token in the console (API tokens)", EXIT_USAGE)
    base = os.environ.get("AIGW_URL", DEFAULT_URL).rstrip("/")
    url = f"{base}/api/v1/{path.lstrip('/')}"
    clean_params = {k: v for k, v in (params or {}).items() if v is not None}
    try:
        return httpx.request(
            method,
            url,
            params=clean_params,
            content=None if body is None else json_text(body),
            headers={
                "Authorization": f"Bearer {token}",
                "Accept": "application/json",
                "Content-Type": "application/json",
            },
            timeout=TIMEOUT_SECONDS,
        )
    except httpx.TransportError as exc:
        fail(f"cannot reach {base}: {type(exc).__name__}", EXIT_CONNECT)


def json_text(body: Any, indent: int | None = None) -> str:
    """`body` as JSON, with each Decimal written as the exact number it is (`10.10`, not a float
    that only looks like it): amounts in USD reach the API digit for digit."""
    numbers: dict[str, str] = {}

    def mark(value: Any) -> Any:
        if isinstance(value, Decimal):
            placeholder = f"@aigw-decimal-{len(numbers)}@"
            numbers[placeholder] = format(value, "f")
            return placeholder
        raise TypeError(f"cannot send {type(value).__name__} as JSON")

    text = json.dumps(body, default=mark, indent=indent)
    for placeholder, number in numbers.items():
        text = text.replace(f'"{placeholder}"', number)
    return text


def usd(value: str, option: str = "--budget") -> Decimal:
    """An amount in USD from the command line, exactly; exits 2 for anything but a finite number."""
    try:
        amount = Decimal(value)
    except ArithmeticError:
        fail(f"{option} must be a number of US dollars, like 10 or 12.50", EXIT_USAGE)
    if not amount.is_finite():
        fail(f"{option} must be a number of US dollars, like 10 or 12.50", EXIT_USAGE)
    return amount


def decoded(response: httpx.Response) -> Any:
    """The JSON of a successful answer (None for 204); exits 1 with the API's message otherwise."""
    if response.status_code >= 400:
        fail(f"{error_message(response)} (HTTP {response.status_code})")
    if response.status_code == 204 or not response.content:
        return None
    return json.loads(response.text, parse_float=Decimal)  # USD amounts stay exact


def call(method: str, path: str, *, params: dict | None = None, body: dict | None = None) -> Any:
    """`send`, then `decoded`: the answer's JSON, or exit 1/2/3 (see the module doc)."""
    return decoded(send(method, path, params=params, body=body))


def all_pages(path: str, params: dict | None = None) -> list[dict]:
    """Every row of a paginated list (page numbers or cursors: it follows `next`)."""
    page = call("GET", path, params={**(params or {}), "page_size": 200})
    rows = list(page["results"])
    while page.get("next"):
        next_url = httpx.URL(page["next"])
        page = call("GET", path, params=dict(next_url.params))
        rows.extend(page["results"])
    return rows


# Output -------------------------------------------------------------------------------------


def print_json(data: Any) -> None:
    """The data as indented JSON on stdout, for scripts."""
    print(json_text(data, indent=2))


def print_table(rows: list[dict], columns: list[tuple[str, str]], empty: str) -> None:
    """A table of `rows` with `(header, key)` columns; `empty` when there are no rows."""
    if not rows:
        out.print(empty)
        return
    table = Table(box=box.SIMPLE, show_edge=False, pad_edge=False, header_style="bold")
    for header, _ in columns:
        table.add_column(header)
    for row in rows:
        table.add_row(*(_cell(row.get(key)) for _, key in columns))
    out.print(table)


def _cell(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, Decimal):
        return format(value, "f")
    return str(value)


def show_secret(secret: str, what: str) -> None:
    """Print a new secret with the warning that it is shown only this once."""
    out.print(f"{what}: [bold]{secret}[/bold]", highlight=False)
    out.print("Copy it now: it cannot be shown again.", style="yellow")


def budget_line(budget: dict | None) -> str:
    """`$1.04 / $10 spent · monthly`, or `Unlimited` without a budget."""
    if not budget:
        return "Unlimited"
    spent = Decimal(str(budget["current_spend_usd"])).quantize(Decimal("0.01"))
    limit = Decimal(str(budget["limit_usd"])).normalize()
    return f"${spent} / ${limit:f} spent · {budget['refresh_period']}"


def check_refresh_period(value: str) -> str:
    """The refresh period, or exit 2 naming the allowed ones."""
    if value not in REFRESH_PERIODS:
        fail(f"--refresh-period must be one of {', '.join(REFRESH_PERIODS)}", EXIT_USAGE)
    return value


def quota_entity_id(api_key_id: int) -> str:
    """Vercel's id of an API key's budget: `api_key_id_<id>`."""
    return f"api_key_id_{api_key_id}"


# Gateways -----------------------------------------------------------------------------------

GATEWAY_COLUMNS = [("ID", "id"), ("Name", "name"), ("Group", "resource_group"), ("Status", "status")]


@gateways_app.command("list")
def gateways_list(
    resource_group: Annotated[int | None, typer.Option(help="Only this resource group's gateways.")] = None,
    as_json: JsonOption = False,
) -> None:
    """List the gateways you can see."""
    rows = all_pages("gateways")
    if resource_group is not None:
        rows = [row for row in rows if row["resource_group"] == resource_group]
    if as_json:
        print_json(rows)
    else:
        print_table(rows, GATEWAY_COLUMNS, "No gateways. Create one with: aigw gateways create")


@gateways_app.command("create")
def gateways_create(
    name: Annotated[str, typer.Option(help="The gateway's name, unique in its group.")],
    resource_group: Annotated[int, typer.Option(help="The resource group's id.")],
    token_quota: Annotated[int | None, typer.Option(help="Tokens all its keys may use together.")] = None,
    budget: Annotated[str | None, typer.Option(help="Spend budget in USD for all its keys (at least 1).")] = None,
    refresh_period: RefreshOption = "none",
    tpm: Annotated[int | None, typer.Option(help="Tokens per minute for all its keys.")] = None,
    expires_in: Annotated[str, typer.Option(help="First key's expiry: 7d, 30d, 60d, 90d or never.")] = "never",
    as_json: JsonOption = False,
) -> None:
    """Create a gateway with its first API key (the key's secret is shown once)."""
    body: dict[str, Any] = {"name": name, "resource_group": resource_group, "expires_in": expires_in}
    if token_quota is not None:
        body["token_quota"] = token_quota
    if budget is not None:
        body["spend_budget_usd"] = str(usd(budget))
        body["spend_budget_refresh_period"] = check_refresh_period(refresh_period)
    if tpm is not None:
        body["tokens_per_minute"] = tpm
    created = call("POST", "gateways", body=body)
    if as_json:
        print_json(created)
        return
    out.print(f"Created gateway {created['id']} '{created['name']}' with API key {created['api_key']['id']}.")
    show_secret(created["api_key"]["secret"], "API key")


@gateways_app.command("duplicate")
def gateways_duplicate(
    gateway_id: Annotated[int, typer.Argument(help="The gateway to copy.")],
    name: Annotated[str | None, typer.Option(help="The copy's name (default '<name> (copy)').")] = None,
    as_json: JsonOption = False,
) -> None:
    """Copy a gateway's allowed models and limits, with a new API key (secret shown once)."""
    created = call("POST", f"gateways/{gateway_id}/duplicate", body={"name": name} if name else {})
    if as_json:
        print_json(created)
        return
    out.print(f"Created gateway {created['id']} '{created['name']}' with API key {created['api_key']['id']}.")
    show_secret(created["api_key"]["secret"], "API key")


@gateways_app.command("delete")
def gateways_delete(
    gateway_id: Annotated[int, typer.Argument(help="The gateway to delete.")],
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
    as_json: JsonOption = False,
) -> None:
    """Delete a gateway: all its API keys stop working at once (usage stays readable)."""
    if not yes:
        gateway = call("GET", f"gateways/{gateway_id}")
        typer.confirm(f"Delete gateway '{gateway['name']}' and stop all its API keys?", abort=True)
    call("DELETE", f"gateways/{gateway_id}")
    if as_json:
        print_json({"id": gateway_id, "deleted": True})
    else:
        out.print(f"Deleted gateway {gateway_id}.")


# API keys -----------------------------------------------------------------------------------


def _key_rows(keys: list[dict]) -> list[dict]:
    return [{**key, "budget": budget_line(key.get("spend_budget"))} for key in keys]


KEY_COLUMNS = [
    ("ID", "id"),
    ("Gateway", "gateway"),
    ("Name", "name"),
    ("Prefix", "prefix"),
    ("Status", "status"),
    ("Budget", "budget"),
    ("Expires (UTC)", "expires_at"),
    ("Last used (UTC)", "last_used_at"),
]


@api_keys_app.command("list")
def api_keys_list(
    gateway: Annotated[int | None, typer.Option(help="Only this gateway's keys.")] = None,
    status: Annotated[str | None, typer.Option(help="Only keys with this status (active, revoked, expired…).")] = None,
    as_json: JsonOption = False,
) -> None:
    """List the API keys you can see (never their secrets)."""
    rows = all_pages("api-keys", {"gateway": gateway, "status": status})
    if as_json:
        print_json(rows)
    else:
        print_table(_key_rows(rows), KEY_COLUMNS, "No API keys.")


@api_keys_app.command("create")
def api_keys_create(
    gateway: Annotated[int, typer.Option(help="The gateway's id.")],
    name: Annotated[str, typer.Option(help="The key's name.")],
    budget: Annotated[str | None, typer.Option(help="Spend budget of this key in USD (at least 1).")] = None,
    refresh_period: RefreshOption = "none",
    expires_at: Annotated[str | None, typer.Option(help="Expiry, ISO 8601 (UTC if no offset).")] = None,
    as_json: JsonOption = False,
) -> None:
    """Create an API key, optionally with a spend budget (like `vercel ai-gateway api-keys create`)."""
    period = check_refresh_period(refresh_period)
    amount = None if budget is None else usd(budget)
    body: dict[str, Any] = {"name": name}
    if expires_at:
        body["expires_at"] = expires_at
    created = call("POST", f"gateways/{gateway}/api-keys", body=body)
    if amount is not None:
        quota = call(
            "POST",
            "quotas",
            body={"quotaEntityId": quota_entity_id(created["id"]), "limitAmount": amount, "refreshPeriod": period},
        )
        created["quota"] = quota
    if as_json:
        print_json(created)
        return
    line = f"Created API key {created['id']} '{created['name']}' on gateway {created['gateway']}"
    if amount is not None:
        line += f" with a ${amount.normalize():f} {period} budget"
    out.print(line + ".")
    show_secret(created["secret"], "API key")


@api_keys_app.command("rotate")
def api_keys_rotate(
    api_key_id: Annotated[int, typer.Argument(help="The API key to rotate.")],
    as_json: JsonOption = False,
) -> None:
    """Give a key a new secret (shown once); the old one stops within a second."""
    rotated = call("POST", f"api-keys/{api_key_id}/rotate")
    if as_json:
        print_json(rotated)
        return
    out.print(f"Rotated API key {rotated['id']} '{rotated['name']}'; the old secret stops working.")
    show_secret(rotated["secret"], "New secret")


@api_keys_app.command("revoke")
def api_keys_revoke(
    api_key_id: Annotated[int, typer.Argument(help="The API key to revoke.")],
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
    as_json: JsonOption = False,
) -> None:
    """Revoke a key: requests with it are refused from now on."""
    if not yes:
        typer.confirm(f"Revoke API key {api_key_id}? Applications using it stop working.", abort=True)
    revoked = call("POST", f"api-keys/{api_key_id}/revoke")
    if as_json:
        print_json(revoked)
    else:
        out.print(f"Revoked API key {revoked['id']} '{revoked['name']}'.")


# Quotas -------------------------------------------------------------------------------------

QUOTA_COLUMNS = [
    ("Quota", "quotaEntityId"),
    ("API key", "apiKeyName"),
    ("Limit (USD)", "limitAmount"),
    ("Spent (USD)", "currentSpend"),
    ("Refresh", "refreshPeriod"),
    ("Active", "active"),
]


@quotas_app.command("get")
def quotas_get(
    api_key_id: Annotated[int, typer.Argument(help="The API key whose budget to read.")],
    as_json: JsonOption = False,
) -> None:
    """Read a key's spend budget and what it has spent in the current period."""
    quota = call("GET", "quotas", params={"quotaEntityId": quota_entity_id(api_key_id)})
    if as_json:
        print_json(quota)
    else:
        print_table([quota], QUOTA_COLUMNS, "")


@quotas_app.command("set")
def quotas_set(
    api_key_id: Annotated[int, typer.Argument(help="The API key.")],
    budget: Annotated[str, typer.Option(help="The limit in USD (at least 1).")],
    refresh_period: RefreshOption = "none",
    as_json: JsonOption = False,
) -> None:
    """Give a key a spend budget, or change (or restore) the one it has."""
    period = check_refresh_period(refresh_period)
    amount = usd(budget)
    entity = quota_entity_id(api_key_id)
    response = send("POST", "quotas", body={"quotaEntityId": entity, "limitAmount": amount, "refreshPeriod": period})
    if response.status_code == 409:  # it has one, maybe archived: change and restore it
        response = send(
            "PATCH",
            "quotas",
            params={"quotaEntityId": entity},
            body={"limitAmount": amount, "refreshPeriod": period, "archived": False, "active": True},
        )
    quota = decoded(response)
    if as_json:
        print_json(quota)
    else:
        print_table([quota], QUOTA_COLUMNS, "")


@quotas_app.command("remove")
def quotas_remove(
    api_key_id: Annotated[int, typer.Argument(help="The API key.")],
    as_json: JsonOption = False,
) -> None:
    """Remove a key's spend budget (archived: `quotas set` restores it); the key is unlimited again."""
    result = call("DELETE", "quotas", params={"quotaEntityId": quota_entity_id(api_key_id)})
    if as_json:
        print_json(result)
    else:
        out.print(f"Removed the spend budget of API key {api_key_id}; it is unlimited now.")


# Usage --------------------------------------------------------------------------------------


@app.command("usage")
def usage(
    gateway: Annotated[int | None, typer.Option(help="Only this gateway.")] = None,
    api_key: Annotated[int | None, typer.Option(help="Only this API key.")] = None,
    resource_group: Annotated[int | None, typer.Option(help="Only this resource group.")] = None,
    model: Annotated[str | None, typer.Option(help="Only this model.")] = None,
    since: Annotated[str | None, typer.Option(help="From (ISO 8601, UTC if no offset; default 7 days ago).")] = None,
    until: Annotated[str | None, typer.Option(help="Until, exclusive (ISO 8601).")] = None,
    bucket: Annotated[str, typer.Option(help="hour or day (UTC).")] = "day",
    group_by: Annotated[str | None, typer.Option(help="api_key, model, gateway or resource_group.")] = None,
    as_json: JsonOption = False,
) -> None:
    """Requests, tokens and cost (USD) per UTC day or hour, optionally per key, model or gateway."""
    params = {
        "gateway": gateway,
        "api_key": api_key,
        "resource_group": resource_group,
        "model": model,
        "since": since,
        "until": until,
        "bucket": bucket,
        "group_by": group_by,
    }
    data = call("GET", "usage/aggregates", params=params)
    if as_json:
        print_json(data)
        return
    columns = [("Start (UTC)", "start")]
    if group_by:
        columns.append((group_by.replace("_", " ").capitalize(), "key"))
    columns += [("Requests", "requests"), ("Errors", "errors"), ("Tokens", "total_tokens"), ("Cost (USD)", "cost_usd")]
    rows = list(data["results"])
    if rows:
        total_cost = sum((Decimal(row["cost_usd"]) for row in rows), Decimal(0))
        rows.append(
            {
                "start": "Total",
                "requests": sum(row["requests"] for row in rows),
                "errors": sum(row["errors"] for row in rows),
                "total_tokens": sum(row["total_tokens"] for row in rows),
                "cost_usd": f"{total_cost.normalize():f}",
            }
        )
    print_table(rows, columns, "No usage in this time range.")


def main() -> None:
    """The `aigw` console script."""
    app()


if __name__ == "__main__":
    main()
