"""``fieldterm mrz``: parse MRZ text from standard input.

``fieldterm mrz parse --jsonl [--tolerant|--repair]`` is a contract that tools outside the
project rely on: one JSON array of strings per input line (the MRZ lines of one document,
exactly as received), one JSON object per output line with exactly the keys in
:data:`firmware.mrz.JSON_KEYS` (plus ``repaired`` in repair mode). An input line that is
not a JSON array of strings still gets one output object: ``valid`` false, every field
null and the error ``structure:input``. No input line is ever dropped.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import IO

_DESCRIPTION = """\
Parse and validate ICAO Doc 9303 machine readable zones (TD1, TD2, TD3, MRV-A, MRV-B)
read from standard input.

Without --jsonl, the input is plain MRZ text: the lines of one document, with a blank
line between documents; a readable summary is printed for each.

With --jsonl, each input line is a JSON array of strings (the MRZ lines of one document
exactly as received) and each output line is one JSON object with the keys valid,
doc_type, document_code, issuing_state, surname, given_names, document_number,
nationality, birth_date, sex, expiry_date, optional_data, optional_data_2,
personal_number, document_number_ok, birth_date_ok, expiry_date_ok, optional_ok,
composite_ok and errors ("<kind>:<field>", kinds check, semantic, structure, charset).
--repair adds repaired: [{line, position, from, to}] (0-based). An input line that is
not a JSON array of strings gives valid=false with the error "structure:input".
"""

_EPILOG = """\
examples:
  printf 'P<UTOERIKSSON<<ANNA<MARIA<<<<<<<<<<<<<<<<<<<\\nL898902C36UTO7408122F1204159ZE184226B<<<<<10\\n' \\
      | fieldterm mrz parse
  echo '["I<UTOD231458907<<<<<<<<<<<<<<<","7408122F1204159UTO<<<<<<<<<<<6","ERIKSSON<<ANNA<MARIA<<<<<<<<<<"]' \\
      | fieldterm mrz parse --jsonl --repair

exit status: --jsonl: 0 once every line is answered; plain text: 0 if every document is
valid, 1 otherwise.
"""


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``fieldterm mrz`` to the command's subparsers."""
    p = sub.add_parser(
        "mrz",
        help="parse and validate ICAO 9303 MRZ text (TD1, TD2, TD3, visas)",
        description="ICAO Doc 9303 machine readable zone tools.",
    )
    actions = p.add_subparsers(dest="mrz_action", metavar="ACTION", required=True)
    pp = actions.add_parser(
        "parse",
        help="parse MRZ lines from standard input",
        description=_DESCRIPTION,
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    pp.add_argument(
        "--jsonl",
        action="store_true",
        help="JSON lines in and out (the machine contract); default: plain text and a summary",
    )
    mode = pp.add_mutually_exclusive_group()
    mode.add_argument(
        "--tolerant",
        action="store_true",
        help="normalise CR/LF, surrounding whitespace, lowercase and blank lines first, and "
        "split a joined MRZ (one line of 88, 72 or 90 characters, as keyboard-wedge readers "
        "send it)",
    )
    mode.add_argument(
        "--repair",
        action="store_true",
        help="tolerant, then undo OCR confusions (O/0, I/1, B/8, S/5, Z/2, G/6) when the "
        "character class or a unique check-digit solution decides",
    )
    pp.set_defaults(func=_run_parse)
    cp = actions.add_parser(
        "check-digit",
        help="print the 7-3-1 check digit of each argument",
        description="Print the ICAO 9303 check digit (7-3-1 weights, '<' = 0) of each TEXT.",
    )
    cp.add_argument("text", nargs="+", help="characters 0-9, A-Z and <")
    cp.set_defaults(func=_run_check_digit)


def _mode(args: argparse.Namespace) -> str:
    if getattr(args, "repair", False):
        return "repair"
    if getattr(args, "tolerant", False):
        return "tolerant"
    return "strict"


def _run_parse(args: argparse.Namespace) -> int:
    mode = _mode(args)
    if args.jsonl:
        return run_jsonl(sys.stdin.buffer, sys.stdout, mode)
    return run_text(sys.stdin.buffer, sys.stdout, mode)


def _run_check_digit(args: argparse.Namespace) -> int:
    from firmware.mrz import compute_check_digit  # noqa: PLC0415

    for text in args.text:
        print(compute_check_digit(text))
    return 0


def _decode(raw: bytes) -> str:
    return raw.decode("utf-8", errors="replace")


def run_jsonl(stdin: IO[bytes], stdout: IO[str], mode: str) -> int:
    """Answer every input line with one JSON object line; never stop early."""
    from firmware.errors import MrzError  # noqa: PLC0415
    from firmware.mrz import parse  # noqa: PLC0415
    from firmware.mrz.parse import empty_result  # noqa: PLC0415

    bad_input = empty_result(
        (MrzError("structure", "input", None, "not a JSON array of strings"),), mode
    ).to_json()
    try:
        for number, raw in enumerate(stdin):
            text = _decode(raw.rstrip(b"\r\n"))
            if number == 0:
                text = text.removeprefix("\ufeff")  # a byte-order mark is not content
            try:
                doc = json.loads(text)
            except ValueError:
                doc = None
            if isinstance(doc, list) and all(isinstance(item, str) for item in doc):
                out = parse(doc, mode).to_json()
            else:
                out = bad_input
            stdout.write(json.dumps(out) + "\n")
            stdout.flush()
    except BrokenPipeError:
        _quiet_stdout()  # the reader went away (e.g. `| head`): not an error of ours
    return 0


def _quiet_stdout() -> None:
    """After a broken pipe, point stdout at /dev/null so the exit flush cannot fail."""
    import os  # noqa: PLC0415

    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass  # not a real file (tests pass a StringIO)
    finally:
        os.close(devnull)


def run_text(stdin: IO[bytes], stdout: IO[str], mode: str) -> int:
    """Summarise each blank-line-separated MRZ block for a person."""
    from firmware.mrz import parse  # noqa: PLC0415
    from firmware.mrz.summary import format_summary  # noqa: PLC0415

    text = _decode(stdin.read()).removeprefix("\ufeff")
    blocks: list[list[str]] = []
    current: list[str] = []
    for line in text.split("\n"):
        if line.strip():
            current.append(line)
        elif current:
            blocks.append(current)
            current = []
    if current:
        blocks.append(current)
    if not blocks:
        print("fieldterm mrz parse: no MRZ lines on standard input", file=sys.stderr)
        return 1
    all_valid = True
    try:
        for number, block in enumerate(blocks, start=1):
            result = parse(block, mode)
            all_valid = all_valid and result.valid
            stdout.write(format_summary(result, f"Document {number}") + "\n")
            if mode == "strict" and not result.valid and any(ln != ln.strip() for ln in block):
                stdout.write("  hint: the lines carry CR or spaces; try --tolerant\n")
            elif mode == "strict" and len(block) == 1 and len(block[0].strip()) in (72, 88, 90):
                stdout.write("  hint: one line of that length is a joined MRZ; try --tolerant\n")
            if number < len(blocks):
                stdout.write("\n")
        stdout.flush()
    except BrokenPipeError:
        _quiet_stdout()
    return 0 if all_valid else 1
