"""`--config FILE.yaml` for any command, as timm's train.py reads its YAML config: the file's
keys are the command's option names in argparse's dest form (`preset`, `methods`,
`jobs_per_device`), plus `hparams: {key: value}` for `--hparam`; the options given on the
command line win over the file's, and the file's over the defaults (docs/config.md).

A command calls `add_config_argument(parser)` as the LAST line of its `add_arguments` (it
takes over the defaults of every option added before it) and `apply_config(args, parser)`
first thing in its `check_arguments`. Which options the command line gave is told by a
sentinel default (`_Unset`), not by comparing with the default: `--seeds 1` beats a file's
`seeds: 3`. Each of the file's values is checked against its option's own argparse action
(type, choices, flag); a fault is one line naming the file, the key, the value and what was
expected, and exit status 2.

`--config NAME` with NAME a preset (and no file of that name) is `--preset NAME`, as
`decathlon run --config spottune_paper` always was.
"""
from __future__ import annotations

import argparse
import json
from dataclasses import dataclass, field
from pathlib import Path

from decathlon.cli.common import BACKBONE_OPTIONS
from decathlon.jobdir import read_config_file

HPARAMS_KEY = "hparams"                    # the file's --hparam entries, a mapping
RESOLVED_KEY = "resolved_hparams"          # a job's config.yaml: every value the job trained with
NOT_OPTIONS = ("help", "config")


class _Unset:
    """The default of an option the command line did not give; prints as the default (help)."""

    def __init__(self, value, required: bool):
        self.value, self.required = value, required

    def __str__(self) -> str:
        return str(self.value)


@dataclass
class ConfigSource:
    """Where a command's options came from: the file (None: none, or a preset name), the
    resolved hyperparameters it expects, and the --hparam keys the command line set."""
    path: Path | None = None
    resolved_hparams: dict | None = None
    command_line_hparams: frozenset = frozenset()
    dests: tuple = field(default_factory=tuple)


def add_config_argument(parser: argparse.ArgumentParser) -> None:
    """--config FILE.yaml|PRESET; every option added before it gets a sentinel default."""
    parser.add_argument("--config", metavar="FILE.yaml|PRESET",
                        help="options from a YAML file whose keys are the options' names (e.g. preset, seeds, "
                             "jobs_per_device; hparams: {key: value}); the command line wins; a run or job "
                             "folder's config.yaml reproduces it (docs/config.md). A preset name is --preset")
    for action in _options(parser):
        if isinstance(action, (argparse._StoreAction, argparse._StoreConstAction)):
            action.default = _Unset(action.default, action.required)
            action.required = False   # the file may give it; checked once merged


def apply_config(args, parser: argparse.ArgumentParser, job: bool = False):
    """`args` with the file's options under the command line's and the defaults under both;
    `args.config` becomes a ConfigSource. A bad file exits 2 with one line. `job`: a command
    that runs one job, whose config.yaml may also hold `resolved_hparams`."""
    if isinstance(args.config, ConfigSource):   # already applied (both doors call the check)
        return args
    actions = {action.dest: action for action in _options(parser)}
    settings, path = {}, None
    preset = actions.get("preset")
    if args.config and preset is not None and args.config in (preset.choices or ()) and not Path(args.config).exists():
        settings = {"preset": args.config}
    elif args.config:
        path = Path(args.config)
        try:
            settings = read_config_file(path)
        except ValueError as err:
            hint = f"; or a preset: {', '.join(preset.choices)}" if preset is not None and not path.suffix else ""
            parser.exit(2, f"error: {err}{hint}\n")
    try:
        given_hparams = _merge(args, actions, settings, path, job)
    except ValueError as err:
        parser.exit(2, f"error: {err}\n")
    missing = [action.option_strings[0] for dest, action in actions.items()
               if isinstance(getattr(args, dest, None), _Unset) and getattr(args, dest).required]
    for dest in actions:
        if isinstance(getattr(args, dest, None), _Unset):
            setattr(args, dest, getattr(args, dest).value)
    if missing:
        parser.error(f"the following arguments are required: {', '.join(missing)} (or give them in --config FILE)")
    args.config = ConfigSource(path, settings.get(RESOLVED_KEY), given_hparams, tuple(actions))
    return args


def _options(parser) -> list:
    return [action for action in parser._actions if action.dest not in NOT_OPTIONS]


