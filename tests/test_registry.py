"""One registry type for every stage chosen by name."""

import pytest

from gsc.errors import GSCError
from gsc.registry import Registry


def test_registry_by_decorator_and_by_call_and_reads_like_a_mapping():
    r = Registry("thing")

    @r.register("b")
    def make_b(x=1):
        return ("b", x)

    assert r.register("a", 5) == 5
    assert sorted(r) == ["a", "b"] == r.names() and len(r) == 2 and "a" in r and "c" not in r
    assert r["a"] == 5 and r.get("b") is make_b and r.create("b", x=3) == ("b", 3)
    assert r.items() == [("a", 5), ("b", make_b)]
    with pytest.raises(GSCError, match="unknown thing 'c'; choose from a, b"):
        r["c"]
    with pytest.raises(ValueError, match="registered twice"):
        r.register("a", 6)


def test_every_stage_registry_is_the_one_type():
    from gsc.caption.captioners import CAPTIONERS
    from gsc.format.caption import CAPTION_CODERS
    from gsc.generate import GENERATORS, load_generators
    from gsc.latent.encoders import LATENT_ENCODERS
    from gsc.latent.selection import SELECTORS
    from gsc.presets import PRESETS

    load_generators()
    for registry in (CAPTIONERS, CAPTION_CODERS, GENERATORS, LATENT_ENCODERS, SELECTORS, PRESETS):
        assert isinstance(registry, Registry) and len(registry), registry
    assert {"lite", "flux-dev"} <= set(PRESETS) and "ssim" in SELECTORS and "model" in CAPTION_CODERS


def test_load_generators_registers_every_generator_without_diffusers():
    # Registration is cheap and cannot fail for a missing optional stack: diffusers loads only when a FLUX
    # generator is built (so there is no ImportError fallback to hide a broken module).
    import subprocess
    import sys
    from pathlib import Path

    code = ("import sys\nfrom gsc.generate import GENERATORS, load_generators\nload_generators()\n"
            "print(sorted(GENERATORS), 'diffusers' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={"PYTHONPATH": str(Path(__file__).resolve().parents[1] / "src"), "PATH": "/usr/bin:/bin"})
    assert out.stdout.strip() == "['flux', 'flux-tiny', 'lite', 'lite-tiny'] False"
