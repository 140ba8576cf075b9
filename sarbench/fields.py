"""Configuration fields and their values: the one conversion of a value to a field's type.

Both places that set configuration fields from outside read values through :func:`field_value`:
the ``--set KEY=VALUE`` overrides of the command line (text, converted) and the search spaces
(JSON values, checked). Its errors name the field and the value; the caller says where they came from.
"""

from __future__ import annotations

import enum
import typing

from .config import SARConfig, TrainConfig

TRUE = ("1", "true", "yes", "on")
FALSE = ("0", "false", "no", "off")


class FieldValueError(ValueError):
    """A value that is not of its field's type; the message names the field and the value."""


def config_fields(model_cls: type = SARConfig, train_cls: type = TrainConfig) -> dict[str, tuple[str, object]]:
    """Every field of a model and a train config class: name -> ("model" or "train", its type)."""
    out: dict[str, tuple[str, object]] = {}
    for group, cls in (("model", model_cls), ("train", train_cls)):
        for name, typ in typing.get_type_hints(cls).items():
            out[name] = (group, typ)
    return out


def _type_name(typ) -> str:
    return getattr(typ, "__name__", str(typ))


def _tuple_value(key: str, value, typ, text: bool) -> tuple:
    args = typing.get_args(typ)
    if text:
        items = [p.strip() for p in value.split(",") if p.strip()]
    elif isinstance(value, (list, tuple)):
        items = list(value)
    else:
        raise FieldValueError(f"{key}={value!r}: expected a list for a field of type {typ}")
    inner = [args[0]] * len(items) if len(args) == 2 and args[1] is Ellipsis else list(args)
    if len(inner) != len(items):
        got = f", got {len(items)}" if text else ""
        raise FieldValueError(f"{key}={value if text else repr(value)}: expected {len(inner)} "
                              f"{'comma-separated ' if text else ''}values{got}")
    return tuple(field_value(key, v, t, text=text) for v, t in zip(items, inner))


def _from_text(key: str, text: str, typ):
    try:
        if typ is bool:
            low = text.strip().lower()
            if low in TRUE or low in FALSE:
                return low in TRUE
            raise ValueError
        if typ is int:
            return int(text)
        if typ is float:
            return float(text)
    except ValueError:
        hint = f" ({'/'.join(TRUE)} or {'/'.join(FALSE)})" if typ is bool else ""
        raise FieldValueError(f"{key}={text}: {text!r} is not a valid {_type_name(typ)}{hint}") from None
    if isinstance(typ, type) and issubclass(typ, str):  # str, or a str enum such as Attention (the config converts)
        return text
    raise FieldValueError(f"{key}: fields of type {typ} cannot be set from the command line")


def _checked(key: str, value, typ):
    if typ is bool:
        ok = isinstance(value, bool)
    elif typ is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif typ is float:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        value = float(value) if ok else value
    elif isinstance(typ, type) and issubclass(typ, enum.Enum):  # Attention: its text
        ok = value in set(typ)
    else:
        ok = isinstance(value, typ)
    if not ok:
        raise FieldValueError(f"{key}={value!r} has the wrong type {type(value).__name__}, expected {_type_name(typ)}")
    return value


def field_value(key: str, value, typ, *, text: bool = False):
    """``value`` as a value of field ``key`` of type ``typ`` (bool, int, float, str, an enum, a tuple of those).

    ``text=True``: ``value`` is text from the command line, converted ("5e-4" -> 0.0005, "yes" ->
    True, "5,10" -> (5, 10); a str or str-enum field keeps the text, its config converts it).
    Otherwise ``value`` is already typed (JSON) and checked: an int for a float field becomes a
    float, a bool is never a number. Raises :class:`FieldValueError` naming the key and the value.

    Examples:
        >>> field_value("lr", "5e-4", float, text=True)
        0.0005
        >>> field_value("ks", "5,10", tuple[int, ...], text=True)
        (5, 10)
        >>> field_value("dropout", 0, float)
        0.0
    """
    if typing.get_origin(typ) is tuple:
        return _tuple_value(key, value, typ, text)
    return _from_text(key, value, typ) if text else _checked(key, value, typ)


__all__ = ["FALSE", "TRUE", "FieldValueError", "config_fields", "field_value"]
