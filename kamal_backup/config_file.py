"""The optional YAML config file: read with line numbers, duplicate keys refused, `{env: NAME}` resolved."""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kamal_backup.errors import ConfigError

# PyYAML is imported when a config file is read: most runs have none, and its import is about
# 10 ms of every command's start-up.
if TYPE_CHECKING:
    import yaml

Location = tuple[str, ...]


class ConfigFileError(ConfigError):
    """A problem in the config file, named by file and line (exit 2)."""

    def __init__(self, path: Path, line: int | None, problem: str) -> None:
        where = f"{path} line {line}" if line else str(path)
        super().__init__(where, problem)
        self.path = path
        self.line = line


class _DuplicateKey(Exception):
    def __init__(self, key: str, line: int) -> None:
        super().__init__(key)
        self.key = key
        self.line = line


@functools.cache
def _loader() -> type[yaml.SafeLoader]:
    import yaml

    class Loader(yaml.SafeLoader):
        """SafeLoader that refuses a key given twice in one mapping (PyYAML keeps the last)."""

        def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
            seen: set[Any] = set()
            for key_node, _ in node.value:
                key = self.construct_object(key_node, deep=deep)
                if isinstance(key, str | int | float | bool) and key in seen:
                    raise _DuplicateKey(str(key), key_node.start_mark.line + 1)
                seen.add(key)
            mapping: dict[Any, Any] = super().construct_mapping(node, deep=deep)
            return mapping

    return Loader


def _lines(node: yaml.Node, location: Location, found: dict[Location, int]) -> None:
    import yaml

    found[location] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            key = str(key_node.value)
            found[(*location, key)] = key_node.start_mark.line + 1
            _lines(value_node, (*location, key), found)
            found[(*location, key)] = (
                key_node.start_mark.line + 1
            )  # the key's line, not its value's


@dataclass
class ConfigFile:
    """The file's values and the line each key sits on."""

    path: Path
    values: dict[str, Any] = field(default_factory=dict)
    lines: dict[Location, int] = field(default_factory=dict)

    def line_of(self, location: Location) -> int | None:
        """The line of the deepest key of `location` the file has."""
        for end in range(len(location), 0, -1):
            if location[:end] in self.lines:
                return self.lines[location[:end]]
        return None

    def error(self, location: Location, problem: str) -> ConfigFileError:
        dotted = ".".join(location)
        return ConfigFileError(
            self.path, self.line_of(location), f"{dotted}: {problem}" if dotted else problem
        )


def read_config_file(path: Path, environ: Mapping[str, str], known: set[str]) -> ConfigFile:
    """Reads the YAML file; every problem is one ConfigFileError naming the file and the line."""
    if not path.is_file():
        raise ConfigError("--config", f"{path} does not exist or is not a file")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigFileError(path, None, f"cannot read it: {exc.__class__.__name__}") from None
    import yaml

    loader = _loader()(text)
    try:
        node = loader.get_single_node()
        data = loader.construct_document(node) if node is not None else {}
    except _DuplicateKey as exc:
        raise ConfigFileError(path, exc.line, f"{exc.key!r} is given twice") from None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        problem = exc.problem or exc.context or "is not valid YAML"
        raise ConfigFileError(path, mark.line + 1 if mark else None, problem) from None
    except yaml.YAMLError as exc:
        raise ConfigFileError(path, None, f"is not valid YAML ({exc.__class__.__name__})") from None
    finally:
        loader.dispose()
    if data is None:
        data = {}
    config = ConfigFile(path)
    if node is not None:
        _lines(node, (), config.lines)
    if not isinstance(data, dict):
        raise ConfigFileError(path, 1, "must be a mapping of setting names to values")
    for key in data:
        if not isinstance(key, str) or key not in known:
            hint = " (keys are lower-case setting names)" if str(key).lower() in known else ""
            line = config.lines.get((str(key),))
            raise ConfigFileError(path, line, f"unknown key {str(key)!r}{hint}")
    config.values = _resolve_env(data, environ, (), config)
    return config


def _resolve_env(
    value: Any, environ: Mapping[str, str], location: Location, config: ConfigFile
) -> Any:
    """Replaces each `{env: NAME}` by that variable's value; an unset or empty one drops the key."""
    if isinstance(value, dict):
        if set(value) == {"env"}:
            name = value["env"]
            if not isinstance(name, str) or not name:
                raise config.error((*location, "env"), "must name an environment variable")
            return environ.get(name) or None
        resolved = {}
        for key, item in value.items():
            found = _resolve_env(item, environ, (*location, str(key)), config)
            if found is not None:
                resolved[key] = found
        return resolved
    if isinstance(value, list):
        return [_resolve_env(item, environ, location, config) for item in value]
    return value
