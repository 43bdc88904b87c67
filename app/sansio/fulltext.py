"""What a user typed into the search box, made into full-text queries that cannot be syntax errors.

On every backend a query means: posts containing all of its words (as stemmed by the index;
PostgreSQL also skips English stop words). Nothing a user types is taken as an operator.
"""

from __future__ import annotations

import unicodedata

# Longer input is cut, not refused: a search box is no place for a 400.
MAX_QUERY_LENGTH = 256
MAX_TERMS = 16
# FTS5's operators, which it recognises only in capitals. Someone typing them means an operator we
# do not offer: AND is what happens anyway, and as required words they would match almost nothing.
OPERATORS = frozenset({"AND", "OR", "NOT", "NEAR"})


def terms(query: str) -> list[str]:
    """The query's words, first occurrence first, without punctuation-only ones and operators."""
    # Control characters separate words: a NUL is an error in a PostgreSQL text parameter.
    text = "".join(" " if unicodedata.category(ch) in ("Cc", "Cs") else ch for ch in query[:MAX_QUERY_LENGTH])
    words = (w for w in text.split() if w not in OPERATORS and any(ch.isalnum() for ch in w))
    return list(dict.fromkeys(words))[:MAX_TERMS]


def fts5_match(words: list[str]) -> str:
    """An SQLite FTS5 MATCH expression requiring every word."""
    # Inside an FTS5 string only the double quote is special (written twice), so AND, NEAR, *, ^,
    # column filters and parentheses become plain text that the tokenizer splits like a post.
    return " ".join('"' + w.replace('"', '""') + '"' for w in words)


def tsquery_text(words: list[str]) -> str:
    """Text for PostgreSQL's ``plainto_tsquery``, which ignores punctuation and ANDs the words."""
    return " ".join(words)
