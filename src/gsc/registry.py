"""One registry type: every stage (captioner, latent encoder, selection, caption coder, generator,
preset, downstream task) is chosen by name from one of these, never by an if-chain spread across files.

An entry is whatever the stage needs to be built or run: a factory (``create(name, **kwargs)`` calls
it), a function, or a value (a preset). Entries register once, by decorator or by call::

    @GENERATORS.register("lite")
    def lite_generator(...): ...

    PRESETS.register("flux-dev", FLUX_DEV)

Reading is read-only and mapping-like: ``name in registry``, ``registry[name]`` (or ``get``, which
names the choices when the name is unknown), ``sorted(registry)``, ``registry.items()``.
"""

from __future__ import annotations

from typing import Callable, Generic, Iterator, TypeVar

from .errors import GSCError

T = TypeVar("T")
_NOTHING = object()


class Registry(Generic[T]):
    def __init__(self, kind: str):
        self.kind = kind
        self._items: dict[str, T] = {}

    def register(self, name: str, entry=_NOTHING):
        """``register(name, entry)`` adds an entry and returns it; ``@register(name)`` adds the decorated one."""
        def add(entry):
            if name in self._items:
                raise ValueError(f"{self.kind} {name!r} registered twice")
            self._items[name] = entry
            return entry
        return add if entry is _NOTHING else add(entry)

    def names(self) -> list[str]:
        return sorted(self._items)

    def get(self, name: str) -> T:
        if name not in self._items:
            raise GSCError(f"unknown {self.kind} {name!r}; choose from {', '.join(self.names())}")
        return self._items[name]

    def create(self, name: str, **kwargs):
        """Call the entry (a factory) with ``kwargs``."""
        factory: Callable = self.get(name)
        return factory(**kwargs)

    def items(self) -> list[tuple[str, T]]:
        return sorted(self._items.items())

    def __getitem__(self, name: str) -> T:
        return self.get(name)

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self._items)
