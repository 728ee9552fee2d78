import importlib
import sys
import types

import pytest

from gsc._standins import import_with_standins


@pytest.fixture()
def fake_package(tmp_path, monkeypatch):
    """A package that imports a missing module at load time, and uses it only on one path."""
    pkg = tmp_path / "needs_missing"
    pkg.mkdir()
    (pkg / "__init__.py").write_text(
        "from gsc_missing_dep import models as tv\n"
        "from gsc_missing_dep.models import vgg16\n"
        "from gsc_missing_dep.models.inception import InceptionA\n"
        "class Block(InceptionA):\n    pass\n"
        "def plain(x):\n    return x + 1\n"
        "def backbone():\n    return tv.alexnet(pretrained=True)\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    yield "needs_missing"
    for name in [m for m in sys.modules if m.startswith("needs_missing")]:
        del sys.modules[name]


def test_standins_serve_one_import_and_then_leave(fake_package):
    with pytest.raises(ModuleNotFoundError):
        importlib.import_module(fake_package)
    mod = import_with_standins(fake_package, ("gsc_missing_dep",))
    assert mod.plain(1) == 2  # the path that needs nothing from the missing module works
    assert not any(m.startswith("gsc_missing_dep") for m in sys.modules)
    # the paths that do need it fail loudly, naming what is missing
    with pytest.raises(ImportError, match="gsc_missing_dep.models.alexnet needs gsc_missing_dep"):
        mod.backbone()
    with pytest.raises(ImportError, match="needs gsc_missing_dep"):
        mod.Block()
    with pytest.raises(ImportError, match="vgg16 needs gsc_missing_dep"):
        mod.vgg16()


def test_a_module_that_imports_is_never_replaced(fake_package, monkeypatch):
    real = types.ModuleType("gsc_missing_dep")
    monkeypatch.setitem(sys.modules, "gsc_missing_dep", real)
    with pytest.raises(ImportError):  # the real module lacks `models`: the stand-in must not hide that
        import_with_standins(fake_package, ("gsc_missing_dep",))
    assert sys.modules["gsc_missing_dep"] is real
