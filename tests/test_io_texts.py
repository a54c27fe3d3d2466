"""Reading inputs (issue 10): the input cannot rewrite the schema, and bytes are read honestly.

Column names that collide with cse's own names or are not valid names are renamed,
never substituted or dropped; plain text splits at \\n and \\r\\n only; JSON text values
must be strings; byte-order marks decide between UTF encodings and errors suggest only
encodings that decode the file; lone surrogates, deeply nested list cells, very wide
CSVs and FIFOs end in one line, quickly.
"""

from __future__ import annotations

import codecs
import json
import os
import re
import string
import time
import warnings

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cse import CSEInputError
from cse.io import MAX_INPUT_COLUMNS, parse_word_list, per_word_columns, read_texts, rename_columns, texts_frame
from cse.io.columns import name_problem
from cse.schema import reserved_names

SETTINGS = settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def _write(tmp_path, name, data: bytes):
    path = tmp_path / name
    path.write_bytes(data)
    return path


def _one_line(error) -> str:
    message = str(error.value)
    assert message and "\n" not in message
    return message


# --------------------------------------------------------------------------- column names


def test_reserved_and_invalid_columns_are_renamed_with_one_warning(tmp_path):
    header = "text,word,position,is_special,is_word_start,token_id,token_str,layer,cse,a/b,../x,.hid,__z,ok"
    path = _write(tmp_path, "in.csv", f"{header}\nthe cat sat,cat,7,0,1,5,x,3,0.5,ab,up,h,z,1\n".encode())
    with pytest.warns(UserWarning) as record:
        frame = read_texts(path)
    assert len(record) == 1
    message = str(record[0].message)
    assert "renamed 12 input column(s)" in message and "'word' -> 'input_word'" in message
    assert list(frame.columns) == [
        "text", "input_word", "input_position", "input_is_special", "input_is_word_start", "input_token_id",
        "input_token_str", "input_layer", "input_cse", "input_a_b", "input_.._x", "input_.hid", "input___z", "ok",
    ]
    # Nothing substituted, nothing dropped: every value is still there under its new name.
    assert frame.iloc[0].tolist() == ["the cat sat", "cat", 7, 0, 1, 5, "x", 3, 0.5, "ab", "up", "h", "z", 1]


def test_a_text_column_beside_the_chosen_one_is_renamed(tmp_path):
    path = _write(tmp_path, "in.csv", b"sentence,text\nthe sentence,the other\n")
    with pytest.warns(UserWarning, match="'text' -> 'input_text'"):
        frame = read_texts(path, text_column="sentence")
    assert frame.to_dict("list") == {"text": ["the sentence"], "input_text": ["the other"]}


def test_renaming_is_deterministic_and_resolves_collisions(tmp_path):
    frame = pd.DataFrame([[1, 2, 3, 4, 5, 6]], columns=["word", "input_word", "Label", "label", "", "WORD"])
    with pytest.warns(UserWarning):
        out = rename_columns(frame, "test")
    # Kept names win; renamed ones get _2, _3 in column order; case-insensitive clashes too.
    assert list(out.columns) == ["input_word_2", "input_word", "Label", "input_label", "input_column4",
                                 "input_WORD_3"]
    assert out.iloc[0].tolist() == [1, 2, 3, 4, 5, 6]


_names = st.one_of(
    st.text(alphabet=st.characters(codec="utf-8") | st.characters(categories=["Cs"]) | st.sampled_from("/._\x00\n\u2028W"),
            max_size=12),
    st.sampled_from(["word", "Word", "text", "input_word", "input_word_2", "input_", "", ".", "..", "x" * 300]),
)


