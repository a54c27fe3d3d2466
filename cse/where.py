"""Token selection expressions (``--where``), parsed with `ast` and evaluated by an allow-list.

A ``where`` expression is user text: it is data, never code. `evaluate` parses it with
`ast.parse` (``mode="eval"``), walks the whole tree and refuses, before anything is
evaluated, every node that is not in this grammar:

- names of the columns of the token frame (token coordinates and 1-D token variables
  such as ``surprisal``);
- constants: str, int, float, bool, None;
- comparisons ``==  !=  <  <=  >  >=``, chained (``0 < position <= 5``), and
  ``in`` / ``not in`` with a list, tuple or set of constants (``genre in ['news', 'fiction']``);
- ``and``, ``or``, ``not`` on True/False values;
- arithmetic on numbers: ``+ - * / // % **`` and unary ``-`` / ``+`` (computed in float64).

Everything else -- attribute access, calls, subscripts, lambdas, comprehensions,
f-strings, ``:=``, starred expressions, conditional expressions, bitwise operators,
``is`` -- is one `CSEInputError` naming the construct. Each node of the grammar is
evaluated by an operation of this module on NumPy/pandas arrays; neither `eval` nor
`pandas.DataFrame.eval` is ever called. The text is bounded (`MAX_LENGTH` characters,
`MAX_DEPTH` levels of nesting) so that a hostile expression cannot exhaust the parser
or the evaluator, and arithmetic is done in float64, where ``10 ** 10 ** 10`` is
``inf`` at once instead of a huge integer.
"""

from __future__ import annotations

import ast
import operator
import sys

import numpy as np
import pandas as pd

from .errors import CSEInputError

#: Longest expression accepted, in characters.
MAX_LENGTH = 10_000
#: Deepest nesting of the expression tree accepted (``a + 1 + 1 ...`` counts one level per ``+``).
MAX_DEPTH = 100

ALLOWED = (
    "comparisons (== != < <= > >=, chained), 'in'/'not in' a list of constants, 'and'/'or'/'not', "
    "arithmetic on numbers (+ - * / // % **), constants and token coordinate names"
)

_ARITHMETIC = {
    ast.Add: np.add,
    ast.Sub: np.subtract,
    ast.Mult: np.multiply,
    ast.Div: np.true_divide,
    ast.FloorDiv: np.floor_divide,
    ast.Mod: np.mod,
    ast.Pow: np.power,
}
_COMPARISONS = {
    ast.Eq: operator.eq,
    ast.NotEq: operator.ne,
    ast.Lt: operator.lt,
    ast.LtE: operator.le,
    ast.Gt: operator.gt,
    ast.GtE: operator.ge,
}
_REFUSED_OPERATORS = {
    ast.BitAnd: "bitwise operator '&' (use 'and')",
    ast.BitOr: "bitwise operator '|' (use 'or')",
    ast.BitXor: "bitwise operator '^'",
    ast.Invert: "bitwise operator '~' (use 'not')",
    ast.LShift: "shift operator '<<'",
    ast.RShift: "shift operator '>>'",
    ast.MatMult: "matrix product '@'",
    ast.Is: "'is' comparison (use == or !=)",
    ast.IsNot: "'is not' comparison (use == or !=)",
}
_CONSTANT_TYPES = (str, int, float, bool, type(None))


def evaluate(expression: str, frame: pd.DataFrame) -> np.ndarray:
    """Evaluate a selection expression on the columns of `frame`.

    Parameters
    ----------
    expression : str
        The expression, in the grammar of the module docstring, e.g.
        ``"is_word_start and genre == 'news'"`` or ``"word == verb_idx - 1"``.
    frame : pandas.DataFrame, shape (n_tokens, n_columns)
        One row per token; its column names are the names the expression may use.

    Returns
    -------
    mask : ndarray of bool, shape (n_tokens,)
        True where the expression holds. A constant expression (``True``) holds for
        every token; comparisons with missing values (NaN, None) are False, except
        ``name == None`` (missing) and ``name != None`` (present).

    Raises
    ------
    TypeError
        If `expression` is not a str.
    CSEInputError
        One line naming the problem: the expression is too long or too deeply nested,
        does not parse, uses a construct outside the grammar (named, e.g.
        ``attribute access (.__class__)``), names an unknown column (the available ones
        are listed), applies an operator to values of the wrong kind, or does not give
        one True/False per token.

    Examples
    --------
    >>> import pandas as pd
    >>> frame = pd.DataFrame({"position": [0, 1, 2, 3], "genre": ["news", "news", "fiction", "news"]})
    >>> evaluate("0 < position <= 2 and genre in ('news',)", frame).tolist()
    [False, True, False, False]
    """
    if not isinstance(expression, str):
        raise TypeError(f"Invalid type for 'where': expected a str expression, got {type(expression).__name__}")
    if len(expression) > MAX_LENGTH:
        raise CSEInputError(
            f"Invalid value for 'where': the expression has {len(expression)} characters, over the limit of "
            f"{MAX_LENGTH}; select with a shorter expression or a boolean mask"
        )
    tree = parse(expression)
    check(tree, expression, frame.columns)
    try:
        value = _Evaluator(frame, expression).visit(tree.body)
    except (RecursionError, MemoryError):  # pragma: no cover - prevented by MAX_DEPTH / MAX_LENGTH
        raise CSEInputError(f"Invalid value for 'where': {_short(expression)} is too complex to evaluate") from None
    return _as_mask(value, len(frame), expression)


