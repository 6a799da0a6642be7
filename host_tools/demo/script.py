"""The demo's script: which documents are scanned, in order, and what each must show.

A :class:`Step` is data; :func:`build_script` picks documents from the region's samples.
The player (``host_tools.demo.player``) plays the steps; nothing here runs anything.
"""

from __future__ import annotations

import contextlib
import random
from collections.abc import Callable
from dataclasses import dataclass

from firmware.mrz import make_td1
from host_tools.localregion import LocalRegion, LocalRegionError
from host_tools.localregion.documents import bad_check_digit, ocr_error

#: What the officer must be shown, as the agent's events name it (the last two are
#: answers from the kiosk's offline list while its link is down).
OUTCOMES = ("clear", "possible_match", "unknown", "rescan", "possible_match_offline", "not_listed")
OFFLINE_OUTCOMES = ("possible_match_offline", "not_listed")


@dataclass(frozen=True)
class Step:
    """One scan: its lines, the outcome it must show, and what happens around it."""

    title: str
    lines: list[str]
    expect: str  # one of OUTCOMES
    note: str = ""
    ack: bool = False  # the officer acknowledges the possible match


@dataclass(frozen=True)
class Script:
    """The demo's scans: one before the region's service is up (no answer, no offline list
    yet: UNKNOWN, answered once the service starts), the online scans, and two during a
    broker outage answered from the kiosk's offline list, then re-checked online."""

    before_service: Step
    online: list[Step]
    outage: list[Step]


def build_script(region: LocalRegion, rng: random.Random) -> Script:
    """Nine scans covering every answer, from the region's sample documents."""
    listed = [x for x in region.listed if len(x) == 2]
    unlisted = region.unlisted
    td3 = [x for x in unlisted if len(x) == 2 and len(x[0]) == 44]
    td1 = [x for x in unlisted if len(x) == 3]
    if len(listed) < 2 or len(td3) < 5:
        raise LocalRegionError("the SLTD samples have too few documents for the script")
    if not td1:
        td1 = [make_td1(document_number="ZQ" + str(rng.randrange(10**7)).zfill(7))]
    pool = list(td3)

    def take(fn: Callable[[list[str]], list[str]] = lambda x: x) -> list[str]:
        for i, doc in enumerate(pool):
            with contextlib.suppress(ValueError):
                made = fn(doc)
                del pool[i]
                return made
        raise LocalRegionError("no sample document fits the script")

    online = [
        Step("a passport that is not on the list", take(), "clear"),
        Step(
            "a stolen passport (on the list)",
            listed[0],
            "possible_match",
            note="the officer presses acknowledge",
            ack=True,
        ),
        Step("an identity card (TD1, three lines)", td1[0], "clear"),
        Step("a passport with a bad check digit", take(bad_check_digit), "rescan"),
        Step(
            "a passport read with an OCR error (O for 0)",
            take(ocr_error),
            "clear",
            note="repair mode fixes it using the check digits",
        ),
    ]
    before = Step(
        "a passport scanned before the region's service is up",
        take(),
        "unknown",
        note="no answer and no offline list yet: check manually; the scan waits in the outbox",
    )
    outage = [
        Step(
            "a stolen passport during a broker outage",
            listed[1],
            "possible_match_offline",
            note="answered from the kiosk's offline list; the officer acknowledges",
            ack=True,
        ),
        Step(
            "a clean passport during the outage",
            take(),
            "not_listed",
            note="not on the offline list: NOT LISTED with the list's age, never CLEAR",
        ),
    ]
    return Script(before, online, outage)


#: The outcome counts the script above must produce.
EXPECTED = {
    "clear": 3,
    "possible_match": 1,
    "unknown": 1,
    "rescan": 1,
    "possible_match_offline": 1,
    "not_listed": 1,
}
