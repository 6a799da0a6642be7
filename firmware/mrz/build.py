"""Build valid MRZ lines from field values (the inverse of :func:`firmware.mrz.parse`).

Used by the scanner simulator, the synthetic SLTD generator, the demo and the tests. Every
check digit, including the composite and the TD1/TD2 long-number overflow, is computed
here. Bad input raises :class:`MrzError` naming the field, never echoing its value.
"""

from __future__ import annotations

import re

from firmware.errors import MrzError
from firmware.mrz.checkdigit import ALPHABET, FILLER, check_sum
from firmware.mrz.layouts import MRVA, MRVB, TD1, TD2, TD3

_NAME_SPLIT = re.compile(r"[\s\-,<]+")
_LETTERS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZ")
_MRZ = frozenset(ALPHABET)


def _cd(text: str) -> str:
    return str(check_sum(text.encode("ascii")))


def _field(value: str, width: int, name: str, allowed: frozenset[str] = _MRZ) -> str:
    text = value.upper().replace(" ", FILLER)
    if len(text) > width:
        raise MrzError("structure", name, None, f"longer than {width} characters")
    if not allowed.issuperset(text):
        raise MrzError("charset", name, None, "character not allowed in this field")
    return text.ljust(width, FILLER)


def _state(value: str, name: str) -> str:
    if not 1 <= len(value) <= 3 or not _LETTERS.issuperset(value.upper()):
        raise MrzError("charset", name, None, "a state code is 1-3 letters")
    return _field(value, 3, name)


def _date(value: str, name: str, unknown_allowed: bool) -> str:
    allowed = frozenset("0123456789<" if unknown_allowed else "0123456789")
    if len(value) != 6:
        raise MrzError("structure", name, None, "a date is YYMMDD")
    return _field(value, 6, name, allowed)


def _sex(value: str) -> str:
    if value not in ("M", "F", "X", "<"):
        raise MrzError("semantic", "sex", None, "sex is M, F, X or <")
    return value


def encode_name(surname: str, given_names: str, width: int) -> str:
    """The MRZ name field: primary ``<<`` secondary, components joined by ``<``.

    Spaces, hyphens and commas separate components; an over-long name is truncated so the
    field ends with a letter (Doc 9303-3 §4.6 and the truncation rules of Parts 4-7).
    """
    primary = [p for p in _NAME_SPLIT.split(surname.upper()) if p]
    secondary = [p for p in _NAME_SPLIT.split(given_names.upper()) if p]
    for part in (*primary, *secondary):
        if not _LETTERS.issuperset(part):
            raise MrzError("charset", "names", None, "names are letters A-Z only")
    text = FILLER.join(primary)
    if secondary:
        text += FILLER * 2 + FILLER.join(secondary)
    if len(text) > width:
        text = text[:width].rstrip(FILLER)
    return text.ljust(width, FILLER)


def _number(value: str, limit: int) -> str:
    text = value.upper()
    if not 1 <= len(text) <= limit or not _MRZ.issuperset(text) or text[-1] == FILLER:
        raise MrzError("structure", "document_number", None, f"1-{limit} MRZ characters")
    return text


def _number_and_optional(number: str, optional: str, width: int, limit: int) -> tuple[str, str]:
    """(number field + check digit, optional field) with the long-number overflow."""
    number = _number(number, limit)
    if len(number) <= 9:
        field = number.ljust(9, FILLER)
        return field + _cd(field), _field(optional, width, "optional_data")
    rest = number[9:] + _cd(number) + FILLER
    if FILLER in number[9:]:
        raise MrzError("structure", "document_number", None, "no filler after 9 characters")
    if len(rest) + len(optional) > width:
        raise MrzError("structure", "optional_data", None, "no room beside the long number")
    return number[:9] + FILLER, _field(rest + optional.upper(), width, "optional_data")


def make_td3(
    *,
    document_code: str = "P",
    issuing_state: str = "UTO",
    surname: str = "ERIKSSON",
    given_names: str = "ANNA MARIA",
    document_number: str = "L898902C3",
    nationality: str = "UTO",
    birth_date: str = "740812",
    sex: str = "F",
    expiry_date: str = "120415",
    personal_number: str = "ZE184226B",
    empty_personal_check: str = "0",
) -> list[str]:
    """A passport (TD3, 2 x 44). ``empty_personal_check`` (``0`` or ``<``) is used when
    the personal number is empty, as Part 4 lets the issuer choose."""
    upper = _field(document_code, 2, "document_code") + _state(issuing_state, "issuing_state")
    upper += encode_name(surname, given_names, 39)
    number = _number(document_number, 9).ljust(9, FILLER)
    personal = _field(personal_number, 14, "personal_number")
    if personal == FILLER * 14 and empty_personal_check == FILLER:
        personal_cd = FILLER
    else:
        personal_cd = _cd(personal)
    birth = _date(birth_date, "birth_date", True)
    expiry = _date(expiry_date, "expiry_date", False)
    body = (
        number + _cd(number) + _state(nationality, "nationality") + birth + _cd(birth) + _sex(sex)
        + expiry + _cd(expiry) + personal + personal_cd
    )  # fmt: skip
    composite = _cd(body[0:10] + body[13:20] + body[21:43])
    return [upper, body + composite]


