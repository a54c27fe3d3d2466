"""Corpora, output folders and the result cache of the studies (`cse_studies.common`).

Fast: small CSV files written here, plus the real data files where present (skipped
cleanly without them).
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from cse.errors import CSEInputError
from cse_studies.common import (
    MARKER,
    SEQUENCE,
    TARGET_WORD,
    StudyFolder,
    corpus_specs,
    read_corpus,
    sequence_words,
)


def _spec(path, name="c", **kwargs):
    return corpus_specs(corpora=[f"{name}={path}"], **kwargs)[0]


def _write(path, text, encoding="utf-8"):
    path.write_bytes(text.encode(encoding))
    return path


# --------------------------------------------------------------------------- options


def test_specs_from_data_and_corpus_options(metaphor_dir):
    specs = corpus_specs(metaphor_dir, [f"vua_train={metaphor_dir / 'vua-seq-train.csv'}"],
                         encodings=["vua_train=cp1252"], columns=["vua_train.block=txt_id"])
    assert [s.name for s in specs] == ["mohx", "vua", "vua_train"]
    assert specs[2].encoding == "cp1252" and dict(specs[2].columns) == {"block": "txt_id"}


@pytest.mark.parametrize("kwargs, message", [
    ({}, "Missing corpora"),
    ({"corpora": ["noequals"]}, "'--corpus': expected NAME=PATH"),
    ({"corpora": ["1bad=x.csv"]}, "must start with a letter"),
    ({"corpora": ["pairs=x.csv"]}, "is reserved"),
    ({"corpora": ["a=/nonexistent/file.csv"]}, "is not a file"),
])
def test_bad_corpus_options_are_one_line(kwargs, message):
    with pytest.raises(CSEInputError, match=message) as info:
        corpus_specs(**kwargs)
    assert "\n" not in str(info.value)


def test_bad_encoding_and_column_options(tmp_path):
    path = _write(tmp_path / "a.csv", "sentence,label_seq\nA b,\"[0, 1]\"\n")
    with pytest.raises(CSEInputError, match="unknown encoding 'klingon'"):
        corpus_specs(corpora=[f"a={path}"], encodings=["a=klingon"])
    with pytest.raises(CSEInputError, match="no corpus named 'b'"):
        corpus_specs(corpora=[f"a={path}"], encodings=["b=utf-8"])
    with pytest.raises(CSEInputError, match="unknown role 'verb'"):
        corpus_specs(corpora=[f"a={path}"], columns=["a.verb=x"])
    with pytest.raises(CSEInputError, match="given twice"):
        corpus_specs(corpora=[f"a={path}", f"a={path}"])


def test_data_folder_errors(tmp_path):
    with pytest.raises(CSEInputError, match="'--data'.*not a folder"):
        corpus_specs(tmp_path / "nope")
    with pytest.raises(CSEInputError, match="has no moh-x.csv"):
        corpus_specs(tmp_path)


# --------------------------------------------------------------------------- formats


def test_target_word_format_with_string_labels_and_odd_whitespace(tmp_path):
    text = ("id,lemma,text,target_index,metaphor\n"
            "1,grasp,\"  He  grasped\tthe idea .\",1,True\n"
            "2,grasp,\"She grasped\nthe rope\",1,false\n"  # a row spanning two lines
            "3,see,We see it,5,1\n"  # index outside the sentence: left out
            "4,see,,0,0\n")  # empty sentence: left out
    corpus = read_corpus(_spec(_write(tmp_path / "t.csv", text)))
    assert corpus.kind == TARGET_WORD
    assert corpus.columns == {"sentence": "text", "target": "target_index", "label": "metaphor", "block": "lemma"}
    frame = corpus.frame
    assert frame["text"].tolist() == ["He grasped the idea .", "She grasped the rope"]
    assert frame["label"].tolist() == [1, 0] and frame["target"].tolist() == [1, 1]
    assert frame["exchangeability_block"].tolist() == ["grasp", "grasp"]
    assert corpus.dropped == {"target index missing or outside its sentence": [2], "empty sentence": [3]}
    assert "2 sentences of 4 rows" in corpus.describe()


def test_target_word_block_defaults_to_the_target_form(tmp_path):
    corpus = read_corpus(_spec(_write(tmp_path / "t.csv", "sentence,verb_idx,label\nA Ran fast,1,1\nB ran,1,0\n")))
    assert corpus.frame["exchangeability_block"].tolist() == ["ran", "ran"]
    assert "target word's form" in corpus.block_label


def test_sequence_format_without_pos_genre_or_text_id(tmp_path):
    text = "sentence;labels\nThe  market crashed !;0 0 1 0\nPrices rose;'0','1'\n"
    corpus = read_corpus(_spec(_write(tmp_path / "s.csv", text)))
    assert corpus.kind == SEQUENCE and set(corpus.columns) == {"sentence", "label_seq"}
    frame = corpus.frame
    # "The  market" has an empty string between the spaces in split(" "); 4 labels match split().
    assert frame["label_seq"].tolist() == [[0, 0, 1, 0], [0, 1]]
    assert frame["content"].tolist() == [[1, 1, 1, 0], [1, 1]]
    assert frame["exchangeability_block"].tolist() == ["row 0", "row 1"]
    words = sequence_words(corpus)
    assert (words["pos"] == "").all() and words["label"].sum() == 2


def test_sequence_labels_of_empty_words_are_dropped(tmp_path):
    text = 'sentence,label_seq,pos_seq\n"a  b","[1, 0, 0]","[\'NOUN\', \'X\', \'VERB\']"\n"c d","[1]","[\'NOUN\']"\n'
    corpus = read_corpus(_spec(_write(tmp_path / "s.csv", text)))
    assert corpus.frame["label_seq"].tolist() == [[1, 0]]
    assert corpus.frame["pos_seq"].tolist() == [["NOUN", "VERB"]]
    assert corpus.dropped == {"label_seq of another length than the sentence": [1]}


def test_labels_that_are_not_labels_name_the_row(tmp_path):
    path = _write(tmp_path / "t.csv", "sentence,verb_idx,label\nA b,0,1\nC d,1,maybe\n")
    with pytest.raises(CSEInputError, match="data row 1: label 'maybe' is not a label"):
        read_corpus(_spec(path))
    path = _write(tmp_path / "s.csv", 'sentence,label_seq\nA b,"[0, [1]]"\n')
    with pytest.raises(CSEInputError, match="is not a label"):
        read_corpus(_spec(path))


def test_neither_format_names_what_is_missing(tmp_path):
    path = _write(tmp_path / "x.csv", "sentence,score\nA b,3\n")
    with pytest.raises(CSEInputError) as info:
        read_corpus(_spec(path))
    message = str(info.value)
    assert "missing target, label" in message and "missing label_seq" in message and "--column" in message
    assert "\n" not in message


def test_columns_given_by_role(tmp_path):
    path = _write(tmp_path / "x.csv", "s,position,y,group\nA b c,2,1,g\nD e,0,0,g\n")
    corpus = read_corpus(_spec(path, columns=["c.sentence=s", "c.target=position", "c.label=y", "c.block=group"]))
    assert corpus.kind == TARGET_WORD and corpus.frame["target"].tolist() == [2, 0]
    with pytest.raises(CSEInputError, match="no column 'nope'"):
        read_corpus(_spec(path, columns=["c.label=nope"]))


def test_encodings_detected_given_and_wrong(tmp_path):
    text = "sentence,verb_idx,label\ncaf\u00e9 \u2019s good,0,1\n"
    cp = _write(tmp_path / "cp.csv", text, "cp1252")
    corpus = read_corpus(_spec(cp))
    assert corpus.encoding == "cp1252" and corpus.frame["text"][0] == "caf\u00e9 \u2019s good"
    assert "not valid UTF-8" in corpus.encoding_note
    with pytest.raises(CSEInputError, match=r"not valid utf-8 .*--encoding c=ENCODING") as info:
        read_corpus(_spec(cp, encodings=["c=utf-8"]))
    assert "\n" not in str(info.value)
    u16 = tmp_path / "u16.csv"
    u16.write_bytes(text.encode("utf-16"))  # with a byte-order mark
    assert read_corpus(_spec(u16)).frame["text"][0] == "caf\u00e9 \u2019s good"
    u16le = tmp_path / "u16le.csv"
    u16le.write_bytes(text.encode("utf-16-le"))  # without one
    with pytest.raises(CSEInputError, match="NUL characters"):
        read_corpus(_spec(u16le))


def test_real_corpora_in_both_encodings(metaphor_dir):
    specs = corpus_specs(metaphor_dir, [f"val={metaphor_dir / 'vua-seq-val.csv'}"])
    mohx, vua, val = (read_corpus(s, limit=50) for s in specs)
    assert (mohx.kind, vua.kind, val.kind) == (TARGET_WORD, SEQUENCE, SEQUENCE)
    assert val.encoding == "cp1252" and vua.encoding == "utf-8"
    targets = [w[i] for w, i in zip(mohx.frame["word_str"], mohx.frame["target"])]
    # The target word is an inflection of the verb lemma (e.g. absorb -> absorbed).
    assert np.mean([t.startswith(v[:3].lower()) for t, v in zip(targets, mohx.frame["exchangeability_block"])]) > 0.9
    assert (vua.frame["label_seq"].map(len) == vua.frame["text"].str.split().map(len)).all()
    assert not mohx.dropped and not vua.dropped


# --------------------------------------------------------------------------- output folder


def test_study_folder_owns_only_what_it_wrote(tmp_path):
    folder = StudyFolder(tmp_path / "out", study="metaphor")
    folder.write_text("report.md", "one")
    folder.write_text("m/fig.txt", "two")
    assert json.loads((tmp_path / "out" / MARKER).read_text())["files"].keys() == {"report.md", "m/fig.txt"}
    again = StudyFolder(tmp_path / "out", study="cross-depth")  # a marked folder may be reused
    again.write_text("report.md", "three")  # its own, unchanged file: replaced
    assert (tmp_path / "out" / "report.md").read_text() == "three"
    (tmp_path / "out" / "notes.txt").write_text("precious")
    with pytest.raises(CSEInputError, match="was not written by cse study"):
        again.write_text("notes.txt", "x")
    (tmp_path / "out" / "report.md").write_text("edited by the user")
    with pytest.raises(CSEInputError, match="or was changed since"):
        again.write_text("report.md", "x")
    assert (tmp_path / "out" / "report.md").read_text() == "edited by the user"
    assert (tmp_path / "out" / "notes.txt").read_text() == "precious"


def test_study_folder_refuses_foreign_folders_and_the_data_folder(tmp_path):
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "keep.txt").write_text("precious")
    with pytest.raises(CSEInputError, match="holds files and was not written by cse study"):
        StudyFolder(tmp_path / "mine", study="metaphor")
    data = tmp_path / "data"
    data.mkdir()
    (data / "c.csv").write_text("x")
    with pytest.raises(CSEInputError, match="never into the data folder"):
        StudyFolder(data, study="metaphor", inputs=[data / "c.csv"])
    (tmp_path / "file").write_text("x")
    with pytest.raises(CSEInputError, match="is not a folder"):
        StudyFolder(tmp_path / "file", study="metaphor")
    with pytest.raises(CSEInputError, match="parent folder"):
        StudyFolder(tmp_path / "a" / "b", study="metaphor")
    (tmp_path / "empty").mkdir()
    StudyFolder(tmp_path / "empty", study="metaphor")  # an empty folder is adopted
    assert (tmp_path / "empty" / MARKER).is_file()


# --------------------------------------------------------------------------- cache key


def test_cache_key_goes_through_cse_io(tmp_path, monkeypatch):
    import cse.io
    from cse_studies.common import save_result, stored_key

    ds = xr.Dataset({"cse": (("token", "layer"), np.zeros((2, 3)))})
    folder = StudyFolder(tmp_path / "out", study="metaphor")
    path = folder.path / "c-depth-m.nc"
    back = save_result(ds, path, '{"k": 1}', folder)
    assert back.attrs["study_key"] == '{"k": 1}' and cse.io.is_package_result(path)
    assert stored_key(path) == '{"k": 1}'
    # With the contract's reader (cse.io.result_attrs), the key is read through it.
    monkeypatch.setattr(cse.io, "result_attrs", lambda p: {"study_key": "via result_attrs"}, raising=False)
    assert stored_key(path) == "via result_attrs"
    (tmp_path / "other.nc").write_bytes(b"not a result")
    assert stored_key(tmp_path / "other.nc") is None


def test_a_result_that_saves_more_serves_a_request_for_less():
    from cse.settings import MeasureSettings
    from cse_studies.common.cache import compute_key, key_covers

    frame, identity = pd.DataFrame({"text": ["a b", "c"]}), {"model": "m", "n_layers": 4}
    settings = MeasureSettings.resolve("depth", null_permutations=10, seed=0)
    plain, with_gram = compute_key(frame, identity, settings), compute_key(frame, identity, settings, ["gram_triangle"])
    assert key_covers(with_gram, plain) and key_covers(plain, plain)  # the metaphor cache serves cross-depth
    assert not key_covers(plain, with_gram)  # but a result without Gram matrices cannot serve re-measuring
    other = compute_key(frame, identity, MeasureSettings.resolve("depth", null_permutations=10, seed=1))
    assert not key_covers(other, plain) and not key_covers(with_gram, other)
    for stored in (None, "not json", "[1]", '{"save": "gram"}'):
        assert not key_covers(stored, plain)


def test_token_counts_match_the_compute_plan():
    from cse.pipeline import plan_tokens  # tests may read the implementation; the studies do not
    from cse_studies.common import token_counts
    from tests.tiny_models import tiny_tokenizer

    tokenizer = tiny_tokenizer()
    texts = ["a b c", "hello there world again", "x"]
    plan = plan_tokens(pd.DataFrame({"text": texts}), tokenizer, max_length=None)
    np.testing.assert_array_equal(token_counts(texts, tokenizer), np.diff(plan.starts))
