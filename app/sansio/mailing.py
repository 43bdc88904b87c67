"""Who may be e-mailed, as pure functions: the rules the web node checks at start and the worker again at run time.

Mass mail is an operator's action. An admin may name anyone, or nobody for every confirmed
user; anyone else may only mail themselves, and naming nobody means themselves.
"""

from __future__ import annotations

import re

# Messages a user who is not an admin may have the site send in an hour, counted from the
# digest ledger; operators are not limited (their digest to everyone is one action).
MAIL_PER_HOUR = 5
MAIL_WINDOW = 60 * 60

# Anything that could end a header, start another address or a display name is refused.
_PART = r'[^\s\x00-\x1f\x7f@<>()\[\],;:\\"]+'
_BARE_ADDRESS = re.compile(rf"{_PART}@{_PART}")


OTHERS_REFUSED = (
    "Only an operator may e-mail other users; you may send the digest to yourself "
    "(leave the recipients empty or name only yourself)."
)
OVER_VOLUME = (
    f"You may have at most {MAIL_PER_HOUR} e-mails sent in an hour; "
    "try again later, or ask an operator to send this digest."
)


def allowed_recipients(owner: str, is_admin: bool, named: list[str]) -> list[str] | None:
    """The usernames to mail for ``owner`` (``[]``: every confirmed user), None if not permitted."""
    if is_admin:
        return named
    if any(n != owner for n in named):
        return None
    return [owner]


def over_volume(sent_in_window: int, planned: int, limit: int = MAIL_PER_HOUR) -> bool:
    return sent_in_window + planned > limit


def single_address(value: str) -> bool:
    """Whether ``value`` is exactly one bare address: no display name, no list, no header injection.

    A last check before a header is written, for addresses stored before registration
    validated them; deliberately stricter than RFC 5322 (no quoted local parts).
    """
    return _BARE_ADDRESS.fullmatch(value) is not None
