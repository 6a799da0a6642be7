"""Field rules: long numbers, names, codes, sex, dates, structure and the error contract."""

from __future__ import annotations

import datetime as dt

import pytest

from firmware.errors import MrzError
from firmware.mrz import make_mrva, make_mrvb, make_td1, make_td2, make_td3, parse
from firmware.mrz.codes import SPECIAL_CODES, describe_state
from firmware.mrz.dates import birth_date_ok, birth_year, expiry_date_ok, expiry_year
from firmware.mrz.parse import split_names
from tests.mrz.golden import load_names

MAKERS = {"TD1": make_td1, "TD2": make_td2, "TD3": make_td3, "MRVA": make_mrva, "MRVB": make_mrvb}


# --- long document numbers (TD1/TD2 overflow into optional data) -------------------------


@pytest.mark.parametrize("length", range(10, 23))
def test_td1_long_numbers_up_to_22_characters(length):
    number = ("D2314589073412345678901")[:length]
    lines = make_td1(document_number=number, optional_data="")
    assert lines[0][14] == "<"  # a filler instead of a check digit marks the overflow
    result = parse(lines)
    assert result.valid, result
    assert result.document_number == number
    assert result.optional_data == ""


@pytest.mark.parametrize("length", range(10, 15))
def test_td2_long_numbers_up_to_14_characters(length):
    number = "X1234567890123"[:length]
    result = parse(make_td2(document_number=number))
    assert result.valid and result.document_number == number


def test_long_number_keeps_the_optional_data_after_its_check_digit():
    lines = make_td1(document_number="D23145890734", optional_data="AB<12")
    assert lines[0][15:] == "7349<AB<12<<<<<"
    result = parse(lines)
    assert result.valid
    assert (result.document_number, result.optional_data) == ("D23145890734", "AB<12")


def test_long_number_check_digit_is_over_the_number_alone():
    # Part 11 D.2: check digit 9 over D23145890734; the filler at column 15 is not data.
    lines = [
        "I<UTOD23145890<7349<<<<<<<<<<<",
        "3407127M9507122UTO<<<<<<<<<<<2",
        "STEVENSON<<PETER<JOHN<<<<<<<<<",
    ]
    wrong = lines.copy()
    wrong[0] = "I<UTOD23145890<7348<<<<<<<<<<<"
    result = parse(wrong)
    assert result.document_number == "D23145890734"
    assert "check:document_number" in result.error_codes
    assert next(e for e in result.errors if e.field == "document_number").position == (0, 18)


def test_filler_check_digit_without_overflow_is_a_failed_check():
    lines = [
        "I<UTOD23145890<<<<<<<<<<<<<<<<",
        "7408122F1204159UTO<<<<<<<<<<<6",
        "ERIKSSON<<ANNA<MARIA<<<<<<<<<<",
    ]
    result = parse(lines)
    assert result.document_number == "D23145890"
    assert result.document_number_ok is False
    assert "check:document_number" in result.error_codes


def test_visas_and_passports_have_no_overflow():
    with pytest.raises(MrzError):
        make_td3(document_number="D23145890734")
    with pytest.raises(MrzError):
        make_mrva(document_number="D23145890734")


# --- names -------------------------------------------------------------------------------


@pytest.mark.parametrize("case", load_names(), ids=lambda c: c["field"][:20])
def test_icao_name_examples_split_at_first_double_filler(case):
    assert split_names(case["field"].rstrip("<")) == (case["surname"], case["given_names"])
    width = len(case["field"])
    if width in (39, 31):
        upper = "P<UTO" if width == 39 else "I<UTO"
        lower = (make_td3 if width == 39 else make_td2)()[1]
        result = parse([upper + case["field"], lower])
    else:
        lines = make_td1()
        result = parse([lines[0], lines[1], case["field"]])
    assert result.valid
    assert (result.surname, result.given_names) == (case["surname"], case["given_names"])


def test_name_split_edge_cases():
    assert split_names("ERIKSSON") == ("ERIKSSON", "")
    assert split_names("ERIKSSON<<ANNA<<MARIA") == ("ERIKSSON", "ANNA MARIA")
    assert split_names("<<ANNA") == ("", "ANNA")
    assert split_names("") == ("", "")


def test_builder_writes_names_the_icao_way():
    lines = make_td3(surname="Smith-Jones", given_names="Susie Margaret")
    assert lines[0].startswith("P<UTOSMITH<JONES<<SUSIE<MARGARET<")
    long_name = make_td1(surname="NILAVADHANANANDA", given_names="CHAYAPA DEJTHAMRONG KRASUANG")
    assert len(long_name[2]) == 30 and long_name[2][-1].isalpha()
    with pytest.raises(MrzError):
        make_td3(surname="O'CONNOR")


