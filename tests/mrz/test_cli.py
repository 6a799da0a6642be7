"""``fieldterm mrz parse``: the exact JSON-lines contract and the summary for people."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import threading

import pytest

from firmware.mrz import JSON_KEYS, make_td1, make_td3, parse
from firmware.mrz.cli import run_jsonl, run_text
from firmware.mrz.summary import format_summary
from tests.mrz.golden import load_specimens

SPECIMENS = load_specimens()


def _jsonl(lines: list[bytes], mode: str = "strict") -> list[dict]:
    out = io.StringIO()
    assert run_jsonl(io.BytesIO(b"".join(lines)), out, mode) == 0
    text = out.getvalue()
    assert text.endswith("\n")
    return [json.loads(line) for line in text.splitlines()]


def test_cli_subprocess_exact_contract():
    """The installed command, end to end: one object per line, exact keys, in order."""
    payload = "".join(json.dumps(s["lines"]) + "\n" for s in SPECIMENS)
    payload += "this is not json\n[1, 2]\n"
    for flag, extra in (([], ()), (["--tolerant"], ()), (["--repair"], ("repaired",))):
        proc = subprocess.run(
            [sys.executable, "-m", "firmware.cli", "mrz", "parse", "--jsonl", *flag],
            input=payload.encode(),
            capture_output=True,
            timeout=60,
            check=True,
        )
        rows = [json.loads(line) for line in proc.stdout.decode().splitlines()]
        assert len(rows) == len(SPECIMENS) + 2
        for row, spec in zip(rows, SPECIMENS, strict=False):
            assert list(row) == [*JSON_KEYS, *extra]
            expected = dict(spec["expected"])
            if extra:
                expected["repaired"] = []
            assert row == expected
        for row in rows[-2:]:
            assert row["valid"] is False and row["errors"] == ["structure:input"]
        assert proc.stderr == b""


@pytest.mark.parametrize(
    "line",
    [
        b"not json\n",
        b"\n",
        b"{}\n",
        b'"P<UTO"\n',
        b'["ok", 3]\n',
        b'[["x"]]\n',
        b"\xff\xfe\n",
        b"null\n",
    ],
)
def test_lines_that_are_not_arrays_of_strings_get_one_error_object(line):
    rows = _jsonl([line, json.dumps(make_td3()).encode() + b"\n"], "repair")
    assert len(rows) == 2
    bad, good = rows
    assert bad["valid"] is False and bad["doc_type"] is None
    assert bad["errors"] == ["structure:input"] and bad["repaired"] == []
    assert all(bad[k] is None for k in JSON_KEYS if k not in ("valid", "errors"))
    assert good["valid"] is True


def test_errors_are_kind_colon_field_and_repairs_are_listed():
    td3 = make_td3()
    broken = [td3[0], td3[1][:15] + "O" + td3[1][16:]]
    wrong_count = [td3[0]]
    bad_check = [td3[0], td3[1][:9] + "0" + td3[1][10:]]
    rows = _jsonl(
        [json.dumps(x).encode() + b"\n" for x in (broken, wrong_count, bad_check)], "repair"
    )
    assert rows[0]["valid"] is True
    assert rows[0]["repaired"] == [{"line": 1, "position": 15, "from": "O", "to": "0"}]
    assert rows[1]["errors"] == ["structure:lines"] and rows[1]["doc_type"] is None
    assert "check:document_number" in rows[2]["errors"] and rows[2]["document_number_ok"] is False
    strict = _jsonl([json.dumps(broken).encode() + b"\n"])
    assert "repaired" not in strict[0]
    assert strict[0]["errors"] == ["charset:birth_date", "check:birth_date", "check:composite"]
    assert strict[0]["birth_date"] is None


def test_crlf_transport_and_raw_control_characters_keep_one_row_each():
    td1 = make_td1()
    rows = _jsonl(
        [json.dumps(td1).encode() + b"\r\n", json.dumps([x + "\r" for x in td1]).encode() + b"\n"]
    )
    assert rows[0]["valid"] is True
    assert rows[1]["valid"] is False and rows[1]["errors"] == ["structure:lines"]
    tolerant = _jsonl([json.dumps([x + "\r" for x in td1]).encode() + b"\n"], "tolerant")
    assert tolerant[0]["valid"] is True


def test_text_mode_summarises_each_document_for_a_person():
    text = (
        "\n".join(make_td3()) + "\n\n" + "\n".join(make_td1(document_number="D23145890734")) + "\n"
    )
    out = io.StringIO()
    assert run_text(io.BytesIO(text.encode()), out, "strict") == 0
    shown = out.getvalue()
    assert "Document 1: TD3 passport - VALID" in shown
    assert "Document 2: TD1 identity document - VALID" in shown
    assert "D23145890734" in shown and "ANNA MARIA" in shown
    assert "1974-08-12" in shown


def test_text_mode_reports_errors_with_positions_and_exit_status():
    td3 = make_td3()
    text = td3[0] + "\n" + td3[1][:9] + "0" + td3[1][10:] + "\n"
    out = io.StringIO()
    assert run_text(io.BytesIO(text.encode()), out, "strict") == 1
    shown = out.getvalue()
    assert "INVALID" in shown
    assert "check error in document_number at line 2, column 10" in shown
    out = io.StringIO()
    crlf = "\r\n".join(make_td3()) + "\r\n"
    assert run_text(io.BytesIO(crlf.encode()), out, "strict") == 1
    assert "try --tolerant" in out.getvalue()
    assert run_text(io.BytesIO(crlf.encode()), io.StringIO(), "tolerant") == 0


def test_help_texts_describe_the_contract():
    proc = subprocess.run(
        [sys.executable, "-m", "firmware.cli", "mrz", "parse", "--help"],
        capture_output=True,
        timeout=60,
        check=True,
    )
    text = proc.stdout.decode()
    for word in ("--jsonl", "--tolerant", "--repair", "structure:input", "optional_data_2"):
        assert word in text
    both = subprocess.run(
        [sys.executable, "-m", "firmware.cli", "mrz", "parse", "--tolerant", "--repair"],
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert both.returncode == 2


def test_summary_names_special_codes_and_what_tolerant_and_repair_did():
    lines = make_td3(issuing_state="XPO", nationality="XXC", sex="X", birth_date="74<<<<")
    assert lines[1][22] == "2"
    messy = [lines[0].lower() + "\r\n", lines[1][:22] + "Z" + lines[1][23:]]
    shown = format_summary(parse(messy, "repair"), "Doc")
    assert "International Criminal Police Organization" in shown
    assert "Refugee, other than XXB" in shown
    assert "74<<<< (1974-??-??)" in shown
    assert "Normalised:      line_breaks, lowercase" in shown
    assert "Repair:          repaired" in shown
    assert "line 2, column 23: Z -> 2" in shown
    assert "VALID" in shown.splitlines()[0] and "INVALID" not in shown


def test_byte_order_mark_is_not_content():
    rows = _jsonl([b"\xef\xbb\xbf" + json.dumps(make_td3()).encode() + b"\n"])
    assert rows[0]["valid"] is True


def test_reader_closing_early_is_not_a_crash():
    payload = (json.dumps(make_td3()) + "\n").encode() * 5000
    proc = subprocess.Popen(
        [sys.executable, "-m", "firmware.cli", "mrz", "parse", "--jsonl"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert proc.stdin is not None and proc.stdout is not None

    def feed():
        try:
            proc.stdin.write(payload)
            proc.stdin.close()
        except BrokenPipeError:
            pass  # the child may finish before all input is written

    writer = threading.Thread(target=feed, daemon=True)
    writer.start()
    assert json.loads(proc.stdout.readline())["valid"] is True
    proc.stdout.close()  # like `| head -1`
    assert proc.wait(timeout=60) == 0
    writer.join(timeout=10)
    assert b"Traceback" not in proc.stderr.read()


def test_text_mode_joined_line_hint_and_tolerant_split():
    td3 = load_specimens()[0]["lines"]
    joined = "".join(td3) + "\n"
    out = io.StringIO()
    assert run_text(io.BytesIO(joined.encode()), out, "strict") == 1
    assert "joined MRZ; try --tolerant" in out.getvalue()
    out = io.StringIO()
    assert run_text(io.BytesIO(joined.encode()), out, "tolerant") == 0
    assert "joined_line" in out.getvalue()
