"""The `fieldterm` command: built-in firmware subcommands, host tools through entry points,
and only the named subcommand loaded."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from firmware.cli import BUILTIN_COMMANDS, ENTRY_POINT_GROUP, requested_command

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize(
    ("argv", "command"),
    [
        (["agent", "--config", "x"], "agent"),
        (["-v", "-v", "query"], "query"),
        (["-vv", "sltd", "generate"], "sltd"),
        (["--help"], None),
        ([], None),
        (["--", "agent"], None),
    ],
)
def test_requested_command(argv, command):
    assert requested_command(argv) == command


def test_pyproject_entry_points_are_host_tools_only():
    """The firmware's commands are built in; an entry point of the same name would be
    ignored, so pyproject must not declare one."""
    eps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["entry-points"][
        ENTRY_POINT_GROUP
    ]
    assert not set(eps) & set(BUILTIN_COMMANDS)
    assert all(target.startswith("host_tools.") for target in eps.values())
    assert all(target.startswith("firmware.") for target in BUILTIN_COMMANDS.values())


def _run(*argv: str, code: str = "") -> subprocess.CompletedProcess[str]:
    script = (
        "import sys\nfrom firmware.cli import main\n"
        "try:\n    main(sys.argv[1:])\nexcept SystemExit:\n    pass\n" + code
    )
    return subprocess.run(
        [sys.executable, "-c", script, *argv],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_help_lists_built_in_and_host_commands():
    out = _run("--help").stdout
    for name in (*BUILTIN_COMMANDS, "sltd", "provision", "regional", "bench"):
        assert f"    {name} " in out, name


def test_a_named_subcommand_loads_nothing_else():
    probe = (
        "print(sorted(m for m in sys.modules if m.startswith(('host_tools', "
        "'importlib.metadata', 'firmware.mrz.cli', 'firmware.signals.cli', 'numpy'))))\n"
    )
    r = _run("agent", "--help", code=probe)
    assert r.stdout.strip().splitlines()[-1] == "[]"
    r = _run("sltd", "--help", code=probe)
    loaded = r.stdout.strip().splitlines()[-1]
    assert "host_tools.sltd.cli" in loaded and "firmware.mrz.cli" not in loaded


def test_unknown_command_lists_the_choices():
    r = _run("nosuch")
    assert "invalid choice: 'nosuch'" in r.stderr and "sltd" in r.stderr and "agent" in r.stderr
