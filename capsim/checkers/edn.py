"""A small EDN reader and writer: what Jepsen, Knossos and Porcupine history files contain.

Supported: ``nil``, ``true``, ``false``, integers (with an optional ``N``), floats (with an
optional ``M``), strings with escapes, characters (``\\a``, ``\\newline``), keywords,
symbols, lists ``(...)`` and vectors ``[...]`` (both read as tuples), maps ``{...}`` (dicts),
sets ``#{...}`` (frozensets), ``;`` comments, commas as whitespace, ``#_`` discard, and
tagged values ``#tag value`` (the tag is dropped, the value kept). Keywords read as
:class:`Keyword`, a ``str`` subclass equal to its name (``Keyword("read") == "read"``), so
code can compare with plain strings while :func:`dumps` still writes them back as ``:read``.

The reader never recurses, and refuses input no caller could use: collections nested
deeper than ``MAX_DEPTH`` (128), more than ``MAX_VALUES`` values (a million), a map
with a key twice, integers of more than 4000 digits,
and ``\\u`` escapes that leave half of a UTF-16 surrogate pair.
"""

from __future__ import annotations

import bisect
import json
import math
import re
from collections.abc import Iterator
from typing import Any

from capsim.checkers.errors import FormatError

__all__ = ["Keyword", "Symbol", "loads", "read_forms", "dumps", "MAX_DEPTH"]

#: How deeply collections may nest.
MAX_DEPTH = 128
#: The most values one text may hold (atoms and collections alike), which bounds the
#: memory a reader takes to some 200 MB whatever the text.
MAX_VALUES = 1_000_000


class Keyword(str):
    """An EDN keyword such as ``:read``, held without its colon."""

    __slots__ = ()

    def __repr__(self) -> str:
        return ":" + str.__str__(self)


class Symbol(str):
    """An EDN symbol such as ``foo``: a bare name."""

    __slots__ = ()


# Whitespace, commas and comments are skipped by each match; the groups are the tokens:
# 1 string, 2 opening bracket, 3 closing bracket, 4 discard, 5 tag, 6 character, 7 atom.
_TOKEN = re.compile(
    r"""
    (?:[\s,]+|;[^\n]*)*
    (?:
        ("(?:[^"\\]|\\.)*")
      | (\#\{|[\[({])
      | ([\])}])
      | (\#_)
      | (\#[A-Za-z][^\s,\[\](){}";]*)
      | (\\(?:newline|space|tab|return|formfeed|backspace|u[0-9a-fA-F]{4}|\S))
      | ([^\s,\[\](){}";\\]+)
    )
    """,
    re.VERBOSE | re.DOTALL,
)
_BLANK = re.compile(r"(?:[\s,]+|;[^\n]*)*")
_INT = re.compile(r"[+-]?\d+N?")
_FLOAT = re.compile(r"[+-]?\d+(\.\d*)?([eE][+-]?\d+)?M?")
_CHARS = {"newline": "\n", "space": " ", "tab": "\t", "return": "\r", "formfeed": "\f"}
_CHARS["backspace"] = "\b"
_CLOSERS = {"[": "]", "(": ")", "{": "}", "#{": "}"}
_NAMES = {"[": "vector", "(": "list", "{": "map", "#{": "set"}
_STRING_ESCAPES = {
    '"': '"',
    "\\": "\\",
    "n": "\n",
    "t": "\t",
    "r": "\r",
    "b": "\b",
    "f": "\f",
    "/": "/",
}
_ESCAPE = re.compile(r"\\(u[0-9a-fA-F]{4}|.)", re.DOTALL)


def _unescape(body: str) -> str:
    if "\\" not in body:
        return body

    def replace(match: re.Match) -> str:
        code = match.group(1)
        if code[0] == "u":
            return chr(int(code[1:], 16))
        try:
            return _STRING_ESCAPES[code]
        except KeyError:
            raise ValueError(f"unknown string escape \\{code}") from None

    return _whole_characters(_ESCAPE.sub(replace, body))


