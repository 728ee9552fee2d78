"""Import CompressAI without torchvision.

compressai 1.2.8 imports ``torchvision.transforms`` only to list its transforms in a registry, and
torchvision cannot be imported beside the CPU torch wheel used here. A stand-in module is placed in
``sys.modules`` for the duration of the import and removed afterwards. transformers is imported first
when present: it caches a torchvision availability check and chokes on a module without a spec.
"""

from __future__ import annotations

import importlib
import importlib.machinery
import importlib.util
import sys
import types


def import_compressai():
    if "compressai" in sys.modules:
        return sys.modules["compressai"]
    if importlib.util.find_spec("compressai") is None:
        raise ImportError("compressai is not installed: run scripts/install.sh --full "
                          "(pip install --no-deps compressai==1.2.8 and its real dependencies)")
    if importlib.util.find_spec("transformers") is not None:
        importlib.import_module("transformers")
    placed = []
    try:
        importlib.import_module("torchvision")
    except Exception:
        for name in ("torchvision", "torchvision.transforms"):
            stub = types.ModuleType(name)
            stub.__spec__ = importlib.machinery.ModuleSpec(name, None)
            sys.modules[name] = stub
            placed.append(name)
        sys.modules["torchvision"].transforms = sys.modules["torchvision.transforms"]
    try:
        return importlib.import_module("compressai")
    finally:
        for name in placed:
            sys.modules.pop(name, None)