@SETTINGS
@given(names=st.lists(st.one_of(_names, st.sampled_from(sorted(reserved_names()))), min_size=1, max_size=8))
def test_renamed_columns_are_valid_unique_and_never_reserved(names):
    frame = pd.DataFrame([list(range(len(names)))], columns=pd.Index(names, dtype=object))  # surrogates: not pyarrow
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        out = rename_columns(frame, "test")
        again = rename_columns(frame, "test")
    assert list(out.columns) == list(again.columns)  # deterministic
    new = [str(c) for c in out.columns]
    folded = [n.casefold() for n in new]
    assert len(set(folded)) == len(new)
    assert not set(folded) & {r.casefold() for r in reserved_names()}
    assert all(name_problem(n) is None for n in new)
    assert out.iloc[0].tolist() == list(range(len(names)))  # values kept in place
    changed = [(a, b) for a, b in zip(names, new) if a != b]
    assert len([w for w in record if "renamed" in str(w.message)]) == (2 if changed else 0)
    for old, renamed in changed:
        assert renamed.startswith("input_")


def test_dataframe_input_is_renamed_too():
    frame = pd.DataFrame({"text": ["a b", "c d"], "is_special": [0, 0], "word": ["x", "y"]})
    with pytest.warns(UserWarning, match="'is_special' -> 'input_is_special'"):
        out = texts_frame(frame)
    assert list(out.columns) == ["text", "input_is_special", "input_word"]


# --------------------------------------------------------------------------- plain text and JSON


def test_plain_text_splits_at_newline_only(tmp_path):
    lines = ["one\u2028two", "three\x85four", "five\x0csix", "seven\x0bend\x1c\x1d\x1e", "eight\rnine"]
    path = _write(tmp_path, "in.txt", "\r\n".join(lines[:2]).encode() + b"\n" + "\n".join(lines[2:]).encode() + b"\n")
    frame = read_texts(path)
    assert frame["text"].tolist() == lines
    assert frame.index.tolist() == list(range(len(lines)))  # text == 0-based line number


@SETTINGS
@given(lines=st.lists(st.text(alphabet=st.characters(codec="utf-8", exclude_characters="\n\r\x00"), max_size=20)
                      .filter(lambda s: s.strip() != ""), min_size=1, max_size=10),
       crlf=st.booleans())
def test_text_coordinate_is_the_line_number(tmp_path, lines, crlf):
    path = _write(tmp_path, "in.txt", ("\r\n" if crlf else "\n").join(lines).encode())
    frame = read_texts(path)
    assert frame["text"].tolist() == lines and frame.index.tolist() == list(range(len(lines)))


@pytest.mark.parametrize("value, kind", [("5", "number"), ("1.5", "number"), ("true", "boolean"),
                                         ('["a", "b"]', "array"), ('{"a": 1}', "object")])
def test_json_text_values_must_be_strings(tmp_path, value, kind):
    path = _write(tmp_path, "in.jsonl", f'{{"text": "fine"}}\n\n{{"text": {value}}}\n'.encode())
    with pytest.raises(CSEInputError) as error:
        read_texts(path)
    assert f"line 3: the text 'text' is a JSON {kind}, expected a string" in _one_line(error)


def test_json_lines_index_is_the_line_and_nul_escapes_survive(tmp_path):
    path = _write(tmp_path, "in.jsonl", b'{"text": "a\\u0000b", "n": 1}\n\n{"text": null}\n{"text": "c d"}\n')
    with pytest.warns(UserWarning, match="skipped 1 empty"):
        frame = read_texts(path)
    assert frame["text"].tolist() == ["a\x00b", "c d"] and frame.index.tolist() == [0, 3]


@pytest.mark.parametrize("escape", ["\\ud800", "\\udfff", "x\\udc80y"])
def test_lone_surrogates_are_one_line(tmp_path, escape):
    for content in (f'{{"text": "{escape}"}}\n', f'{{"text": "ok", "f": "{escape}"}}\n',
                    f'{{"text": "ok", "{escape}": 1}}\n', f'{{"text": "ok", "f": ["{escape}"]}}\n'):
        with pytest.raises(CSEInputError) as error:
            read_texts(_write(tmp_path, "in.jsonl", content.encode()))
        assert "line 1 holds an unpaired surrogate" in _one_line(error)
    with pytest.raises(CSEInputError, match="unpaired surrogate"):
        texts_frame(["fine", "bad \ud800"])


