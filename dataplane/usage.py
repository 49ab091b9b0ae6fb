"""Normalising provider usage reports to `TokenUsage` without counting any token twice (SPEC §3)."""

from __future__ import annotations

from gateway.pricing import TokenUsage


def _int(value) -> int:
    return value if isinstance(value, int) and value > 0 else 0


def usage_from_openai(usage: dict | None) -> TokenUsage:
    """OpenAI's `usage` object: `cached_tokens` is part of `prompt_tokens` and `reasoning_tokens`
    part of `completion_tokens`, so neither is added again. Some OpenAI-compatible servers report
    cache writes as `prompt_tokens_details.cache_write_tokens` (or Anthropic-style
    `cache_creation_input_tokens`), also inside `prompt_tokens`.
    """
    if not isinstance(usage, dict):
        return TokenUsage()
    prompt_details = usage.get("prompt_tokens_details") or {}
    completion_details = usage.get("completion_tokens_details") or {}
    input_tokens = _int(usage.get("prompt_tokens"))
    cached = min(_int(prompt_details.get("cached_tokens")), input_tokens)
    cache_write = _int(prompt_details.get("cache_write_tokens")) or _int(usage.get("cache_creation_input_tokens"))
    output_tokens = _int(usage.get("completion_tokens"))
    return TokenUsage(
        input_tokens=input_tokens,
        cached_input_tokens=cached,
        cache_write_tokens=min(cache_write, input_tokens - cached),
        output_tokens=output_tokens,
        reasoning_tokens=min(_int(completion_details.get("reasoning_tokens")), output_tokens),
    )