def _whole_characters(text: str) -> str:
    """``text`` with UTF-16 surrogate pairs (as ``\\u`` escapes write them) joined; a lone
    half of a pair is an error, since it is no character and cannot be written as UTF-8."""
    if not any("\ud800" <= c <= "\udfff" for c in text):
        return text
    try:
        return text.encode("utf-16-le", "surrogatepass").decode("utf-16-le")
    except UnicodeDecodeError:
        raise ValueError("a \\u escape gives half of a surrogate pair, not a character") from None


def _atom(text: str) -> Any:
    if text == "nil":
        return None
    if text == "true":
        return True
    if text == "false":
        return False
    if text[0] == ":":
        if len(text) == 1:
            raise ValueError("a lone ':' is not a keyword")
        return Keyword(text[1:])
    if text[0].isdigit() or (len(text) > 1 and text[0] in "+-" and text[1].isdigit()):
        if len(text) > 4000:
            raise ValueError(f"a number of {len(text)} characters is too long")
        if _INT.fullmatch(text):
            return int(text.rstrip("N"))
        if _FLOAT.fullmatch(text):
            return float(text.rstrip("M"))
        raise ValueError(f"malformed number {text!r}")
    if text == "##Inf":
        return math.inf
    if text == "##-Inf":
        return -math.inf
    if text == "##NaN":
        return math.nan
    return Symbol(text)


class _Reader:
    """Reads top-level forms, remembering where each element of a collection started."""

    def __init__(self, text: str, source: str):
        self.text = text
        self.source = source
        self._newlines: list[int] | None = None

    def line_of(self, offset: int) -> int:
        """The 1-based line number of character ``offset``."""
        if self._newlines is None:
            self._newlines = [m.start() for m in re.finditer("\n", self.text)]
        return bisect.bisect_left(self._newlines, offset) + 1

    def fail(self, offset: int, message: str) -> FormatError:
        return FormatError(f"{self.source}:{self.line_of(offset)}: {message}")

    def forms(self, child_offsets: bool = False) -> Iterator[tuple[Any, int, list[int]]]:
        """Yield ``(value, start_offset, offsets of its direct elements)`` per top-level form.

        The element offsets are collected only when ``child_offsets`` is true.
        """
        text = self.text
        end = len(text)
        match = _TOKEN.match
        atoms: dict[str, Any] = {}
        missing = object()
        build = self._build
        # The collection being read (opener, items, start offset) and the enclosing ones.
        opener, items, opened = "", [], 0
        stack: list[tuple[str, list[Any], int]] = []
        discards: list[int] = []  # depths at which the next complete form is dropped
        offsets: list[int] = []  # where the direct elements of the top-level form start
        pos = 0
        count = 0
        while True:
            m = match(text, pos)
            if m is None:
                pos = _BLANK.match(text, pos).end()
                if pos >= end:
                    break
                if text[pos] == '"':
                    raise self.fail(pos, "unterminated string; is the file truncated?")
                raise self.fail(pos, f"unexpected character {text[pos]!r}")
            kind = m.lastindex
            start = m.start(kind)
            pos = m.end()
            if kind == 7:
                token = m.group(7)
                value = atoms.get(token, missing)
                if value is missing:
                    try:
                        value = atoms[token] = _atom(token)
                    except ValueError as exc:
                        raise self.fail(start, str(exc)) from None
            elif kind == 2:
                if len(stack) >= MAX_DEPTH:
                    raise self.fail(start, f"nested deeper than {MAX_DEPTH} levels")
                stack.append((opener, items, opened))
                opener, items, opened = m.group(2), [], start
                continue
            elif kind == 3:
                if not stack:
                    raise self.fail(start, f"unexpected {m.group(3)!r} with nothing open")
                if _CLOSERS[opener] != m.group(3):
                    raise self.fail(
                        start,
                        f"{m.group(3)!r} closes the {_NAMES[opener]} opened at line "
                        f"{self.line_of(opened)}",
                    )
                try:
                    value = build(opener, items)
                except (TypeError, ValueError) as exc:
                    raise self.fail(opened, f"bad {_NAMES[opener]}: {exc}") from None
                start = opened
                opener, items, opened = stack.pop()
            elif kind == 1:
                try:
                    value = _unescape(m.group(1)[1:-1])
                except ValueError as exc:
                    raise self.fail(start, str(exc)) from None
            elif kind == 6:
                body = m.group(6)[1:]
                if body in _CHARS:
                    value = _CHARS[body]
                elif len(body) == 5 and body[0] == "u":
                    value = chr(int(body[1:], 16))
                    if "\ud800" <= value <= "\udfff":
                        raise self.fail(start, f"the character \\{body} is half of a pair")
                else:
                    value = body
            elif kind == 4:
                discards.append(len(stack))
                continue
            else:
                continue  # a tag: the tagged value stands for itself
            count += 1
            if count > MAX_VALUES:
                raise self.fail(start, f"more than {MAX_VALUES:,} values; the most capsim reads")
            depth = len(stack)
            if discards and discards[-1] == depth:
                discards.pop()
                continue
            if depth:
                items.append(value)
                if depth == 1 and child_offsets:
                    offsets.append(start)
            else:
                yield value, start, offsets
                offsets = []
        if stack:
            raise self.fail(
                end,
                f"end of file inside the {_NAMES[opener]} opened at line "
                f"{self.line_of(opened)}; is the file truncated?",
            )

    @staticmethod
    def _build(opener: str, items: list[Any]) -> Any:
        if opener == "{":
            if len(items) % 2:
                raise ValueError("a map needs an even number of forms")
            it = iter(items)
            out = dict(zip(it, it, strict=True))
            if 2 * len(out) != len(items):
                keys = items[::2]
                twice = next(k for i, k in enumerate(keys) if k in keys[:i])
                raise ValueError(f"the key {_clipped(dumps(twice))} is given twice")
            return out
        if opener == "#{":
            return frozenset(items)
        return tuple(items)


