"""Claim codes (vendors/claim_codes.py) and the label links that carry them (vendors/labels.py)."""

import pytest

from vendors.claim_codes import (
    ClaimCodeError,
    claim_code_matches,
    format_claim_code,
    generate_claim_code,
    hash_claim_code,
    normalize_claim_code,
    verhoeff_check_digit,
    verhoeff_is_valid,
)
from vendors.labels import LabelPayloadError, label_payload, parse_label_payload


def test_verhoeff_check_digit_matches_the_published_example():
    # Verhoeff's worked example: 236 gets the check digit 3.
    assert verhoeff_check_digit("236") == "3"
    assert verhoeff_is_valid("2363")
    assert not verhoeff_is_valid("2364")


def test_every_single_digit_typo_and_every_adjacent_swap_of_a_generated_code_is_caught():
    code = generate_claim_code()
    for position in range(len(code)):
        for digit in "0123456789":
            if digit != code[position]:
                typo = code[:position] + digit + code[position + 1 :]
                with pytest.raises(ClaimCodeError) as caught:
                    normalize_claim_code(typo)
                assert caught.value.typo
    for position in range(len(code) - 1):
        if code[position] != code[position + 1]:
            swapped = code[:position] + code[position + 1] + code[position] + code[position + 2 :]
            with pytest.raises(ClaimCodeError):
                normalize_claim_code(swapped)


@pytest.mark.parametrize(
    "typed",
    [
        lambda c: c,
        lambda c: f"{c[:4]}-{c[4:7]}-{c[7:]}",
        lambda c: f" {c[:4]} {c[4:7]} {c[7:]} ",
        lambda c: f"{c[:2]}-{c[2:4]} -{c[4:6]}- {c[6:]}",
        lambda c: f"{c}\t",
        lambda c: f"{c[:4]}\u2010{c[4:7]}\u2011{c[7:]}",
        lambda c: f"{c[:4]}\u2013{c[4:7]}\u2014{c[7:]}\u2212",
        lambda c: f"\u00a0{c[:4]}\u202f{c[4:7]}\u3000{c[7:]}\n",
        lambda c: f"{c[:4]}\u200b{c[4:7]}\u00ad{c[7:]}\ufeff",
        lambda c: f"{c[:4]}\uff0d{c[4:7]}\u2015{c[7:]}",
    ],
    ids=["bare", "dashes", "spaces", "mixed", "tab", "hyphens", "en em minus", "unicode spaces", "invisible", "wide"],
)
def test_a_claim_code_is_read_with_any_spaces_or_dashes(typed):
    code = generate_claim_code()
    assert normalize_claim_code(typed(code)) == code


@pytest.mark.parametrize("typed", ["", "   ", "1234", "123456789012", "1234567890a", "١٢٣٤٥٦٧٨٩٠١", None, 12345678901])
def test_what_cannot_be_a_claim_code_is_refused_as_a_format_error_not_a_typo(typed):
    with pytest.raises(ClaimCodeError) as caught:
        normalize_claim_code(typed)
    assert not caught.value.typo


def test_generated_codes_are_random_and_well_formed():
    codes = {generate_claim_code() for _ in range(2000)}
    assert len(codes) == 2000
    assert all(len(code) == 11 and verhoeff_is_valid(code) for code in codes)
    # The first ten digits are uniform: each digit turns up in every position.
    for position in range(10):
        assert {code[position] for code in codes} == set("0123456789")


def test_only_a_keyed_hash_is_stored_and_it_changes_with_the_secret(settings):
    code = generate_claim_code()
    stored = hash_claim_code(code)
    assert code not in stored
    assert len(stored) == 64
    assert claim_code_matches(code, stored)
    assert not claim_code_matches(code, "")
    settings.CLAIM_CODE_SECRET = "another-secret"
    assert hash_claim_code(code) != stored
    assert not claim_code_matches(code, stored)


def test_claim_code_secret_defaults_to_one_derived_from_the_secret_key(settings):
    code = generate_claim_code()
    settings.CLAIM_CODE_SECRET = ""
    first = hash_claim_code(code)
    settings.SECRET_KEY = "x" * 50
    assert hash_claim_code(code) != first


def test_codes_are_printed_in_groups_of_four_three_four():
    assert format_claim_code("12345678901") == "1234-567-8901"


def test_a_label_payload_reads_back_what_was_written():
    payload = label_payload("acme", "cam-1", {"serial_number": "AC1-260001"}, "51384081134")
    assert parse_label_payload(payload) == {
        "vendor": "acme",
        "model": "cam-1",
        "identifiers": {"serial_number": "AC1-260001"},
        "claim_code": "51384081134",
    }
    assert parse_label_payload(label_payload("acme", "hub-2", {"serial_number": "X"}))["claim_code"] is None


@pytest.mark.parametrize(
    "payload",
    ["", "!!!", "e30", "W10", "eyJ2IjoxfQ", "x" * 601, "eyJ2IjoiYSIsIm0iOiJiIiwiaSI6e30sImMiOiIxIn0", "AAEC"],
)
def test_a_malformed_label_payload_is_refused(payload):
    with pytest.raises(LabelPayloadError):
        parse_label_payload(payload)


def test_the_claim_code_key_is_neither_the_secret_key_nor_the_code_files_key(settings):
    import hashlib
    import hmac

    from portal.keys import derived_key

    settings.CLAIM_CODE_SECRET = ""
    code = generate_claim_code()
    stored = hash_claim_code(code)
    for key in (settings.SECRET_KEY.encode(), derived_key(b"device-portal claim-code file")):
        assert hmac.new(key, code.encode(), hashlib.sha256).hexdigest() != stored
    assert hmac.new(derived_key(b"device-portal claim-code hmac"), code.encode(), hashlib.sha256).hexdigest() == stored
