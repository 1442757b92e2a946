"""Building blocks shared by every spec type: the dataclass decorator, typed values, dumping.

Every spec in capsim (scenario sections, latency distributions, faults) is a frozen,
keyword-only dataclass validated by pydantic when it is built, so a spec built in Python
is checked exactly as one read from a file, and its ``repr`` is valid Python.

Typed values carry hard bounds, chosen so that a value outside them can only be a mistake
and so that arithmetic on values inside them never overflows or turns into NaN:

* durations (``Duration``, ``NonNegativeDuration``, ``PositiveDuration``): finite, at most
  ``MAX_DURATION_S`` (1e9 s, about 31 years) either way;
* rates (``PositiveRate``): between ``MIN_RATE`` (1e-9 per second, so that ``1 / rate`` is a
  duration) and ``MAX_RATE`` (1e9 per second);
* probabilities: finite, in [0, 1]; counts (``WholeNumber``): whole numbers (each field
  states its own range). A boolean is never a number; a number written as text is read as
  one, since YAML reads ``1e-3`` as text.

This module also reads input files safely (:func:`open_input`, :func:`read_input`): never
more than a bound, never waiting forever on a pipe, and it turns a pydantic error into one
line (:func:`validation_message`) for every caller that validates user input.
"""

from __future__ import annotations

import dataclasses
import io
import math
import os
import re
import select
import stat
from collections.abc import Callable
from typing import Annotated, Any

from pydantic import AfterValidator, BeforeValidator, ConfigDict
from pydantic.dataclasses import dataclass as _pydantic_dataclass
from pydantic.fields import FieldInfo

from capsim.units import parse_duration, parse_rate

__all__ = [
    "spec",
    "at_default",
    "Duration",
    "NonNegativeDuration",
    "PositiveDuration",
    "Interval",
    "Probability",
    "PositiveRate",
    "FiniteFloat",
    "WholeNumber",
    "StrictBool",
    "MAX_DURATION_S",
    "MIN_RATE",
    "MAX_RATE",
    "to_data",
    "echo",
    "one_line",
    "validation_message",
    "open_input",
    "read_input",
    "INPUT_WAIT_S",
    "decode_error",
]

SPEC_CONFIG = ConfigDict(extra="forbid", str_strip_whitespace=True)

#: The longest duration (and the largest clock offset) a scenario may give: 1e9 s.
MAX_DURATION_S = 1e9
#: The slowest and fastest rates, per second.
MIN_RATE = 1e-9
MAX_RATE = 1e9


def spec(cls):
    """Make ``cls`` a frozen, keyword-only, validated dataclass that rejects unknown fields."""
    return _pydantic_dataclass(frozen=True, kw_only=True, config=SPEC_CONFIG)(cls)


def at_default(field: dataclasses.Field, value: Any) -> bool:
    """Whether a spec's ``field`` holds its default ``value`` (plain defaults, factories
    and pydantic ``Field(default=..., default_factory=...)`` alike)."""
    default = field.default
    if isinstance(default, FieldInfo):
        default = default.get_default(call_default_factory=True)
    elif default is dataclasses.MISSING:
        if field.default_factory is dataclasses.MISSING:
            return False
        default = field.default_factory()
    return value == default


def _non_negative(value: float) -> float:
    if value < 0:
        raise ValueError(f"must not be negative, got {value!r}")
    return value


def _positive(value: float) -> float:
    if not value > 0:
        raise ValueError(f"must be greater than zero, got {value!r}")
    return value


def _at_least_a_millisecond(value: float) -> float:
    if not value >= 0.001:
        raise ValueError(f"must be at least 1ms, got {value!r}")
    return value


def _sane_duration(value: float) -> float:
    if abs(value) > MAX_DURATION_S:
        raise ValueError(
            f"must be at most {MAX_DURATION_S:g} s (about 31 years) either way, got {value!r}"
        )
    return value


def _sane_rate(value: float) -> float:
    if not MIN_RATE <= value <= MAX_RATE:
        raise ValueError(f"must be between {MIN_RATE:g} and {MAX_RATE:g} per second, got {value!r}")
    return value


_NUMBER = re.compile(r"\s*[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?\s*")


def _numeric_text(value: Any) -> Any:
    """A number written as text (YAML reads ``1e-3`` as text) becomes the number."""
    if isinstance(value, str) and len(value) <= 100 and _NUMBER.fullmatch(value):
        number = float(value)
        return int(value) if re.fullmatch(r"\s*[+-]?\d+\s*", value) else number
    return value


def _real_number(value: Any) -> Any:
    """Numbers only: a boolean, null or a list is a wrong type here, not a number."""
    value = _numeric_text(value)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"expected a number, got {echo(value)}")
    try:
        return float(value)
    except OverflowError:
        raise ValueError(f"a number too large to represent, got {echo(value)}") from None


def _probability(value: float) -> float:
    if not (0.0 <= value <= 1.0) or math.isnan(value):
        raise ValueError(f"must be a probability between 0 and 1, got {value!r}")
    return value


