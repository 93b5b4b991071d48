#!/usr/bin/env bash
# tests/torch_metrics_test.sh — rFID and LPIPS against PyTorch: tests/torch_metrics.py fills pytorch-fid's
# InceptionV3 and lpips's LPIPS-VGG16 with deterministic formula weights, saved as the upstream .pth files
# are laid out; tools/convert-weights.py converts them (and must refuse broken files with one line); then
# `nsvq fid --save-features` (pool3 features, FID) and `nsvq lpips` (per-pair distances) on PNG sets are
# compared with PyTorch; then, on the converted files, a training run with the perceptual loss, `nsvq eval`
# with and without the weights, `eval-gen --fid-weights`, and the commands' errors. Skipped (exit 77)
# without Debian's python3-torch, python3-torchvision and python3-scipy. Usage: torch_metrics_test.sh NSVQ
set -u
nsvq=${1:?usage: torch_metrics_test.sh NSVQ}
PY=/usr/bin/python3
if ! $PY -c 'import torch, torchvision, scipy' 2>/dev/null; then
  echo "torch_metrics: skipped (needs /usr/bin/python3 with torch, torchvision and scipy:" \
       "apt-get install python3-torch python3-torchvision python3-scipy)"
  exit 77
fi
. "$(dirname "$0")/cli_lib.sh"
export OMP_WAIT_POLICY=passive
helper="$(dirname "$0")/torch_metrics.py"
conv="$(dirname "$0")/../tools/convert-weights.py"
w=$tmp/w

# ---- the converter (PyTorch only)
run_ok "formula weights (.pth), images" $PY "$helper" prepare "$tmp"
run_ok "convert inception" $PY "$conv" inception "$w/pt_inception.pth" "$w/inception.safetensors"
run_ok "convert inception (no num_batches_tracked)" \
  $PY "$conv" inception "$w/nobt/pt_inception.pth" "$w/nobt/inception.safetensors"
check "the same file either way" cmp -s "$w/inception.safetensors" "$w/nobt/inception.safetensors"
run_ok "convert lpips" $PY "$conv" lpips "$w/vgg16.pth" "$w/lpips_vgg.pth" "$w/lpips.safetensors"
run_ok "converted = formula weights" $PY "$helper" verify "$w/inception.safetensors" "$w/lpips.safetensors"
cat "$tmp/out"
expect_fail "missing key" "missing key 'Mixed_6b.branch7x7_2.bn.running_var'" \
  $PY "$conv" inception "$w/bad_missing.pth" "$w/bad.safetensors"
expect_fail "unexpected key" "unexpected key 'Mixed_5b.branch1x1.conv.num_batches_tracked'" \
  $PY "$conv" inception "$w/bad_bt.pth" "$w/bad.safetensors"
expect_fail "mis-shaped lin" "'lin3.model.1.weight' has shape \[1, 256, 1, 1\], expected \[1, 512, 1, 1\]" \
  $PY "$conv" lpips "$w/vgg16.pth" "$w/bad_lin.pth" "$w/bad.safetensors"
check "no output after the failures" test ! -e "$w/bad.safetensors"
check "no temporary files left" test -z "$(ls -A "$w" | grep '\.tmp$')"

# ---- nsvq against PyTorch (needs nsvq's fid and lpips commands; each comparison runs when its command ran)
f0=$fail
run_ok "nsvq fid" "$nsvq" fid --fid-weights "$w/inception.safetensors" "$tmp/img/a" "$tmp/img/b" --json \
  --save-features "$tmp/features.safetensors"
if [ "$fail" -eq "$f0" ]; then
  cp "$tmp/out" "$tmp/fid.json"
  run_ok "fid vs PyTorch" $PY "$helper" fid "$w/pt_inception.pth" "$tmp/img/a" "$tmp/img/b" \
    "$tmp/features.safetensors" "$tmp/fid.json"
  cat "$tmp/out"
fi
f0=$fail
run_ok "nsvq lpips" "$nsvq" lpips --lpips-weights "$w/lpips.safetensors" "$tmp/img/a" "$tmp/img/b" --json
if [ "$fail" -eq "$f0" ]; then
  cp "$tmp/out" "$tmp/lpips.json"
  run_ok "lpips vs PyTorch" $PY "$helper" lpips "$w/vgg16.pth" "$w/lpips_vgg.pth" "$tmp/img/a" "$tmp/img/b" \
    "$tmp/lpips.json"
  cat "$tmp/out"
fi

# ---- the metrics and the perceptual loss end to end, on the converted files
inc=$w/inception.safetensors lp=$w/lpips.safetensors
run_ok "train with the perceptual loss" "$nsvq" train --preset quickstart -q --batch 4 --steps 2 --codes 32 \
  --eval-n 8 --eval-batch 8 --probe 8 --drift-every 100 --lpips-weights "$lp" --out "$tmp/run"
check "perceptual loss and its cost logged" grep -q '"perc": [0-9].*"perc_ms": [0-9]' "$tmp/run/metrics.jsonl"
check "the final evaluation has lpips" grep -q '"rfid": null, "lpips": [0-9]' "$tmp/run/eval.json"
ck=$tmp/run/checkpoint.safetensors
expect_ok "eval with both weights" '"rfid": [0-9].*"lpips": [0-9]' \
  "$nsvq" eval -m "$ck" --n 8 --batch 4 --fid-weights "$inc" --lpips-weights "$lp" --json
expect_ok "eval without them: unavailable" '"rfid": null, "lpips": null' "$nsvq" eval -m "$ck" --n 4 --json
expect_ok "eval text output" 'rFID unavailable (no --fid-weights' "$nsvq" eval -m "$ck" --n 4
expect_fail "eval with the wrong file" "--fid-weights .*not a nsvq-inception-fid weights file" \
  "$nsvq" eval -m "$ck" --n 4 --fid-weights "$lp"
run_ok "a small latent-diffusion model" "$nsvq" ldm-train -m "$ck" --n-train 300 --batch 16 --steps 2 --preview 0 -q \
  --out "$tmp/ldm"
expect_ok "eval-gen with FID only" '"fd_proxy_guided": null, "fd_proxy_unguided": null, "fid_guided": [0-9].*"fid_unguided": [0-9]' \
  "$nsvq" eval-gen -m "$tmp/ldm/checkpoint.safetensors" --fid-weights "$inc" --n 20 --steps 2 --json
mkdir -p "$tmp/empty"
expect_fail "fid of a folder without images" "no image files" "$nsvq" fid --fid-weights "$inc" "$tmp/empty" "$tmp/img/b"
expect_fail "fid of one image" "fid: needs at least 2 images" \
  "$nsvq" fid --fid-weights "$inc" "$(ls "$tmp"/img/a/*.png | head -1)" "$tmp/img/b"
expect_fail "fid without weights" "--fid-weights FILE is required" "$nsvq" fid "$tmp/img/a" "$tmp/img/b"
expect_fail "lpips without a counterpart" "has no counterpart" "$nsvq" lpips --lpips-weights "$lp" "$tmp/img/a" "$tmp/empty"
echo "torch_metrics: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
