"""Generic structured-config machinery: merge YAML files and `key=value` overrides onto a dataclass schema,
then hand back the typed, checked dataclass tree.

Kept apart from the schema itself (`seal_transfer.config.schema`) so the rules — unknown keys and wrong types
fail before any work, with one line naming the key; every section's own `validate(key)` runs at load — are one
piece of code every stage shares. Stages load once at their entry and pass the typed sections down.
"""

from __future__ import annotations

import dataclasses
import difflib
import inspect
import re
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import yaml
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import ConfigAttributeError, ConfigKeyError, OmegaConfBaseException, ValidationError
from omegaconf.nodes import FloatNode, StringNode

from seal_transfer.errors import UserError


def _all_keys(schema: type, prefix: str = "") -> list[str]:
    keys: list[str] = []
    for f in dataclasses.fields(schema):
        name = f"{prefix}{f.name}"
        sub = _dataclass_type(f)
        if sub is not None:
            keys.extend(_all_keys(sub, name + "."))
        else:
            keys.append(name)
    return keys


def _dataclass_type(f: dataclasses.Field) -> type | None:
    tp = f.type
    if isinstance(tp, str):
        default = f.default_factory() if f.default_factory is not dataclasses.MISSING else None  # type: ignore[misc]
        return type(default) if dataclasses.is_dataclass(default) else None
    return tp if dataclasses.is_dataclass(tp) else None