def parse(expression: str) -> ast.Expression:
    """Parse `expression` with `ast.parse` (``mode="eval"``); one-line errors.

    Raises
    ------
    CSEInputError
        On a syntax error, or when the parser gives up (too deep, too many digits).
    """
    try:
        return ast.parse(expression.strip(), mode="eval")
    except (SyntaxError, RecursionError, MemoryError, ValueError, OverflowError) as exc:
        detail = " ".join(str(getattr(exc, "msg", None) or exc).split())[:120] or type(exc).__name__
        if isinstance(exc, (RecursionError, MemoryError)):
            detail = "nested too deeply for Python's parser"
        if "integer string conversion" in detail:  # Python's own bound on decimal digits
            detail = f"a number of more than {sys.get_int_max_str_digits()} digits"
        elif isinstance(exc, SyntaxError):
            where = f" at column {exc.offset}" if exc.offset else ""
            raise CSEInputError(
                f"Invalid value for 'where': cannot parse {_short(expression)} ({detail}{where}); allowed: {ALLOWED}"
            ) from None
        raise CSEInputError(
            f"Invalid value for 'where': cannot parse {_short(expression)} ({detail}); "
            f"use a shorter, less nested expression with numbers of int64 size"
        ) from None


def check(tree: ast.Expression, expression: str, names) -> None:
    """Walk the whole tree (iteratively) and refuse anything outside the grammar.

    Nothing is evaluated here; `evaluate` only runs after this check has passed.

    Raises
    ------
    CSEInputError
        Naming the first refused construct, an unknown name, or a nesting deeper
        than `MAX_DEPTH`.
    """
    names = {str(n) for n in names}
    stack: list[tuple[ast.AST, int, bool]] = [(tree.body, 1, False)]
    while stack:
        node, depth, in_list = stack.pop()
        if depth > MAX_DEPTH:
            raise CSEInputError(
                f"Invalid value for 'where': {_short(expression)} is nested more than {MAX_DEPTH} levels deep; "
                f"simplify it"
            )
        refused = _refusal(node, in_list)
        if refused:
            raise CSEInputError(f"Invalid value for 'where': {refused} is not allowed in 'where'; allowed: {ALLOWED}")
        if isinstance(node, ast.Name) and node.id not in names:
            available = sorted(names)
            shown = ", ".join(_literal(n, 60)[1:-1] for n in available[:30])
            raise CSEInputError(
                f"Invalid value for 'where': unknown name {_literal(node.id)} in {_short(expression)}; "
                f"available: {shown}" + (f", ... ({len(available)} in all)" if len(available) > 30 else "")
            )
        children: list[tuple[ast.AST, bool]] = []
        if isinstance(node, ast.BoolOp):
            children = [(v, False) for v in node.values]
        elif isinstance(node, ast.UnaryOp):
            children = [(node.operand, False)]
        elif isinstance(node, ast.BinOp):
            children = [(node.left, False), (node.right, False)]
        elif isinstance(node, ast.Compare):
            children = [(node.left, False)]
            children += [(c, isinstance(op, (ast.In, ast.NotIn))) for op, c in zip(node.ops, node.comparators)]
        elif isinstance(node, (ast.List, ast.Tuple, ast.Set)):
            children = [(e, True) for e in node.elts]
        stack.extend((child, depth + 1, flag) for child, flag in children)


