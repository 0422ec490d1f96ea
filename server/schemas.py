"""Workflow input schemas: checked once at registration, applied to every input with a linear-time regex engine.

jsonschema matches `pattern`, `patternProperties` (and the additional and
unevaluated properties that depend on them) with Python's `re`, which
backtracks: `^(a+)+$` against forty `a`s and a `b` takes minutes, on the
event loop. Here those matches go to RE2 (google-re2), which takes time
linear in the text: `install()` points jsonschema's keyword modules at an
`re` whose `search` is RE2's (everything else is `re`'s own). A schema whose
patterns RE2 cannot compile (backreferences, lookarounds) is refused when it
is registered.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterator
from functools import lru_cache
from types import ModuleType
from typing import Any

import jsonschema
import jsonschema._keywords
import jsonschema._utils
import re2

from pausable.server.errors import InvalidArgument

_OPTIONS = re2.Options()
_OPTIONS.log_errors = False


@lru_cache(maxsize=1024)
def compiled(pattern: str) -> Any:
    return re2.compile(pattern, _OPTIONS)


class _LinearRe(ModuleType):
    """`re` with RE2's search: what jsonschema's keyword modules call."""

    def __init__(self) -> None:
        super().__init__("pausable_linear_re")

    def search(self, pattern: Any, string: str, flags: int = 0) -> Any:
        if flags or not isinstance(pattern, str):
            return re.search(pattern, string, flags)
        return compiled(pattern).search(string)

    def __getattr__(self, name: str) -> Any:
        return getattr(re, name)


LINEAR_RE = _LinearRe()


def install() -> None:
    """Make jsonschema's pattern keywords use RE2 (idempotent; done on import of this module)."""
    jsonschema._keywords.re = LINEAR_RE  # type: ignore[attr-defined]
    jsonschema._utils.re = LINEAR_RE  # type: ignore[attr-defined]


install()


def patterns(schema: Any) -> Iterator[str]:
    """Every regular expression in a schema: `pattern` values and `patternProperties` keys, at any depth."""
    pending = [schema]
    while pending:
        item = pending.pop()
        if isinstance(item, dict):
            pattern = item.get("pattern")
            if isinstance(pattern, str):
                yield pattern
            properties = item.get("patternProperties")
            if isinstance(properties, dict):
                yield from (key for key in properties if isinstance(key, str))
            pending.extend(item.values())
        elif isinstance(item, list):
            pending.extend(item)


def check_schema(workflow: str, schema: dict[str, Any]) -> None:
    """A usable JSON Schema (draft 2020-12) whose patterns RE2 compiles; InvalidArgument otherwise."""
    try:
        jsonschema.Draft202012Validator.check_schema(schema)
    except jsonschema.exceptions.SchemaError as error:
        where = "/".join(str(part) for part in error.absolute_path) or "(top level)"
        raise InvalidArgument(f"input_schema of {workflow!r} is not a valid JSON Schema at {where}: {error.message}") from None
    for pattern in patterns(schema):
        try:
            compiled(pattern)
        except re2.error as error:
            raise InvalidArgument(
                f"input_schema of {workflow!r} has the pattern {pattern[:200]!r}, which the daemon's linear-time regex "
                f"engine (RE2) cannot compile ({_reason(error)}): backreferences and lookarounds are not supported"
            ) from None


def _reason(error: Exception) -> str:
    reason = error.args[0] if error.args else error
    return reason.decode(errors="replace") if isinstance(reason, bytes) else str(reason)


def all_errors(schema: dict[str, Any], data: Any, bound: int = 50) -> list[jsonschema.ValidationError]:
    """Every way `data` breaks `schema`, most relevant first, at most `bound` of them (a huge input's errors are not
    all collected); a schema stored before the checks above is InvalidArgument."""
    try:
        found = list(itertools.islice(jsonschema.Draft202012Validator(schema).iter_errors(data), bound))
    except Exception as error:  # noqa: BLE001 - a bad $ref, a schema error: the stored schema is at fault, not the input
        raise InvalidArgument(
            f"the workflow's input_schema cannot be applied ({type(error).__name__}); register it again"
        ) from None
    return sorted(found, key=jsonschema.exceptions.relevance)


def first_error(schema: dict[str, Any], data: Any) -> jsonschema.ValidationError | None:
    """The most relevant way `data` breaks `schema`, or None; a schema stored before the checks above is InvalidArgument."""
    try:
        return jsonschema.exceptions.best_match(jsonschema.Draft202012Validator(schema).iter_errors(data))
    except Exception as error:  # noqa: BLE001 - a bad $ref, a schema error: the stored schema is at fault, not the input
        raise InvalidArgument(
            f"the workflow's input_schema cannot be applied ({type(error).__name__}); register it again"
        ) from None
