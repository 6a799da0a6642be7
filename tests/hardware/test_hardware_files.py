"""The technician's files in hardware/ agree with the firmware and are well formed."""

from __future__ import annotations

import re
import tomllib
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from firmware.signals.patterns import PATTERNS

ROOT = Path(__file__).resolve().parents[2]
HW = ROOT / "hardware"
PINMAP = tomllib.loads((HW / "pinmap.toml").read_text())


def _all_pins() -> list[tuple[str, int, int]]:
    """(name, bcm, header) for every pin the pin map names."""
    pins = [(name, d["bcm"], d["header"]) for name, d in PINMAP["signals"].items()]
    for bus in ("uart", "i2c"):
        pins += [(k, v["bcm"], v["header"]) for k, v in PINMAP[bus].items() if isinstance(v, dict)]
    return pins


def _svg_text() -> str:
    root = ET.parse(HW / "wiring.svg").getroot()  # raises on malformed XML
    assert root.tag == "{http://www.w3.org/2000/svg}svg"
    return " ".join(t for t in root.itertext())


def test_pinmap_header_pins_are_consistent():
    headers = [h for _, _, h in _all_pins()]
    assert len(headers) == len(set(headers)), "two signals on one header pin"
    # BCM -> header pin is fixed by the Pi's 40-pin header: a typo here miswires a kiosk.
    bcm_to_header = {2: 3, 3: 5, 14: 8, 15: 10, 17: 11, 18: 12, 27: 13, 22: 15, 23: 16}
    bcm_to_header |= {24: 18, 25: 22, 5: 29, 6: 31, 12: 32, 13: 33, 19: 35, 16: 36, 26: 37}
    bcm_to_header |= {20: 38, 21: 40, 4: 7, 10: 19, 9: 21, 11: 23, 8: 24, 7: 26}
    for name, bcm, header in _all_pins():
        assert bcm_to_header[bcm] == header, f"{name}: GPIO{bcm} is header pin {bcm_to_header[bcm]}"


def test_svg_is_well_formed_and_names_every_pin():
    text = _svg_text()
    for name, bcm, header in _all_pins():
        assert f"GPIO{bcm}" in text, f"wiring.svg does not show GPIO{bcm} ({name})"
        assert re.search(rf"\bpin {header}\b", text), f"wiring.svg: no 'pin {header}' ({name})"


def test_wiring_md_and_readme_agree_with_pinmap():
    wiring = (HW / "wiring.md").read_text()
    readme = (HW / "README.md").read_text()
    for name, d in PINMAP["signals"].items():
        assert f"GPIO{d['bcm']} / pin {d['header']}" in wiring, f"wiring.md: {name}"
        assert f"| GPIO{d['bcm']} | {d['header']} |" in readme, f"README.md: {name}"


def test_readme_documents_every_verdict_pattern():
    readme = (HW / "README.md").read_text()
    for state in ("clear", "possible_match", "unknown", "rescan"):
        pattern = PATTERNS[state]
        title = state.replace("_", " ").upper()
        row = next(line for line in readme.splitlines() if line.startswith(f"| {title} |"))
        for _, wave in pattern.waves:
            words = wave.label.split(" every")[0]
            assert words in row.replace("**", ""), (state, words)


UDEV_KEY = re.compile(
    r'^(?P<key>[A-Z_]+(?:\{[A-Za-z_]+\})?)(?P<op>==|!=|\+=|=|:=)"(?P<value>[^"]*)"$'
)


def _udev_rules() -> list[list[tuple[str, str, str]]]:
    rules = []
    for raw in (HW / "udev/99-fieldterm-scanner.rules").read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        parts = []
        for item in (p.strip() for p in line.split(",")):
            m = UDEV_KEY.match(item)
            assert m, f"udev: cannot parse {item!r} in {line!r}"
            parts.append((m["key"], m["op"], m["value"]))
        rules.append(parts)
    return rules


def test_udev_rule_syntax_and_coverage():
    rules = _udev_rules()
    gotos = {v for r in rules for k, _, v in r if k == "GOTO"}
    labels = {v for r in rules for k, _, v in r if k == "LABEL"}
    assert gotos <= labels
    vendors = set()
    for rule in rules:
        keys = {k: (op, v) for k, op, v in rule}
        if "SYMLINK" not in keys:
            continue
        assert keys["SYMLINK"] == ("+=", "fieldterm-scanner")
        assert keys["MODE"] == ("=", "0660") and keys["GROUP"] == ("=", "dialout")
        op, vid = keys["ATTRS{idVendor}"]
        assert op == "==" and re.fullmatch(r"[0-9a-f]{4}", vid)
        vendors.add(vid)
    # Access-IS, Gemalto/3M, FTDI, Prolific, WCH CH340
    assert {"0db5", "08e6", "0403", "067b", "1a86"} <= vendors


@pytest.mark.parametrize(
    "line",
    ["enable_uart=1", "dtparam=i2c_arm=on", "dtparam=watchdog=on", "dtoverlay=disable-bt"],
)
def test_boot_config_enables_uart_i2c_watchdog(line):
    lines = [s.strip() for s in (HW / "boot/config.txt").read_text().splitlines()]
    assert line in lines


def test_boot_config_lines_are_key_value():
    for raw in (HW / "boot/config.txt").read_text().splitlines():
        line = raw.strip()
        if line and not line.startswith("#") and not line.startswith("["):
            assert re.fullmatch(r"[a-z_]+=[A-Za-z0-9_=,.-]+", line), line


def test_first_boot_note_references_the_provisioning_script():
    note = (HW / "first-boot.md").read_text()
    assert "firstboot/fieldterm-firstboot.sh" in note
    assert (HW / "firstboot/fieldterm-firstboot.sh").exists()


def _unit_settings(path: Path) -> dict[str, list[str]]:
    """key -> values of a systemd unit file (keys may repeat)."""
    out: dict[str, list[str]] = {}
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if line and not line.startswith(("#", "[")) and "=" in line:
            key, value = line.split("=", 1)
            out.setdefault(key, []).append(value)
    return out


def test_agent_unit_lets_the_gpio_library_load():
    """RPi.GPIO/rpi-lgpio read the board revision from /proc and lgpio makes a pipe in the
    working directory when imported: the hardening must leave both possible (the HIL rig
    runs the unit for real on an emulated Pi; this catches it without QEMU)."""
    unit = _unit_settings(HW / "systemd" / "fieldterm-agent.service")
    assert "ProcSubset" not in unit
    state = "/var/lib/" + unit["StateDirectory"][0]
    assert unit["WorkingDirectory"] == [state]
    assert unit["Type"] == ["notify"] and "gpio" in unit["SupplementaryGroups"][0].split()
    assert "char-gpiochip rw" in unit["DeviceAllow"]