def _refusal(node: ast.AST, in_list: bool) -> str:
    """Description of `node` if the grammar refuses it, else ''."""
    if isinstance(node, (ast.List, ast.Tuple, ast.Set)):
        return "" if in_list else "a list, tuple or set outside 'in'"
    if in_list:  # elements of the list after 'in'
        if isinstance(node, ast.Constant) and isinstance(node.value, _CONSTANT_TYPES):
            return ""
        if (isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd))
                and isinstance(node.operand, ast.Constant) and _is_number(node.operand.value)):  # fmt: skip
            return ""
        return f"{_describe(node)} inside the list after 'in' (only constants)"
    if isinstance(node, ast.Constant):
        return "" if isinstance(node.value, _CONSTANT_TYPES) else f"a constant of type {type(node.value).__name__}"
    if isinstance(node, (ast.Name, ast.BoolOp)):
        return ""
    if isinstance(node, ast.UnaryOp):
        return _REFUSED_OPERATORS.get(type(node.op), "")
    if isinstance(node, ast.BinOp):
        return "" if type(node.op) in _ARITHMETIC else _REFUSED_OPERATORS.get(type(node.op), "an unknown operator")
    if isinstance(node, ast.Compare):
        for k, (op, right) in enumerate(zip(node.ops, node.comparators)):
            if type(op) in _REFUSED_OPERATORS:
                return _REFUSED_OPERATORS[type(op)]
            if isinstance(op, (ast.In, ast.NotIn)):
                if not isinstance(right, (ast.List, ast.Tuple, ast.Set)):
                    return f"'in' with {_describe(right)} (use a list of constants: x in [1, 2])"
                if k < len(node.ops) - 1:
                    return "a comparison chained after 'in' (use 'and')"
        return ""
    return _describe(node)


def _describe(node: ast.AST) -> str:
    """Plain words for a node, naming the attribute, function or construct."""
    if isinstance(node, ast.Attribute):
        return f"attribute access (.{_literal(node.attr)[1:-1]})"
    if isinstance(node, ast.Call):
        func = node.func
        if isinstance(func, ast.Name):
            return f"function call ({_literal(func.id)[1:-1]}(...))"
        if isinstance(func, ast.Attribute):
            return f"method call (.{_literal(func.attr)[1:-1]}(...))"
        return "function call"
    simple = {
        ast.Subscript: "subscript ([...])",
        ast.Slice: "slice",
        ast.Lambda: "lambda",
        ast.ListComp: "list comprehension",
        ast.SetComp: "set comprehension",
        ast.DictComp: "dict comprehension",
        ast.GeneratorExp: "generator expression",
        ast.JoinedStr: "f-string",
        ast.FormattedValue: "f-string",
        ast.NamedExpr: "assignment expression (:=)",
        ast.Starred: "starred expression (*)",
        ast.IfExp: "conditional expression (... if ... else ...)",
        ast.Dict: "dict display",
        ast.Await: "await",
        ast.Yield: "yield",
        ast.YieldFrom: "yield",
        ast.Name: "a name",
        ast.Constant: "a constant",
    }
    return simple.get(type(node), f"the construct {type(node).__name__}")


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _short(expression: str, limit: int = 80) -> str:
    text = expression if len(expression) <= limit else expression[: limit - 3] + "..."
    return repr(text)


def _literal(value, limit: int = 40) -> str:
    """A constant or name for a message: its repr, cut to `limit` characters; never more than one line.

    An integer too long for ``repr`` (over 4300 digits) is described by its size instead.
    """
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 256:
        return f"<an integer of about {int(value.bit_length() * 0.30103)} digits>"
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 4] + "..." + text[-1]


