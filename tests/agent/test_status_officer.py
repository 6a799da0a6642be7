"""Status payloads and the officer-signals adapter."""

from __future__ import annotations

import json

from firmware.agent.officer import OfficerSignals
from firmware.agent.states import Notice, View
from firmware.agent.status import StatusPublisher, offline_payload


def test_status_is_retained_and_says_only_who_and_whether_online():
    sent = []
    pub = StatusPublisher(lambda *a: sent.append(a), "ft/v1/r/status/k", "k")
    pub.publish({"pending": 2, "documents": 9, "audit_head": {"seq": 3, "mac": "ab"}})
    pub.goodbye()
    (t1, p1, q1, r1), (t2, p2, q2, r2) = sent
    assert (t1, q1, r1) == ("ft/v1/r/status/k", 1, True) == (t2, q2, r2)
    assert json.loads(p1) == {"terminal": "k", "state": "online"}  # the figures stay home
    assert (
        json.loads(p2) == {"terminal": "k", "state": "offline"} == json.loads(offline_payload("k"))
    )


class Panel:
    def __init__(self):
        self.calls = []

    def show(self, state, now):
        self.calls.append(("show", state, now))

    def update(self, now):
        self.calls.append(("update", now))

    def off(self):
        self.calls.append(("off",))

    def close(self):
        self.calls.append(("close",))


class Display:
    def __init__(self):
        self.screens = []

    def show(self, screen):
        self.screens.append(screen)

    def close(self):
        self.screens.append("closed")


class Button:
    def __init__(self):
        self.n = 0

    def pressed(self):
        self.n += 1
        return self.n == 2


def view(state="idle", link=True, notices=()):
    return View(state, 0.0, 3, None, False, link, notices, (7,))


def test_show_renders_language_and_details_filtered_to_the_renderer():
    def render(state, lang, *, seq=None, pending=()):
        return f"{state}/{lang}/{seq}/{pending}"

    p, d = Panel(), Display()
    sig = OfficerSignals(p, d, None, language="kk", render=render)
    sig.show(view("idle", link=False, notices=(Notice(1, b"q", "clear", 0.0, False),)), 1.0)
    assert p.calls == [("show", "offline", 1.0)]
    assert d.screens == ["offline/kk/3/(7,)"]


def test_ack_from_button_or_signal_and_off_is_idempotent():
    p, d, b = Panel(), Display(), Button()
    sig = OfficerSignals(p, d, b, render=lambda s, lang, **k: s)
    assert sig.acknowledged() is False
    assert sig.acknowledged() is True  # button press
    sig.request_ack()
    assert sig.acknowledged() is True and sig.acknowledged() is False
    sig.off()
    sig.off()
    assert p.calls.count(("off",)) == 1 and d.screens == ["closed"]


def test_broken_display_does_not_stop_the_leds():
    class Bad:
        def show(self, screen):
            raise OSError("i2c gone")

    p = Panel()
    sig = OfficerSignals(p, Bad(), None, render=lambda s, lang, **k: s)
    sig.show(view("clear"), 2.0)
    assert p.calls == [("show", "clear", 2.0)]
