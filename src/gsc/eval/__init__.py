"""Evaluation: metrics, classical baselines, CompressAI-format results and plots, downstream tasks.

- ``metrics``: PSNR and MS-SSIM on 8-bit RGB; learned metrics where their backbones load;
- ``classical``: WebP / JPEG XL / AVIF / JPEG at a byte budget (downscale × quality search);
- ``results``: the CompressAI JSON schema, markdown tables, the per-image cache;
- ``plot``: RD curves of several results files in one PNG;
- ``evaluate``: ``gsc eval`` (accelerate splits the images between processes);
- ``tasks``: ``gsc eval-task`` (depth, segmentation, detection on reconstructions);
- ``commands``: ``register(app)`` adds the CLI commands.

Submodules are imported on use, so ``gsc --help`` stays fast.
"""