def test_a_surrogate_pair_escape_is_a_character(tmp_path):
    frame = read_texts(_write(tmp_path, "in.jsonl", b'{"text": "smile \\ud83d\\ude00"}\n'))
    assert frame["text"].tolist() == ["smile \U0001f600"]


def test_deeply_nested_json_is_one_line(tmp_path):
    with pytest.raises(CSEInputError) as error:
        read_texts(_write(tmp_path, "in.jsonl", b'{"text": "a", "x": ' + b"[" * 100_000 + b"]" * 100_000 + b"}\n"))
    assert "line 1" in _one_line(error)


# --------------------------------------------------------------------------- encodings


@pytest.mark.parametrize("bom, encoding", [(codecs.BOM_UTF16_LE, "utf-16-le"), (codecs.BOM_UTF16_BE, "utf-16-be"),
                                           (codecs.BOM_UTF32_LE, "utf-32-le"), (codecs.BOM_UTF32_BE, "utf-32-be"),
                                           (codecs.BOM_UTF8, "utf-8")])
def test_a_byte_order_mark_decides_between_utf_encodings(tmp_path, bom, encoding):
    data = bom + "text,label\nthé cat,1\nle chien,0\n".encode(encoding)
    for asked in ("utf-8", "utf-16", "utf-8-sig"):
        frame = read_texts(_write(tmp_path, "in.csv", data), encoding=asked)
        assert frame["text"].tolist() == ["thé cat", "le chien"] and frame["label"].tolist() == [1, 0]


@pytest.mark.parametrize("bom, label, use", [(codecs.BOM_UTF16_LE, "UTF-16 LE", "utf-16"),
                                             (codecs.BOM_UTF16_BE, "UTF-16 BE", "utf-16"),
                                             (codecs.BOM_UTF32_LE, "UTF-32 LE", "utf-32"),
                                             (codecs.BOM_UTF8, "UTF-8", "utf-8")])
def test_a_byte_order_mark_against_a_non_utf_encoding_says_which(tmp_path, bom, label, use):
    codec = {"UTF-16 LE": "utf-16-le", "UTF-16 BE": "utf-16-be", "UTF-32 LE": "utf-32-le", "UTF-8": "utf-8"}[label]
    path = _write(tmp_path, "in.txt", bom + "hello\n".encode(codec))
    with pytest.raises(CSEInputError) as error:
        read_texts(path, encoding="cp1252")
    assert f"starts with a {label} byte-order mark" in _one_line(error)
    assert _one_line(error).endswith(f"use encoding={use!r}")


def test_utf16_without_bom_is_named_never_cp1252(tmp_path):
    path = _write(tmp_path, "in.txt", "hello\nworld\n".encode("utf-16-le"))
    with pytest.raises(CSEInputError) as error:
        read_texts(path)
    assert "UTF-16 LE without a byte-order mark: use encoding='utf-16-le'" in _one_line(error)
    assert "cp1252" not in _one_line(error)
    assert read_texts(path, encoding="utf-16-le")["text"].tolist() == ["hello", "world"]


@pytest.mark.parametrize("data, hint", [
    ("café\n".encode("cp1252"), "try encoding='cp1252'"),           # valid cp1252, not UTF-8
    (b"caf\x81 au lait\n", "give the file's encoding with encoding=NAME"),  # 0x81 is undefined in cp1252
    (b"\x00\x01\x02\xff\xfe\x00\n", "give the file's encoding"),      # binary: NUL, never cp1252
    (b"plain ascii \x00 with a NUL\n", "a text file has none"),
    (b"binary \x00 stuff \xe9\n", "give the file's encoding"),
])
def test_encoding_hints_are_only_what_can_be_true(tmp_path, data, hint):
    with pytest.raises(CSEInputError) as error:
        read_texts(_write(tmp_path, "in.txt", data))
    message = _one_line(error)
    assert hint in message
    assert b"\x00" not in data or "cp1252" not in message
    suggested = re.search(r"try encoding='([^']*)'", message)
    suggested = suggested[1] if suggested else None
    if suggested:
        data.decode(suggested)  # the suggestion decodes the whole file
        assert b"\x00" not in data