def _clipped(text: str, limit: int = 60) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def read_forms(
    text: str, source: str = "<string>", child_offsets: bool = False
) -> Iterator[tuple[Any, int, list[int]]]:
    """Yield ``(value, line, element_lines)`` for each top-level form of ``text``.

    ``element_lines`` gives, when ``child_offsets`` is true, the line on which each direct
    element of a top-level collection starts (for error messages). Raises
    :class:`FormatError` naming ``source`` and the line on malformed input.
    """
    reader = _Reader(text, source)
    for value, offset, offsets in reader.forms(child_offsets):
        yield value, reader.line_of(offset), [reader.line_of(o) for o in offsets]


def loads(text: str, source: str = "<string>") -> Any:
    """The single EDN value in ``text`` (FormatError if there is not exactly one)."""
    forms = list(read_forms(text, source))
    if len(forms) != 1:
        raise FormatError(f"{source}: expected one EDN value, found {len(forms)}")
    return forms[0][0]


def dumps(value: Any) -> str:
    """``value`` written as EDN: None as nil, Keyword as :name, lists and tuples as vectors."""
    if value is None:
        return "nil"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, Keyword):
        return ":" + str.__str__(value)
    if isinstance(value, Symbol):
        return str.__str__(value)
    if isinstance(value, str):
        text = json.dumps(value, ensure_ascii=False)
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:  # a lone surrogate: write it as an escape
            text = json.dumps(value)
        return text
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "##NaN"
        if math.isinf(value):
            return "##Inf" if value > 0 else "##-Inf"
        return repr(value)
    if isinstance(value, dict):
        return "{" + ", ".join(f"{dumps(k)} {dumps(v)}" for k, v in value.items()) + "}"
    if isinstance(value, frozenset | set):
        return "#{" + " ".join(sorted(dumps(v) for v in value)) + "}"
    if isinstance(value, list | tuple):
        return "[" + " ".join(dumps(v) for v in value) + "]"
    raise TypeError(f"cannot write {type(value).__name__} as EDN")
