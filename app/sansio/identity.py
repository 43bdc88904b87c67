"""Who a user is, as pure functions: one set of rules for the form, the API and the database."""

from __future__ import annotations

import unicodedata


def username_key(name: str) -> str:
    """The name's identity: two names with one key are one name (case and compatibility forms fold)."""
    return unicodedata.normalize("NFKC", name).casefold()
