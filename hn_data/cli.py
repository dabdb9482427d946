"""One command style for every hnclip command: a typed config (a dataclass) run through Hydra.

    hnclip-engine out=data/sets size=64 subsets=[count,spatial]     # key=value overrides
    hnclip-engine --help                                            # the keys, types, defaults
    hnclip-engine --cfg job out=x                                   # the composed config, no run

A command is a dataclass of its keys (each made with `setting(default, "what it is for")`) and a
function of that dataclass; `command(...)` turns the two into `main(argv=None)`, reachable as
`python -m` and as a console script. What every command shares:

- `key=value` overrides in Hydra's grammar (lists as `[a,b]`, `null` for None). A key the
  schema does not define (with or without '+'), a value of the wrong type, a required key left
  out or a check of the command's own that fails stops the command before any work with a
  message naming the key, and exit code 2 (as training's schema check, train/config.py).
- `--help` lists every key with its type, default and meaning; Hydra's own flags (`--cfg job`,
  `--info`, `--hydra-help`, `-m`) work as in `hnclip-train`.
- The run directory: Hydra's run directory is the command's `out` key where the command writes
  one folder, else the current directory; Hydra writes nothing into it (no .hydra/, no log
  file) and never changes the working directory, so relative paths mean what they say.

It lives in hn_data, the lowest layer, so the data commands and the train commands share it
(hn_data imports nothing from train)."""
import dataclasses
import difflib
import sys
import typing
from dataclasses import MISSING, fields, is_dataclass
from typing import Any, Callable, List, Optional

CONFIG_ERROR_EXIT_CODE = 2
REQUIRED = "???"  # OmegaConf's mark of a value that must be given


class ConfigError(ValueError):
    """A command's config is wrong: the command exits 2 with this message, having done nothing."""


