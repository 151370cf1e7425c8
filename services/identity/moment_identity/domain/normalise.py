"""Text normalisation for lookups. Pure functions: no I/O.

NFKC first, so visually identical forms (full-width Latin, Arabic presentation forms) compare equal;
then case folding. The Arabic-aware folding for recovery answers arrives with the identity issue.
"""

from __future__ import annotations

import unicodedata


def nfkc(text: str) -> str:
    return unicodedata.normalize("NFKC", text)


def username_key(username: str) -> str:
    return nfkc(username).strip().casefold()


def email_key(email: str) -> str:
    return nfkc(email).strip().casefold()
