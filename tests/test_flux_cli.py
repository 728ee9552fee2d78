"""`gsc encode` / `gsc decode` with the flux-tiny preset, end to end through the CLI (typer's CliRunner
on gsc.cli.app, in process; tests/test_flux_generator.py checks the separate-process case)."""

import importlib.util
import json

import numpy as np
import pytest

pytest.importorskip("diffusers")
if importlib.util.find_spec("compressai") is None:  # imported through gsc's torchvision-free shim
    pytest.skip("compressai is not installed", allow_module_level=True)

from typer.testing import CliRunner  # noqa: E402


pytestmark = pytest.mark.usefixtures("one_thread")


def test_flux_tiny_cli_encode_then_decode(tmp_path):
    from PIL import Image

    from gsc.cli import app

    rng = np.random.default_rng(0)
    y, x = np.mgrid[0:40, 0:56]
    smooth = np.stack([x / 56, y / 40, (x + y) / 96], -1) * 200 + rng.random((40, 56, 3)) * 40
    Image.fromarray(smooth.astype(np.uint8)).save(tmp_path / "in.png")
    runner = CliRunner()
    enc = runner.invoke(app, ["encode", str(tmp_path / "in.png"), "-o", str(tmp_path / "x.gsc"), "--preset",
                              "flux-tiny", "--channels", "2", "--caption", "a gradient of colours"])
    assert enc.exit_code == 0, (enc.output, enc.exception)
    assert (tmp_path / "x.gsc").stat().st_size < 64
    for name in ("a.png", "b.png"):
        dec = runner.invoke(app, ["decode", str(tmp_path / "x.gsc"), "-o", str(tmp_path / name), "--quiet"])
        assert dec.exit_code == 0, (dec.output, dec.exception)
    a, b = (np.asarray(Image.open(tmp_path / n)) for n in ("a.png", "b.png"))
    assert a.shape == (40, 56, 3)
    assert np.array_equal(a, b)  # same stream, same seed: the same image
    assert a.std() > 0


@pytest.fixture()
def tiny_stream(tmp_path):
    from PIL import Image

    from gsc.cli import app

    rng = np.random.default_rng(1)
    Image.fromarray((rng.random((32, 48, 3)) * 255).astype(np.uint8)).save(tmp_path / "in.png")
    enc = CliRunner().invoke(app, ["encode", str(tmp_path / "in.png"), "-o", str(tmp_path / "x.gsc"), "--preset",
                                   "flux-tiny", "--channels", "2", "--caption", "a red door"])
    assert enc.exit_code == 0, (enc.output, enc.exception)
    return tmp_path / "x.gsc"


def test_flux_cli_decode_options_reach_the_pipeline(tiny_stream, tmp_path, monkeypatch):
    # Every decode option must arrive at the pipeline: the memory options at apply_memory_options, the
    # dtype in the transformer's weights, the guidance in the generator (and the image).
    import torch

    import gsc.generate.flux_pipeline as flux
    from gsc.cli import app

    seen = []
    original = flux.apply_memory_options

    def record(pipe, device, offload="none", fp8=False, vae_tiling=False):
        seen.append({"pipe": pipe, "device": device, "offload": offload, "fp8": fp8, "vae_tiling": vae_tiling})
        return original(pipe, device, offload, fp8, vae_tiling)

    monkeypatch.setattr(flux, "apply_memory_options", record)

    def decode(name, *options):
        res = CliRunner().invoke(app, ["decode", str(tiny_stream), "-o", str(tmp_path / name), "--quiet", *options])
        assert res.exit_code == 0, (res.output, res.exception)
        from PIL import Image

        return np.asarray(Image.open(tmp_path / name)).astype(float)

    plain = decode("plain.png")
    assert seen[-1]["offload"] == "none" and seen[-1]["device"] == "cpu"
    same = decode("group.png", "--offload", "group", "--device", "cpu", "--vae-tiling")
    assert {k: seen[-1][k] for k in ("offload", "device", "vae_tiling")} == {"offload": "group", "device": "cpu",
                                                                            "vae_tiling": True}
    assert np.array_equal(same, plain)
    decode("model.png", "--offload", "model")
    assert seen[-1]["offload"] == "model"
    fp8 = decode("fp8.png", "--fp8")
    assert seen[-1]["fp8"] and seen[-1]["pipe"].transformer.transformer_blocks[0].attn.to_q.weight.dtype == \
        torch.float8_e4m3fn
    bf16 = decode("bf16.png", "--dtype", "bf16")
    assert seen[-1]["pipe"].transformer.dtype == torch.bfloat16
    guided = decode("guided.png", "--guidance", "8")
    for other in (fp8, bf16, guided):
        assert np.abs(other - plain).mean() > 0.01  # each changed the numbers, so each reached the model


