"""Text normalisation for lookups, recovery answers and display. Pure functions: no I/O.

Every function starts with Unicode NFKC, so visually identical forms compare equal: full-width
Latin (U+FF21 is "A"), Arabic presentation forms (the lam-alef ligature U+FEFB is "لا"), and
Latin ligatures (U+FB01 is "fi").

Keys (`username_key`, `email_key`, `recovery_answer_key`) feed blind indexes and hashes, so they
must be stable: each is idempotent (key(key(x)) == key(x)) and ends in NFKC, so a key fed back in
is never changed. Display values (`display_text`) are tidied but never folded: people see them.
"""

from __future__ import annotations

import string
import unicodedata

# Deleted by `arabic_fold`. Harakat and Quranic marks are optional in everyday writing: the same
# name arrives with and without them. Tatweel (kashida) only stretches a word for justification.
# Bidi and zero-width controls are invisible, yet copy-paste from right-to-left text carries them
# (RLM, ALM, ZWNJ), so two keys that look the same would otherwise differ.
_ARABIC_DELETIONS = (
    0x0640,  # tatweel
    0x0670,  # superscript alef
    *range(0x064B, 0x0660),  # harakat: tanwin, fatha, damma, kasra, shadda, sukun, ...
    *range(0x06D6, 0x06EE),  # Quranic annotation marks
    0x00AD,  # soft hyphen
    0x061C,  # Arabic letter mark
    0xFEFF,  # zero-width no-break space (BOM)
    *range(0x200B, 0x2010),  # zero-width space, ZWNJ, ZWJ, LRM, RLM
    *range(0x202A, 0x202F),  # bidi embeddings and overrides
    *range(0x2060, 0x2065),  # word joiner and invisible operators
    *range(0x2066, 0x206A),  # bidi isolates
)

# Letters people write interchangeably, folded to one form as Arabic search engines do. Written
# by name: several of these letters are indistinguishable from one another in most fonts.
_ALEF = "\N{ARABIC LETTER ALEF}"
_WAW = "\N{ARABIC LETTER WAW}"
_YEH = "\N{ARABIC LETTER YEH}"
_ARABIC_LETTERS = {
    # Hamza and madda on alef are often left off when typing: "أحمد" / "احمد" / "إحمد".
    "\N{ARABIC LETTER ALEF WITH HAMZA ABOVE}": _ALEF,
    "\N{ARABIC LETTER ALEF WITH HAMZA BELOW}": _ALEF,
    "\N{ARABIC LETTER ALEF WITH MADDA ABOVE}": _ALEF,
    "\N{ARABIC LETTER ALEF WASLA}": _ALEF,  # from Quranic and classical text
    # Hamza on waw and yeh is also routinely dropped or moved ("مسؤول" / "مسئول" / "مسوول"),
    # so the seat letter is kept and the hamza dropped. The standalone hamza "ء" is kept: it is a
    # letter in its own right and dropping it changes the word's shape ("سماء" would become "سما").
    "\N{ARABIC LETTER WAW WITH HAMZA ABOVE}": _WAW,
    "\N{ARABIC LETTER YEH WITH HAMZA ABOVE}": _YEH,
    # Ta marbuta is commonly written as heh: "مدرسة" / "مدرسه".
    "\N{ARABIC LETTER TEH MARBUTA}": "\N{ARABIC LETTER HEH}",
    # Alef maqsura and yeh are swapped freely, above all in Egypt: "مستشفى" / "مستشفي".
    "\N{ARABIC LETTER ALEF MAKSURA}": _YEH,
    # Persian yeh and keheh look the same as Arabic yeh and kaf in most fonts and come from
    # Persian keyboard layouts and from pasted text.
    "\N{ARABIC LETTER FARSI YEH}": _YEH,
    "\N{ARABIC LETTER KEHEH}": "\N{ARABIC LETTER KAF}",
}

# NFKC leaves both Arabic digit sets alone; people type either, or ASCII, for the same number.
_DIGITS = {0x0660 + i: str(i) for i in range(10)} | {0x06F0 + i: str(i) for i in range(10)}

_ARABIC_TABLE: dict[int, str | None] = (
    dict.fromkeys(_ARABIC_DELETIONS)
    | {ord(source): target for source, target in _ARABIC_LETTERS.items()}
    | _DIGITS
)


def nfkc(text: str) -> str:
    """Unicode NFKC: compatibility forms (full-width, presentation forms) become the plain ones."""
    return unicodedata.normalize("NFKC", text)


def collapse_whitespace(text: str) -> str:
    """Runs of any Unicode whitespace become one space, with none at either end."""
    return " ".join(text.split())


def arabic_fold(text: str) -> str:
    """Fold text so that spelling variants of the same Arabic word compare equal.

    NFKC; drop tatweel, harakat, Quranic marks and invisible bidi/zero-width controls; unify alef
    forms, hamza seats, ta marbuta, alef maqsura and the Persian look-alikes (see `_ARABIC_LETTERS`
    for each choice); turn Arabic-Indic and Eastern Arabic-Indic digits into ASCII; collapse
    whitespace; casefold for Latin (and other cased) scripts.

    Meant for lookup keys and recovery answers only: it loses distinctions a reader would see.
    The trailing NFKC keeps the result a fixed point: casefold can emit decomposed sequences.
    """
    folded = collapse_whitespace(nfkc(text).translate(_ARABIC_TABLE))
    return nfkc(folded.casefold())


def username_key(username: str) -> str:
    """The lookup key for a username: Arabic usernames match across spelling variants.

    Changing this function changes every stored username blind index.
    """
    return arabic_fold(nfkc(username).strip())


def email_key(email: str) -> str:
    """The lookup key for an e-mail address: NFKC, trimmed, the whole address casefolded.

    RFC 5321 lets the local part be case-sensitive, but shoppers expect "Ahmed@Example.com" and
    "ahmed@example.com" to be the same account, and mail providers treat them so; we fold.
    """
    return nfkc(nfkc(email).strip().casefold())


def _is_punctuation(char: str) -> bool:
    # ASCII punctuation includes symbols ($ + < = > ^ ` | ~) that Unicode files under S*, not P*.
    return char in string.punctuation or unicodedata.category(char).startswith("P")


def loose_key(text: str) -> str:
    """`arabic_fold`, then every punctuation mark and every space removed.

    Punctuation means Unicode P* (Arabic "،" "؛" "؟" among them) and all ASCII punctuation.
    """
    folded = arabic_fold(text)
    # NFKC again: dropping a mark can leave a letter next to a combining accent it now takes.
    return nfkc("".join(c for c in folded if not c.isspace() and not _is_punctuation(c)))


def recovery_answer_key(answer: str) -> str:
    """The form of a recovery answer that is hashed and compared: `loose_key`.

    People remember the words of an answer, not its punctuation or spacing: compound Arabic names
    are written both joined and split ("عبدالله" / "عبد الله"), as are Latin ones ("Al-Nour" /
    "Al Nour"), so spaces go as well as punctuation. The definite article "ال" is kept: dropping
    it would merge answers that mean different things.
    """
    return loose_key(answer)


def display_text(text: str) -> str:
    """A value stored to be shown back (a name): NFKC, trimmed, inner whitespace collapsed.

    Not folded: the person's own spelling, diacritics and case are kept.
    """
    return collapse_whitespace(nfkc(text))