def _finite(value: float) -> float:
    if not math.isfinite(value):
        raise ValueError(f"must be a finite number, got {value!r}")
    return value


def _whole_number(value: Any) -> Any:
    """An integer, or a float with an integral value (``1e6``); never a boolean."""
    value = _numeric_text(value)
    if isinstance(value, bool):
        raise ValueError(f"expected a whole number, got {value!r}")
    if isinstance(value, int):
        return value
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        return int(value)
    raise ValueError(f"expected a whole number, got {echo(value)}")


def _strict_bool(value: Any) -> Any:
    if not isinstance(value, bool):
        raise ValueError(f"expected true or false, got {echo(value)}")
    return value


Duration = Annotated[float, BeforeValidator(parse_duration), AfterValidator(_sane_duration)]
NonNegativeDuration = Annotated[
    float,
    BeforeValidator(parse_duration),
    AfterValidator(_non_negative),
    AfterValidator(_sane_duration),
]
PositiveDuration = Annotated[
    float,
    BeforeValidator(parse_duration),
    AfterValidator(_positive),
    AfterValidator(_sane_duration),
]
#: A period between repeated actions (a resend, a heartbeat): at least 1 ms, so that a
#: timer firing at that interval cannot flood a run.
Interval = Annotated[
    float,
    BeforeValidator(parse_duration),
    AfterValidator(_at_least_a_millisecond),
    AfterValidator(_sane_duration),
]
FiniteFloat = Annotated[float, BeforeValidator(_real_number), AfterValidator(_finite)]
Probability = Annotated[float, BeforeValidator(_real_number), AfterValidator(_probability)]
PositiveRate = Annotated[
    float, BeforeValidator(parse_rate), AfterValidator(_positive), AfterValidator(_sane_rate)
]
#: A count: combine with ``Field(ge=..., le=...)`` for its range.
WholeNumber = Annotated[int, BeforeValidator(_whole_number)]
#: ``true`` or ``false`` and nothing else (not ``1``, not ``"yes"``).
StrictBool = Annotated[bool, BeforeValidator(_strict_bool)]


