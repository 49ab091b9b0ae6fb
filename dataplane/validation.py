"""The checks of a `POST /v1/chat/completions` body before anything is estimated or forwarded
(SPEC §4: bad input is a 400 naming its `param`, never a 5xx).

The types and ranges are those of OpenAI's Chat Completions reference: a field that OpenAI
would refuse is refused here first, so a provider is never sent a body it rejects with a
different error, and our estimator only ever sees the shapes it counts. Fields this module does
not name pass through unchanged (providers add their own).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from dataplane.errors import ProxyError, invalid_request

ROLES = frozenset({"system", "developer", "user", "assistant", "tool", "function"})
# Content part type -> the field that holds its payload and the payload's JSON type.
CONTENT_PARTS = {
    "text": ("text", str),
    "image_url": ("image_url", dict),
    "input_audio": ("input_audio", dict),
    "file": ("file", dict),
    "refusal": ("refusal", str),
}
MAX_N = 128
MAX_STOP_SEQUENCES = 4
MAX_TOP_LOGPROBS = 20


@dataclass(frozen=True, slots=True)
class _Number:
    """A JSON number field (never a boolean) within [low, high]."""

    low: float
    high: float
    integer: bool = False


# Optional scalar fields: null is always allowed and means "the provider's default".
_NUMBERS = {
    "temperature": _Number(0, 2),
    "top_p": _Number(0, 1),
    "presence_penalty": _Number(-2, 2),
    "frequency_penalty": _Number(-2, 2),
    "n": _Number(1, MAX_N, integer=True),
    "max_tokens": _Number(1, 2**31 - 1, integer=True),
    "max_completion_tokens": _Number(1, 2**31 - 1, integer=True),
    "top_logprobs": _Number(0, MAX_TOP_LOGPROBS, integer=True),
    "seed": _Number(-(2**63), 2**63 - 1, integer=True),
}
_BOOLEANS = ("stream", "logprobs", "parallel_tool_calls", "store")
_STRINGS = ("user", "service_tier", "reasoning_effort")
_OBJECTS = ("response_format", "logit_bias", "metadata", "prediction", "audio", "web_search_options")


def check_chat_body(body: dict) -> list:
    """Check a chat completions body; return its `messages` (a non-empty list of objects).

    Raises:
        ProxyError: 400 `invalid_request_error` whose `param` names the first bad field, e.g.
            `messages[2].content[0].text`, `stream_options.include_usage`, `n`.
    """
    messages = _messages(body.get("messages"))
    for name, rule in _NUMBERS.items():
        _number(body, name, rule)
    for name in _BOOLEANS:
        _typed(body, name, bool, "a boolean")
    for name in _STRINGS:
        _typed(body, name, str, "a string")
    for name in _OBJECTS:
        _typed(body, name, dict, "an object")
    _stream_options(body)
    _stop(body.get("stop"))
    _tools(body)
    return messages


def _bad(param: str, message: str) -> ProxyError:
    return invalid_request(message, param=param)


def _type_name(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return "an object"


def _typed(body: dict, name: str, kind: type, label: str) -> None:
    value = body.get(name)
    if value is not None and not isinstance(value, kind):
        raise _bad(name, f"'{name}' must be {label}, not {_type_name(value)}.")


def _number(body: dict, name: str, rule: _Number) -> None:
    value = body.get(name)
    if value is None:
        return
    wanted = "an integer" if rule.integer else "a number"
    if isinstance(value, bool) or not isinstance(value, int if rule.integer else (int, float)):
        raise _bad(name, f"'{name}' must be {wanted}, not {_type_name(value)}.")
    if not rule.low <= value <= rule.high:
        raise _bad(name, f"'{name}' must be between {rule.low:g} and {rule.high:g}; it is {value}.")


def _messages(messages: Any) -> list:
    if not isinstance(messages, list) or not messages:
        raise _bad("messages", "'messages' must be a non-empty array of messages.")
    for index, message in enumerate(messages):
        where = f"messages[{index}]"
        if not isinstance(message, dict):
            raise _bad(where, f"'{where}' must be an object, not {_type_name(message)}.")
        role = message.get("role")
        if not isinstance(role, str) or role not in ROLES:
            raise _bad(f"{where}.role", f"'{where}.role' must be one of {', '.join(sorted(ROLES))}.")
        if "name" in message and not isinstance(message["name"], str):
            raise _bad(f"{where}.name", f"'{where}.name' must be a string.")
        _content(message.get("content"), f"{where}.content", may_be_null=role in ("assistant", "function"))
    return messages


def _content(content: Any, where: str, *, may_be_null: bool) -> None:
    if isinstance(content, str) or (content is None and may_be_null):
        return
    if not isinstance(content, list):
        raise _bad(where, f"'{where}' must be a string or an array of content parts, not {_type_name(content)}.")
    for index, part in enumerate(content):
        at = f"{where}[{index}]"
        if not isinstance(part, dict):
            raise _bad(at, f"'{at}' must be an object, not {_type_name(part)}.")
        kind = part.get("type")
        if not isinstance(kind, str) or kind not in CONTENT_PARTS:
            raise _bad(f"{at}.type", f"'{at}.type' must be one of {', '.join(CONTENT_PARTS)}.")
        field, payload = CONTENT_PARTS[kind]
        if not isinstance(part.get(field), payload):
            label = "a string" if payload is str else "an object"
            raise _bad(f"{at}.{field}", f"'{at}.{field}' must be {label}, not {_type_name(part.get(field))}.")


def _stream_options(body: dict) -> None:
    options = body.get("stream_options")
    if options is None:
        return
    if not isinstance(options, dict):
        raise _bad("stream_options", f"'stream_options' must be an object, not {_type_name(options)}.")
    if body.get("stream") is not True:
        raise _bad("stream_options", "'stream_options' is only allowed when 'stream' is true.")
    for name in ("include_usage", "include_obfuscation"):
        if name in options and not isinstance(options[name], bool):
            raise _bad(f"stream_options.{name}", f"'stream_options.{name}' must be a boolean.")


def _stop(stop: Any) -> None:
    if stop is None or isinstance(stop, str):
        return
    if not isinstance(stop, list) or not all(isinstance(s, str) for s in stop):
        raise _bad("stop", "'stop' must be a string or an array of strings.")
    if len(stop) > MAX_STOP_SEQUENCES:
        raise _bad("stop", f"'stop' takes at most {MAX_STOP_SEQUENCES} sequences.")


def _tools(body: dict) -> None:
    tools = body.get("tools")
    if tools is not None:
        if not isinstance(tools, list):
            raise _bad("tools", f"'tools' must be an array, not {_type_name(tools)}.")
        for index, tool in enumerate(tools):
            _tool(tool, f"tools[{index}]")
    choice = body.get("tool_choice")
    if choice is not None and not isinstance(choice, (str, dict)):
        raise _bad("tool_choice", "'tool_choice' must be a string or an object.")


def _tool(tool: Any, at: str) -> None:
    """A `function` tool needs a function with a name (and object parameters); a tool of another
    type (`custom`, providers' own) needs only its `type`."""
    if not isinstance(tool, dict) or not isinstance(tool.get("type"), str):
        raise _bad(f"{at}.type", f"'{at}' must be an object with a 'type'.")
    if tool["type"] != "function":
        return
    function = tool.get("function")
    if not isinstance(function, dict) or not isinstance(function.get("name"), str):
        raise _bad(f"{at}.function", f"'{at}.function' must be an object with a 'name'.")
    if "parameters" in function and not isinstance(function["parameters"], dict):
        raise _bad(f"{at}.function.parameters", f"'{at}.function.parameters' must be an object.")