def test_non_utf8_encoding_suggests_utf8_only_when_valid(tmp_path):
    path = _write(tmp_path, "in.txt", "naïve \u20ac\n".encode())
    assert read_texts(path, encoding="utf-8")["text"].tolist() == ["naïve \u20ac"]
    with pytest.raises(CSEInputError, match="try encoding='utf-8'"):
        read_texts(path, encoding="ascii")


@SETTINGS
@given(data=st.binary(max_size=300))
def test_any_suggested_encoding_decodes_the_file(tmp_path, data):
    try:
        read_texts(_write(tmp_path, "in.txt", data))
    except CSEInputError as error:
        message = str(error)
        assert "\n" not in message
        for suggested in re.findall(r"(?:try|use) encoding='([^']*)'", message):
            data.decode(suggested)


# --------------------------------------------------------------------------- cells and columns


def test_csv_text_is_read_as_written(tmp_path):
    frame = read_texts(_write(tmp_path, "in.csv", b"text,n\n007,007\n1e5,2\nTrue,3\n"))
    assert frame["text"].tolist() == ["007", "1e5", "True"]


def test_csv_row_longer_than_the_header_is_an_error_not_a_loss(tmp_path):
    with pytest.raises(CSEInputError) as error:
        read_texts(_write(tmp_path, "in.csv", b"text,label\nthe cat, sat,0\nhello there,1\n"))
    assert "a row has more fields than the header" in _one_line(error)
    with pytest.raises(CSEInputError) as error:
        read_texts(_write(tmp_path, "in.csv", b"text,label\nhello there,1\nthe cat, sat,0\n"))
    assert "Expected 2 fields in line 3, saw 3" in _one_line(error)


@pytest.mark.parametrize("cell", ["[" + "-" * 5000 + "1]", "[" * 5000, "[" * 5000 + "]" * 5000,
                                  "[" + "+" * 100_000 + "1]", "[" + "not " * 3000 + "1]", "[1, [2, 3]]",
                                  "[__import__('os').system('true')]", "[1" + " " * 20_000 + "x]"])
def test_list_looking_cells_never_recurse_or_evaluate(tmp_path, cell):
    start = time.perf_counter()
    assert parse_word_list(cell) is None
    assert time.perf_counter() - start < 1.0
    frame = read_texts(_write(tmp_path, "in.csv", f'text,lab\nhello world,"{cell}"\n'.encode()))
    assert per_word_columns(frame) == [] and frame["lab"].tolist() == [cell]


def test_flat_list_literals_are_per_word_fields(tmp_path):
    path = _write(tmp_path, "in.csv", b"text,lab,pos\nthe cat sat,\"[0, 1, 0]\",\"['DET', \"\"N'N\"\", 'V']\"\n")
    frame = read_texts(path)
    assert per_word_columns(frame) == ["lab", "pos"]
    assert frame["pos"].tolist() == [["DET", "N'N", "V"]]


def test_very_wide_csv_is_refused_within_seconds(tmp_path):
    n = 20_000
    header = "text," + ",".join(f"c{i}" for i in range(n))
    path = _write(tmp_path, "wide.csv", f"{header}\na b c d,{','.join(map(str, range(n)))}\n".encode())
    start = time.perf_counter()
    with pytest.raises(CSEInputError) as error:
        read_texts(path)
    assert time.perf_counter() - start < 10
    assert f"has {n} columns besides the text, more than the {MAX_INPUT_COLUMNS}" in _one_line(error)
    frame = read_texts(path, columns=["c3", "c7"])
    assert frame.to_dict("list") == {"text": ["a b c d"], "c3": [3], "c7": [7]}
    with pytest.raises(CSEInputError, match="'nope' is not a column"):
        read_texts(path, columns=["nope"])
    wide = pd.DataFrame([["a b c d", *range(n)]], columns=["text", *(f"c{i}" for i in range(n))])
    with pytest.raises(CSEInputError, match=f"more than the {MAX_INPUT_COLUMNS}"):
        texts_frame(wide)
    assert list(texts_frame(wide, columns=["c1"]).columns) == ["text", "c1"]


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs")
def test_fifo_input_is_refused_at_once(tmp_path):
    fifo = tmp_path / "in.txt"
    os.mkfifo(fifo)
    start = time.perf_counter()
    with pytest.raises(CSEInputError) as error:
        read_texts(fifo)
    assert "is a FIFO (named pipe), expected a regular file" in _one_line(error)
    assert time.perf_counter() - start < 5


