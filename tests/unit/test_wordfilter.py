"""The chat word filter: trivial variants of a listed word are caught, innocent words that contain one are not."""

from __future__ import annotations

import pytest

from gameserver.features.moderation.wordfilter import WordFilter, normalise

WORDS = WordFilter(["bad", "evil word"])


@pytest.mark.parametrize(
    "line",
    [
        "bad",
        "BAD!",
        "so bad.",
        "ｂａｄ",  # full-width (NFKC)
        "b.a.d",  # punctuation inside the word
        "baaad",  # a letter repeated
        "b4d",  # leet
        "bаd",  # Cyrillic а
        "b\u200bad",  # zero-width space
        "bád",  # an accent
        "ＢＡＤ",
        "evil word",
        "evil   word",
        "ev1l w0rd",
    ],
)
def test_variants_are_caught(line: str) -> None:
    assert not WORDS.check(line)


@pytest.mark.parametrize("line", ["badge", "a bat", "abad", "evilword", "", "good"])
def test_other_words_pass(line: str) -> None:
    assert WORDS.check(line)
    assert WORDS.mask(line) == line


@pytest.mark.parametrize(
    ("line", "masked"),
    [
        ("not bad at all", "not *** at all"),
        ("BAD!", "***!"),
        ("b.a.d news", "***** news"),
        ("so ev1l  w0rd", "so ****  ****"),
        ("bad and bad", "*** and ***"),
    ],
)
def test_mask_replaces_the_original_characters(line: str, masked: str) -> None:
    assert WORDS.mask(line) == masked


def test_an_empty_list_filters_nothing() -> None:
    empty = WordFilter([])
    assert not empty
    assert empty.check("bad") and empty.mask("bad") == "bad"


def test_listed_words_are_normalised_too() -> None:
    assert not WordFilter(["ＢＡＤ"]).check("bad")


def test_normalise_maps_each_character_back_to_the_original() -> None:
    folded, origin = normalise("Ｂ.ád")
    assert folded == "bad"
    assert origin == [0, 2, 3]
