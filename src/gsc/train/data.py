"""The FLUX adapter's training data: captioned images in a folder tree, their sample order, and their
encodings on disk."""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F

from ..image import IMAGE_SUFFIXES, load_image


def image_keys(folder: str | Path) -> list[str]:
    """Every image under ``folder`` (subfolders too), as sorted relative POSIX paths: unique keys."""
    folder = Path(folder)
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*")
                  if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())


def sample_seed(seed: int, sample: int, stream: str) -> int:
    """A 63-bit seed for one draw (``stream``: "crop", "draw", …) of one sample of the run's sample sequence.

    Every random choice about a sample comes from its own seed, so a sample gets the same crop, condition,
    t and ε however many processes share the run, and a resumed run draws what an uninterrupted one would.
    """
    import hashlib

    digest = hashlib.blake2b(f"{seed}:{sample}:{stream}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") >> 1


class CaptionedImages(torch.utils.data.Dataset):
    """Images under a folder with their captions; item ``sample`` is a square crop at ``resolution``.

    ``sample`` is a position in the run's sample sequence (:class:`ShardedBatches`): image
    ``sample % len(self)``, cropped at random and flipped with the sample's own seed, or centred when
    ``random_crop`` is off. Captions are looked up by the image's relative path, then by its file name;
    an image without one trains with "".
    """

    def __init__(self, folder: str | Path, captions: dict[str, str], resolution: int, random_crop: bool = True,
                 seed: int = 0):
        from ..errors import GSCError

        if resolution % 16 or resolution < 16:
            raise GSCError(f"resolution must be a positive multiple of 16, got {resolution}")
        self.folder = Path(folder)
        if not self.folder.is_dir():
            raise GSCError(f"no image folder at {self.folder}")
        self.keys = image_keys(self.folder)
        if not self.keys:
            raise GSCError(f"no images in {self.folder}")
        self.captions, self.resolution, self.random_crop, self.seed = captions, resolution, random_crop, seed

    def __len__(self) -> int:
        return len(self.keys)

    def caption(self, key: str) -> str:
        return self.captions.get(key, self.captions.get(Path(key).name, ""))

    def __getitem__(self, sample: int) -> dict:
        key, r = self.keys[sample % len(self.keys)], self.resolution
        image = load_image(self.folder / key)
        h, w = image.shape[-2:]
        if min(h, w) != r:  # shorter side to r, so a crop keeps most of the scene
            s = r / min(h, w)
            size = (max(r, round(h * s)), max(r, round(w * s)))
            image = F.interpolate(image[None], size=size, mode="bilinear", antialias=s < 1, align_corners=False)[0]
            h, w = size
        if self.random_crop:
            g = torch.Generator().manual_seed(sample_seed(self.seed, sample, "crop"))
            y, x = (int(torch.randint(0, n - r + 1, (1,), generator=g)) for n in (h, w))
            flip = bool(torch.rand(1, generator=g) < 0.5)
        else:
            y, x, flip = (h - r) // 2, (w - r) // 2, False
        image = image[:, y:y + r, x:x + r].clamp(0, 1)
        return {"image": image.flip(-1) if flip else image, "caption": self.caption(key), "key": key,
                "sample": sample}


class ShardedBatches(torch.utils.data.Sampler):
    """One process's batches of an endless, seeded sample sequence (a ``batch_sampler``).

    The sequence is a fresh permutation of the n images per epoch: position j is image perm_e[j mod n]
    of epoch e = j // n, yielded as the sample id e·n + perm_e[j mod n]. Global batch k is positions
    [k·B, (k+1)·B), B = batch · processes, and process p takes its slice [k·B + p·batch, …). So one
    process with batch B and P processes with batch B/P see the same global batches. ``start`` skips the
    global batches a resumed run already trained on.
    """

    def __init__(self, n: int, batch: int, seed: int, rank: int = 0, processes: int = 1, start: int = 0):
        self.n, self.batch, self.seed, self.rank, self.processes, self.start = n, batch, seed, rank, processes, start
        self._perm: tuple[int, torch.Tensor] | None = None

    def sample(self, position: int) -> int:
        epoch, i = divmod(position, self.n)
        if self._perm is None or self._perm[0] != epoch:
            g = torch.Generator().manual_seed(sample_seed(self.seed, epoch, "epoch"))
            self._perm = (epoch, torch.randperm(self.n, generator=g))
        return epoch * self.n + int(self._perm[1][i])

    def __iter__(self):
        k = self.start
        while True:
            first = (k * self.processes + self.rank) * self.batch
            yield [self.sample(j) for j in range(first, first + self.batch)]
            k += 1


class FeatureCache:
    """Per-image encodings on disk: ``ROOT/PART/KEY.safetensors``, KEY the image's relative path.

    Files are written to a temporary name and renamed into place, so a crash leaves whole files only,
    and a rerun encodes just the images whose file is missing.
    """

    def __init__(self, root: str | Path):
        self.root = Path(root)

    def path(self, part: str, key: str) -> Path:
        return self.root / part / f"{key}.safetensors"

    def has(self, part: str, key: str) -> bool:
        return self.path(part, key).exists()

    def read(self, part: str, key: str) -> dict[str, torch.Tensor]:
        from safetensors.torch import load_file

        return load_file(str(self.path(part, key)))

    def write(self, part: str, key: str, tensors: dict[str, torch.Tensor]) -> None:
        import os

        from safetensors.torch import save_file

        path = self.path(part, key)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.part")
        save_file({k: v.detach().cpu().contiguous() for k, v in tensors.items()}, str(tmp))
        os.replace(tmp, path)


class AdapterSamples(torch.utils.data.Dataset):
    """What one training sample needs from disk: the crop, or its cached encodings, plus cached text.

    ``parts`` names the cached parts to read ("text": T5 + CLIP embeddings; "image": x_0, y and the
    small image of the centre crop); without "image" the crop itself is loaded.
    """

    def __init__(self, images: CaptionedImages, cache: FeatureCache | None = None, parts: tuple[str, ...] = ()):
        self.images, self.cache, self.parts = images, cache, parts

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, sample: int) -> dict:
        key = self.images.keys[sample % len(self.images)]
        item = {"key": key, "sample": sample}
        if "image" not in self.parts:
            item = self.images[sample]
        for part in self.parts:
            item.update(self.cache.read(part, key))
        return item
