import json

from firmware.cli import main


def test_generate_import_remove_stats(tmp_path, capsys):
    db = tmp_path / "s.sqlite"
    listed = tmp_path / "listed.jsonl"
    rc = main(
        [
            "sltd",
            "generate",
            "--records",
            "3000",
            "--seed",
            "4",
            "--out",
            str(db),
            "--listed-sample",
            str(listed),
            "--sample-size",
            "7",
            "--no-progress",
        ]
    )
    out = capsys.readouterr().out
    assert rc == 0
    assert "wrote 3,000 records" in out and "records/s" in out and "wrote 7 MRZs" in out
    assert len(listed.read_text().splitlines()) == 7

    csv = tmp_path / "u.csv"
    csv.write_text(
        "issuing_state,document_type,document_number,status,reporting_country,reported_on,"
        "event_date,reference\nKGZ,PASSPORT,AC1234567,STOLEN_BLANK,KGZ,2026-10-01,,KG/55\n"
    )
    assert main(["sltd", "import", "--db", str(db), str(csv)]) == 0
    assert "imported 1 records; list version 2" in capsys.readouterr().out

    assert main(["sltd", "stats", "--db", str(db), "--json"]) == 0
    st = json.loads(capsys.readouterr().out)
    assert st["records"] == 3001 and st["list_version"] == 2
    assert st["by_status"]["STOLEN_BLANK"] >= 1

    assert main(["sltd", "stats", "--db", str(db), "--top", "3"]) == 0
    text = capsys.readouterr().out
    assert "records        3,001" in text and "top issuing states:" in text and "USA" in text

    assert main(["sltd", "remove", "--db", str(db), str(csv)]) == 0
    assert "removed 1 of 1" in capsys.readouterr().out


def test_import_error_exit_code_and_message(tmp_path, capsys):
    db = tmp_path / "s.sqlite"
    main(["sltd", "generate", "--records", "10", "--out", str(db), "--no-progress"])
    capsys.readouterr()
    bad = tmp_path / "bad.csv"
    bad.write_text(
        "issuing_state,document_type,document_number,status,reporting_country,reported_on,"
        "reference\nKGZ,P,AC1234567,STOLEN,KGZ,01/10/2026,KG/55\n"
    )
    rc = main(["sltd", "import", "--db", str(db), str(bad)])
    err = capsys.readouterr().err
    assert rc == 65
    assert "line 2, column 6 (reported_on)" in err
    assert "AC1234567" not in err


def test_generate_can_prebuild_the_index(tmp_path, capsys):
    key = tmp_path / "index.key"
    key.write_text("22" * 32)
    db = tmp_path / "s.sqlite"
    rc = main(
        [
            "sltd",
            "generate",
            "--records",
            "500",
            "--out",
            str(db),
            "--index-key",
            str(key),
            "--no-progress",
        ]
    )
    assert rc == 0
    assert "index " in capsys.readouterr().out
    assert len(list(tmp_path.glob("s.sqlite.idx-*"))) == 1


def test_index_command(tmp_path, capsys):
    db = tmp_path / "s.sqlite"
    main(["sltd", "generate", "--records", "2000", "--out", str(db), "--no-progress"])
    key = tmp_path / "index.key"
    key.write_text("11" * 32 + "\n")
    capsys.readouterr()
    assert main(["sltd", "index", "--db", str(db), "--index-key", str(key)]) == 0
    out = capsys.readouterr().out
    assert "2,000 records, list version 1" in out and "bytes/record" in out


def test_generate_help_documents_index_key(capsys):
    import pytest  # noqa: PLC0415

    with pytest.raises(SystemExit) as e:
        main(["sltd", "generate", "--help"])
    assert e.value.code == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "--index-key FILE" in out
    assert "index_key" in out and "index.key" in out and "<out>.idx-<keyid>" in out


def test_sltd_docs_document_index_key():
    from pathlib import Path  # noqa: PLC0415

    doc = (Path(__file__).resolve().parents[2] / "docs" / "sltd.md").read_text()
    tools = doc[doc.index("## Tools") :]
    generate = tools[tools.index("fieldterm sltd generate") : tools.index("fieldterm sltd import")]
    assert "[--index-key FILE]" in generate and "index_key" in generate