def make_td2(
    *,
    document_code: str = "I",
    issuing_state: str = "UTO",
    surname: str = "ERIKSSON",
    given_names: str = "ANNA MARIA",
    document_number: str = "D23145890",
    nationality: str = "UTO",
    birth_date: str = "740812",
    sex: str = "F",
    expiry_date: str = "120415",
    optional_data: str = "",
) -> list[str]:
    """An official travel document of TD2 size (2 x 36); numbers up to 14 characters."""
    upper = _field(document_code, 2, "document_code") + _state(issuing_state, "issuing_state")
    upper += encode_name(surname, given_names, 31)
    number, optional = _number_and_optional(document_number, optional_data, 7, 14)
    birth = _date(birth_date, "birth_date", True)
    expiry = _date(expiry_date, "expiry_date", False)
    body = (
        number + _state(nationality, "nationality") + birth + _cd(birth) + _sex(sex)
        + expiry + _cd(expiry) + optional
    )  # fmt: skip
    return [upper, body + _cd(body[0:10] + body[13:20] + body[21:35])]


def make_td1(
    *,
    document_code: str = "I",
    issuing_state: str = "UTO",
    surname: str = "ERIKSSON",
    given_names: str = "ANNA MARIA",
    document_number: str = "D23145890",
    nationality: str = "UTO",
    birth_date: str = "740812",
    sex: str = "F",
    expiry_date: str = "120415",
    optional_data: str = "",
    optional_data_2: str = "",
) -> list[str]:
    """An identity card of TD1 size (3 x 30); numbers up to 22 characters."""
    number, optional = _number_and_optional(document_number, optional_data, 15, 22)
    upper = _field(document_code, 2, "document_code") + _state(issuing_state, "issuing_state")
    upper += number + optional
    birth = _date(birth_date, "birth_date", True)
    expiry = _date(expiry_date, "expiry_date", False)
    middle = (
        birth + _cd(birth) + _sex(sex) + expiry + _cd(expiry) + _state(nationality, "nationality")
        + _field(optional_data_2, 11, "optional_data_2")
    )  # fmt: skip
    middle += _cd(upper[5:30] + middle[0:7] + middle[8:15] + middle[18:29])
    return [upper, middle, encode_name(surname, given_names, 30)]


def _visa(width: int, **f: str) -> list[str]:
    upper = _field(f["document_code"], 2, "document_code") + _state(
        f["issuing_state"], "issuing_state"
    )
    upper += encode_name(f["surname"], f["given_names"], width - 5)
    number = _number(f["document_number"], 9).ljust(9, FILLER)
    birth = _date(f["birth_date"], "birth_date", True)
    expiry = _date(f["expiry_date"], "expiry_date", False)
    lower = (
        number + _cd(number) + _state(f["nationality"], "nationality") + birth + _cd(birth)
        + _sex(f["sex"]) + expiry + _cd(expiry) + _field(f["optional_data"], width - 28, "optional_data")
    )  # fmt: skip
    return [upper, lower]


def make_mrva(
    *,
    document_code: str = "V",
    issuing_state: str = "UTO",
    surname: str = "ERIKSSON",
    given_names: str = "ANNA MARIA",
    document_number: str = "L8988901C",
    nationality: str = "XXX",
    birth_date: str = "400907",
    sex: str = "F",
    expiry_date: str = "961210",
    optional_data: str = "",
) -> list[str]:
    """A format-A visa (2 x 44, no composite check digit)."""
    if not document_code.startswith("V"):
        raise MrzError("structure", "document_code", None, "a visa code starts with V")
    return _visa(44, **{k: v for k, v in locals().items() if isinstance(v, str)})


def make_mrvb(
    *,
    document_code: str = "V",
    issuing_state: str = "UTO",
    surname: str = "ERIKSSON",
    given_names: str = "ANNA MARIA",
    document_number: str = "L8988901C",
    nationality: str = "XXX",
    birth_date: str = "400907",
    sex: str = "F",
    expiry_date: str = "961210",
    optional_data: str = "",
) -> list[str]:
    """A format-B visa (2 x 36, no composite check digit)."""
    if not document_code.startswith("V"):
        raise MrzError("structure", "document_code", None, "a visa code starts with V")
    return _visa(36, **{k: v for k, v in locals().items() if isinstance(v, str)})


_MAKERS = {TD1: make_td1, TD2: make_td2, TD3: make_td3, MRVA: make_mrva, MRVB: make_mrvb}


def build(doc_type: str, **fields: str) -> list[str]:
    """Valid MRZ lines of ``doc_type`` (``TD1``, ``TD2``, ``TD3``, ``MRVA``, ``MRVB``)."""
    try:
        maker = _MAKERS[doc_type]
    except KeyError:
        raise MrzError("structure", "doc_type", None, "unknown document type") from None
    return maker(**fields)  # type: ignore[operator]
