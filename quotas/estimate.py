"""Prompt-token estimation before a request is forwarded (SPEC §3: TPM and hard limits).

Uses OpenAI's o200k_base encoding from `bpe-openai`, which ships its encodings inside the
package (tiktoken downloads them at first use, which an offline gateway cannot do). A chat
prompt is estimated as OpenAI's cookbook counts it: each message's text tokens + 4, + 3 for
the reply's priming. The estimate is corrected with the provider's real usage afterwards.
"""

from __future__ import annotations

from functools import cache

import bpe_openai

TOKENS_PER_MESSAGE = 4
TOKENS_PER_REPLY = 3
# Worst-case output when neither the request (`max_tokens`) nor the model sets a limit.
DEFAULT_MAX_OUTPUT_TOKENS = 4096


@cache
def _encoding():
    return bpe_openai.get_encoding("o200k_base")


# o200k's encoder refuses megabytes without a split point ("Input too long to encode safely");
# such a text is encoded in pieces of this many characters.
ENCODE_PIECE_CHARS = 100_000


def count_tokens(text: str) -> int:
    """Tokens of `text` in o200k_base (`len(encode(text))`); never raises."""
    return len(encode(text)) if text else 0


def encode(text: str) -> list[int]:
    """The o200k_base tokens of `text`; never raises. A text the encoder refuses as too long
    is encoded in pieces of ENCODE_PIECE_CHARS characters, which splits at most one token per
    piece boundary (a count within a few tokens per 100,000 characters of the whole)."""
    try:
        return _encoding().encode_ordinary(text)
    except ValueError:
        tokens: list[int] = []
        for start in range(0, len(text), ENCODE_PIECE_CHARS):
            tokens.extend(_encoding().encode_ordinary(text[start : start + ENCODE_PIECE_CHARS]))
        return tokens


def decode_one(token: int) -> str:
    """The text of one o200k_base token."""
    return _encoding().decode([token])


def message_text(message) -> str:
    """The text of a chat message: a string content, or the text parts of a content array."""
    if not isinstance(message, dict):
        return ""
    content = message.get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(part.get("text", "") for part in content if isinstance(part, dict))
    return ""


def prompt_tokens(messages: list) -> int:
    """Estimated prompt tokens of a chat: text tokens + 4 per message + 3."""
    return sum(count_tokens(message_text(m)) + TOKENS_PER_MESSAGE for m in messages) + TOKENS_PER_REPLY


def max_output_tokens(body: dict, model_limit: int | None) -> int:
    """The most output tokens a request may produce: its `max_completion_tokens` or
    `max_tokens`, else the model's output limit, else DEFAULT_MAX_OUTPUT_TOKENS."""
    for field in ("max_completion_tokens", "max_tokens"):
        value = body.get(field)
        if isinstance(value, int) and value > 0:
            return min(value, model_limit) if model_limit else value
    return model_limit or DEFAULT_MAX_OUTPUT_TOKENS