def to_data(value: Any) -> Any:
    """Turn a spec into plain data (dicts, lists, numbers, strings) for YAML or JSON.

    Specs may define ``_to_data(self)`` to choose their own shape (a mixture flattens its
    components); durations come out as floats in seconds.
    """
    custom = getattr(value, "_to_data", None)
    if custom is not None:
        return custom()
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        names = [f.name for f in dataclasses.fields(value)]
        # The discriminator (``kind`` of a fault, ``dist`` of a distribution) reads best first.
        names.sort(key=lambda name: name not in ("kind", "dist"))
        return {name: to_data(getattr(value, name)) for name in names}
    if isinstance(value, dict):
        return {str(k): to_data(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [to_data(v) for v in value]
    return value


# --- messages ---------------------------------------------------------------------------


def echo(value: Any, limit: int = 80) -> str:
    """``value`` as a message shows it: a scalar's ``repr`` cut to about ``limit``
    characters (with the full length said), a collection by its kind and size only, so
    that no message ever repeats a huge or deeply nested input."""
    if isinstance(value, dict):
        return f"a mapping of {len(value)} entr{'y' if len(value) == 1 else 'ies'}"
    if isinstance(value, list | tuple | set | frozenset):
        return f"a list of {len(value)} item{'' if len(value) == 1 else 's'}"
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 200:
        return f"an integer of about {int(value.bit_length() * 0.30103)} digits"
    if value is None or isinstance(value, bool | int | float | str | bytes):
        text = repr(value)
    else:
        text = f"a {type(value).__name__}"
    if len(text) > limit:
        size = f"{len(value)} characters" if isinstance(value, str) else f"{len(text)} long"
        text = f"{text[: limit - 20]}... ({size})"
    return text


_PREFIXES = ("Value error, ", "Assertion failed, ")
_GOT = re.compile(r",? got .*$", re.DOTALL)


def validation_message(error: dict[str, Any]) -> tuple[str, str]:
    """One pydantic error (an item of ``ValidationError.errors()``) as ``(field, message)``.

    ``field`` joins the error's location with dots (``"ttl"``, ``"retries.attempts"``);
    ``message`` is one line that says what is wrong and then, once, what was given:
    ``"must be greater than zero, got '-1s'"``. When the offending input is a single value
    the message quotes it as the user wrote it (``'-1s'``, not the ``-1.0`` it parsed to),
    cut to about 80 characters; a collection is described, never printed. Callers that
    validate user input (scenario sections, policy parameters) share this, so that every
    message reads the same.
    """
    field = ".".join(str(part) for part in error.get("loc", ()))
    kind = error.get("type", "")
    msg = str(error.get("msg", ""))
    for prefix in _PREFIXES:
        msg = msg.removeprefix(prefix)
    if kind in ("extra_forbidden", "unexpected_keyword_argument"):
        return field, "unknown field"
    if kind in ("missing", "missing_keyword_argument", "missing_positional_argument"):
        return field, "required field is missing"
    ctx = error.get("ctx") or {}
    if kind == "union_tag_invalid":
        name = str(ctx.get("discriminator", "kind")).strip("'")
        return field, one_line(
            f"unknown {name} {echo(ctx.get('tag'))}; expected one of {ctx.get('expected_tags')}"
        )
    if kind == "union_tag_not_found":
        return field, f"needs a '{str(ctx.get('discriminator', 'kind')).strip(chr(39))}' field"
    value = error.get("input")
    if value is None or isinstance(value, bool | int | float | str):
        # Say "got" once, quoting what the user wrote rather than what it parsed to.
        msg = _GOT.sub("", msg) + f", got {echo(value)}"
    elif kind not in ("value_error", "assertion_error") and " got " not in msg:
        msg += f", got {echo(value)}"  # a wrong type: say which
    return field, one_line(msg)


def one_line(text: str, limit: int = 300) -> str:
    """``text`` as one line of at most ``limit`` characters (a message may quote input)."""
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


# --- reading input files ----------------------------------------------------------------

#: How long to wait for the next bytes of a pipe or device before giving up, in seconds.
INPUT_WAIT_S = 10.0


class _Polled(io.RawIOBase):
    """A pipe or device read without ever blocking longer than :data:`INPUT_WAIT_S`."""

    def __init__(self, fd: int, fail: Callable[[str], Exception]):
        self._fd = fd
        self._fail = fail
        self._poller = select.poll() if hasattr(select, "poll") else None
        if self._poller is not None:
            self._poller.register(fd, select.POLLIN | select.POLLPRI)

    def readable(self) -> bool:
        return True

    def fileno(self) -> int:
        return self._fd

    def readinto(self, buffer) -> int:
        while True:
            if self._poller is not None and not self._poller.poll(int(INPUT_WAIT_S * 1000)):
                raise self._fail(
                    f"nothing to read for {INPUT_WAIT_S:g} s: is anything writing to it?"
                )
            try:
                return os.readv(self._fd, [buffer])
            except BlockingIOError:
                continue
            except OSError as exc:
                raise self._fail(f"cannot read: {exc.strerror or exc}") from None

    def close(self) -> None:
        if not self.closed:
            try:
                os.close(self._fd)
            finally:
                super().close()


def open_input(path: str | os.PathLike, fail: Callable[[str], Exception]) -> io.BufferedReader:
    """Open ``path`` for reading bytes; ``fail(message)`` builds the error to raise.

    A regular file opens as usual. A pipe or a device (a FIFO, ``/dev/stdin``,
    ``/dev/zero``) opens without waiting for a writer, and each read waits at most
    :data:`INPUT_WAIT_S` for bytes, so a FIFO nobody writes to is an error, not a hang.
    Callers bound how much they read.
    """
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(path, flags)
    except FileNotFoundError:
        raise fail("no such file") from None
    except IsADirectoryError:
        raise fail("is a folder, not a file") from None
    except (OSError, ValueError) as exc:  # ValueError: a NUL byte in the path
        raise fail(f"cannot open: {getattr(exc, 'strerror', None) or exc}") from None
    try:
        mode = os.fstat(fd).st_mode
        if stat.S_ISDIR(mode):
            raise fail("is a folder, not a file")
        if stat.S_ISREG(mode):
            if hasattr(os, "set_blocking"):
                os.set_blocking(fd, True)
            return os.fdopen(fd, "rb")
        return io.BufferedReader(_Polled(fd, fail))
    except BaseException:
        os.close(fd)
        raise


def read_input(
    path: str | os.PathLike, *, limit: int, fail: Callable[[str], Exception], what: str = "file"
) -> bytes:
    """All the bytes of ``path``, at most ``limit`` of them (else ``fail`` says so)."""
    with open_input(path, fail) as handle:
        try:
            size = os.fstat(handle.fileno()).st_size
        except OSError:
            size = 0
        if size > limit:
            raise fail(f"the {what} is larger than {_size(limit)}, the most capsim reads")
        try:
            data = handle.read(limit + 1)
        except OSError as exc:
            raise fail(f"cannot read: {exc.strerror or exc}") from None
    if len(data) > limit:
        raise fail(f"the {what} is larger than {_size(limit)}, the most capsim reads")
    return data


def _size(limit: int) -> str:
    return f"{limit >> 20} MiB" if limit >= 1 << 20 and not limit % (1 << 20) else f"{limit} bytes"


def decode_error(data: bytes, exc: UnicodeDecodeError) -> str:
    """Where a UTF-8 decoding of ``data`` failed, for a message:
    ``line N: not UTF-8 text (byte B of the line is 0xXX)``, counting from 1."""
    line = data.count(b"\n", 0, exc.start) + 1
    column = exc.start - (data.rfind(b"\n", 0, exc.start) + 1) + 1
    return f"line {line}: not UTF-8 text (byte {column} of the line is {data[exc.start]:#04x})"
