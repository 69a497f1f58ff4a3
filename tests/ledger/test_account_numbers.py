"""Account numbers: ISO 7064 mod 97-10 check digits catch the typing mistakes people make."""

from __future__ import annotations

import random

import pytest

from ledger import account_numbers as an


def numbers(n: int, seed: int = 7) -> list[str]:
    rng = random.Random(seed)
    return [an.make("1000" + f"{rng.randrange(10**12):012d}") for _ in range(n)]


def test_valid_numbers_pass_and_print_in_fours() -> None:
    number = an.make("1000000000000001")
    assert len(number) == an.LENGTH and number.startswith("LF")
    assert an.is_valid(number)
    assert an.grouped(number) == " ".join([number[:4], number[4:8], number[8:12], number[12:16], number[16:]])
    # What a person types: spaces, lower case, a no-break space from a PDF.
    assert an.parse(" " + an.grouped(number).lower().replace(" ", "\u00a0", 1) + " ") == number
    for number in numbers(200):
        assert an.is_valid(number), number


def test_known_vector_matches_the_iban_algorithm() -> None:
    # Computed by hand: int("1000000000000001" + "2115" + "00") % 97 == 21, 98 - 21 = 77.
    assert int("1000000000000001211500") % 97 == 21
    assert an.make("1000000000000001") == "LF771000000000000001"


def test_every_single_changed_digit_is_caught() -> None:
    for number in numbers(100):
        for i in range(2, len(number)):
            for d in "0123456789":
                if d != number[i]:
                    typo = number[:i] + d + number[i + 1 :]
                    assert not an.is_valid(typo), (number, typo)


def test_every_adjacent_transposition_is_caught() -> None:
    for number in numbers(300):
        for i in range(2, len(number) - 1):
            if number[i] != number[i + 1]:
                swapped = number[:i] + number[i + 1] + number[i] + number[i + 2 :]
                assert not an.is_valid(swapped), (number, swapped)


@pytest.mark.parametrize(
    "text",
    ["", "LF", "LF7710000000000000011", "LF77100000000000000", "XX771000000000000001", "LF77 1000 0000 0000 000A"],
)
def test_malformed_numbers_are_refused(text: str) -> None:
    with pytest.raises(an.InvalidAccountNumber):
        an.parse(text)


def test_initials_only() -> None:
    assert an.initials("Ada Mary Lovelace") == "A. M. L."
    assert an.initials("  bob  ") == "B."
    assert an.initials("") == ""