def test_folder_and_missing_inputs_are_one_line(tmp_path):
    with pytest.raises(CSEInputError, match="is a folder, expected a regular file"):
        read_texts(tmp_path)
    with pytest.raises(CSEInputError, match="does not exist"):
        read_texts(tmp_path / "nothing.txt")


def test_printable_ascii_names_are_kept():
    names = ["label", "genre", "verb_idx", "Unnamed:0", "x-y", "a.1", string.ascii_letters]
    frame = pd.DataFrame([list(range(len(names)))], columns=names)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert list(rename_columns(frame, "test").columns) == names


def test_names_with_whitespace_are_renamed_they_would_not_stay_coordinates():
    # netCDF and Zarr keep a variable's coordinates as one space-separated attribute, so a coordinate
    # named 'a b' comes back from a file as a data variable: such names are renamed, and said.
    frame = pd.DataFrame([[0, 1, 2]], columns=["Unnamed: 0", "a b", "tab\there"])
    with pytest.warns(UserWarning, match=r"renamed 3 input column\(s\).*'a b' -> 'input_a_b'"):
        renamed = rename_columns(frame, "test")
    assert list(renamed.columns) == ["input_Unnamed:_0", "input_a_b", "input_tab_here"]


# --------------------------------------------------------------------------- repeated and empty headers (issue 17)


def test_repeated_and_empty_csv_headers_are_renamed_and_said(tmp_path):
    path = _write(tmp_path, "in.csv", b"text,label,label,,x y,Label\nthe cat sat,1,2,3,4,5\n")
    with pytest.warns(UserWarning, match=r"renamed 4 input column\(s\)") as record:
        frame = read_texts(path)
    assert list(frame.columns) == ["text", "label", "input_label", "input_column2", "input_x_y", "input_Label_2"]
    assert frame.iloc[0, 1:].tolist() == [1, 2, 3, 4, 5]
    said = str(record[0].message)
    assert "'label' -> 'input_label'" in said and "'' -> 'input_column2'" in said
    assert not [c for c in frame.columns if "Unnamed" in c or c.endswith(".1")]


def test_a_repeated_text_column_keeps_the_first_as_the_text(tmp_path):
    path = _write(tmp_path, "in.csv", b"sentence,sentence\nfirst words,second words\n")
    with pytest.warns(UserWarning, match="'sentence' -> 'input_sentence'"):
        frame = read_texts(path)
    assert frame["text"].tolist() == ["first words"] and frame["input_sentence"].tolist() == ["second words"]


def test_repeated_json_keys_are_renamed_not_lost(tmp_path):
    path = _write(tmp_path, "in.jsonl", b'{"text": "a b", "tag": 1, "tag": 2}\n{"text": "c d", "tag": 3}\n')
    with pytest.warns(UserWarning, match="'tag' -> 'input_tag'"):
        frame = read_texts(path)
    assert frame["tag"].tolist() == [1, 3] and frame["input_tag"].iloc[0] == 2