def _suggest(key: str, schema: type) -> str:
    close = difflib.get_close_matches(key, _all_keys(schema), n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""


def _explain(exc: OmegaConfBaseException, schema: type, origin: str) -> UserError:
    """Turn omegaconf's multi-line exception into one line naming the key."""
    key = getattr(exc, "full_key", None) or ""
    if isinstance(exc, (ConfigKeyError, ConfigAttributeError)):
        return UserError(f"{origin}: unknown config key '{key}'{_suggest(key, schema)}")
    if isinstance(exc, ValidationError):
        first = str(exc).splitlines()[0]
        return UserError(f"{origin}: config key '{key}': {first}")
    return UserError(f"{origin}: {str(exc).splitlines()[0]}")


def _parse_override(text: str) -> tuple[str, Any]:
    if "=" not in text or text.startswith("="):
        raise UserError(f"argument '{text}': expected key=value (e.g. trainer.max_epochs=5)")
    key, raw = text.split("=", 1)
    try:
        value = yaml.safe_load(raw) if raw != "" else ""
    except yaml.YAMLError:
        value = raw
    return key.strip(), value


def _declared_value(node: DictConfig, name: str, value: Any, raw: str) -> Any:
    """`value` in the key's declared type, so omegaconf never converts implicitly (it warns that it will stop).

    A string key takes the text as typed (`trainer.devices=2` is '2', `trainer.devices=[0,1]` is '[0,1]',
    `sweep.note=0.10` keeps its zero); a float key takes an integer as a float (`optim.lr=1`).
    """
    target = node._get_node(name)
    if value is None or isinstance(value, (dict, list)) and not isinstance(target, StringNode):
        return value
    if isinstance(target, StringNode) and not isinstance(value, str):
        return raw
    if isinstance(target, FloatNode) and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    return value


def _set_override(cfg: DictConfig, key: str, value: Any, schema: type, raw: str | None = None) -> None:
    node: Any = cfg
    parts = key.split(".")
    for part in parts[:-1]:
        if not isinstance(node, DictConfig) or part not in node:
            raise UserError(f"override '{key}': unknown config key '{key}'{_suggest(key, schema)}")
        node = node[part]
    if not isinstance(node, DictConfig) or parts[-1] not in node:
        raise UserError(f"override '{key}': unknown config key '{key}'{_suggest(key, schema)}")
    if isinstance(node[parts[-1]], DictConfig) and not isinstance(value, dict):
        raise UserError(f"override '{key}': '{key}' is a section; set one of its keys, e.g. {key}.<name>=...")
    if raw is not None:
        value = _declared_value(node, parts[-1], value, raw)
    try:
        node[parts[-1]] = value
    except OmegaConfBaseException as exc:
        raise _explain(exc, schema, f"override '{key}={value}'") from None


def merged_config(
    schema: type,
    files: Sequence[str | Path] = (),
    overrides: Sequence[str] = (),
    base: dict[str, Any] | None = None,
) -> DictConfig:
    """Schema defaults ← `base` (stage defaults) ← each YAML file in order ← `key=value` overrides, as a struct-mode
    DictConfig (not yet checked); every problem is a `UserError` naming the file or key."""
    cfg = OmegaConf.structured(schema)
    OmegaConf.set_struct(cfg, True)
    layers: list[tuple[str, Any]] = []
    if base:
        layers.append(("stage defaults", base))
    for file in files:
        path = Path(file)
        if not path.is_file():
            raise UserError(f"--config {path}: file not found")
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8"))
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f"{path}:{mark.line + 1}" if mark is not None else str(path)
            raise UserError(f"{where}: not valid YAML ({getattr(exc, 'problem', exc)})") from None
        if data is None:
            continue
        if not isinstance(data, dict):
            raise UserError(f"{path}: expected a mapping of config keys at the top level")
        layers.append((str(path), data))
    for origin, data in layers:
        try:
            cfg = OmegaConf.merge(cfg, OmegaConf.create(data))
        except OmegaConfBaseException as exc:
            raise _explain(exc, schema, origin) from None
    for text in overrides:
        key, value = _parse_override(text)
        _set_override(cfg, key, value, schema, raw=text.split("=", 1)[1])
    return cfg


def load_config(
    schema: type,
    files: Sequence[str | Path] = (),
    overrides: Sequence[str] = (),
    base: dict[str, Any] | None = None,
) -> Any:
    """The typed, checked config: an instance of `schema` whose sections are the packages' own dataclasses.

    Unknown keys, wrong types, unset required keys and every section's `validate(key)` fail here, with one
    line naming the key, before a stage takes any lock or writes anything.
    """
    return typed(merged_config(schema, files, overrides, base))


def typed(node: DictConfig) -> Any:
    """DictConfig → its dataclass instance, every section validated."""
    missing = sorted(OmegaConf.missing_keys(node))
    if missing:
        raise UserError(f"config key '{missing[0]}' must be set (the config marks it ???), e.g. {missing[0]}=PATH")
    obj = OmegaConf.to_object(node)
    validate_sections(obj)
    return obj


def validate_sections(obj: Any, key: str = "") -> None:
    """Call `validate(key)` of every dataclass section that has one, the innermost first, with its dotted key."""
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            validate_sections(value, f"{key}.{f.name}" if key else f.name)
    check = getattr(obj, "validate", None)
    if callable(check):
        check(key) if key else check()


def with_overrides(cfg: Any, values: dict[str, Any]) -> Any:
    """A copy of the typed config `cfg` with dotted keys set (`{"trainer.max_epochs": 2}`), typed and checked
    again: a sweep or a round that changes one key goes through the same rules as the command line."""
    node = OmegaConf.structured(cfg)
    OmegaConf.set_struct(node, True)
    for key, value in values.items():
        _set_override(node, key, value, type(cfg))
    return typed(node)


def to_yaml(cfg: Any) -> str:
    """The resolved config as YAML (what a stage writes to RUN/<stage>/config.yaml)."""
    node = cfg if OmegaConf.is_config(cfg) else OmegaConf.structured(cfg)
    return OmegaConf.to_yaml(node, resolve=True)


_COMMENT_RE = re.compile(r"^\s*(\w+)\s*:[^#]*#\s*(.*)$")


def _field_comments(cls: type) -> dict[str, str]:
    """Trailing `# comments` of a dataclass's field lines: the help text, written once, beside the default."""
    try:
        source = inspect.getsource(cls)
    except (OSError, TypeError):
        return {}
    out: dict[str, str] = {}
    for line in source.splitlines():
        m = _COMMENT_RE.match(line)
        if m:
            out[m.group(1)] = m.group(2).strip()
    return out


def describe_keys(schema: type, sections: Iterable[str] | None = None) -> str:
    """`key = default  # help` for every leaf key of `schema` (optionally only some top-level sections)."""
    wanted = set(sections) if sections is not None else None
    defaults = OmegaConf.structured(schema)
    lines: list[str] = []

    def walk(cls: type, node: Any, prefix: str) -> None:
        comments = _field_comments(cls)
        for f in dataclasses.fields(cls):
            name = f"{prefix}{f.name}"
            if not prefix and wanted is not None and f.name not in wanted:
                continue
            sub = _dataclass_type(f)
            if sub is not None:
                walk(sub, node[f.name], name + ".")
                continue
            value = OmegaConf.to_container(node, resolve=False)[f.name] if isinstance(node, DictConfig) else None
            shown = (
                "null"
                if value is None
                else yaml.safe_dump(value, default_flow_style=True).strip().removesuffix("\n...").removesuffix(" ...")
            )
            note = comments.get(f.name, "")
            lines.append(f"  {name} = {shown}" + (f"    # {note}" if note else ""))

    walk(schema, defaults, "")
    return "\n".join(lines)