def test_digits_in_a_name_are_a_charset_error_and_the_name_is_null():
    lines = make_td3()
    result = parse([lines[0][:7] + "1" + lines[0][8:], lines[1]])
    assert result.error_codes == ["charset:names"]
    assert result.errors[0].position == (0, 7)
    assert result.surname is None and result.given_names is None
    assert result.document_number == "L898902C3"


# --- state codes, document codes ---------------------------------------------------------


def test_germany_is_d_with_two_fillers():
    lines = make_td3(issuing_state="D", nationality="D")
    assert lines[0][2:5] == "D<<" and lines[1][10:13] == "D<<"
    result = parse(lines)
    assert result.valid and result.issuing_state == "D" and result.nationality == "D"


@pytest.mark.parametrize("code", sorted(c for c in SPECIAL_CODES if len(c) == 3))
@pytest.mark.parametrize("doc_type", ["TD1", "TD3", "MRVB"])
def test_special_codes_are_accepted(code, doc_type):
    result = parse(MAKERS[doc_type](issuing_state=code, nationality=code))
    assert result.valid
    assert result.issuing_state == code and result.nationality == code
    assert describe_state(code)


@pytest.mark.parametrize(
    "code", ["UNO", "UNA", "UNK", "XXA", "XXB", "XXC", "XXX", "XPO", "EUE", "XOM", "GBN", "RKS"]
)
def test_the_codes_named_in_the_issue_are_in_the_table(code):
    assert code in SPECIAL_CODES


def test_unlisted_but_well_formed_codes_are_valid_and_digits_are_not():
    assert parse(make_td3(issuing_state="QQQ")).valid
    lines = make_td3()
    result = parse([lines[0][:3] + "7" + lines[0][4:], lines[1]])
    assert result.error_codes == ["charset:issuing_state"] and result.issuing_state is None


@pytest.mark.parametrize("code", ["AC", "I<", "ID", "C<", "A<", "IR"])
def test_td1_document_codes_including_crew_member_certificate(code):
    result = parse(make_td1(document_code=code))
    assert result.valid and result.document_code == code.strip("<")


def test_document_code_must_start_with_a_letter():
    lines = make_td3()
    result = parse(["<" + lines[0][1:], lines[1]])
    assert "structure:document_code" in result.error_codes


def test_v_makes_a_two_line_mrz_a_visa():
    assert parse(make_mrva()).doc_type == "MRVA"
    assert parse(make_mrvb()).doc_type == "MRVB"
    assert parse(make_td3()).doc_type == "TD3"
    assert parse(make_td2()).doc_type == "TD2"


# --- sex -----------------------------------------------------------------------------------


@pytest.mark.parametrize("sex", ["M", "F", "X", "<"])
@pytest.mark.parametrize("doc_type", ["TD1", "TD2", "TD3", "MRVA", "MRVB"])
def test_sex_values(sex, doc_type):
    result = parse(MAKERS[doc_type](sex=sex))
    assert result.valid and result.sex == sex


def test_bad_sex_is_semantic_or_charset():
    lines = make_td3()
    q = parse([lines[0], lines[1][:20] + "Q" + lines[1][21:]])
    assert q.error_codes == ["semantic:sex"] and q.errors[0].position == (1, 20)
    digit = parse([lines[0], lines[1][:20] + "1" + lines[1][21:]])
    assert digit.error_codes == ["charset:sex"] and digit.sex is None


# --- dates ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "raw",
    [
        "740812",
        "<<<<<<",
        "74<<<<",
        "7408<<",
        "<<0812",
        "<<08<<",
        "74<<12",
        "000229",
        "040229",
        "<<0229",
    ],
)
def test_valid_birth_dates_including_unknown_parts(raw):
    assert birth_date_ok(raw)
    result = parse(make_td3(birth_date=raw))
    assert result.valid and result.birth_date == raw  # dates stay raw


@pytest.mark.parametrize(
    "raw",
    ["7<0812", "74081<", "741312", "740001", "740431", "010229", "000000", "74<812", "7408<2"],
)
def test_invalid_birth_dates(raw):
    assert not birth_date_ok(raw)
    result = parse(make_td3(birth_date=raw))
    assert result.error_codes == ["semantic:birth_date"]
    assert result.birth_date_ok is True  # the check digit itself matches
    assert result.birth_date == raw


@pytest.mark.parametrize(
    ("raw", "ok"),
    [("240229", True), ("000229", True), ("230229", False), ("991231", True), ("990230", False)],
)
def test_expiry_leap_day_rule(raw, ok):
    assert expiry_date_ok(raw) is ok
    assert parse(make_td3(expiry_date=raw)).valid is ok