def setting(default: Any = REQUIRED, help: str = ""):  # noqa: A002 - the word a reader expects
    """A schema field with its meaning for `--help`. Lists and dicts are copied per instance;
    REQUIRED (the default) makes a key the user must give."""
    meta = {"help": help}
    if isinstance(default, (list, dict)):
        return dataclasses.field(default_factory=lambda: type(default)(default), metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


def _type_name(hint) -> str:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is typing.Union and type(None) in args:
        inner = [a for a in args if a is not type(None)]
        return f"{_type_name(inner[0])} or null"
    if origin in (list, tuple):
        return f"list of {_type_name(args[0])}" if args else "list"
    if origin is dict:
        return "mapping"
    return getattr(hint, "__name__", str(hint))


def schema_keys(node_type, prefix: str = "") -> list:
    """Every dotted key a dataclass schema defines (nested dataclasses as key.field; the items of
    a list of dataclasses as key.field too, standing for key.N.field)."""
    keys = []
    hints = typing.get_type_hints(node_type)
    for f in fields(node_type):
        keys.append(prefix + f.name)
        hint, items = hints[f.name], typing.get_args(hints[f.name])
        if typing.get_origin(hint) is list and items and is_dataclass(items[0]):
            hint = items[0]
        if is_dataclass(hint):
            keys += schema_keys(hint, f"{prefix}{f.name}.")
    return keys


def _free_form(node_type, dotted: str) -> bool:
    """Whether a dotted key lies below a mapping-typed key (free-form: any sub-key is fine)."""
    hints, parts = typing.get_type_hints(node_type), dotted.split(".")
    for part in parts[:-1]:
        hint = hints.get(part)
        if hint is None:
            return False
        if typing.get_origin(hint) is dict or hint is dict:
            return True
        if not is_dataclass(hint):
            return False
        hints = typing.get_type_hints(hint)
    return False


def nearest(key_name: str, valid: list, prefix: str = "") -> str:
    """The valid keys a misspelled one most likely meant (its group's keys when none is close)."""
    close = difflib.get_close_matches(key_name, valid, n=3, cutoff=0.6)
    if not close:
        group = key_name.rpartition(".")[0]
        close = [k for k in valid if k.rpartition(".")[0] == group][:8]
    return ", ".join(prefix + k for k in close) or "(none)"


def help_text(prog: str, doc: str, schema, run_dir: str, package: str = "") -> str:
    """--help: the command's docstring, then one line per key (type, default, meaning)."""
    lines = [f"{prog}: {doc.strip()}", "", "Keys (give them as key=value; lists as key=[a,b], None as null):"]
    hints = typing.get_type_hints(schema)
    rows = []
    for f in fields(schema):
        if f.default is not MISSING:
            default = "required" if f.default == REQUIRED else f"default {_yaml(f.default)}"
        else:
            default = f"default {_yaml(f.default_factory())}"
        rows.append((f"  {package}{f.name}", f"{_type_name(hints[f.name])}, {default}",
                     f.metadata.get("help", "")))
    width = max(len(r[0]) for r in rows) + 2
    for name, kind, meaning in rows:
        lines.append(f"{name.ljust(width)}{kind}" + (f": {meaning}" if meaning else ""))
    if package:
        lines += ["", "and every key and config group of the training config, as for hnclip-train (e.g. "
                  "model=vit_l14_openai data.pairs_per_step=256); groups:", "$APP_CONFIG_GROUPS"]
    where = "the `out` key" if run_dir == "${out}" else "the current directory"
    lines += ["", f"Run directory: {where}; Hydra writes no .hydra/ or log file and keeps the working "
              "directory.", "Hydra's flags: --cfg job (print the composed config), --info, --hydra-help, "
              "-m (multirun). Bad keys or values: exit 2."]
    # the template is a string.Template (a literal '$' is '$$', as in a regex's 'R@1$'; Hydra fills
    # $APP_CONFIG_GROUPS) inside an OmegaConf string (a literal '${' would be an interpolation)
    text = "\n".join(line if line == "$APP_CONFIG_GROUPS" else line.replace("$", "$$") for line in lines)
    return text.replace("${", "\\${")


def _yaml(value) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(_yaml(v) for v in value) + "]"
    if value == "":
        return "''"
    if isinstance(value, dict):
        return "{" + ",".join(f"{k}:{_yaml(v)}" for k, v in value.items()) + "}"
    return str(value)


def _fail(prog: str, message: str):
    print(f"{prog}: {message}", file=sys.stderr)
    sys.exit(CONFIG_ERROR_EXIT_CODE)


_HYDRA_FLAGS = None


def _hydra_flags():
    global _HYDRA_FLAGS
    if _HYDRA_FLAGS is None:
        from hydra._internal.utils import get_args_parser
        _HYDRA_FLAGS = {s for a in get_args_parser()._actions for s in a.option_strings}
    return _HYDRA_FLAGS


def _refuse_old_flags(prog: str, argv: list, schema, package: str = ""):
    """`--out x` (the flag style these commands once had): say which key to give instead."""
    names = {f.name for f in fields(schema)}
    for arg in argv:
        flag = arg.split("=", 1)[0]
        if flag.startswith("--") and flag not in _hydra_flags():
            name = flag[2:].replace("-", "_")
            hint = (f"give {package}{name}=VALUE" if name in names
                    else f"keys: {nearest(name, sorted(names), package)}")
            _fail(prog, f"'{flag}' is not an option: every setting is a key=value override ({hint}; "
                  "--help lists the keys)")


def _text_keys(schema, kinds) -> set:
    hints = typing.get_type_hints(schema)
    return {f.name for f in fields(schema) if hints[f.name] in kinds}


# characters Hydra's grammar reads as structure (a mapping, a list, a function call), never text
_STRUCTURE = set("{}[]()")


def _quote(value: str) -> str:
    if value[:1] in "'\"" or not _STRUCTURE & set(value):
        return value
    return "'" + value.replace("'", "\\'") + "'"


def _items(inner: str) -> list:
    """A list's items split at the commas outside braces and quotes (`{a,b}` is one pattern)."""
    items, depth, quote, start = [], 0, None, 0
    for i, c in enumerate(inner):
        if quote:
            quote = None if c == quote else quote
        elif c in "'\"":
            quote = c
        elif c == "{":
            depth += 1
        elif c == "}":
            depth -= 1
        elif c == "," and depth == 0:
            items.append(inner[start:i])
            start = i + 1
    return items + [inner[start:]]


def quote_text_values(overrides: list, schema) -> list:
    """A text value taken literally when it holds braces, brackets or parentheses: shard patterns
    such as `pairs=data/pairs-{000000..000007}.tar` (or `train=[a-{0..7}.tar,b-{0..7}.tar]` for a
    list of text) would otherwise read as a broken Hydra mapping, a regular expression such as
    `skills=(i2t|t2i)$` as a broken function call. Quoted values are left alone."""
    text = _text_keys(schema, (str, Optional[str]))
    lists = _text_keys(schema, (List[str], Optional[List[str]]))
    done = []
    for arg in overrides:
        name, eq, value = arg.partition("=")
        bare = name.lstrip("+")
        if eq and bare in text:
            arg = f"{name}={_quote(value)}"
        elif eq and bare in lists and value.startswith("[") and value.endswith("]") and len(value) > 2:
            arg = f"{name}=[" + ",".join(_quote(v.strip()) for v in _items(value[1:-1])) + "]"
        done.append(arg)
    return done


def unknown_key_message(name: str, valid: list, prefix: str = "") -> str:
    """The one wording of an unknown key, naming the nearest valid ones (list indices, which have
    no keys of their own, left out of the look-up)."""
    generic = ".".join(p for p in name.split(".") if not p.isdigit())
    return (f"unknown config key '{prefix}{name}' (with or without '+', only schema keys exist); "
            f"nearest valid keys: {nearest(generic, valid, prefix)}")


def check_override_keys(overrides: list, valid: list, is_valid: Callable[[str], bool], package: str = ""):
    """Raise ConfigError for the first override whose key is unknown, with or without '+'
    (Hydra's own message would only say 'Could not override', and Hydra exits 1). `valid`: the
    keys the nearest are drawn from; `is_valid(key)` decides (free-form mappings, list indices,
    config groups). Hydra's own keys (hydra.*, hydra/<group>) always pass; with a `package`, only
    keys under it are checked."""
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import HydraException
    try:
        parsed = OverridesParser.create().parse_overrides(list(overrides))
    except HydraException as e:
        raise ConfigError(f"cannot read the overrides: {e}") from None
    for o in parsed:
        name = o.key_or_group
        if package:  # on top of a conf/ config: that config's own schema checks the other keys
            if not name.startswith(package):
                continue
            name = name[len(package):]
        if name == "hydra" or name.startswith(("hydra.", "hydra/")) or is_valid(name):
            continue
        raise ConfigError(unknown_key_message(name, valid, package))


def _check_overrides(prog: str, overrides: list, schema, package: str = ""):
    """Unknown keys, with or without '+', fail before composition, naming the nearest valid ones."""
    for arg in overrides:
        if "=" not in arg and not arg.startswith("~"):  # a positional argument of the old style
            required = [f.name for f in fields(schema) if f.default == REQUIRED]
            hint = " or ".join(f"{package}{k}={arg}" for k in required) or f"KEY={arg}"
            _fail(prog, f"'{arg}' is not a key=value override: give {hint} (--help lists the keys)")
    valid = schema_keys(schema)
    try:
        check_override_keys(overrides, valid, lambda name: name in valid or _free_form(schema, name), package)
    except ConfigError as e:
        _fail(prog, str(e))


def _message(e: BaseException) -> str:
    """Hydra's error and the OmegaConf error under it, on one line."""
    parts = [str(e).strip()]
    if e.__cause__ is not None and str(e.__cause__).strip() not in parts[0]:
        parts.append(str(e.__cause__).strip())
    return "; ".join(" ".join(p.split()) for p in parts)


def _missing_keys(cfg, prefix: str = "") -> list:
    from omegaconf import DictConfig, OmegaConf
    missing = []
    for name in cfg.keys():
        if OmegaConf.is_missing(cfg, name):
            missing.append(prefix + str(name))
        elif isinstance(cfg._get_node(name), DictConfig):
            missing += _missing_keys(cfg[name], f"{prefix}{name}.")
    return missing


def command(schema, run: Callable, *, prog: str, doc: str, run_dir: str = ".",
            check: Optional[Callable] = None, base: Optional[tuple] = None):
    """-> main(argv=None): parse key=value overrides onto `schema` with Hydra, check them, then
    run(config) (an instance of `schema`): main(argv) returns its result, main() (the command
    line) None. `check(config)` raises ConfigError (exit 2) for the command's own rules;
    `run_dir` is "${out}" for a command that writes one folder.

    base=(config_dir, config_name, package): the command runs on top of a conf/ config (the
    training config, for a command that plans or inspects a training run): its keys sit under
    `package.`, every key and group of that config works as for training, and run and check get
    the composed DictConfig."""
    from hydra.core.config_store import ConfigStore
    from omegaconf import DictConfig, OmegaConf

    name = prog.replace("-", "_")
    node = OmegaConf.structured(schema)
    for f in fields(schema):  # mapping keys take new sub-keys without a '+'
        if isinstance(node._get_node(f.name), DictConfig):
            OmegaConf.set_struct(node[f.name], False)
    config_dir, base_name, package = base if base else (None, None, "")
    prefix = f"{package}." if package else ""
    store = ConfigStore.instance()
    store.store(name=f"{name}_schema", node={package: node} if package else node)
    # Hydra leaves logging as the command set it: no log file in the run directory
    logging = [{"override hydra/job_logging": "none"}, {"override hydra/hydra_logging": "none"}]
    store.store(name=name, node={
        # the command's keys first: the composed root stays open for them, while the base
        # config's own nodes keep their schema
        "defaults": [f"{name}_schema"] + ([base_name] if base_name else logging) + ["_self_"],
        "hydra": {"run": {"dir": run_dir}, "output_subdir": None, "job": {"chdir": False},
                  "help": {"template": help_text(prog, doc, schema, run_dir, prefix)}}})
    convert = (lambda cfg: cfg) if base else OmegaConf.to_object

    def initialize():
        import hydra
        if config_dir:
            return hydra.initialize_config_dir(version_base="1.3", config_dir=config_dir)
        return hydra.initialize(version_base="1.3", config_path=None)

    def main(argv=None):
        import hydra
        from hydra._internal.utils import get_args_parser
        from hydra.core.global_hydra import GlobalHydra
        from hydra.errors import HydraException
        from omegaconf.errors import OmegaConfBaseException

        from_command_line = argv is None
        argv = list(sys.argv[1:] if argv is None else argv)
        _refuse_old_flags(prog, argv, schema, prefix)
        flags = get_args_parser().parse_args(argv)
        overrides = quote_text_values(list(flags.overrides), schema)
        argv = [a for a in argv if a not in flags.overrides] + overrides
        _check_overrides(prog, overrides, schema, prefix)
        if not (flags.help or flags.hydra_help or flags.cfg or flags.info or flags.shell_completion):
            # compose once here: type errors, missing keys and the command's own checks exit 2
            # before Hydra makes the run directory
            GlobalHydra.instance().clear()
            try:
                with initialize():
                    composed = hydra.compose(config_name=name, overrides=overrides)
            except (HydraException, OmegaConfBaseException) as e:
                _fail(prog, _message(e))
            missing = _missing_keys(composed)
            if missing:
                _fail(prog, "missing required key(s) " + ", ".join(missing) + ": give "
                      + " ".join(f"{m}=..." for m in missing))
            if check is not None:
                try:
                    check(convert(composed))
                except ConfigError as e:
                    _fail(prog, str(e))
        box = {}

        def task(cfg):
            try:
                box["result"] = run(convert(cfg))
            except Exception as e:  # noqa: BLE001 - re-raised below, outside Hydra's catch-all
                box["error"] = e

        saved = sys.argv
        sys.argv = [prog] + argv
        GlobalHydra.instance().clear()
        try:
            hydra.main(version_base="1.3", config_path=config_dir, config_name=name)(task)()
        finally:
            sys.argv = saved
            GlobalHydra.instance().clear()
        error = box.get("error")
        if isinstance(error, ConfigError):
            _fail(prog, str(error))
        if error is not None:
            raise error
        # a console script does sys.exit(main()): a result would read as a failure there
        return None if from_command_line else box.get("result")

    main.schema, main.prog, main.prefix = schema, prog, prefix
    return main