def test_flux_cli_decode_refuses_what_does_not_apply(tiny_stream, tmp_path, capsys):
    from gsc.cli import main

    for options, message in ((["--dtype", "fp16"], "overflows in float16"),
                             (["--offload", "sequential"], "offload=sequential"),
                             (["--offload", "disk"], "unknown offload"),
                             (["--device", "cuda:7"], "not usable here")):
        capsys.readouterr()
        assert main(["decode", str(tiny_stream), "-o", str(tmp_path / "x.png"), "-q", *options]) == 1, options
        err = capsys.readouterr().err
        assert message in err.strip().splitlines()[-1], (options, err)  # the one-line error, last
    # A lite stream has no use for the FLUX options: one line naming them.
    from gsc.codec import Codec

    lite = tmp_path / "lite.gsc"
    lite.write_bytes(Codec("lite").encode(np.zeros((32, 32, 3), np.uint8), caption="x", max_bpp=1.0))
    capsys.readouterr()
    assert main(["decode", str(lite), "-o", str(tmp_path / "y.png"), "-q", "--dtype", "bf16", "--guidance", "2"]) == 1
    err = capsys.readouterr().err
    assert "dtype" in err.strip().splitlines()[-1] and "guidance" in err.strip().splitlines()[-1], err
    assert not (tmp_path / "x.png").exists() and not (tmp_path / "y.png").exists()


def test_flux_cli_encode_captioner_options_reach_qwen(tmp_path):
    # --captioner-model / --caption-tokens / --device build the qwen2.5-vl captioner from a local folder
    # (a tiny random Qwen2.5-VL here): the stream's caption is what that model writes in that many tokens.
    from PIL import Image
    from transformers import Qwen2VLImageProcessorPil

    from gsc.caption.captioners import QwenCaptioner
    from gsc.cli import app, main
    from gsc.codec import Codec
    from gsc.image import load_image
    from test_caption import tiny_qwen, tiny_tokenizer

    tokenizer = tiny_tokenizer()
    model, processor = tiny_qwen(tokenizer), Qwen2VLImageProcessorPil(min_pixels=56 * 56, max_pixels=112 * 112)
    for part in (model, tokenizer, processor):
        part.save_pretrained(tmp_path / "qwen")
    rng = np.random.default_rng(2)
    Image.fromarray((rng.random((64, 80, 3)) * 255).astype(np.uint8)).save(tmp_path / "in.png")
    res = CliRunner().invoke(app, ["encode", str(tmp_path / "in.png"), "-o", str(tmp_path / "x.gsc"), "--preset",
                                   "flux-tiny", "--channels", "1", "--captioner", "qwen2.5-vl", "--captioner-model",
                                   str(tmp_path / "qwen"), "--caption-tokens", "3", "--device", "cpu"])
    assert res.exit_code == 0, (res.output, res.exception)
    expected = QwenCaptioner(model, tokenizer, processor, max_new_tokens=3).caption(load_image(tmp_path / "in.png"))
    assert Codec().info((tmp_path / "x.gsc").read_bytes())["caption"] == expected
    longer = QwenCaptioner(model, tokenizer, processor, max_new_tokens=8).caption(load_image(tmp_path / "in.png"))
    assert longer != expected  # so the 3 reached the model
    assert main([*["encode", str(tmp_path / "in.png"), "-o", str(tmp_path / "y.gsc"), "--preset", "flux-tiny"],
                 "--captioner", "qwen2.5-vl", "--captioner-model", str(tmp_path / "qwen"), "--device", "cuda:7"]) == 1
    # The options belong to the qwen captioner: with a given caption (or lite's "none") they are one line.
    base = ["encode", str(tmp_path / "in.png"), "-o", str(tmp_path / "y.gsc"), "--preset", "flux-tiny"]
    assert main([*base, "--caption", "a door", "--caption-tokens", "3"]) == 1
    assert main(["encode", str(tmp_path / "in.png"), "-o", str(tmp_path / "y.gsc"), "--device", "cpu"]) == 1
    assert not (tmp_path / "y.gsc").exists()