def _merge(args, actions: dict, settings: dict, path, job: bool) -> frozenset:
    """Set every option the command line left unset from `settings`; returns the --hparam
    keys (and precision, arch, input_size, patch_size from their options) the command line
    gave, which the file's resolved values yield to."""
    where = f"{path}: " if path else ""
    takes_hparams = "hparam" in actions
    known = ([dest for dest in actions if dest != "hparam"] + ([HPARAMS_KEY] if takes_hparams else [])
             + ([RESOLVED_KEY] if job else []))
    command_line = list(getattr(args, "hparam", None) or [])
    given = {entry.partition("=")[0] for entry in command_line}
    if getattr(args, "precision", None) and not isinstance(args.precision, _Unset):
        given.add("precision")   # --precision is an override too (decathlon.cli.common.overrides_from)
    for dest, key in BACKBONE_OPTIONS.items():
        value = getattr(args, dest, None)   # the backbone options are overrides too
        if value is not None and not isinstance(value, _Unset):
            given.add(key)
    for key, value in settings.items():
        if key not in known:
            raise ValueError(f"{where}unknown key {key!r} (expected one of {', '.join(known)})")
        if key in (HPARAMS_KEY, RESOLVED_KEY):
            if not isinstance(value, dict) or not all(isinstance(name, str) for name in value):
                raise ValueError(f"{where}key {key!r} is {_shown(value)}; expected a mapping of hyperparameter "
                                 f"names to values")
            continue
        default = actions[key].default
        checked = _value(actions[key], key, value, default.value if isinstance(default, _Unset) else default, where)
        if isinstance(getattr(args, key), _Unset):   # checked even where the command line wins
            setattr(args, key, checked)
    if takes_hparams:
        from_file = [_hparam_entry(name, value, where) for name, value in (settings.get(HPARAMS_KEY) or {}).items()]
        args.hparam = (from_file + command_line) or None   # later entries win (parse_overrides)
    return frozenset(given)


def _value(action, key: str, value, default, where: str):
    """The file's `value` for `action`, checked as argparse checks the command line's."""
    if action.nargs == 0:   # a flag: true or false
        if not isinstance(value, bool):
            raise ValueError(f"{where}key {key!r} is {_shown(value)}; expected true or false")
        return action.const if value else default
    if value is None and default is None:
        return None
    if isinstance(value, list) and action.type is None and value and all(isinstance(v, str) for v in value):
        value = ",".join(value)   # a comma-separated option (methods, domains) written as a list
    expected = getattr(action.type, "__name__", "string") if action.type else "string"
    if isinstance(value, (bool, list, dict)) or value is None or (action.type is None and not isinstance(value, str)):
        raise ValueError(f"{where}key {key!r} is {_shown(value)}; expected {_an(expected)}")
    try:
        converted = action.type(str(value)) if action.type else value
    except (TypeError, ValueError, argparse.ArgumentTypeError):
        raise ValueError(f"{where}key {key!r} is {_shown(value)}; expected {_an(expected)}") from None
    if action.choices is not None and converted not in action.choices:
        raise ValueError(f"{where}key {key!r} is {_shown(value)}; expected one of {', '.join(map(str, action.choices))}")
    return converted


def _hparam_entry(name: str, value, where: str) -> str:
    """One --hparam KEY=VALUE: a string as typed on the command line (so `lr: 1e-3`, a string
    to YAML 1.1, is the number it reads as), anything else as JSON."""
    if isinstance(value, str):
        return f"{name}={value}"
    try:
        return f"{name}={json.dumps(value, allow_nan=False)}"
    except (TypeError, ValueError):
        raise ValueError(f"{where}hparams.{name} is {value!r}; expected a number, string, bool, null or list") from None


def check_resolved_hparams(args, resolved: dict) -> None:
    """A job's config.yaml names every value the job trained with: refuse (naming the file
    and the key) to run a job whose preset and overrides no longer resolve to them, unless the
    command line overrode that key."""
    source = args.config
    expected = source.resolved_hparams if isinstance(source, ConfigSource) else None
    if expected is None:
        return
    given = source.command_line_hparams
    for key in sorted(set(expected) | set(resolved)):
        if key in given or (key == "per_domain" and given):
            continue
        if json.dumps(expected.get(key)) != json.dumps(resolved.get(key)):
            raise ValueError(f"{source.path}: resolved_hparams.{key} is {_shown(expected.get(key))}, but the "
                             f"preset and hparams resolve to {_shown(resolved.get(key))} now; set it under hparams "
                             f"(or --hparam) to train the same job")


def settings_of(args) -> dict:
    """The command's fully resolved options, keyed as a config file's (`hparams` a mapping)."""
    from decathlon.benchmark import parse_overrides

    settings = {}
    for dest in args.config.dests:
        value = getattr(args, dest)
        if dest == "hparam":
            settings[HPARAMS_KEY] = parse_overrides(value)
        else:
            settings[dest] = list(value) if isinstance(value, tuple) else value
    return settings


def _shown(value) -> str:
    try:
        return json.dumps(value)
    except (TypeError, ValueError):
        return repr(value)


def _an(type_name: str) -> str:
    return f"an {type_name}" if type_name[0] in "aeiou" else f"a {type_name}"
