"""Identifier normalization: pure functions, no database."""

import pytest

from vendors.identifiers import Normalization, confusable_characters, normalize


@pytest.mark.parametrize(
    "typed",
    ["AA:BB:CC:DD:EE:FF", "aa-bb-cc-dd-ee-ff", "aabb.ccdd.eeff", "AABBCCDDEEFF", "  aa:bb:cc : dd:ee:ff  "],
)
def test_mac_address_accepted_in_every_common_format(typed):
    assert normalize(typed, Normalization.MAC) == "AA:BB:CC:DD:EE:FF"


def test_malformed_mac_address_is_left_for_the_format_check():
    assert normalize("AA:BB:CC:DD:EE", Normalization.MAC) == "AA:BB:CC:DD:EE"


def test_text_removes_whitespace_and_upper_cases():
    assert normalize(" ah2- 260001\t", Normalization.TEXT) == "AH2-260001"


def test_compact_removes_dashes_and_dots():
    assert normalize("abcd-efgh.2345 6723", Normalization.COMPACT) == "ABCDEFGH23456723"


def test_confusable_characters_are_named_in_groups():
    assert confusable_characters("SN-0O5") == ["O/0", "S/5"]
    assert confusable_characters("ACE-3467") == []
