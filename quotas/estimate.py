"""Prompt-token estimation before a request is forwarded (SPEC §3: TPM), and hard mode's bound.

Uses OpenAI's o200k_base encoding from `bpe-openai`, which ships its encodings inside the
package (tiktoken downloads them at first use, which an offline gateway cannot do). A chat
prompt is estimated as OpenAI's cookbook counts it: each message's text tokens + 4, + 3 for
the reply's priming. The estimate is corrected with the provider's real usage afterwards.
"""

from __future__ import annotations

from functools import cache

import orjson

TOKENS_PER_MESSAGE = 4
TOKENS_PER_REPLY = 3
# Worst-case output when neither the request (`max_tokens`) nor the model sets a limit.
DEFAULT_MAX_OUTPUT_TOKENS = 4096


@cache
def _encoding():
    """o200k_base, loaded at its first use: about 140 MB, which a process whose keys have no
    TPM limit (and no mock provider) never spends."""
    import bpe_openai

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


def prompt_tokens(messages: list, by: str = "o200k") -> int:
    """Estimated prompt tokens of a chat: text tokens + 4 per message + 3. The text tokens are
    counted in o200k_base (`by="o200k"`) or guessed from the characters (`by="characters"`,
    `guess_tokens`)."""
    count = count_tokens if by == "o200k" else guess_tokens
    return sum(count(message_text(m)) + TOKENS_PER_MESSAGE for m in messages) + TOKENS_PER_REPLY


def guess_tokens(text: str) -> int:
    """Tokens of `text` guessed from its characters, with no tokenizer, as OpenAI's own rate
    limiter estimates a prompt: a token per 4 ASCII characters (English runs at about 4 in
    o200k), rounded up, and one per other character (a CJK character is about one)."""
    if text.isascii():
        return -(-len(text) // 4)
    ascii_chars = len(text.encode("ascii", "ignore"))
    return -(-ascii_chars // 4) + len(text) - ascii_chars


def max_output_tokens(body: dict, model_limit: int | None) -> int:
    """The most output tokens a request may produce: its `max_completion_tokens` or
    `max_tokens`, else the model's output limit, else DEFAULT_MAX_OUTPUT_TOKENS."""
    for field in ("max_completion_tokens", "max_tokens"):
        value = body.get(field)
        if isinstance(value, int) and value > 0:
            return min(value, model_limit) if model_limit else value
    return model_limit or DEFAULT_MAX_OUTPUT_TOKENS


# Hard mode's upper bound (SPEC §3): a count that no provider's tokenizer can pass, so a hard
# spend budget or token quota is a bound, not an estimate. Every byte-level BPE tokenizer
# (OpenAI's o200k and cl100k, Anthropic's, Llama's, Mistral's tekken) and every SentencePiece
# tokenizer with byte fallback turns N bytes of UTF-8 into at most N tokens; on top of what the
# request carries, providers add tokens of their own, bounded by the allowances below.
BOUND_TOKENS_PER_MESSAGE = 16  # OpenAI: 3-4 (+1 for a name); Llama 3's chat template: 5
BOUND_TOKENS_PER_REQUEST = 16  # OpenAI primes the reply with 3
BOUND_TOKENS_FOR_TOOLS = 1_024  # Anthropic's tool-use system prompt: 346 tokens; OpenAI's: ~10
BOUND_TOKENS_PER_TOOL = 64  # formatting around each tool's own schema (whose bytes are counted)
# An image costs what its provider's vision encoder says, not its bytes. The dearest one known:
# gpt-4o-mini at detail "high", 2,833 + 8 tiles x 5,667 = 48,169 tokens; at detail "low" 2,833.
# (Anthropic: at most ~1,600 per image; Gemini: 258 per tile.)
BOUND_TOKENS_PER_IMAGE = 50_000
BOUND_TOKENS_PER_LOW_DETAIL_IMAGE = 3_000


class Unbounded(ValueError):
    """A request whose tokens no bound can be computed for before it runs (a file part: a PDF's
    text may be compressed inside it, and a `file_id` has no size here). `param` names the field."""

    def __init__(self, param: str, message: str) -> None:
        super().__init__(message)
        self.param = param


def prompt_bound(body: dict) -> int:
    """An upper bound on the prompt tokens any provider counts for a chat completions `body`
    (a dict that `dataplane.validation.check_chat_body` accepted): the UTF-8 byte length of the
    body as JSON (it holds every message, name, tool call, tool, schema and prediction; JSON's
    escapes only add bytes), with each image part counted at BOUND_TOKENS_PER_IMAGE instead of
    its bytes, plus BOUND_TOKENS_PER_MESSAGE per message, BOUND_TOKENS_PER_REQUEST, and
    BOUND_TOKENS_FOR_TOOLS + BOUND_TOKENS_PER_TOOL per tool when tools are sent.

    Raises:
        Unbounded: the body has a `file` content part.
    """
    size = len(orjson.dumps(body))
    messages = body.get("messages") or []
    bound = BOUND_TOKENS_PER_REQUEST + BOUND_TOKENS_PER_MESSAGE * len(messages)
    for i, message in enumerate(messages):
        content = message.get("content") if isinstance(message, dict) else None
        if not isinstance(content, list):
            continue
        for j, part in enumerate(content):
            kind = part.get("type") if isinstance(part, dict) else None
            if kind == "file":
                raise Unbounded(
                    f"messages[{i}].content[{j}]",
                    "A hard spend budget or token quota cannot bound the tokens of a file part before it is "
                    "sent; send its text instead, or use a key without hard limits.",
                )
            if kind == "image_url":
                size -= len(orjson.dumps(part))
                image = part.get("image_url") or {}
                low = isinstance(image, dict) and image.get("detail") == "low"
                bound += BOUND_TOKENS_PER_LOW_DETAIL_IMAGE if low else BOUND_TOKENS_PER_IMAGE
    for field in ("tools", "functions"):
        tools = body.get(field)
        if isinstance(tools, list) and tools:
            bound += BOUND_TOKENS_FOR_TOOLS + BOUND_TOKENS_PER_TOOL * len(tools)
    return bound + size


def output_bound(body: dict, model_limit: int | None) -> int:
    """An upper bound on the completion tokens of a chat completions `body`: the output cap of
    each choice (`max_output_tokens`, which the gateway forwards as the request's limit) times
    `n`, plus the bytes of a `prediction` (OpenAI bills rejected predicted tokens as output)."""
    choices = body.get("n")
    per_choice = max_output_tokens(body, model_limit)
    bound = per_choice * (choices if isinstance(choices, int) and choices > 0 else 1)
    prediction = body.get("prediction")
    if prediction is not None:
        bound += len(orjson.dumps(prediction))
    return bound
