"""Tests of cse.where: selection expressions are parsed and evaluated by an allow-list, never executed."""

from __future__ import annotations

import ast
import builtins
import contextlib
import os
import tempfile
from pathlib import Path
from unittest import mock

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cse.errors import CSEInputError
from cse.where import MAX_DEPTH, MAX_LENGTH, evaluate


@pytest.fixture
def frame():
    return pd.DataFrame({
        "position": [0, 1, 2, 3, 4, 5],
        "word": [-1, 0, 0, 1, 2, 2],
        "verb_idx": [2, 2, 2, 2, 2, 2],
        "genre": ["news", "news", "fiction", "news", "fiction", "academic"],
        "is_word_start": [False, True, False, True, True, False],
        "surprisal": [np.nan, 1.5, 0.2, 3.0, 7.5, 2.0],
        "label": np.array(["lit", None, "met", "met", "lit", "lit"], dtype=object),
    })  # fmt: skip


@pytest.mark.parametrize(
    "expression, expected",
    [
        ("word == verb_idx", lambda f: f.word == f.verb_idx),
        ("word == verb_idx - 1", lambda f: f.word == f.verb_idx - 1),
        ("is_word_start and genre == 'news'", lambda f: f.is_word_start & (f.genre == "news")),
        ("is_word_start or not genre != 'academic'", lambda f: f.is_word_start | (f.genre == "academic")),
        ("0 < position <= 3", lambda f: (f.position > 0) & (f.position <= 3)),
        ("genre in ['news', 'academic']", lambda f: f.genre.isin(["news", "academic"])),
        ("genre not in ('news',)", lambda f: ~f.genre.isin(["news"])),
        ("position in {1, -2, 5.0}", lambda f: f.position.isin([1, -2, 5])),
        ("surprisal > 2", lambda f: f.surprisal > 2),  # NaN compares False
        ("surprisal == None", lambda f: f.surprisal.isna()),
        ("label != None and label == 'lit'", lambda f: f.label == "lit"),
        ("position % 2 == 0 and position ** 2 >= 4", lambda f: (f.position % 2 == 0) & (f.position**2 >= 4)),
        ("position // 2 == 1 and -position < -2.5", lambda f: (f.position // 2 == 1) & (f.position > 2.5)),
        ("surprisal * 2 / 4 + 1 > 2", lambda f: f.surprisal / 2 + 1 > 2),
        ("10 ** 10 ** 10 > position", lambda f: f.position == f.position),  # inf at once, no hang
        ("True", lambda f: f.position == f.position),
        ("1 > 2", lambda f: f.position != f.position),
    ],
)
def test_grammar_evaluates_like_pandas(frame, expression, expected):
    got = evaluate(expression, frame)
    assert got.dtype == bool and got.shape == (len(frame),)
    np.testing.assert_array_equal(got, np.asarray(expected(frame), dtype=bool))
    got[0] = not got[0]  # the mask is the caller's own writable array


@pytest.mark.parametrize(
    "expression, construct",
    [
        ("genre.__class__", r"attribute access \(\.__class__\)"),
        ("len(genre) > 1", r"function call \(len\(\.\.\.\)\)"),
        ("genre.upper() == 'NEWS'", r"method call \(\.upper\(\.\.\.\)\)"),
        ("genre[0] == 'n'", r"subscript"),
        ("(lambda: 1)() == 1", r"function call|lambda"),
        ("[p for p in position]", r"list comprehension"),
        ("f'{genre}' == 'news'", r"f-string"),
        ("(x := 1) == 1", r"assignment expression"),
        ("position if is_word_start else 0", r"conditional expression"),
        ("position & 1", r"bitwise operator '&' \(use 'and'\)"),
        ("~is_word_start", r"bitwise operator '~' \(use 'not'\)"),
        ("position is None", r"'is' comparison"),
        ("[1, 2] == position", r"a list, tuple or set outside 'in'"),
        ("position in genre", r"'in' with a name"),
        ("position in [1, word]", r"a name inside the list after 'in'"),
        ("position in [1] == True", r"chained after 'in'"),
        ("{'a': 1} == position", r"dict display"),
        ("b'x' == genre", r"a constant of type bytes"),
        ("1j == position", r"a constant of type complex"),
        ("... == position", r"a constant of type ellipsis"),
        ("nosuch > 1", r"unknown name 'nosuch'.*available: genre, is_word_start"),
        ("position >", r"cannot parse 'position >'"),
        ("position = 3", r"cannot parse"),
        ("@x > 1", r"cannot parse"),
        ("genre < 3", r"cannot compare str values with the int 3"),
        ("genre + 'x' == 'newsx'", r"arithmetic '\+' needs numbers"),
        ("position and is_word_start", r"'and' needs True/False values"),
        ("position + 1", r"one True/False per token"),
        ("position < None", r"None can only be compared with == or !="),
        ("position == " + "9" * 5000, r"cannot parse"),
        ("(" * 300 + "position > 1" + ")" * 300, r"cannot parse"),
        ("-" * 5000 + "1 < position", r"cannot parse"),
        (" + ".join(["position"] * (MAX_DEPTH + 2)) + " > 0", rf"nested more than {MAX_DEPTH} levels"),
        ("not " * 2600 + "is_word_start", rf"over the limit of {MAX_LENGTH}"),
    ],
)
def test_refused_constructs_are_one_line_naming_them(frame, expression, construct):
    with pytest.raises(CSEInputError, match=r"^Invalid value for 'where': .*" + construct) as info:
        evaluate(expression, frame)
    assert "\n" not in str(info.value)


def test_where_must_be_a_string(frame):
    with pytest.raises(TypeError, match="'where'"):
        evaluate(b"position > 1", frame)


@contextlib.contextmanager
def nothing_executes():
    """eval, exec, compile (except compile to an AST, which ast.parse is) and pandas' eval raise inside."""
    real_compile = builtins.compile

    def ast_only(source, filename, mode, flags=0, *args, **kwargs):
        if not flags & ast.PyCF_ONLY_AST:
            raise AssertionError(f"compile() to code was called on {source!r}")
        return real_compile(source, filename, mode, flags, *args, **kwargs)

    def forbidden(*args, **kwargs):
        raise AssertionError("code execution was attempted")

    with mock.patch.object(builtins, "eval", forbidden), mock.patch.object(builtins, "exec", forbidden), \
            mock.patch.object(builtins, "compile", ast_only), mock.patch.object(pd.DataFrame, "eval", forbidden), \
            mock.patch.object(pd, "eval", forbidden):  # fmt: skip
        yield


def payload(marker: Path) -> str:
    """The issue's payload, with the index of a class whose __init__ sees the os module's globals."""
    index = [i for i, c in enumerate(object.__subclasses__()) if c.__name__ == "_wrap_close"][0]
    return (f'position.__class__.__mro__[-1].__subclasses__()[{index}].__init__.__globals__["sys"]'
            f'.modules["os"].system("touch {marker}")')  # fmt: skip


def test_the_issue_payload_is_refused_without_evaluation(frame, tmp_path):
    control = tmp_path / "control"
    frame.eval(payload(control), engine="python")  # what earlier releases did with --where
    assert control.exists(), "the payload is live: pandas' python engine runs it"
    marker = tmp_path / "marker"
    with nothing_executes(), pytest.raises(CSEInputError, match=r"method call \(\.system\(\.\.\.\)\) is not allowed"):
        evaluate(payload(marker), frame)
    assert not marker.exists()


_NAMES = ["position", "word", "genre", "is_word_start", "surprisal", "label"]
_DANGER = [
    "__import__('os').system('touch {m}')", "open('{m}', 'w')", "().__class__.__bases__[0]", "position.__class__",
    "exec('1')", "eval('1')", "getattr(position, 'x')", "lambda: 0", "[c for c in 'ab']", "f'{position}'",
    "(y := 1)", "*position", "position[0]", "{1: 2}", "globals()", "breakpoint()", "print('x')",
]  # fmt: skip
_LEAVES = st.one_of(
    st.sampled_from(_NAMES),
    st.integers(-(10**6), 10**6).map(str),
    st.floats(allow_nan=False, allow_infinity=False, width=32).map(repr),
    st.sampled_from(["'news'", "'fiction'", "True", "False", "None", "''"]),
    st.sampled_from(_DANGER),
)
_BINARY = ["+", "-", "*", "/", "//", "%", "**", "==", "!=", "<", "<=", ">", ">=", " and ", " or ", " in ", " not in ",
           "&", "|", "^", "@", "<<", " is "]  # fmt: skip


def _combine(children):
    return st.one_of(
        st.tuples(children, st.sampled_from(_BINARY), children).map(lambda t: f"{t[0]}{t[1]}{t[2]}"),
        children.map(lambda c: f"({c})"),
        children.map(lambda c: f"not {c}"),
        children.map(lambda c: f"-{c}"),
        st.lists(children, min_size=1, max_size=3).map(lambda xs: "[" + ", ".join(xs) + "]"),
        st.tuples(children, children).map(lambda t: f"{t[0]} in ({t[1]},)"),
    )


@settings(max_examples=300, deadline=None)
@given(expression=st.recursive(_LEAVES, _combine, max_leaves=12))
def test_random_expressions_never_execute_code(expression):
    frame = pd.DataFrame({
        "position": [0, 1, 2], "word": [-1, 0, 1], "genre": ["news", "fiction", "news"],
        "is_word_start": [False, True, True], "surprisal": [np.nan, 1.0, 2.5],
        "label": np.array(["a", None, "b"], dtype=object),
    })  # fmt: skip
    with tempfile.TemporaryDirectory() as folder:
        marker = Path(folder) / "marker"
        text = expression.replace("{m}", str(marker))
        cwd = os.getcwd()
        os.chdir(folder)
        try:
            with nothing_executes():
                try:
                    mask = evaluate(text, frame)
                except CSEInputError as exc:  # the only error a user may see, on one line
                    assert "\n" not in str(exc)
                else:
                    assert mask.dtype == bool and mask.shape == (3,)
        finally:
            os.chdir(cwd)
        assert not marker.exists() and not (Path(folder) / "x").exists()


# --------------------------------------------------------------------------- errors of any size are one short line

_HUGE = [
    "position == " + "9" * 9000,  # past Python's 4300-digit limit for int(str)
    "position == 0x" + "f" * 9000,  # parses, then is too long for repr
    "-0x" + "f" * 9000 + " < position",
    "position in [" + "7" * 4301 + "]",
    "position in [-0x" + "f" * 5000 + "]",
    "(" * 5000 + "position" + ")" * 5000,
    "(" * 250 + "position > 0" + ")" * 250,
    "-" * 9000 + "position > 0",
    "not " * 2400 + "position > 0",
    "position" + " + 1" * 2400 + " > 0",
    " and ".join(["position > 0"] * 2000),
    "x" * 9500 + " > 1",
    "position." + "a" * 9000,
    "a" * 9000 + "()",
    "genre > '" + "x" * 9000 + "' + 1",
    "not '" + "y" * 9000 + "'",
    "genre == '" + "z" * 20000 + "'",
]


@pytest.mark.parametrize("expression", _HUGE, ids=lambda e: f"{e[:12]}...{len(e)}")
def test_huge_literals_deep_nesting_and_long_expressions_are_one_short_line(frame, expression):
    with pytest.raises(CSEInputError) as error:
        evaluate(expression, frame)
    message = str(error.value)
    assert message.startswith("Invalid value for 'where'") and "\n" not in message and len(message) < 600, message


def test_a_9000_digit_literal_names_the_limit(frame):
    with pytest.raises(CSEInputError, match=r"a number of more than \d+ digits"):
        evaluate("position == " + "9" * 9000, frame)
    with pytest.raises(CSEInputError, match=r"the integer constant <an integer of about \d+ digits> is out of the int64"):
        evaluate("position == 0x" + "f" * 9000, frame)


def test_an_unknown_name_lists_at_most_30_columns(frame):
    wide = pd.DataFrame({f"column_{k}_" + "q" * 150: [1] for k in range(300)})
    with pytest.raises(CSEInputError, match=r"\(300 in all\)") as error:
        evaluate("nope > 1", wide)
    assert len(str(error.value)) < 3000


_PIECES = st.sampled_from(["position", "genre", "9" * 4400, "0x" + "f" * 3000, "(", ")", " + ", " - ", " == ", " < ",
                           " and ", " not ", " in [", "]", "'" + "s" * 3000 + "'", "1e999", ".__class__", "()", ", "])


@settings(max_examples=60, deadline=None)
@given(pieces=st.lists(_PIECES, max_size=40))
def test_random_large_expressions_give_a_mask_or_one_short_line(pieces):
    frame = pd.DataFrame({"position": [0, 1, 2], "genre": ["news", "fiction", "news"]})
    try:
        mask = evaluate("".join(pieces), frame)
    except CSEInputError as exc:
        assert "\n" not in str(exc) and len(str(exc)) < 600
    else:
        assert mask.dtype == bool and mask.shape == (len(frame),)