def test_filler_in_expiry_date_is_semantic():
    lines = make_td3()
    line = lines[1][:21] + "12<415" + lines[1][27:]
    result = parse([lines[0], line])
    assert "semantic:expiry_date" in result.error_codes


def test_letter_in_a_date_is_a_charset_error_and_the_date_is_null():
    lines = make_td3()
    result = parse([lines[0], lines[1][:15] + "O" + lines[1][16:]])
    assert "charset:birth_date" in result.error_codes
    assert result.birth_date is None
    assert next(e for e in result.errors if e.code == "charset:birth_date").position == (1, 15)


def test_expired_document_is_still_valid():
    result = parse(make_td3(expiry_date="120415"))
    assert result.valid
    assert result.is_expired(dt.date(2026, 11, 28)) is True
    assert parse(make_td3(expiry_date="301231")).is_expired(dt.date(2026, 11, 28)) is False


@pytest.mark.parametrize(
    ("birth", "expiry", "today", "year"),
    [
        ("740812", "120415", dt.date(2026, 1, 1), 1974),
        ("190301", "240301", dt.date(2026, 1, 1), 2019),  # child's passport, already expired
        ("250101", "300101", dt.date(2026, 1, 1), 2025),  # a baby
        ("270101", "320101", dt.date(2026, 1, 1), 1927),  # cannot be born in the future
        ("300505", "300101", dt.date(2026, 1, 1), 1930),  # next to the expiry date, must precede it
        ("110101", "110102", dt.date(2026, 1, 1), 2011),
        (
            "250601",
            "250531",
            dt.date(2026, 1, 1),
            1925,
        ),  # born after the expiry day: a century earlier
        ("240229", "240228", dt.date(2026, 1, 1), 1924),
    ],
)
def test_birth_century_is_inferred_for_display_only(birth, expiry, today, year):
    assert birth_year(birth, today, expiry) == year
    result = parse(make_td3(birth_date=birth, expiry_date=expiry))
    assert result.birth_date == birth
    assert result.birth_date_display(today) == f"{year}-{birth[2:4]}-{birth[4:6]}"


def test_expiry_century_and_unknown_parts_display():
    assert expiry_year("351231", dt.date(2026, 1, 1)) == 2035
    assert expiry_year("900101", dt.date(2026, 1, 1)) == 1990
    result = parse(make_td3(birth_date="<<<<<<"))
    assert result.birth_date_display(dt.date(2026, 1, 1)) == "????-??-??"
    assert (
        parse(make_td3(birth_date="74<<<<")).birth_date_display(dt.date(2026, 1, 1)) == "1974-??-??"
    )


# --- structure and the input contract ------------------------------------------------------


@pytest.mark.parametrize(
    "lines",
    [
        [],
        ["P<UTO"],
        ["A" * 44, "B" * 44, "C" * 44, "D" * 44],
        ["A" * 44, "B" * 43],
        ["A" * 30, "B" * 30, "C" * 31],
        ["A" * 40, "B" * 40],
        ["A" * 30, "B" * 30],
    ],
)
def test_wrong_shape_is_a_structure_error_with_nothing_located(lines):
    result = parse(lines)
    assert not result.valid and result.doc_type is None
    assert result.error_codes == ["structure:lines"]
    assert all(v is None for k, v in result.to_json().items() if k not in ("valid", "errors"))


@pytest.mark.parametrize("bad", ["P<UTO\nL898", b"P<UTO", [b"P<UTO", b"L8"], [1, 2], None, 42])
def test_non_sequence_input_raises_mrz_error(bad):
    with pytest.raises(MrzError) as info:
        parse(bad)
    assert info.value.code == "structure:input"


def test_unknown_mode_raises():
    with pytest.raises(MrzError):
        parse(make_td3(), "lenient")


def test_characters_outside_the_mrz_set_name_field_and_position():
    lines = make_td3()
    result = parse([lines[0], lines[1][:3] + "é" + lines[1][4:]])
    assert result.error_codes[0] == "charset:document_number"
    assert result.errors[0].position == (1, 3)
    assert result.document_number is None and result.document_number_ok is False


def test_nothing_personal_in_errors_or_repr():
    lines = make_td3(surname="SECRETNAME", document_number="ZZ9876543")
    broken = [lines[0][:10] + "9" + lines[0][11:], lines[1][:5] + "#" + lines[1][6:]]
    result = parse(broken)
    assert not result.valid
    texts = [
        repr(result),
        str(result),
        *(str(e) for e in result.errors),
        *(repr(e) for e in result.errors),
    ]
    for text in texts:
        assert "SECRET" not in text and "ZZ98" not in text and "UTO" not in text