def test_flux_tiny_cli_layers_refine_cuts_and_strict(tmp_path, capsys):
    from PIL import Image

    from gsc.cli import main
    from gsc.format import layered

    y, x = np.mgrid[0:128, 0:192]
    Image.fromarray((np.stack([x / 192, y / 128, (x + y) / 320], -1) * 255).astype(np.uint8)).save(tmp_path / "in.png")
    base = ["--preset", "flux-tiny", "--channels", "2", "--caption", "a gradient"]
    assert main(["encode", str(tmp_path / "in.png"), "-o", str(tmp_path / "all.gsc"), *base,
                 "--layers", "0.01,0.014,0.018"]) == 0
    whole = (tmp_path / "all.gsc").read_bytes()
    (tmp_path / "sent.gsc").write_bytes(whole[:layered.read(whole).report.layers[0][1]])   # its first layer
    assert main(["refine", str(tmp_path / "in.png"), str(tmp_path / "sent.gsc"), "-o", str(tmp_path / "more.gsc"),
                 "--layers", "0.014,0.018"]) == 0
    capsys.readouterr()
    sent, more = ((tmp_path / n).read_bytes() for n in ("sent.gsc", "more.gsc"))
    assert sent + more == whole
    (tmp_path / "cat.gsc").write_bytes(sent + more)
    outs = {}
    for name, args in {"parts": ["sent.gsc", "more.gsc"], "cat": ["cat.gsc"], "all": ["all.gsc"]}.items():
        assert main(["decode", *(str(tmp_path / a) for a in args), "-o", str(tmp_path / f"{name}.png"), "-q"]) == 0
        outs[name] = np.asarray(Image.open(tmp_path / f"{name}.png"))
    assert np.array_equal(outs["parts"], outs["cat"]) and np.array_equal(outs["cat"], outs["all"])
    capsys.readouterr()
    (tmp_path / "cut.gsc").write_bytes(whole[:len(sent) + 3])
    assert main(["decode", str(tmp_path / "cut.gsc"), "-o", str(tmp_path / "cut.png"), "-q"]) == 0
    assert "layer 1 of 3 decoded" in capsys.readouterr().err and (tmp_path / "cut.png").exists()
    assert main(["decode", str(tmp_path / "cut.gsc"), "-o", str(tmp_path / "strict.png"), "--strict"]) == 1
    assert "--strict refuses it" in capsys.readouterr().err and not (tmp_path / "strict.png").exists()
    damaged = bytearray(whole)
    damaged[layered.read(whole).report.layers[0][0]] ^= 0x81      # layer 1's parity repairs it
    (tmp_path / "hit.gsc").write_bytes(bytes(damaged))
    assert main(["decode", str(tmp_path / "hit.gsc"), "-o", str(tmp_path / "hit.png"), "-q"]) == 0
    assert "layers 1–3 of 3 decoded; layer 1: 1 byte repaired" in capsys.readouterr().err
    assert np.array_equal(np.asarray(Image.open(tmp_path / "hit.png")), outs["all"])
    assert main(["info", str(tmp_path / "hit.gsc"), "--json"]) == 0
    assert "layer 1: 1 byte repaired" in json.loads(capsys.readouterr().out)["decoded"]
    assert main(["info", str(tmp_path / "cut.gsc"), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert [layer["state"] for layer in info["layers"]] == ["ok", "cut"] and "layer 1 of 3" in info["decoded"]
