import pytest

from host_tools.sltd.importer import HEADER, SltdImportError, import_csv, load_keys
from host_tools.sltd.records import Status
from host_tools.sltd.store import open_store

GOOD = (
    HEADER
    + """
FRA,PASSPORT,12AB34567,STOLEN,FRA,2025-03-01,2025-02-27,FRA/2025/0001234
D,ID card,T220001293,lost,D,2024-12-24,,BKA-7781
"""
)


def write(tmp_path, name, text):
    p = tmp_path / name
    p.write_text(text)
    return p


@pytest.fixture
def store(tmp_path):
    with open_store(tmp_path / "s.sqlite", create=True) as st:
        yield st


def test_import_good_csv(tmp_path, store):
    assert import_csv(store, [write(tmp_path, "a.csv", GOOD)]) == 2
    r = store.get("D", "I", "T220001293")
    assert r.status is Status.LOST and r.event_date is None and r.reference == "BKA-7781"
    assert store.version() == 1


@pytest.mark.parametrize(
    "row,line,column,name",
    [
        ("FRA,PASSPORT,12AB34567,STOLEN,FRA,2025-13-01,,R1", 2, 6, "reported_on"),
        ("FRA,PASSPORT,12AB-4567,STOLEN,FRA,2025-03-01,,R1", 2, 3, "document_number"),
        ("FRA,LIBRARY,12AB34567,STOLEN,FRA,2025-03-01,,R1", 2, 2, "document_type"),
        ("FRA,PASSPORT,12AB34567,MISLAID,FRA,2025-03-01,,R1", 2, 4, "status"),
        ("FRAN,PASSPORT,12AB34567,LOST,FRA,2025-03-01,,R1", 2, 1, "issuing_state"),
        ("FRA,PASSPORT,12AB34567,LOST,FRA,2025-03-01,2025-04-01,R1", 2, 7, "event_date"),
    ],
)
def test_bad_cell_names_line_and_column(tmp_path, store, row, line, column, name):
    p = write(tmp_path, "bad.csv", HEADER + "\n" + row + "\n")
    with pytest.raises(SltdImportError) as ei:
        import_csv(store, [p])
    e = ei.value
    assert (e.line, e.column, e.column_name) == (line, column, name)
    assert f"line {line}, column {column} ({name})" in str(e)
    assert "12AB" not in str(e)


def test_wrong_field_count_and_header_errors(tmp_path, store):
    p = write(tmp_path, "short.csv", GOOD + "FRA,P,1,LOST\n")
    with pytest.raises(SltdImportError, match=r"line 4.*4 fields, header has 8"):
        import_csv(store, [p])
    p = write(tmp_path, "hdr.csv", "issuing_state,document_type,document_number\nFRA,P,1\n")
    with pytest.raises(SltdImportError, match=r"line 1: header lacks column 'status'"):
        import_csv(store, [p])
    p = write(tmp_path, "extra.csv", HEADER + ",colour\n")
    with pytest.raises(SltdImportError, match=r"line 1, column 9 \(colour\): unknown column"):
        import_csv(store, [p])


def test_nothing_half_imported(tmp_path, store):
    good = write(tmp_path, "a.csv", GOOD)
    bad = write(tmp_path, "b.csv", HEADER + "\nFRA,P,99,LOST,FRA,yesterday,,R\n")
    with pytest.raises(SltdImportError):
        import_csv(store, [good, bad])
    assert store.count() == 0 and store.version() == 0


def test_duplicate_key_is_an_error(tmp_path, store):
    p = write(tmp_path, "dup.csv", GOOD + "FRA,P,12AB34567,LOST,FRA,2025-03-02,,R9\n")
    with pytest.raises(SltdImportError, match=r"line 4: document listed twice .*line 2"):
        import_csv(store, [p])


def test_remove_keys_from_import_file(tmp_path, store):
    p = write(tmp_path, "a.csv", GOOD)
    import_csv(store, [p])
    assert store.remove(load_keys([p])) == 2
    assert store.count() == 0
