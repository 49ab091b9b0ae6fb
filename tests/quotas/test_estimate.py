"""TPM's prompt estimate (AIGW_TPM_ESTIMATE): counted with o200k, or guessed from the characters
with no tokenizer in memory."""

from __future__ import annotations

import pytest

from quotas import estimate

PROSE = "Hello there, gateway! How are you doing today? I would like a summary of the quarterly report."
CHAT = [{"role": "system", "content": "You are terse."}, {"role": "user", "content": PROSE}]


def test_the_characters_guess_needs_no_tokenizer_and_is_close_to_o200k_for_english(monkeypatch):
    counted = estimate.prompt_tokens(CHAT)

    def no_tokenizer():
        raise AssertionError("the tokenizer was loaded")

    monkeypatch.setattr(estimate, "_encoding", no_tokenizer)
    guessed = estimate.prompt_tokens(CHAT, by="characters")
    assert guessed == -(-len("You are terse.") // 4) + -(-len(PROSE) // 4) + 2 * 4 + 3 == 39
    assert abs(guessed - counted) <= 0.25 * counted
    with pytest.raises(AssertionError):
        estimate.prompt_tokens(CHAT)  # o200k does load it


def test_the_characters_guess_counts_a_token_for_each_character_that_is_not_ascii():
    assert estimate.guess_tokens("你好，世界。") == 6  # o200k: 4
    assert estimate.guess_tokens("Ça va") == 1 + 1  # "a va" is 4 ASCII characters, "Ç" one more
    assert estimate.guess_tokens("") == 0
