"""``--set KEY=VALUE``: overrides of a model and a train configuration, from the command line."""

from __future__ import annotations

from dataclasses import replace

from .fields import FieldValueError, config_fields, field_value

# Fields --set must not touch: the dataset decides them.
FIXED = {"num_items": "it is the dataset's item count"}


class OverrideError(ValueError):
    """A --set KEY=VALUE that names no configuration field or whose value does not convert."""


def convert_value(key: str, text: str, typ) -> object:
    """``text`` as a value of type ``typ`` (bool, int, float, str, or a tuple of those).

    Examples:
        >>> convert_value("lr", "5e-4", float)
        0.0005
        >>> convert_value("ks", "5,10", tuple[int, ...])
        (5, 10)
        >>> convert_value("norm_first", "yes", bool)
        True
    """
    try:
        return field_value(key, text, typ, text=True)
    except FieldValueError as exc:
        raise OverrideError(f"--set {exc}") from None


def _pair(pair) -> tuple[str, object]:
    if not isinstance(pair, str):
        return pair
    key, sep, text = pair.partition("=")
    key = key.strip()
    if not sep or not key:
        raise OverrideError(f"--set expects KEY=VALUE, got {pair!r}")
    return key, text


def apply_overrides(model_cfg, train_cfg, pairs) -> tuple:
    """(model config, train config) with ``pairs`` applied; each pair is ``"key=value"`` or ``(key, value)``.

    A key is a field name of the model config (e.g. :class:`~sarbench.config.SARConfig`) or of
    :class:`~sarbench.config.TrainConfig`, optionally qualified as ``model.key`` / ``train.key``.
    String values are converted to the field's type; already typed values are used as they are.
    Raises :class:`OverrideError` naming the key for an unknown key, a bad value, or a combination
    the configuration rejects.
    """
    fields = {name: value for name, value in config_fields(type(model_cfg), type(train_cfg)).items()
              if name not in FIXED}
    changes: dict[str, dict] = {"model": {}, "train": {}}
    for key, value in map(_pair, pairs):
        group, _, name = key.rpartition(".")
        if name in FIXED:
            raise OverrideError(f"--set {key}: cannot be set ({FIXED[name]})")
        if name not in fields or group not in ("", fields[name][0]):
            valid = ", ".join(sorted(fields))
            raise OverrideError(f"--set: unknown key {key!r}; valid keys (model and train config): {valid}")
        where, typ = fields[name]
        changes[where][name] = convert_value(key, value, typ) if isinstance(value, str) else value
    try:
        return replace(model_cfg, **changes["model"]), replace(train_cfg, **changes["train"])
    except (ValueError, TypeError) as exc:
        raise OverrideError(f"--set: {exc}") from None


__all__ = ["FIXED", "OverrideError", "apply_overrides", "convert_value"]
