#!/usr/bin/env bash
# Install realtime-fer into the active Python environment, with its extras in the right order.
#
#   tools/install.sh                 # the recognizer only: `pip install .` (no torch)
#   tools/install.sh train dev       # + training and test tools (editable install)
#
# Why an order: the `train` extra needs torch, and PyPI's Linux torch is a CUDA build of several
# GB. On a machine without an NVIDIA GPU a CPU torch is installed first, so that the extra then
# finds torch already satisfied and pulls nothing more. Set TORCH_SPEC to choose it yourself,
# e.g. TORCH_SPEC="torch==2.13.0" (a local CPU wheel) or TORCH_SPEC="torch" (a CUDA machine).
set -euo pipefail
cd "$(dirname "$0")/.."
extras=("$@")
for e in "${extras[@]}"; do
    case "$e" in train|dev|distributed) ;; *) echo "error: unknown extra '$e' (train, dev, distributed)" >&2; exit 2 ;; esac
done
if [ ${#extras[@]} -eq 0 ]; then
    exec python -m pip install .
fi
needs_torch=0
for e in "${extras[@]}"; do [ "$e" = train ] && needs_torch=1; done
if [ $needs_torch = 1 ] && ! python -c "import torch" 2>/dev/null; then
    if [ -n "${TORCH_SPEC:-}" ]; then
        python -m pip install "$TORCH_SPEC"
    elif command -v nvidia-smi >/dev/null && nvidia-smi -L >/dev/null 2>&1; then
        python -m pip install torch                      # a GPU: PyPI's CUDA build is the right one
    else
        # a CPU machine: PyTorch's CPU index alone (no local indexes or wheel folders, which may
        # hold CUDA builds), else the CPU wheel this workplace keeps on disk
        env PIP_CONFIG_FILE=/dev/null PIP_FIND_LINKS= PIP_EXTRA_INDEX_URL= \
            python -m pip install --timeout 15 --retries 1 torch --index-url https://download.pytorch.org/whl/cpu \
            || python -m pip install torch==2.13.0
    fi
    if python -c "import torch, sys; sys.exit(0 if torch.version.cuda is None else 1)"; then
        echo "torch: CPU build" >&2
    else
        echo "note: the torch installed is a CUDA build" >&2
    fi
fi
joined=$(IFS=,; echo "${extras[*]}")
python -m pip install -e ".[${joined}]"
