"""The chat word filter (docs/PROTOCOL.md, "Moderation"): pure, no I/O.

A line and each listed word are brought to one form before they are compared, so that trivial variants are
caught: Unicode NFKC (full-width letters, ligatures, compatibility forms), case folding, combining marks and
zero-width characters removed, a small table of look-alikes (Cyrillic and Greek letters shaped like Latin ones)
and leet digits mapped to letters, and punctuation inside a word ignored (``b.a.d``). A listed word matches a
whole word of the line, each of its letters possibly repeated (``baaad``), so ``class`` does not match ``ass``.

:meth:`WordFilter.check` says whether a line holds a listed word; :meth:`WordFilter.mask` replaces every
matched stretch of the original line with ``*``.
"""

from __future__ import annotations

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
        base = "".join(c for c in unicodedata.normalize("NFKD", char) if not unicodedata.combining(c)) or char
        for c in _fold(base):
            folded.append(c)
            origin.append(index)
    return "".join(folded), origin


@dataclass(frozen=True, slots=True)
class Match:
    start: int  # index in the original line
    end: int  # one past the last original character


class WordFilter:
    """Finds the listed words in a line.

    Args:
        words: the words (or phrases) to catch, in any form; brought to the compared form here.
    """

    def __init__(self, words: Iterable[str]) -> None:
        patterns = []
        for word in words:
            folded, _ = normalise(word.strip())
            parts = folded.split()
            if parts:
                patterns.append(" +".join("".join(re.escape(c) + "+" for c in part) for part in parts))
        self.pattern = None
        if patterns:
            # Longest first, so that a phrase wins over a word it starts with.
            alternatives = "|".join(sorted(set(patterns), key=len, reverse=True))
            self.pattern = re.compile(rf"(?<!\w)(?:{alternatives})(?!\w)")

    def __bool__(self) -> bool:
        return self.pattern is not None

    def matches(self, text: str) -> list[Match]:
        """The stretches of ``text`` that hold a listed word."""
        if self.pattern is None:
            return []
        folded, origin = normalise(text)
        return [Match(origin[m.start()], origin[m.end() - 1] + 1) for m in self.pattern.finditer(folded)]

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