def test_a_field_cell_longer_than_the_bound_is_one_line(tmp_path):
    from cse.io import MAX_FIELD_CHARS

    path = _write(tmp_path, "in.csv", b"text,note\nhello there,short\nbye now," + b"n" * (MAX_FIELD_CHARS + 1) + b"\n")
    with pytest.raises(CSEInputError) as error:
        read_texts(path)
    assert f"row 1: the field 'note' holds {MAX_FIELD_CHARS + 1} characters or items" in _one_line(error)


# --------------------------------------------------------------------------- Parquet and datasets folders (issue 20)


def _table() -> pd.DataFrame:
    return pd.DataFrame({
        "sentence": ["the cat sat", "a dog ran far", "  ", "birds sing"],
        "label_seq": [[0, 1, 0], [1, 1, 0, 0], [], [0, 1]],
        "pos_seq": [["DET", "NOUN", "VERB"], ["DET", "NOUN", "VERB", "ADV"], [], ["NOUN", "VERB"]],
        "genre": ["news", "fiction", "news", "academic"], "n": [1, 2, 3, 4], "score": [0.5, 1.5, 2.0, -1.0],
        "flag": [True, False, True, True], "ragged": [[1, 2], [3], [4], [5, 6, 7]],
    })  # fmt: skip


def write_table(folder, table: pd.DataFrame) -> dict:
    """The same table as CSV (lists as their literals), Parquet, a datasets folder and a DatasetDict folder."""
    import datasets
    import pyarrow as pa
    import pyarrow.parquet as pq

    paths = {"csv": folder / "t.csv", "parquet": folder / "t.parquet", "datasets": folder / "t_ds",
             "dict": folder / "t_dict"}
    table.assign(**{c: table[c].map(str) for c in table if table[c].map(lambda v: isinstance(v, list)).any()}) \
        .to_csv(paths["csv"], index=False)
    pq.write_table(pa.Table.from_pandas(table, preserve_index=False), paths["parquet"])
    dataset = datasets.Dataset.from_pandas(table, preserve_index=False)
    datasets.disable_progress_bars()
    dataset.save_to_disk(str(paths["datasets"]))
    datasets.DatasetDict({"train": dataset, "test": dataset.select([0, 1])}).save_to_disk(str(paths["dict"]))
    return paths


def test_parquet_and_datasets_folders_give_the_frame_of_their_csv(tmp_path):
    pytest.importorskip("datasets")
    paths = write_table(tmp_path, _table())
    with pytest.warns(UserWarning, match=r"skipped 1 empty text\(s\) at row\(s\) 2"):
        frames = {kind: read_texts(path, split="train" if kind == "dict" else None) for kind, path in paths.items()}
    for kind in ("parquet", "datasets", "dict"):
        pd.testing.assert_frame_equal(frames[kind], frames["csv"])
    frame = frames["parquet"]
    assert frame["label_seq"].tolist() == [[0, 1, 0], [1, 1, 0, 0], [0, 1]]  # per-word lists, as CSV list cells
    assert frame["pos_seq"].iloc[1] == ["DET", "NOUN", "VERB", "ADV"]
    assert frame["ragged"].tolist() == ["[1, 2]", "[3]", "[5, 6, 7]"]  # not one item per word: kept as its text
    assert list(frame.index) == [0, 1, 3]


def test_a_datasetdict_folder_needs_a_split_and_the_error_lists_them(tmp_path):
    pytest.importorskip("datasets")
    paths = write_table(tmp_path, _table())
    with pytest.raises(CSEInputError) as error:
        read_texts(paths["dict"])
    assert "is a DatasetDict folder with the splits train, test; choose one with split=NAME" in _one_line(error)
    with pytest.raises(CSEInputError, match="'valid' is not a split of .* \\(splits: train, test\\)"):
        read_texts(paths["dict"], split="valid")
    with pytest.raises(CSEInputError, match="is not a datasets folder"):
        read_texts(paths["csv"], split="train")
    assert len(read_texts(paths["dict"] / "test")) == 2  # a split's own folder is a Dataset folder


