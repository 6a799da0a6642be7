"""Codes for states, organisations and documents beyond ISO 3166 (Doc 9303-3 §5, Part 4 §4.4).

Membership in these tables is *not* a validity rule: a well-formed code of letters and
fillers is accepted. The tables name the code for people reading a summary.
"""

from __future__ import annotations

SPECIAL_CODES: dict[str, str] = {
    # Part A: extensions to ISO 3166-1
    "D": "Germany",
    "GBD": "British Overseas Territories Citizen",
    "GBN": "British National (Overseas)",
    "GBO": "British Overseas Citizen",
    "GBP": "British Protected Person",
    "GBS": "British Subject",
    "RKS": "Kosovo",
    # Part B: other codes reserved by ISO 3166/MA
    "EUE": "European Union",
    # Part C: United Nations travel documents
    "UNO": "United Nations Organization or one of its officials",
    "UNA": "United Nations specialized agency or one of its officials",
    "UNK": "Resident of Kosovo, document issued by UNMIK",
    # Part D: other issuing authorities
    "XBA": "African Development Bank",
    "XIM": "African Export-Import Bank",
    "XCC": "Caribbean Community (CARICOM)",
    "XCE": "Council of Europe",
    "XCO": "Common Market for Eastern and Southern Africa (COMESA)",
    "XEC": "Economic Community of West African States (ECOWAS)",
    "XPO": "International Criminal Police Organization (INTERPOL)",
    "XES": "Organization of Eastern Caribbean States",
    "XMP": "Parliamentary Assembly of the Mediterranean",
    "XOM": "Sovereign Military Order of Malta",
    "XDC": "Southern African Development Community",
    # Part E: persons without a defined nationality
    "XXA": "Stateless person (1954 Convention)",
    "XXB": "Refugee (1951 Convention / 1967 Protocol)",
    "XXC": "Refugee, other than XXB",
    "XXX": "Person of unspecified nationality",
    # Part F: deprecated in ISO 3166, kept for old documents
    "ANT": "Netherlands Antilles (deprecated)",
    "NTZ": "Neutral Zone (deprecated)",
    # Part G/H: specimens and ICAO itself
    "UTO": "Utopia (specimen documents)",
    "IAO": "International Civil Aviation Organization",
}

DOCUMENT_CODES: dict[str, str] = {
    "P": "passport",
    "PP": "national passport",
    "PE": "emergency passport",
    "PD": "diplomatic passport",
    "PO": "official/service passport",
    "PR": "refugee passport",
    "PT": "alien/non-citizen passport",
    "PS": "stateless passport",
    "PL": "laissez-passer",
    "PM": "military passport",
    "PU": "single-sheet emergency travel document",
    "I": "identity document",
    "A": "official travel document",
    "C": "official travel document",
    "AC": "crew member certificate",
    "V": "visa",
}


def describe_state(code: str | None) -> str | None:
    """A short name for an ICAO special code (``XXC``, ``D``, ``UNO``...), else ``None``."""
    if not code:
        return None
    return SPECIAL_CODES.get(code)


def describe_document(code: str | None) -> str | None:
    """What a document code (``P``, ``PD``, ``AC``, ``V``...) designates, if known."""
    if not code:
        return None
    return DOCUMENT_CODES.get(code) or DOCUMENT_CODES.get(code[0])
