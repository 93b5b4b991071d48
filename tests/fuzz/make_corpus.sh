#!/usr/bin/env bash
# tests/fuzz/make_corpus.sh — (re)writes the seed corpora of the fuzz targets under tests/fuzz/corpus/:
# small valid inputs of each format, made by nsvq itself where it writes that format, so that the
# fuzzers start inside the parsers instead of at their first check. Crash inputs found later are kept
# beside them as regress-* files (never rewritten here).
#   tests/fuzz/make_corpus.sh [NSVQ]      (default build/bin/nsvq)
set -euo pipefail
cd "$(dirname "$0")"
nsvq=$(realpath "${1:-../../build/bin/nsvq}")
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
C=corpus
mkdir -p $C/json $C/safetensors $C/tokens $C/image $C/args $C/nsvq_open
rm -f $C/*/seed-*

# a tiny tokenizer, its config JSON, an encoder export; token files
"$nsvq" train --preset quickstart -q --steps 2 --codes 16 --eval-n 0 --drift-every 100 --out "$tmp/tok"
"$nsvq" export-images --n 2 -o "$tmp/img" >/dev/null
"$nsvq" tokenize -m "$tmp/tok/checkpoint.safetensors" "$tmp/img/00000.png" -o $C/tokens/seed-1.nsvqt >/dev/null
"$nsvq" tokenize -m "$tmp/tok/checkpoint.safetensors" "$tmp"/img/*.png -o $C/tokens/seed-2.nsvqt >/dev/null
cp "$tmp/img/00000.png" $C/image/seed-gray.png

# JSON: the stored configs (train, latent diffusion) and the corners of the grammar
hdr() {  # the header JSON of a safetensors file
  python3 -c "import struct,sys; b=open(sys.argv[1],'rb').read(); n=struct.unpack('<Q',b[:8])[0]; sys.stdout.write(b[8:8+n].decode())" "$1"
}
hdr "$tmp/tok/checkpoint.safetensors" | python3 -c "import json,sys; print(json.load(sys.stdin)['__metadata__']['config'])" >$C/json/seed-train.json
printf '{"data": "fmnist", "n_train": 0, "dit": "tier1", "steps": 10000, "batch": 64, "lr": 0.001, "weight_decay": 0, "ema": 0.999, "class_dropout": 0.1, "T": 1000, "beta_start": 0.0015, "beta_end": 0.0195, "seed": 0, "log_every": 50, "ckpt_every": 2500, "scale_n": 10000}' >$C/json/seed-ldm.json
printf '[1, -2.5e-3, "a\\u00e9\\n\\"", true, false, null, {"k": [[], {}]}]' >$C/json/seed-grammar.json

# safetensors: a small file with metadata, I32 and F32 tensors (plain, and zstd for the streaming path)
python3 - "$tmp/small.safetensors" <<'PY'
import json, struct, sys
h = {"__metadata__": {"format": "x", "step": "3"},
     "a": {"dtype": "F32", "shape": [2, 3], "data_offsets": [0, 24]},
     "b": {"dtype": "I32", "shape": [4], "data_offsets": [24, 40]},
     "c": {"dtype": "I64", "shape": [], "data_offsets": [40, 48]}}
s = json.dumps(h, separators=(",", ":")).encode()
s += b" " * (-len(s) % 8)
data = struct.pack("<6f", *[0.5 * i for i in range(6)]) + struct.pack("<4i", 1, 2, 3, 4) + struct.pack("<q", 7)
open(sys.argv[1], "wb").write(struct.pack("<Q", len(s)) + s + data)
PY
cp "$tmp/small.safetensors" $C/safetensors/seed-small.safetensors
zstd -q -19 "$tmp/small.safetensors" -o $C/safetensors/seed-small.zst

# nsvq_open: a tokenizer file's header without its tensors (opens; tokenizing reports what is missing),
# plain and zstd
python3 - "$tmp/tok/checkpoint.safetensors" "$tmp/head.safetensors" <<'PY'
import json, struct, sys
b = open(sys.argv[1], "rb").read()
n = struct.unpack("<Q", b[:8])[0]
meta = json.loads(b[8:8 + n])["__metadata__"]
keep = {k: meta[k] for k in ("format", "config", "step")}
keep["part"] = "encoder"
s = json.dumps({"__metadata__": keep}, separators=(",", ":")).encode()
s += b" " * (-len(s) % 8)
open(sys.argv[2], "wb").write(struct.pack("<Q", len(s)) + s)
PY
cp "$tmp/head.safetensors" $C/nsvq_open/seed-head.safetensors
zstd -q -19 "$tmp/head.safetensors" -o $C/nsvq_open/seed-head.zst

# args: option lists as nsvq train / ldm-train take them (NUL-separated)
printf -- '--steps\0100\0--lr\0' >$C/args/seed-1
printf -- '--quantizer=ema\0--dense-loss\0off\0-t\0002\0--codes\0-5\0pos' >$C/args/seed-2
printf -- '--n-train\0 12\0--timesteps\0x\0--tau-peak\0inf\0--zstd=maybe' >$C/args/seed-3

# images: tiny files of the formats stb reads (BMP, TGA; the PNG above)
python3 - $C/image <<'PY'
import struct, sys
d = sys.argv[1]
w = h = 3
px = bytes(range(w * h * 3))
row = (w * 3 + 3) // 4 * 4
bmp = b"".join(px[y * w * 3:(y + 1) * w * 3] + b"\0" * (row - w * 3) for y in range(h))
open(d + "/seed.bmp", "wb").write(b"BM" + struct.pack("<IHHI", 54 + len(bmp), 0, 0, 54) +
                                  struct.pack("<IiiHHIIiiII", 40, w, h, 1, 24, 0, len(bmp), 2835, 2835, 0, 0) + bmp)
open(d + "/seed.tga", "wb").write(struct.pack("<BBBHHBHHHHBB", 0, 0, 2, 0, 0, 0, 0, 0, w, h, 24, 0) + px)
PY
ls -la $C/*