class _Evaluator:
    """Evaluates a checked tree: each node by a NumPy/pandas operation, depth bounded by `check`.

    Values are `pandas.Series` (columns, aligned on the frame's index) or Python/NumPy
    scalars (constants and results of constant sub-expressions).
    """

    def __init__(self, frame: pd.DataFrame, expression: str):
        self.frame = frame.reset_index(drop=True)
        self.expression = expression

    def fail(self, message: str):
        raise CSEInputError(f"Invalid value for 'where': {message} in {_short(self.expression)}")

    def visit(self, node: ast.AST):
        method = getattr(self, f"visit_{type(node).__name__}", None)
        if method is None:  # pragma: no cover - `check` refuses these first
            self.fail(f"{_describe(node)} is not allowed")
        return method(node)

    def visit_Constant(self, node: ast.Constant):
        value = node.value
        if isinstance(value, int) and not isinstance(value, bool) and not -(2**63) <= value < 2**63:
            self.fail(f"the integer constant {_literal(value, 24)} is out of the int64 range")
        return value

    def visit_Name(self, node: ast.Name):
        return self.frame[node.id]

    def visit_BoolOp(self, node: ast.BoolOp):
        word = "and" if isinstance(node.op, ast.And) else "or"
        values = [self.boolean(self.visit(v), word) for v in node.values]
        out = values[0]
        for v in values[1:]:
            out = (out & v) if word == "and" else (out | v)
        return out

    def visit_UnaryOp(self, node: ast.UnaryOp):
        value = self.visit(node.operand)
        if isinstance(node.op, ast.Not):
            return ~self.boolean(value, "not")
        number = self.number(value, "unary " + ("-" if isinstance(node.op, ast.USub) else "+"))
        return -number if isinstance(node.op, ast.USub) else number

    def visit_BinOp(self, node: ast.BinOp):
        symbol = {ast.Add: "+", ast.Sub: "-", ast.Mult: "*", ast.Div: "/", ast.FloorDiv: "//", ast.Mod: "%",
                  ast.Pow: "**"}[type(node.op)]  # fmt: skip
        left = self.number(self.visit(node.left), symbol)
        right = self.number(self.visit(node.right), symbol)
        with np.errstate(all="ignore"):  # float64: overflow gives inf, x / 0 gives inf or nan
            return _ARITHMETIC[type(node.op)](left, right)

    def visit_Compare(self, node: ast.Compare):
        left = self.visit(node.left)
        result = None
        for op, comparator in zip(node.ops, node.comparators):
            if isinstance(op, (ast.In, ast.NotIn)):
                values = [self.visit(e) for e in comparator.elts]
                hit = self.member(left, values)
                part = ~hit if isinstance(op, ast.NotIn) else hit
                right = None
            else:
                right = self.visit(comparator)
                part = self.compare(op, left, right)
            result = part if result is None else (result & part)
            left = right
        return result

    # -- helpers ------------------------------------------------------------------

    def boolean(self, value, word: str):
        """`value` as bool Series or bool scalar, else a one-line error."""
        if isinstance(value, (bool, np.bool_)):
            return np.bool_(value)
        if isinstance(value, pd.Series):
            if pd.api.types.is_bool_dtype(value.dtype):
                return value.astype(bool)
            if value.dtype == object and value.map(lambda v: isinstance(v, (bool, np.bool_))).all():
                return value.astype(bool)
            self.fail(f"'{word}' needs True/False values, got {value.dtype} values (compare them first, e.g. x > 0)")
        self.fail(f"'{word}' needs True/False values, got {_kind(value)}")

    def number(self, value, symbol: str):
        """`value` as float64 Series or scalar, else a one-line error."""
        if isinstance(value, pd.Series):
            if pd.api.types.is_numeric_dtype(value.dtype) and not pd.api.types.is_bool_dtype(value.dtype):
                return value.astype(np.float64)
            self.fail(f"arithmetic '{symbol}' needs numbers, got {value.dtype} values")
        if _is_number(value) or (isinstance(value, np.number)):
            return np.float64(value)
        self.fail(f"arithmetic '{symbol}' needs numbers, got {_kind(value)}")

    def compare(self, op: ast.cmpop, left, right):
        if left is None or right is None:
            if not isinstance(op, (ast.Eq, ast.NotEq)):
                self.fail("None can only be compared with == or !=")
            other = right if left is None else left
            missing = other.isna() if isinstance(other, pd.Series) else np.bool_(other is None)
            return missing if isinstance(op, ast.Eq) else ~missing
        try:
            out = _COMPARISONS[type(op)](left, right)
        except TypeError:
            self.fail(f"cannot compare {_kind(left)} with {_kind(right)}")
        if isinstance(out, pd.Series):
            return out.fillna(False).astype(bool)
        return np.bool_(out)

    def member(self, left, values: list):
        if isinstance(left, pd.Series):
            return left.isin(values)
        return np.bool_(left in values)


def _kind(value) -> str:
    if isinstance(value, pd.Series):
        return f"{value.dtype} values"
    return f"the {type(value).__name__} {_literal(value)}"


def _as_mask(value, n: int, expression: str) -> np.ndarray:
    if isinstance(value, (bool, np.bool_)):
        return np.full(n, bool(value))
    if isinstance(value, pd.Series) and pd.api.types.is_bool_dtype(value.dtype) and len(value) == n:
        return np.array(value.to_numpy(dtype=bool), dtype=bool)  # a writable copy
    raise CSEInputError(
        f"Invalid value for 'where': {_short(expression)} must give one True/False per token, got {_kind(value)}; "
        f"compare, e.g. position > 0"
    )
