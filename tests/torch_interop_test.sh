#!/usr/bin/env bash
# tests/torch_interop_test.sh — `nsvq export` files in PyTorch (tools/torch_vqgan.py): taming's modules
# load them by name with strict=True, tokenize the images to nsvq's tokens and decode nsvq's tokens to
# nsvq's images, for a vanilla, an l2-normalised and a SimVQ codebook. Skipped (exit 77) without
# Debian's python3-torch. Usage: torch_interop_test.sh NSVQ
set -u
nsvq=${1:?usage: torch_interop_test.sh NSVQ}
PY=/usr/bin/python3
if ! $PY -c 'import torch' 2>/dev/null; then
  echo "torch_interop: skipped (no python3-torch: apt-get install python3-torch to run it)"
  exit 77
fi
. "$(dirname "$0")/cli_lib.sh"
export OMP_WAIT_POLICY=passive
script="$(dirname "$0")/../tools/torch_vqgan.py"
run_ok "images" "$nsvq" export-images --n 6 -o "$tmp/img"
for q in nsvq vq-l2 simvq; do
  run_ok "$q tokenizer" "$nsvq" train --preset quickstart -q --batch 8 --steps 3 --codes 64 --quantizer $q --eval-n 0 \
    --drift-every 100 --probe 16 --out "$tmp/$q"
  run_ok "$q export" "$nsvq" export -m "$tmp/$q/checkpoint.safetensors" -o "$tmp/$q.safetensors"
  run_ok "$q tokenize" "$nsvq" tokenize -m "$tmp/$q.safetensors" "$tmp"/img/*.png -o "$tmp/$q.txt"
  run_ok "$q tokenize (token file)" "$nsvq" tokenize -m "$tmp/$q.safetensors" "$tmp"/img/*.png -o "$tmp/$q.nsvqt"
  run_ok "$q decode" "$nsvq" decode -m "$tmp/$q.safetensors" "$tmp/$q.nsvqt" -o "$tmp/$q-dec"
  run_ok "$q in PyTorch" $PY "$script" "$tmp/$q.safetensors" "$tmp/$q.txt" "$tmp/$q-dec"
  cat "$tmp/out"
done
echo "torch_interop: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
