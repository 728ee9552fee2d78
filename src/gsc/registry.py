"""One tiny registry type: every stage (captioner, latent encoder, selection, generator, preset) is
chosen by name from one of these, never by an if-chain spread across files."""

from __future__ import annotations

from typing import Callable, Generic, TypeVar

from .errors import GSCError

T = TypeVar("T")


class Registry(Generic[T]):
    def __init__(self, kind: str):
        self.kind = kind
        self._items: dict[str, Callable[..., T]] = {}

    def register(self, name: str):
        def deco(factory):
            if name in self._items:
                raise ValueError(f"{self.kind} {name!r} registered twice")
            self._items[name] = factory
            return factory
        return deco

    def names(self) -> list[str]:
        return sorted(self._items)

    def get(self, name: str) -> Callable[..., T]:
        if name not in self._items:
            raise GSCError(f"unknown {self.kind} {name!r}; choose from {', '.join(self.names())}")
        return self._items[name]

    def create(self, name: str, **kwargs) -> T:
        return self.get(name)(**kwargs)

    def __contains__(self, name: str) -> bool:
        return name in self._items
