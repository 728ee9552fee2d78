"""Evaluation: metrics, classical baselines, CompressAI-format results and plots, downstream tasks.

- ``metrics``: PSNR, MS-SSIM, chroma PSNR, ST-LPIPS, FLIP, HaarPSI, MS-GMSD on 8-bit RGB (a small API
  too); LPIPS/DISTS/FID/KID where their backbones load;
- ``classical``: WebP / JPEG XL / AVIF / JPEG at a byte budget (downscale × quality search, the setting
  best on a chosen metric);
- ``compare``: ``gsc compare``, one picture of gsc and the classical codecs at the same bytes;
- ``results``: the CompressAI JSON schema, markdown tables, the per-image cache;
- ``plot``: RD curves of several results files in one PNG, a panel per metric;
- ``bench``, ``codecs``, ``measures``: the one benchmark driver, its codec interface and extra measures
  (``gsc bench``; accelerate splits the images between processes);
- ``evaluate``: ``gsc eval``, a configuration of the driver (a sweep over C);
- ``tasks``: ``gsc eval-task`` (depth, segmentation, detection on reconstructions);
- ``commands``: ``register(app)`` adds the CLI commands.

Submodules are imported on use, so ``gsc --help`` stays fast.
"""
