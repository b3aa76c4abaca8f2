"""Every extension point is a registry of one shape: a name → an object, filled from an entry-point group.

    zoo.domains      Domain            (zoo.domain)           biomedical, genomic, …
    zoo.objectives   objective factory (zoo.objectives)       mlm, clm
    zoo.families     ModelFamily       (zoo.families)         bert, llama
    zoo.task_kinds   TaskKind          (zoo.benchmarks.kinds) token_classification, …
    zoo.methods      Method            (zoo.adapters.base)    full, lora, dsee, emoe

The built-ins are registered in this project's pyproject.toml exactly as a third-party package registers
its own. Entry points are read lazily (metadata only) so `zoo --help` imports nothing heavy; a plug-in
module is imported only when that name is asked for. A plug-in that fails to import is reported by name
while the others keep working. `registry.add(name, obj)` registers one in-process (tests, notebooks).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from importlib.metadata import EntryPoint, entry_points
from typing import Any, Generic, TypeVar

from zoo.errors import UserError, did_you_mean

T = TypeVar("T")


@dataclass(frozen=True)
class BrokenPlugin:
    name: str
    target: str
    error: str


@cache
def _entry_points(group: str) -> dict[str, EntryPoint]:
    found: dict[str, EntryPoint] = {}
    for ep in entry_points(group=group):
        # First distribution wins on a name clash; editable + wheel installs of one dist list it twice.
        found.setdefault(ep.name, ep)
    return found


def entry_point_names(group: str) -> list[str]:
    """Names registered in an entry-point group, from metadata alone (imports no plug-in)."""
    return sorted(_entry_points(group))


def load_target(target: str, default_attr: str) -> Any:
    """The object at 'pkg.module:ATTR' (ATTR may be dotted; default `default_attr`)."""
    module_name, _, attr = target.partition(":")
    obj: Any = importlib.import_module(module_name)
    for part in (attr or default_attr).split("."):
        obj = getattr(obj, part)
    return obj


class Registry(Generic[T]):
    """Name → plug-in object for one entry-point group.

    `kind` names the thing in messages ("domain", "tuning method"); `check` turns what an entry point
    points at into a `T` (or raises TypeError for a plug-in bug). A name with ':' is loaded as a
    'pkg.module:ATTR' path without installing anything (the escape hatch for quick experiments).
    """

    def __init__(self, group: str, kind: str, check: Callable[[Any], T], default_attr: str) -> None:
        self.group = group
        self.kind = kind
        self._check = check
        self._default_attr = default_attr
        self._added: dict[str, T] = {}
        self._loaded: dict[str, T] = {}

    def add(self, name: str, obj: T) -> None:
        """Register `obj` in this process (shadows an entry point of the same name)."""
        self._added[name] = self._check(obj)
        self._loaded.pop(name, None)

    def names(self) -> list[str]:
        return sorted({*_entry_points(self.group), *self._added})

    def get(self, name: str) -> T:
        if name in self._added:
            return self._added[name]
        if name in self._loaded:
            return self._loaded[name]
        if ":" in name:
            obj = self._load(name, name)
        else:
            eps = _entry_points(self.group)
            if name not in eps:
                raise UserError(f"unknown {self.kind} '{name}'{did_you_mean(name, self.names())}")
            obj = self._load(name, eps[name].value)
        self._loaded[name] = obj
        return obj

    def _load(self, name: str, target: str) -> T:
        try:
            return self._check(load_target(target, self._default_attr))
        except UserError:
            raise
        except Exception as err:  # a broken plug-in must not take the CLI down with a traceback
            raise UserError(
                f"{self.kind} plug-in '{name}' ({target}) failed to load: {type(err).__name__}: {err}"
            ) from None

    def all(self, get: Callable[[str], T] | None = None) -> tuple[dict[str, T], list[BrokenPlugin]]:
        """Every registered plug-in that loads, and the ones that do not (with the reason). `get` is
        the loader to use (default `self.get`), for a registry that checks more on load."""
        good: dict[str, T] = {}
        broken: list[BrokenPlugin] = []
        eps = _entry_points(self.group)
        for name in self.names():
            try:
                good[name] = (get or self.get)(name)
            except UserError as err:
                broken.append(BrokenPlugin(name, eps[name].value if name in eps else "?", str(err)))
        return good, broken


# ------------------------------------------------------------------------------------------- domains


def _check_domain(obj: Any) -> Any:
    from zoo.domain import Domain

    if callable(obj) and not isinstance(obj, Domain):
        obj = obj()
    if not isinstance(obj, Domain):
        raise TypeError(f"{obj!r} is a {type(obj).__name__}, not a zoo.domain.Domain")
    return obj


DOMAINS: Registry[Any] = Registry("zoo.domains", "domain", _check_domain, "DOMAIN")


def domain_names() -> list[str]:
    return DOMAINS.names()


def get_domain(name: str) -> Any:
    """The domain registered under `name` (or 'pkg.module:ATTR'), its tasks checked against the
    registered task kinds and their metrics, so a typo in a plug-in fails before any training."""
    domain = DOMAINS.get(name)
    if ":" not in name and domain.name != name:
        raise UserError(
            f"entry point '{name}' points at a domain named '{domain.name}'; the names must match"
        )
    from zoo.benchmarks.kinds import check_task

    for task in domain.tasks:
        check_task(task)
    return domain


def all_domains() -> tuple[list[Any], list[BrokenPlugin]]:
    good, broken = DOMAINS.all(get_domain)
    return list(good.values()), broken
