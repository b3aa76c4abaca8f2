"""Domain discovery through the `zoo.domains` entry-point group.

Entry points are read lazily (metadata only) so `zoo --help` imports nothing heavy; a domain module is
imported only when that domain is asked for. A plugin that fails to import is reported by name while
the others keep working.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from functools import lru_cache
from importlib.metadata import EntryPoint, entry_points

from zoo.domain import Domain
from zoo.errors import UserError, did_you_mean

GROUP = "zoo.domains"


@dataclass(frozen=True)
class BrokenPlugin:
    name: str
    target: str
    error: str


@lru_cache(maxsize=1)
def _entry_points() -> dict[str, EntryPoint]:
    found: dict[str, EntryPoint] = {}
    for ep in entry_points(group=GROUP):
        # First distribution wins on a name clash; editable + wheel installs of one dist list it twice.
        found.setdefault(ep.name, ep)
    return found


def domain_names() -> list[str]:
    return sorted(_entry_points())


def _load_target(target: str) -> Domain:
    module_name, _, attr = target.partition(":")
    obj = importlib.import_module(module_name)
    for part in (attr or "DOMAIN").split("."):
        obj = getattr(obj, part)
    if callable(obj) and not isinstance(obj, Domain):
        obj = obj()
    if not isinstance(obj, Domain):
        raise TypeError(f"{target} is a {type(obj).__name__}, not a zoo.domain.Domain")
    return obj


@lru_cache(maxsize=None)
def get_domain(name: str) -> Domain:
    """The domain registered under `name`, or a 'pkg.module:ATTR' dotted path (escape hatch)."""
    if ":" in name:
        try:
            return _load_target(name)
        except (ImportError, AttributeError, TypeError) as err:
            raise UserError(f"could not load domain plugin '{name}': {err}") from None
    eps = _entry_points()
    if name not in eps:
        raise UserError(f"unknown domain '{name}'{did_you_mean(name, eps)}")
    try:
        domain = _load_target(eps[name].value)
    except Exception as err:  # a broken plugin must not take the CLI down with a traceback
        raise UserError(f"domain plugin '{name}' ({eps[name].value}) failed to load: {type(err).__name__}: {err}") from None
    if domain.name != name:
        raise UserError(f"entry point '{name}' points at a domain named '{domain.name}'; the names must match")
    return domain


def all_domains() -> tuple[list[Domain], list[BrokenPlugin]]:
    """Every registered domain that loads, and the ones that do not (with the reason)."""
    good: list[Domain] = []
    broken: list[BrokenPlugin] = []
    for name, ep in sorted(_entry_points().items()):
        try:
            good.append(get_domain(name))
        except UserError as err:
            broken.append(BrokenPlugin(name, ep.value, str(err)))
    return good, broken
