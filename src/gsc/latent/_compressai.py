"""Import CompressAI without torchvision.

compressai 1.2.8 imports ``torchvision.transforms`` only to list its transforms in a registry, and
torchvision cannot be imported beside the CPU torch wheel used here. ``gsc._standins`` (which owns
the stand-in modules for every package in this situation) serves one for the duration of the import.
transformers is imported first when present: it caches a torchvision availability check.
"""

from __future__ import annotations

import importlib.util
import sys

from .._standins import TORCHVISION, import_with_standins


def import_compressai():
    if "compressai" in sys.modules:
        return sys.modules["compressai"]
    if importlib.util.find_spec("compressai") is None:
        raise ImportError("compressai is not installed: run scripts/install.sh --full "
                          "(pip install --no-deps compressai==1.2.8 and its real dependencies)")
    return import_with_standins("compressai", TORCHVISION, prime=("transformers",))
