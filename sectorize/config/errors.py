"""One explainer of pydantic validation errors, for every configuration file.

A scenario or sweep file that does not validate gets one line per problem,
naming the file, the dotted key and what to do::

    scenario.toml: model.tolerance: must be > 0 and < 1 (got 1.5)
    scenario.toml: unknown key 'model.tolerence' (did you mean 'tolerance'?)
"""

from __future__ import annotations

import difflib
import re
import typing
from typing import Any

from pydantic import BaseModel, ValidationError

#: pydantic's comparison error types and the sign each stands for.
_BOUNDS = (("gt", ">"), ("ge", ">="), ("lt", "<"), ("le", "<="))


def dotted(loc: tuple[Any, ...]) -> str:
    """``("team", "workers", 2, "fte")`` -> ``"team.workers[2].fte"``."""
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _optional_inner(tp: Any) -> Any:
    """``X`` for ``X | None``, else ``tp`` unchanged."""
    args = [a for a in typing.get_args(tp) if a is not type(None)]
    return args[0] if len(args) == 1 and type(None) in typing.get_args(tp) else tp


def field_at(root: type[BaseModel], loc: tuple[Any, ...]) -> tuple[Any, Any]:
    """The type at ``loc`` under ``root`` and its FieldInfo (``(None, None)`` if unknown)."""
    tp: Any = root
    info = None
    for part in loc:
        tp = _optional_inner(tp)
        if isinstance(part, str) and isinstance(tp, type) and issubclass(tp, BaseModel):
            info = tp.model_fields.get(part)
            if info is None:
                return None, None
            tp = info.annotation
        elif typing.get_origin(tp) in (list, dict):
            tp, info = typing.get_args(tp)[-1], None
        else:
            return None, None
    return _optional_inner(tp), info


def _range_text(info: Any, ctx: dict[str, Any]) -> str:
    """``"must be > 0 and < 1"`` from the field's constraints (or the error's context)."""
    metadata = info.metadata if info is not None else []
    parts = [f"{sign} {getattr(m, attr):g}" for attr, sign in _BOUNDS for m in metadata if hasattr(m, attr)]
    if not parts:
        parts = [f"{sign} {ctx[attr]:g}" for attr, sign in _BOUNDS if attr in ctx]
    return "must be " + " and ".join(parts)


def _got(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _join_key(key: str, line: str, fields: dict[str, Any]) -> str:
    """``"team.workers[2]" + "give both..."`` -> ``"team.workers[2]: give both..."``,
    ``"demand" + "file: required..."`` -> ``"demand.file: required..."``."""
    head = re.match(r"[A-Za-z_]+", line)
    if not key:
        return line
    if head and head.group(0) in fields:
        return f"{key}.{line}"
    return f"{key}: {line}"


def _location(err: dict[str, Any]) -> tuple[Any, ...]:
    """The error's location without pydantic's union-member tags (``path``, ``function-...``)."""
    return tuple(p for p in err["loc"]
                 if not (isinstance(p, str) and (p in ("path", "dict[str,any]") or p.startswith("function-"))))


def explain(err: dict[str, Any], label: str, root: type[BaseModel],
            missing_hints: dict[tuple[Any, ...], str] | None = None) -> str:
    """One error of ``ValidationError.errors()`` as ``"<label>: <key>: <what to do>"``.

    ``root`` is the model that was validated (it gives the known keys and the
    bounds of each field); ``missing_hints`` adds a hint to a missing key at
    a given location.
    """
    loc = _location(err)
    kind = err["type"]
    key = dotted(loc)
    if kind == "extra_forbidden":
        parent, _ = field_at(root, loc[:-1])
        known = [k for k in getattr(parent, "model_fields", {}) if k != "source"]
        hint = difflib.get_close_matches(str(loc[-1]), known, n=1, cutoff=0.6)
        more = f"did you mean {hint[0]!r}?" if hint else f"known keys: {', '.join(known)}"
        return f"{label}: unknown key {key!r} ({more})"
    if kind == "missing":
        hint = (missing_hints or {}).get(loc)
        return f"{label}: {key}: missing (required)" + (f"; {hint}" if hint else "")
    if kind in ("greater_than", "greater_than_equal", "less_than", "less_than_equal"):
        _, info = field_at(root, loc)
        return f"{label}: {key}: {_range_text(info, err.get('ctx', {}))} (got {_got(err['input'])})"
    msg = err["msg"]
    if kind == "value_error":
        model, _ = field_at(root, loc)
        fields = getattr(model, "model_fields", {})
        lines = msg.removeprefix("Value error, ").split("\n")
        return "\n".join(f"{label}: {_join_key(key, line, fields)}" for line in lines)
    msg = re.sub(r"^(Input|List|String|Dictionary) should ", "must ", msg)
    return f"{label}: {key}: {msg} (got {_got(err['input'])})" if key else f"{label}: {msg}"


def explain_all(exc: ValidationError, label: str, root: type[BaseModel],
                missing_hints: dict[tuple[Any, ...], str] | None = None) -> str:
    """Every error of ``exc``, one line each (duplicates dropped), in pydantic's order."""
    return "\n".join(dict.fromkeys(explain(e, label, root, missing_hints) for e in exc.errors()))