def test_a_datasets_folder_is_read_without_running_anything_in_it(tmp_path):
    pytest.importorskip("datasets")
    paths = write_table(tmp_path, _table().iloc[:2])
    marker = tmp_path / "RAN"
    script = f"open({str(marker)!r}, 'w').write('x')\n"
    for name in ("t_ds.py", "__init__.py", "dataset.py", "loading_script.py"):
        (paths["datasets"] / name).write_text(script)
    read_texts(paths["datasets"])
    assert not marker.exists()
    state = paths["datasets"] / "state.json"
    doc = json.loads(state.read_text())
    for name in ("../t.parquet", "/etc/passwd", "t_ds.py", ""):
        doc["_data_files"] = [{"filename": name}]
        state.write_text(json.dumps(doc))
        with pytest.raises(CSEInputError, match="cse reads only .arrow files inside the folder"):
            read_texts(paths["datasets"])
    assert not marker.exists()


@pytest.mark.parametrize("make, message", [
    (lambda pa: pa.table({"text": ["a b"], "blob": pa.array([b"\x00\x01"], pa.binary())}),
     r"column 'blob' holds binary values; cse keeps text, numbers, booleans and flat lists"),
    (lambda pa: pa.table({"text": ["a b"], "nested": pa.array([[[1, 2]]], pa.list_(pa.list_(pa.int64())))}),
     r"column 'nested' holds list<\w+: list<\w+: int64>> values"),
    (lambda pa: pa.table({"text": ["a b"], "meta": pa.array([{"x": 1}], pa.struct([("x", pa.int64())]))}),
     r"column 'meta' holds struct<x: int64> values"),
    (lambda pa: pa.table({"text": [1, 2]}), r"data row 0: the text column 'text' holds int64 '1', expected text"),
    (lambda pa: pa.table({"text": ["a"], **{f"c{k}": [k] for k in range(300)}}),
     r"has 300 columns besides the text, more than the 256"),
])  # fmt: skip
def test_parquet_columns_cse_cannot_keep_are_one_line(tmp_path, make, message):
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    path = tmp_path / "in.parquet"
    pq.write_table(make(pa), path)
    with pytest.raises(CSEInputError, match=message) as error:
        read_texts(path)
    _one_line(error)


def test_dates_dictionaries_and_nulls_in_parquet_become_plain_fields(tmp_path):
    pa = pytest.importorskip("pyarrow")
    import datetime

    import pyarrow.parquet as pq

    table = pa.table({"text": ["a b", "c d", None], "day": [datetime.date(2024, 1, 2), None, None],
                      "kind": pa.array(["x", "y", "x"]).dictionary_encode(), "n": pa.array([1, None, 3], pa.int64())})
    pq.write_table(table, tmp_path / "in.parquet")
    with pytest.warns(UserWarning, match="skipped 1 empty"):
        frame = read_texts(tmp_path / "in.parquet")
    assert frame["day"].iloc[0] == "2024-01-02" and frame["kind"].tolist() == ["x", "y"]
    assert frame["n"].iloc[0] == 1 and pd.isna(frame["n"].iloc[1])


@pytest.mark.parametrize("data", [b"", b"PAR1", b"PAR1" + bytes(range(256)) * 4 + b"PAR1", b"not parquet at all"])
def test_a_corrupt_parquet_file_is_one_line(tmp_path, data):
    with pytest.raises(CSEInputError) as error:
        read_texts(_write(tmp_path, "in.parquet", data))
    assert "in.parquet" in _one_line(error)


def test_a_corrupt_datasets_folder_is_one_line(tmp_path):
    pytest.importorskip("datasets")
    paths = write_table(tmp_path, _table())
    arrow = next(paths["datasets"].glob("*.arrow"))
    arrow.write_bytes(arrow.read_bytes()[:200])
    with pytest.raises(CSEInputError, match="not a readable datasets folder") as error:
        read_texts(paths["datasets"])
    _one_line(error)
    (paths["dict"] / "dataset_dict.json").write_text("{not json")
    with pytest.raises(CSEInputError, match="dataset_dict.json is not readable JSON"):
        read_texts(paths["dict"], split="train")
