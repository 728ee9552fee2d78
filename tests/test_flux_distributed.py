"""Two processes on one CPU machine (accelerate's launcher, gloo), against one process with the same global
batch: sharded precompute, data-parallel train-adapter, and `gsc eval` split between processes.

accelerate 1.15 starts several CPU processes only through mpirun under ``--cpu``; its ``--multi_gpu``
launcher (torchrun) starts them on a machine without CUDA, and gsc then asks for CPU processes on gloo
(``Accelerator(cpu=True)``). Each launch takes 20-30 s on 2 busy cores, mostly imports.
"""

import json
import socket
import subprocess
import sys
import textwrap
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip("diffusers")
pytest.importorskip("accelerate")

from safetensors.torch import load_file  # noqa: E402

from gsc.train.adapter import AdapterTrainConfig  # noqa: E402

SRC = str(Path(__file__).resolve().parents[1] / "src")

pytestmark = [pytest.mark.usefixtures("one_thread", "fresh_accelerate"), pytest.mark.slow]   # two processes


@pytest.fixture()
def fresh_accelerate():
    yield
    from accelerate.state import AcceleratorState

    AcceleratorState._reset_state(reset_partial_state=True)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    from PIL import Image

    root = tmp_path_factory.mktemp("dist")
    rng = np.random.default_rng(0)
    (root / "images" / "sub").mkdir(parents=True)
    for name, size in [("a.png", (40, 56)), ("a.jpg", (48, 36)), ("sub/b.png", (32, 44)), ("c.png", (36, 36))]:
        Image.fromarray((rng.random((*size, 3)) * 255).astype(np.uint8)).save(root / "images" / name)
    (root / "captions.json").write_text(json.dumps({"a.png": "a red door", "a.jpg": "a blue sky",
                                                    "sub/b.png": "green grass", "c.png": "a cat"}))
    return root


def launch(*args, cwd):
    """Two processes through accelerate's launcher, on a free port (other test runs may hold 29500)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
           "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no", "--main_process_port",
           str(port), *args]
    env = {"PYTHONPATH": SRC, "PATH": "/usr/bin:/bin", "OMP_NUM_THREADS": "1", "HOME": str(cwd)}
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=300, cwd=cwd, env=env)
    assert res.returncode == 0, res.stderr[-3000:]
    return res.stdout


def flat(state):
    return torch.cat([v.double().flatten() for _, v in sorted(state.items())])


def test_two_processes_precompute_and_train_as_one_with_the_same_global_batch(data, tmp_path):
    from gsc.generate.flux_adapter import FluxChannelAdapter
    from gsc.generate.flux_tiny import tiny_components
    from gsc.train.trainer import AdapterTrainer

    cfg = AdapterTrainConfig(
        data=str(data / "images"), captions=str(data / "captions.json"), out=str(tmp_path / "two"), preset="flux-tiny",
        resolution=32, batch=1, lr=1e-3, warmup=0, steps=3, mixed_precision="no", precompute="all",
        precompute_batch=2, workers=0, condition_dim=16, validate_every=3, validate_images=2, log_every=1,
        save_every=3, trackers="jsonl")
    (tmp_path / "cfg.json").write_text(json.dumps(asdict(cfg)))
    (tmp_path / "run.py").write_text(textwrap.dedent("""
        import json, sys
        from safetensors.torch import save_file
        from gsc.train.adapter import AdapterTrainConfig
        from gsc.train.trainer import AdapterTrainer
        trainer = AdapterTrainer(AdapterTrainConfig(**json.load(open(sys.argv[1]))))
        trainer.train()
        rank = trainer.accelerator.process_index
        state = {k: v.contiguous() for k, v in trainer.unwrapped.state_dict().items()}
        save_file(state, f"{trainer.cfg.out}/rank{rank}.safetensors")
    """))
    out = launch(str(tmp_path / "run.py"), str(tmp_path / "cfg.json"), cwd=tmp_path)

    # Sharded precompute: each process encoded its half of the images, into one cache.
    for rank in (0, 1):
        assert f"precompute: process {rank} of 2 encoded 2 of 4 images (text+image)" in out
    # Data parallel: both processes hold the same adapter.
    r0, r1 = (load_file(str(tmp_path / "two" / f"rank{r}.safetensors")) for r in (0, 1))
    assert all(torch.equal(r0[k], r1[k]) for k in r0)

    # One process with the whole global batch (2) trains the same adapter, up to float rounding: the
    # difference is a millionth of how far training moved the weights.
    one = AdapterTrainer(replace(cfg, out=str(tmp_path / "one"), batch=2))
    one.train()
    mine = {k: v.detach() for k, v in one.unwrapped.state_dict().items()}
    with torch.random.fork_rng():
        torch.manual_seed(cfg.seed)
        base = tiny_components(0)["transformer"]
        init = FluxChannelAdapter.from_transformer(base, 320, condition_dim=16).state_dict()
    moved = (flat(mine) - flat(init)).norm()
    assert moved > 0.1
    assert (flat(r0) - flat(mine)).norm() < 1e-3 * moved
    assert (flat(r0) - flat(mine)).abs().max() < 1e-4
    ema = [load_file(str(tmp_path / run / "adapter" / "diffusion_pytorch_model.safetensors")) for run in ("two", "one")]
    assert (flat(ema[0]) - flat(ema[1])).norm() < 1e-3 * moved
    # The same cache, file by file.
    cache = tmp_path / "one" / "cache"
    files = sorted(p.relative_to(cache) for p in cache.rglob("*.safetensors"))
    assert len(files) == 8
    for f in files:
        a, b = load_file(str(tmp_path / "one" / "cache" / f)), load_file(str(tmp_path / "two" / "cache" / f))
        for k in a:
            torch.testing.assert_close(a[k], b[k])
    # The same losses, and the validation loss (fixed t and ε) fell.
    logs = [[json.loads(line) for line in (tmp_path / run / "log.jsonl").read_text().splitlines()]
            for run in ("two", "one")]
    for key in ("loss", "val_loss"):
        two_, one_ = ([r[key] for r in log if key in r] for log in logs)
        assert len(two_) == len(one_) > 1 and np.allclose(two_, one_, rtol=1e-5)
    val = [r["val_loss"] for r in logs[0] if "val_loss" in r]
    assert val[-1] < val[0]


def test_gsc_eval_split_between_two_processes_equals_one(data, tmp_path):
    from gsc.cli import main

    common = ["eval", str(data / "images"), "--preset", "flux-tiny", "--channels", "2", "--captions",
              str(data / "captions.json"), "--no-learned"]
    out = launch("-m", "gsc.cli", *common, "-o", str(tmp_path / "two.json"), cwd=tmp_path)
    assert out.count("| codec | C | images fit |") == 1  # one process 0 wrote the table (two non-distributed runs would print two)
    assert main([*common, "-o", str(tmp_path / "one.json")]) == 0
    two, one = (json.loads((tmp_path / f"{n}.json").read_text())["per_image"] for n in ("two", "one"))
    key = lambda r: (r["image"], r["channels"])  # noqa: E731
    assert sorted(map(key, two)) == sorted(map(key, one)) and len(one) == 3  # the 3 top-level images
    by_key = {key(r): r for r in one}
    for r in two:
        assert r["bytes"] == by_key[key(r)]["bytes"]
        assert r["psnr"] == pytest.approx(by_key[key(r)]["psnr"], abs=1e-6)
