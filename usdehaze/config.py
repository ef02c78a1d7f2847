"""Reading YAML config files with one-line errors that name the file (shared by every command).

Bounded: at most ``MAX_YAML_BYTES`` bytes, ``MAX_YAML_ALIASES`` aliases and ``MAX_YAML_NODES``
values once aliases are expanded (an alias bomb is refused before it expands), no recursive
aliases, no NaN or infinite numbers anywhere (``lam: .nan`` names its key).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from usdehaze.errors import UsageError, first_line
from usdehaze.limits import (
    MAX_YAML_ALIASES,
    MAX_YAML_BYTES,
    MAX_YAML_NODES,
    bounded_file,
    non_finite_key,
)


def _loader(path: Path):
    """A SafeLoader that counts aliases while composing and stops past the limit."""
    import yaml

    class Loader(yaml.SafeLoader):
        aliases = 0

        def compose_node(self, parent, index):  # noqa: ANN001 - PyYAML's signature
            if self.check_event(yaml.AliasEvent):
                self.aliases += 1
                if self.aliases > MAX_YAML_ALIASES:
                    raise UsageError(
                        f"{path}: more than {MAX_YAML_ALIASES} YAML aliases (the limit; an alias bomb?)"
                    )
            return super().compose_node(parent, index)

        def construct_mapping(self, node, deep=False):  # noqa: ANN001 - PyYAML's signature
            # a key written twice in one mapping (two ``sampler:`` sections): PyYAML keeps the
            # last silently, dropping the first's settings; merges (<<) may still be overridden
            seen: dict[str, int] = {}
            for key, _ in node.value:
                if isinstance(key, yaml.ScalarNode) and key.tag != "tag:yaml.org,2002:merge":
                    line = key.start_mark.line + 1
                    if key.value in seen:
                        raise UsageError(
                            f"{path}: key '{key.value}' given twice (lines {seen[key.value]} "
                            f"and {line}); keep one"
                        )
                    seen[key.value] = line
            return super().construct_mapping(node, deep)

    return Loader


def _expanded_size(node, path: Path) -> int:
    """How many values the composed YAML graph ``node`` becomes once every alias is expanded
    (shared nodes counted each time they are used), without expanding it; a cycle is refused."""
    import yaml

    sizes: dict[int, int] = {}
    on_path: set[int] = set()
    stack = [(node, False)]
    while stack:
        n, done = stack.pop()
        i = id(n)
        if done:
            on_path.discard(i)
            kids = _children(n, yaml)
            sizes[i] = min(1 + sum(sizes[id(k)] for k in kids), MAX_YAML_NODES + 1)
            continue
        if i in sizes:
            continue
        if i in on_path:
            raise UsageError(f"{path}: not valid YAML (a recursive alias)")
        on_path.add(i)
        stack.append((n, True))
        stack.extend((k, False) for k in _children(n, yaml) if id(k) not in sizes)
    return sizes[id(node)]


def _children(n, yaml) -> list:
    if isinstance(n, yaml.SequenceNode):
        return list(n.value)
    if isinstance(n, yaml.MappingNode):
        return [x for pair in n.value for x in pair]
    return []


def read_yaml(path: str | Path) -> dict[str, Any]:
    """A YAML mapping from ``path``; a missing file, bad YAML or a non-mapping is a UsageError."""
    import yaml

    path = bounded_file(path, "config file", MAX_YAML_BYTES)
    try:
        loader = _loader(path)(path.read_bytes())
        try:
            node = loader.get_single_node()
            if node is not None and _expanded_size(node, path) > MAX_YAML_NODES:
                raise UsageError(
                    f"{path}: more than {MAX_YAML_NODES} values once YAML aliases are expanded (the limit; an alias bomb?)"
                )
            cfg = loader.construct_document(node) if node is not None else None
        finally:
            loader.dispose()
    except yaml.YAMLError as exc:
        raise UsageError(f"{path}: not valid YAML ({first_line(exc)})") from None
    except RecursionError:
        raise UsageError(f"{path}: not valid YAML (nested too deeply)") from None
    except UnicodeDecodeError as exc:
        raise UsageError(f"{path}: not valid YAML (not UTF-8 text: {exc.reason})") from None
    if not isinstance(cfg, dict):
        raise UsageError(f"{path}: expected a YAML mapping at the top level")
    if any(not isinstance(k, str) for k in cfg):
        bad = next(k for k in cfg if not isinstance(k, str))
        raise UsageError(f"{path}: key {bad!r}: expected text keys at the top level")
    bad = non_finite_key(cfg)
    if bad is not None:
        raise UsageError(f"{path}: key '{bad}': NaN or infinite numbers are not allowed")
    return cfg


def check_sections(cfg: dict[str, Any], sections: tuple[str, ...], source: str | Path) -> None:
    """Each of ``sections`` present in ``cfg`` is a mapping: a null one (``distil:`` whose
    settings lost their indent) is one line, not its defaults run without a word."""
    for key in sections:
        if key in cfg and not isinstance(cfg[key], dict):
            got = (
                "nothing (an empty section: indent its settings under it)"
                if cfg[key] is None
                else repr(cfg[key])
            )
            raise UsageError(f"{source}: key '{key}': expected a mapping of settings, got {got}")


def read_pipeline_config(path: str | Path, sections: tuple[str, ...]) -> dict[str, Any]:
    """A pipeline script's YAML config, as :func:`read_yaml` reads it (a key given twice is
    refused) with its ``sections`` mappings; a bad one is one line on stderr and exit 2."""
    import sys

    try:
        cfg = read_yaml(path)
        check_sections(cfg, sections, path)
    except UsageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    return cfg
