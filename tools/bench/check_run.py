#!/usr/bin/env python3
# tools/bench/check_run.py RUN_DIR — asserts that a tokenizer training run learned: the mean L1
# reconstruction loss of the last three metrics.jsonl lines is below 0.7x that of the first three,
# every logged loss is finite, and eval.json reports a codebook utilization. Used by
# tools/device-check.sh on the GPU run; prints one line, exit status 1 when a check fails.
import json, math, sys

run = sys.argv[1]
rec = []
with open(run + "/metrics.jsonl") as f:
    for line in f:
        j = json.loads(line)
        if "rec" in j:
            rec.append(j["rec"])
ev = json.load(open(run + "/eval.json"))
ok = len(rec) >= 6 and all(math.isfinite(r) for r in rec)
first, last = sum(rec[:3]) / 3, sum(rec[-3:]) / 3
ok = ok and last < 0.7 * first and "utilization" in ev
print("check_run: %s: %d loss lines, rec %.4f -> %.4f, eval utilization %s, PSNR %s: %s" %
      (run, len(rec), first, last, ev.get("utilization"), ev.get("psnr"), "ok" if ok else "FAILED"))
sys.exit(0 if ok else 1)
