"""Loading a configuration: YAML or a dict, ``--set`` overrides, every error at once with
its key path, and the backbone-dependent defaults filled in (:func:`load_config`)."""

from __future__ import annotations

import copy
import dataclasses
import difflib
import os
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError, create_model

from imaging_tl.config.checks import cross_checks, pretrain_checks
from imaging_tl.config.schema import ConfigError, PhaseConfig, PretrainConfig, RunConfig, Section

__all__ = ["apply_overrides", "colour_stages", "load_config", "load_pretrain_config",
           "schema_help", "schema_reference"]


def apply_overrides(raw: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Apply ``key.path=value`` overrides (values parsed as YAML) to a raw config dict.

    List items are addressed by index: ``train.phases.0.epochs=3``.

    Examples
    --------
    >>> apply_overrides({"seed": 0}, ["seed=7", "model.freeze=block5c_add"])
    {'seed': 7, 'model': {'freeze': 'block5c_add'}}
    """
    out = copy.deepcopy(raw)
    for item in overrides:
        key, sep, text = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ConfigError([f"--set {item!r}: expected key.path=value"])
        try:
            value = yaml.safe_load(text) if text.strip() else None
        except yaml.YAMLError as exc:
            raise ConfigError([f"--set {key}: value {text!r} is not valid YAML ({exc})"]) from None
        node: Any = out
        parts = key.split(".")
        for i, part in enumerate(parts):
            last = i == len(parts) - 1
            where = ".".join(parts[:i]) or "<root>"
            if isinstance(node, list):
                if not part.isdigit() or int(part) >= len(node):
                    raise ConfigError([f"--set {key}: {where} has no item {part!r} "
                                       f"(it has {len(node)} items)"])
                if last:
                    node[int(part)] = value
                else:
                    node = node[int(part)]
            elif isinstance(node, dict):
                if last:
                    node[part] = value
                else:
                    if node.get(part) is None:
                        node[part] = {}
                    node = node[part]
            else:
                raise ConfigError([f"--set {key}: {where} is a value, not a section"])
    return out



def _submodel(annotation: Any) -> type | None:
    """The section type (a pydantic model or a dataclass) inside an annotation."""
    for a in getattr(annotation, "__args__", (annotation,)):
        if isinstance(a, type) and (issubclass(a, BaseModel) or dataclasses.is_dataclass(a)):
            return a
        inner = _submodel(a) if getattr(a, "__args__", None) else None
        if inner is not None:
            return inner
    return None


def _field_types(section: type) -> dict[str, Any]:
    if dataclasses.is_dataclass(section):
        return {f.name: f.type for f in dataclasses.fields(section)}
    return {k: f.annotation for k, f in section.model_fields.items()}  # type: ignore[attr-defined]


def _known_keys(model: type, loc: tuple) -> list[str]:
    """The field names allowed at ``loc`` (for "did you mean" suggestions)."""
    for part in loc:
        if isinstance(part, int):
            continue
        types = _field_types(model)
        if part not in types:
            return list(types)
        sub = _submodel(types[part])
        if sub is None:
            return []
        model = sub
    return list(_field_types(model))


def _format_pydantic_error(err: dict[str, Any], model: type[BaseModel], prefix: tuple) -> str:
    # pydantic adds the union member tried to the location ("str", "float", "list[...]").
    loc = tuple(p for p in err["loc"]
                if not (isinstance(p, str) and (p in ("str", "float", "int", "bool", "none")
                                                or p.startswith(("list[", "dict[", "literal[")))))
    path = ".".join(str(p) for p in (*prefix, *loc)) or "<root>"
    kind = err["type"]
    value = err.get("input")
    if kind in ("extra_forbidden", "unexpected_keyword_argument"):  # a model, a dataclass
        allowed = _known_keys(model, loc[:-1])
        close = difflib.get_close_matches(str(loc[-1]), allowed, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        return f"{path}: unknown key{hint} (allowed: {', '.join(allowed)})"
    if kind == "missing":
        return f"{path}: required key is missing"
    if kind == "literal_error":
        return f"{path}: {value!r} is not allowed; choose one of {err['ctx']['expected']}"
    if kind in ("model_type", "model_attributes_type", "dict_type"):
        return f"{path}: expected a section (a mapping of keys), got {value!r}"
    msg = err["msg"].removeprefix("Value error, ")
    return f"{path}: {msg[0].lower() + msg[1:]} (got {value!r})"



def _without(raw: dict[str, Any], locs: list[tuple]) -> dict[str, Any] | None:
    """``raw`` without the values at ``locs`` (None when a location cannot be dropped)."""
    for loc in locs:
        node: Any = raw
        path = [p for p in loc if not (isinstance(p, str) and p not in _keys_of(node, loc))]
        for part in path[:-1]:
            try:
                node = node[part]
            except (KeyError, IndexError, TypeError):
                return None
        if len(path) < 2 or not isinstance(node, dict) or path[-1] not in node:
            return None
        del node[path[-1]]
    return raw


def _keys_of(node: Any, loc: tuple) -> set:
    # the keys along loc that exist in the raw data (pydantic adds union member names)
    keys: set = set()
    for part in loc:
        if isinstance(node, dict) and part in node:
            keys.add(part)
            node = node[part]
        elif isinstance(node, list) and isinstance(part, int) and part < len(node):
            node = node[part]
    return keys


def _validate_parts(raw: dict[str, Any], root: type[BaseModel] = RunConfig
                    ) -> tuple[dict[str, Any], list[str]]:
    """Validate each top-level key on its own: the sections that pass, and all errors."""
    parts: dict[str, Any] = {}
    errors: list[str] = []
    fields = root.model_fields
    for key in raw:
        if key not in fields:
            close = difflib.get_close_matches(str(key), list(fields), n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            errors.append(f"{key}: unknown key{hint} (allowed: {', '.join(fields)})")
    for key, field in fields.items():
        if key not in raw:
            if field.is_required():
                errors.append(f"{key}: required section is missing (at least data.csv or "
                              "data.folder)")
                continue
            parts[key] = field.get_default(call_default_factory=True)
            continue

        definition: dict[str, Any] = {key: (field.annotation, field)}
        one = create_model(f"_Only_{key}", __base__=Section, **definition)
        try:
            parts[key] = getattr(one.model_validate({key: raw[key]}), key)
        except ValidationError as exc:
            model = _submodel(field.annotation) or root
            locs = []
            for e in exc.errors():
                locs.append(e["loc"])
                errors.append(_format_pydantic_error({**e, "loc": e["loc"][1:]}, model, (key,)))
            # Drop the bad keys and validate again, so that the cross-field checks still run
            # on the rest of the section (e.g. model.freeze when model.head has a typo).
            pruned = _without({key: copy.deepcopy(raw[key])}, locs)
            if pruned is not None and key in pruned:
                try:
                    parts[key] = getattr(one.model_validate(pruned), key)
                except ValidationError:
                    pass
    return parts, errors



def colour_stages(cfg: RunConfig | PretrainConfig) -> list[dict[str, Any]]:
    """The preprocessing with the colour policy first: ``data.color`` when set, ``auto``
    for the default preprocessing; a list of one's own without it is left as written.

    Examples
    --------
    >>> cfg = RunConfig.model_validate({"data": {"folder": "x"}})
    >>> colour_stages(cfg)[0]
    {'name': 'color', 'policy': 'auto'}
    """
    stages = [dict(s) for s in cfg.preprocessing]
    if any(s.get("name") == "color" for s in stages):
        return stages
    policy = cfg.data.color
    if policy is None and "preprocessing" not in cfg.model_fields_set:
        policy = "auto"
    return stages if policy is None else [{"name": "color", "policy": policy}, *stages]


def _stages_and_size(cfg: RunConfig | PretrainConfig, backbone_size: Any
                     ) -> tuple[list[dict[str, Any]], int]:
    """The preprocessing as it will run (colour first, a resize to the input size, RGB
    last) and the input size (``model.input_size``, else the last resize's, else the
    backbone's)."""
    stages = colour_stages(cfg)
    resizes = [s for s in stages if s.get("name") == "resize"]
    size = cfg.model.input_size
    if size is None:
        last = resizes[-1]["size"] if resizes else backbone_size
        size = int(last[0] if isinstance(last, list | tuple) else last)
    stack = stages.pop() if stages and stages[-1].get("name") == "stack" else None
    if not resizes:
        stages.append({"name": "resize", "size": size})
    if stack is not None:  # the neighbouring slices are the channels: no to_rgb after it
        return [*stages, stack], size
    if not stages or stages[-1].get("name") != "to_rgb":
        stages.append({"name": "to_rgb"})
    return stages, size


def _resolve(cfg: RunConfig) -> RunConfig:
    """Fill the backbone-dependent defaults, so that config.yaml says what really ran."""
    from imaging_tl.models.registry import get_spec
    from imaging_tl.train.phases import default_phases

    spec = get_spec(cfg.model.backbone)
    stages, size = _stages_and_size(cfg, spec.input_size)
    phases = cfg.train.phases
    if phases is None:
        # the first (head) phase freezes what model.freeze says
        phases = [PhaseConfig(name=p.name, epochs=p.epochs, learning_rate=p.learning_rate,
                              freeze=None if i == 0 else p.freeze, schedule=p.schedule,
                              patience=p.patience)
                  for i, p in enumerate(default_phases(cfg.model.backbone))]
    phases = [p.model_copy(update={"freeze": cfg.model.freeze if p.freeze is None else p.freeze})
              for p in phases]
    return cfg.model_copy(update={
        "preprocessing": stages,
        "model": cfg.model.model_copy(update={"input_size": size,
                                              "normalization": spec.normalization}),
        "train": cfg.train.model_copy(update={"phases": phases}),
    })


def _raw_config(source: str | os.PathLike | dict[str, Any], overrides: list[str] | None
                ) -> tuple[dict[str, Any], str | None, Path]:
    """The raw mapping of a YAML file or dict with overrides applied and ``data.csv`` /
    ``data.folder`` resolved against the file's folder; also the file's name and folder."""
    where = None
    base = Path.cwd()
    if isinstance(source, dict):
        raw: Any = copy.deepcopy(source)
    else:
        where = os.fspath(source)
        try:
            raw = yaml.safe_load(Path(source).read_text(encoding="utf-8"))
        except (FileNotFoundError, IsADirectoryError):
            raise ConfigError([f"{where}: no such configuration file"], where) from None
        except yaml.YAMLError as exc:
            raise ConfigError([f"not valid YAML: {exc}"], where) from None
        base = Path(source).resolve().parent
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError(["the file must hold a mapping of sections (data:, model:, ...), "
                           f"got {type(raw).__name__}"], where)
    raw = apply_overrides(raw, overrides or [])
    data = raw.get("data")
    if isinstance(data, dict):
        for key in ("csv", "folder", "slice_labels"):
            value = data.get(key)
            if isinstance(value, str) and value and not Path(value).expanduser().is_absolute():
                data[key] = os.path.normpath(base / value)
    return raw, where, base


def _resolve_pretrain(cfg: PretrainConfig) -> PretrainConfig:
    """The backbone-dependent defaults of a pretraining configuration (as :func:`_resolve`)."""
    from imaging_tl.models.registry import get_spec

    spec = get_spec(cfg.model.backbone)
    stages, size = _stages_and_size(cfg, spec.input_size)
    return cfg.model_copy(update={
        "preprocessing": stages,
        "model": cfg.model.model_copy(update={"input_size": size,
                                              "normalization": spec.normalization})})


def load_pretrain_config(
    source: str | os.PathLike | dict[str, Any], overrides: list[str] | None = None
) -> PretrainConfig:
    """Read, override, validate and resolve a pretraining configuration
    (``imaging-tl pretrain``); relative ``data`` and ``monitor.csv`` paths resolve against
    the YAML file's folder.

    Raises
    ------
    ConfigError
        Listing every problem found, each with its key path.

    Examples
    --------
    >>> cfg = load_pretrain_config({"data": {"folder": "sample_dicoms"},
    ...                             "model": {"input_size": 64}})
    >>> cfg.preprocessing[-2:], cfg.pretrain.method
    ([{'name': 'resize', 'size': 64}, {'name': 'to_rgb'}], 'simsiam')
    """
    raw, where, base = _raw_config(source, overrides)
    monitor = raw.get("monitor")
    if isinstance(monitor, dict) and isinstance(monitor.get("csv"), str):
        if not Path(monitor["csv"]).expanduser().is_absolute():
            monitor["csv"] = os.path.normpath(base / monitor["csv"])
    parts, errors = _validate_parts(raw, PretrainConfig)
    errors += pretrain_checks(parts)
    if errors:
        raise ConfigError(errors, where)
    return _resolve_pretrain(PretrainConfig.model_validate(raw))


def load_config(
    source: str | os.PathLike | dict[str, Any], overrides: list[str] | None = None
) -> RunConfig:
    """Read, override, validate and resolve a configuration.

    Parameters
    ----------
    source : path or dict
        A YAML file, or the same content as a dict (relative paths then resolve against
        the current folder).
    overrides : list of str, optional
        ``key.path=value`` items (``--set`` on the command line).

    Returns
    -------
    RunConfig
        With every default filled (backbone input size and normalisation, phases, the final
        resize and to_rgb stages).

    Raises
    ------
    ConfigError
        Listing every problem found, each with its key path.

    Examples
    --------
    >>> cfg = load_config({"data": {"folder": "."}, "model": {"input_size": 96}})
    >>> cfg.preprocessing[-2:]
    [{'name': 'resize', 'size': 96}, {'name': 'to_rgb'}]
    """
    raw, where, base = _raw_config(source, overrides)
    split = raw.get("split")
    if isinstance(split, dict) and isinstance(split.get("file"), str):
        if not Path(split["file"]).is_absolute():
            split["file"] = os.path.normpath(base / split["file"])
    # model.source against this file's folder; a source model's contract fills what is left out
    from imaging_tl.models.source import inherit_source

    raw = inherit_source(raw, base)
    parts, errors = _validate_parts(raw)
    errors += cross_checks(parts)
    if errors:
        raise ConfigError(errors, where)
    return _resolve(RunConfig.model_validate(raw))


def schema_help() -> str:
    """A short listing of every section and key with its default (for ``--help`` texts).

    Examples
    --------
    >>> "model.backbone" in schema_help()
    True
    """
    lines = []

    def walk(section: type, prefix: str) -> None:
        types = _field_types(section)
        for name, default in _defaults(section).items():
            sub = _submodel(types[name])
            if sub is not None and name not in ("phases",):
                walk(sub, f"{prefix}{name}.")
                continue
            lines.append(f"{prefix}{name}: {default}")

    walk(RunConfig, "")
    return "\n".join(lines)


def _defaults(section: type) -> dict[str, str]:
    """Each key of a section (a pydantic model or a dataclass) with its default as text."""
    if dataclasses.is_dataclass(section):
        return {f.name: repr(f.default) if f.default is not dataclasses.MISSING
                else repr(f.default_factory()) if f.default_factory is not dataclasses.MISSING
                else "required" for f in dataclasses.fields(section)}
    return {name: "required" if field.is_required()
            else repr(field.get_default(call_default_factory=True))
            for name, field in section.model_fields.items()}  # type: ignore[attr-defined]


_BOUNDS = {"ge": ">=", "gt": ">", "le": "<=", "lt": "<", "min_length": "at least",
           "max_length": "at most", "pattern": "matches"}


def _allowed(annotation: Any, field: Any) -> str:
    """The values a key accepts: the choices of a Literal, the bounds of a Field."""
    import typing

    choices: list[Any] = []

    def literals(a: Any) -> None:
        if typing.get_origin(a) is typing.Literal:
            choices.extend(typing.get_args(a))
        for inner in typing.get_args(a) if typing.get_origin(a) is not typing.Literal else ():
            literals(inner)

    literals(annotation)
    parts = [", ".join(f"`{c}`" for c in choices)] if choices else []
    for meta in getattr(field, "metadata", []) or []:
        for attr, word in _BOUNDS.items():
            value = getattr(meta, attr, None)
            if value is not None:
                parts.append(f"{word} {value}")
    if type(None) in typing.get_args(annotation) or annotation is None:
        parts.append("or null")
    return "; ".join(parts)


def _type_name(annotation: Any) -> str:
    text = getattr(annotation, "__name__", None) if not getattr(annotation, "__args__", None) \
        else str(annotation)
    text = str(text or annotation).replace("typing.", "").replace("NoneType", "None")
    return text.replace("imaging_tl.models.head.", "").replace("imaging_tl.config.schema.", "")


def schema_reference(root: type = RunConfig, title: str = "Configuration reference") -> str:
    """Every key of the configuration schema as Markdown: one table per section with the
    key, its type, default and allowed values, from the same pydantic models that validate
    a file (``imaging-tl run CONFIG --check``): the documentation cannot drift from the
    schema.

    Examples
    --------
    >>> text = schema_reference()
    >>> "| `tracking.mlflow` |" in text and "## `model`" in text
    True
    """
    out = [f"# {title}", "", "Generated from `imaging_tl.config.schema` (the schema "
           "`--check` validates against). Keys are written as in `--set KEY.PATH=VALUE`.", ""]

    def table(section: type, prefix: str) -> list[tuple[type, str]]:
        subs: list[tuple[type, str]] = []
        rows = []
        fields = getattr(section, "model_fields", None)
        types = _field_types(section)
        for name, default in _defaults(section).items():
            annotation = types[name]
            sub = _submodel(annotation)
            if sub is not None and name == "phases":  # a list of sections: one per phase
                subs.append((sub, f"{prefix}{name}.N."))
            elif sub is not None:
                subs.append((sub, f"{prefix}{name}."))
                continue
            field = fields.get(name) if fields else None
            cells = [f"`{prefix}{name}`", f"`{_type_name(annotation)}`", f"`{default}`",
                     _allowed(annotation, field)]
            rows.append("| " + " | ".join(c.replace("|", "\\|").replace("\n", " ")
                                          for c in cells) + " |")
        if rows:
            doc = " ".join((section.__doc__ or "").strip().split("\n\n")[0].split())
            out.extend([f"## `{prefix.rstrip('.') or 'top level'}`", "", doc, "",
                        "| key | type | default | allowed |", "|---|---|---|---|", *rows, ""])
        return subs

    todo: list[tuple[type, str]] = [(root, "")]
    while todo:
        section, prefix = todo.pop(0)
        todo.extend(table(section, prefix))
    return "\n".join(out)
