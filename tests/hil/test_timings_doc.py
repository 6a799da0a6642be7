"""README's hardware-in-the-loop timings agree with the figures measured in docs/hil.md."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _measured() -> dict[str, float]:
    """Seconds, from docs/hil.md's "Times on this machine" list."""
    text = (ROOT / "docs" / "hil.md").read_text()
    times = text[text.index("## Times on this machine") :]
    cold = re.search(r"image (\d+) s,\s+(?:both|the three) scenarios (\d+) s", times)
    warm = re.search(r"warm `make hil` after a source change .*?: (\d+)-(\d+) s", times, re.S)
    assert cold and warm, "docs/hil.md no longer states the image, scenario and warm figures"
    image, scenarios = float(cold[1]), float(cold[2])
    return {
        "image": image,
        "scenarios": scenarios,
        "cold": image + scenarios,
        "warm": (float(warm[1]) + float(warm[2])) / 2,
    }


def _readme() -> dict[str, float]:
    """Seconds, from README's `make hil` sentence."""
    text = " ".join((ROOT / "README.md").read_text().split())
    m = re.search(
        r"the image builds in about ([\d.]+) minutes.*?the (?:two|three) scenarios take about ([\d.]+) "
        r"minutes, so about ([\d.]+) minutes cold and ([\d.]+) minutes warm",
        text,
    )
    assert m, "README no longer gives the image, scenario, cold and warm times of make hil"
    image, scenarios, cold, warm = (float(m[i]) * 60 for i in range(1, 5))
    return {"image": image, "scenarios": scenarios, "cold": cold, "warm": warm}


def test_readme_hil_times_round_the_measured_ones():
    measured, stated = _measured(), _readme()
    for what, seconds in measured.items():
        # "about": within 20 % of the measurement (rounding to half minutes)
        assert abs(stated[what] - seconds) <= 0.2 * seconds, (what, stated[what], seconds)
