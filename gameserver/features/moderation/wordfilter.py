"""The chat word filter (docs/PROTOCOL.md, "Moderation"): pure, no I/O.

A line and each listed word are brought to one form before they are compared, so that trivial variants are
caught: Unicode NFKC (full-width letters, ligatures, compatibility forms), case folding, combining marks and
zero-width characters removed, a small table of look-alikes (Cyrillic and Greek letters shaped like Latin ones)
and leet digits mapped to letters, and punctuation inside a word ignored (``b.a.d``). A listed word matches a
whole word of the line (a phrase, consecutive words), each of its letters possibly repeated (``baaad``), so
``class`` does not match ``ass``.

:meth:`WordFilter.check` says whether a line holds a listed word; :meth:`WordFilter.mask` replaces every
matched stretch of the original line with ``*``.
"""

from __future__ import annotations

import functools
import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass

MASK = "*"

# Look-alikes that NFKC leaves apart from the Latin letters they imitate (a subset of Unicode's confusables.txt:
# the Cyrillic and Greek lower-case letters a Latin reader cannot tell apart), and leet digits and signs.
CONFUSABLES = {
    "а": "a", "в": "b", "е": "e", "ё": "e", "к": "k", "м": "m", "н": "h", "о": "o", "р": "p", "с": "c",
    "т": "t", "у": "y", "х": "x", "і": "i", "ј": "j", "ѕ": "s", "ԁ": "d", "ӏ": "l", "ԛ": "q", "ԝ": "w",
    "α": "a", "β": "b", "ε": "e", "η": "n", "ι": "i", "κ": "k", "ν": "v", "ο": "o", "ρ": "p", "τ": "t",
    "υ": "u", "χ": "x", "ϲ": "c",
}  # fmt: skip
LEET = {"0": "o", "1": "i", "3": "e", "4": "a", "5": "s", "7": "t", "8": "b", "9": "g", "@": "a", "$": "s"}
INVISIBLE = {"\u200b", "\u200c", "\u200d", "\u2060", "\ufeff", "\u00ad"}


def _fold(char: str) -> str:
    """One character of the original line in compared form ("" when it vanishes, " " when it separates)."""
    out = []
    for c in unicodedata.normalize("NFKC", char).casefold():
        if c in INVISIBLE or unicodedata.combining(c):
            continue
        c = CONFUSABLES.get(c, c)
        c = LEET.get(c, c)
        if c.isalpha():
            out.append(c)
        elif c.isspace():
            out.append(" ")
        elif c.isdigit():
            out.append(c)
        # other punctuation inside a word is ignored: "b.a.d"
    return "".join(out)


def normalise(text: str) -> tuple[str, list[int]]:
    """``text`` in compared form, with, for each character of it, the index of the original character it came
    from. Decomposition first (NFKD) so that a letter with an accent keeps its base letter."""
    folded: list[str] = []
    origin: list[int] = []
    for index, char in enumerate(text):
        for c in _fold_char(char):
            folded.append(c)
            origin.append(index)
    return "".join(folded), origin


@functools.lru_cache(maxsize=4096)
def _fold_char(char: str) -> str:
    """:func:`_fold` of the character without its accents; cached: a chat uses few distinct characters."""
    base = "".join(c for c in unicodedata.normalize("NFKD", char) if not unicodedata.combining(c)) or char
    return _fold(base)


@dataclass(frozen=True, slots=True)
class Match:
    start: int  # index in the original line
    end: int  # one past the last original character


_WORD = re.compile(r"\w+")


_REPEATS = re.compile(r"(.)\1+")


def _squeeze(word: str) -> str:
    """``word`` with each run of one letter reduced to one: "baaad" -> "bad" (so repeated letters are caught)."""
    return _REPEATS.sub(r"\1", word)


class WordFilter:
    """Finds the listed words in a line.

    Args:
        words: the words (or phrases) to catch, in any form; brought to the compared form here.
    """

    def __init__(self, words: Iterable[str]) -> None:
        self.phrases: dict[int, set[tuple[str, ...]]] = {}  # by their number of words
        for word in words:
            folded, _ = normalise(word)
            parts = tuple(_squeeze(part) for part in _WORD.findall(folded))
            if parts:
                self.phrases.setdefault(len(parts), set()).add(parts)
        self.lengths = sorted(self.phrases, reverse=True)  # longest first: a phrase wins over a word it starts with

    def __bool__(self) -> bool:
        return bool(self.phrases)

    def matches(self, text: str) -> list[Match]:
        """The stretches of ``text`` that hold a listed word."""
        if not self.phrases:
            return []
        folded, origin = normalise(text)
        tokens = [(m.start(), m.end(), _squeeze(m.group())) for m in _WORD.finditer(folded)]
        found = []
        index = 0
        while index < len(tokens):
            for length in self.lengths:
                words = tuple(token[2] for token in tokens[index : index + length])
                if len(words) == length and words in self.phrases[length]:
                    found.append(Match(origin[tokens[index][0]], origin[tokens[index + length - 1][1] - 1] + 1))
                    index += length
                    break
            else:
                index += 1
        return found

    def check(self, text: str) -> bool:
        """True if ``text`` holds no listed word."""
        return not self.matches(text)

    def mask(self, text: str) -> str:
        """``text`` with each matched stretch replaced by as many ``*`` as it had characters."""
        matches = self.matches(text)
        if not matches:
            return text
        chars = list(text)
        for match in matches:
            for index in range(match.start, match.end):
                if not chars[index].isspace():
                    chars[index] = MASK
        return "".join(chars)
