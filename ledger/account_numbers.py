"""Account numbers: `LF` + two check digits + 16 digits, checked as an IBAN is (ISO 7064 mod 97-10).

Pure functions, no I/O. The database assigns numbers (migration 0013, `ledger_account_number`,
the same arithmetic); this module checks what people type, so a mistyped number is refused
by its check digits before anything is looked up. Mod 97-10 catches every single changed
digit and every swap of two adjacent digits.
"""

from __future__ import annotations

import re
from typing import Final

from ledger.errors import LedgerError

COUNTRY: Final = "LF"
LENGTH: Final = 20  # LF + 2 check digits + 16 digits
_SHAPE: Final = re.compile(r"^LF[0-9]{18}$")
# Spaces (and the no-break spaces a copy from a PDF brings) are ignored, as in IBANs.
_SPACES: Final = re.compile(r"[\s\u00a0\u202f]+")


class InvalidAccountNumber(LedgerError):
    code = "invalid_account_number"


def _letters_as_digits(text: str) -> str:
    """A = 10 ... Z = 35, digits unchanged (ISO 13616)."""
    return "".join(str(int(ch, 36)) for ch in text)


def check_digits(bban: str) -> str:
    """The two check digits of `LF??<bban>`."""
    if not (len(bban) == LENGTH - 4 and bban.isascii() and bban.isdigit()):
        raise ValueError("the BBAN is 16 digits")
    remainder = int(bban + _letters_as_digits(COUNTRY) + "00") % 97
    return f"{98 - remainder:02d}"


def make(bban: str) -> str:
    return f"{COUNTRY}{check_digits(bban)}{bban}"


def normalize(text: str) -> str:
    """What the person typed without spaces, upper case."""
    return _SPACES.sub("", text).upper()


def is_valid(number: str) -> bool:
    """Shape and check digits of a normalized number."""
    if not _SHAPE.match(number):
        return False
    rearranged = number[4:] + _letters_as_digits(number[:4])
    return int(rearranged) % 97 == 1


def parse(text: str) -> str:
    """The normalized number, if its shape and check digits are right.

    Raises:
        InvalidAccountNumber: wrong length, characters or check digits.
    """
    number = normalize(text)
    if not is_valid(number):
        raise InvalidAccountNumber("the account number is not valid: check it for a typing mistake")
    return number


def grouped(number: str) -> str:
    """`LF12 1000 0000 0000 0001`: in fours, as people read and write it."""
    return " ".join(number[i : i + 4] for i in range(0, len(number), 4))


def initials(full_name: str) -> str:
    """`Ada Mary Lovelace` -> `A. M. L.`: enough for a payer to recognise a payee, no more."""
    return " ".join(f"{part[0].upper()}." for part in full_name.split() if part[:1].isalpha())
