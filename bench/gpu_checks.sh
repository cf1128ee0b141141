#!/usr/bin/env bash
# One prepared run of every GPU check, for a lent GPU machine (python3 with torch there):
# the CUDA-only tests, bench_gpu.py, bench_protocol.py and bench_models.py's training step at
# full width (SpotTune's compiled tail against the eager one, with its compile time and
# break-even) and bench_backbones.py (the open track's methods against finetune on ViT-S/16 and
# ResNet-50 at 224 px: images/s and peak memory), outputs into ${OUT:-results/bench}.
# pycocotools (for preparing the synthetic data) and timm with its dependencies (safetensors,
# huggingface_hub) from wheels in .whl/ when given.
set -u
OUT=${OUT:-results/bench}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}
if ls .whl/*.whl >/dev/null 2>&1; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
        && export PYTHONPATH=/tmp/site:$PYTHONPATH
fi
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
python3 -c "import torch; print('torch', torch.__version__, torch.cuda.get_device_name())"
timeout "${TESTS_S:-90}" python3 -m pytest -q -p no:cacheprovider -k "cuda or graph" \
    tests/decathlon/engine/test_step.py tests/decathlon/models/test_fused.py tests/decathlon/models/test_compiled_tail.py \
    tests/decathlon/data/test_loader.py tests/decathlon/data/test_transforms.py 2>&1 | tee "$OUT/gpu_tests.log" | tail -25
timeout "${GPU_S:-150}" python3 bench/bench_gpu.py --no-compile --seconds "${PART_S:-4}" --budget "${GPU_BUDGET:-130}" \
    --out-dir "$OUT" 2>&1 | tail -45
timeout "${PROTOCOL_S:-300}" python3 bench/bench_protocol.py --scale "${SCALE:-16}" --epochs 3 --out-dir "$OUT" \
    --data-root /tmp/decathlon-bench 2>&1 | tail -40
timeout "${MODELS_S:-240}" python3 bench/bench_models.py --device cuda --width 1 --batch 128 --channels-last --graphs \
    --only training --rounds 8 --out "$OUT/models_cuda.json" 2>&1 | tail -8
timeout "${BACKBONES_S:-180}" python3 bench/bench_backbones.py --device cuda --batch 128 --bf16 --rounds 6 \
    --out "$OUT/backbones_cuda.json" 2>&1 | tail -20
