"""Import packages whose import statements name torchvision (and two debugging leftovers) they never use.

Why this module exists: the CPU torch wheel gsc pins has no torchvision build beside it (the registry's
CUDA builds fail at import: ``operator torchvision::nms does not exist``). Three packages gsc uses
import it at load time anyway, and call nothing from it on the paths gsc takes:

- compressai 1.2.8 lists ``torchvision.transforms`` in a registry (the entropy models need none of it);
- piq 0.8.0 imports ``torchvision.models`` for its LPIPS/DISTS/FID backbones (HaarPSI and MS-GMSD,
  which gsc uses, are plain torch);
- stlpips-pytorch 0.0.2 imports ``torchvision.models`` for its vanilla nets, plus ``IPython.embed``
  and ``torchsummary.summary``. Its shift-tolerant nets are built from its own code, with the
  weights inside its wheel.

``import_with_standins(name, missing)`` puts stand-in modules in front of the import system for the
duration of that one import, only for the modules in ``missing`` that do not import for real, and
takes them out again afterwards. Every attribute of a stand-in is a placeholder class: a package may
subclass it or keep a reference, but calling it raises an ImportError that names the missing
package, so a code path that does need torchvision fails loudly instead of silently.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import sys
import types

TORCHVISION = ("torchvision",)
STLPIPS_LEFTOVERS = ("torchvision", "IPython", "torchsummary")


class _PlaceholderMeta(type):
    def __getattr__(cls, name):  # models.inception.InceptionA: any depth of attributes
        if name.startswith("__"):
            raise AttributeError(name)
        return _placeholder(f"{cls._standin_path}.{name}")


def _placeholder(path: str) -> type:
    root = path.split(".")[0]

    def __init__(self, *args, **kwargs):
        raise ImportError(f"{path} needs {root}, which is not installed here (gsc imports the package that "
                          f"names it with a stand-in; see gsc/_standins.py)")

    return _PlaceholderMeta(path.rsplit(".", 1)[-1], (), {"__init__": __init__, "_standin_path": path})


class _StandInModule(types.ModuleType):
    def __getattr__(self, name):
        if name.startswith("__"):
            raise AttributeError(name)
        return _placeholder(f"{self.__name__}.{name}")


class _StandInFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Serves a stand-in for each of ``roots`` and any submodule below them."""

    def __init__(self, roots: set[str]):
        self.roots = roots
        self.made: list[str] = []

    def find_spec(self, fullname, path=None, target=None):
        if fullname.split(".")[0] not in self.roots:
            return None
        # is_package: ``import torchvision.models.utils`` looks for submodules under it
        return importlib.machinery.ModuleSpec(fullname, self, is_package=True)

    def create_module(self, spec):
        module = _StandInModule(spec.name)
        module.__path__ = []
        self.made.append(spec.name)
        return module

    def exec_module(self, module):
        pass


def _imports_for_real(name: str) -> bool:
    if name in sys.modules:
        return True
    if importlib.util.find_spec(name) is None:
        return False
    try:
        importlib.import_module(name)
    except Exception:  # e.g. a CUDA torchvision beside the CPU torch: installed, but broken
        return False
    return True


def import_with_standins(name: str, missing: tuple[str, ...], prime: tuple[str, ...] = ()):
    """Import ``name`` with stand-ins for those of ``missing`` that do not import for real.

    ``prime``: modules to import first when installed. transformers caches a torchvision availability
    check at its own import, so it must never first be imported while a stand-in is in place.
    """
    if name in sys.modules:
        return sys.modules[name]
    for p in prime:
        if p not in sys.modules and importlib.util.find_spec(p) is not None:
            importlib.import_module(p)
    roots = {m for m in missing if not _imports_for_real(m)}
    if not roots:
        return importlib.import_module(name)
    finder = _StandInFinder(roots)
    sys.meta_path.insert(0, finder)
    try:
        return importlib.import_module(name)
    finally:
        sys.meta_path.remove(finder)
        for m in finder.made:
            sys.modules.pop(m, None)
