#!/usr/bin/env bash
# One-go GPU check (issue 20), for a session lent a GPU by the device tool (15 minutes in all,
# start-up included): MediaPipe's GPU delegate on headless EGL, onnxruntime's CUDA provider,
# `realtime-fer bench` and `bench --streams 8 --realtime` with the GPU asked for, and which
# delegate and provider actually ran. On a machine without a GPU every step falls back to the
# CPU and says so (that path is tested here: tests/test_gpu_check.py).
#
#   tools/gpu_check.sh [--quick] [VIDEO]
#
# VIDEO: default ../shared/data/video/pyfeat/WolfgangLanger_Pexels.mp4 (else shared/data/...).
# --quick: 30 frames per bench and 2 streams instead of 8 (the test's mode; about a minute).
# Results (JSON, the config used, the log) go to $OUT (the device tool's folder) or /tmp/gpu_check.
# If mediapipe or pyzmq is missing (the device image lacks them) and a folder wheels/ is beside
# the tree, they are installed from it without the network.
set -uo pipefail
cd "$(dirname "$0")/.."
quick=0
video=""
for arg in "$@"; do
    case "$arg" in
        --quick) quick=1 ;;
        -*) echo "error: unknown option $arg (usage: tools/gpu_check.sh [--quick] [VIDEO])" >&2; exit 2 ;;
        *) video="$arg" ;;
    esac
done
if [ -z "$video" ]; then
    for v in ../shared/data/video/pyfeat/WolfgangLanger_Pexels.mp4 shared/data/video/pyfeat/WolfgangLanger_Pexels.mp4; do
        [ -f "$v" ] && video="$v" && break
    done
fi
if [ -z "$video" ] || [ ! -f "$video" ]; then
    echo "error: no video: give one (tools/gpu_check.sh [--quick] VIDEO)" >&2
    exit 2
fi
py="${PYTHON:-python3}"
out="${OUT:-/tmp/gpu_check}"
mkdir -p "$out"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
unset DISPLAY WAYLAND_DISPLAY   # headless: MediaPipe's GPU delegate must come up on EGL alone

step() { echo; echo "== $*"; }

step "machine"
nvidia-smi -L 2>/dev/null || echo "nvidia-smi: none (no NVIDIA GPU visible)"
"$py" -c "import sys; print('python', sys.version.split()[0])"
if ! "$py" -c "import mediapipe, zmq" 2>/dev/null; then
    if [ -d wheels ]; then
        echo "installing the carried wheels (mediapipe/pyzmq missing)"
        "$py" -m pip install --quiet --no-index --find-links wheels mediapipe pyzmq msgpack rich threadpoolctl pyyaml onnx || true
    fi
    "$py" -c "import mediapipe, zmq" || { echo "error: mediapipe or pyzmq cannot be imported; carry their wheels in wheels/" >&2; exit 2; }
fi

step "MediaPipe Face Landmarker, GPU delegate asked for (headless EGL)"
"$py" tools/gpu_probe.py landmarker "$video"

step "onnxruntime, CUDA provider asked for (device: auto)"
"$py" tools/gpu_probe.py onnx

cat > "$out/gpu.yaml" <<'YAML'
device: auto
landmarker:
  delegate: gpu
YAML
frames=(); streams=8
if [ "$quick" = 1 ]; then frames=(--max-frames 30); streams=2; fi

step "realtime-fer bench (GPU asked for)"
"$py" -m realtime_fer bench "$video" --config "$out/gpu.yaml" "${frames[@]}" --json "$out/bench.json"

step "realtime-fer bench --streams $streams --realtime (GPU asked for)"
"$py" -m realtime_fer bench "$video" --streams "$streams" --realtime --config "$out/gpu.yaml" "${frames[@]}" --json "$out/streams.json"

step "what ran where"
"$py" tools/gpu_probe.py summary "$out"
