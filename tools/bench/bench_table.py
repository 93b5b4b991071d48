#!/usr/bin/env python3
# tools/bench/bench_table.py BENCH.jsonl — the short table device-check prints last: every
# benchmark JSON line (nsvq and PyTorch) as name / mode / ms / rate, then the ratios the GPU issue
# targets: nsvq's train step (each precision / graph mode) against PyTorch (eager fp32, eager and
# compiled tf32) at the same preset and batch, and the
# nearest-code search against cuBLAS GEMM of the same shape.
import json, sys

rows = []
for line in open(sys.argv[1]):
    line = line.strip()
    if line.startswith("{"):
        try:
            r = json.loads(line)
        except ValueError:
            continue
        if "name" in r:  # not the first line of each bench, which names the CPU kernels
            rows.append(r)
print("%-44s %-12s %10s %12s" % ("benchmark", "mode", "ms", "rate"))
for r in rows:
    rate = next(("%.1f %s" % (r[k], k) for k in ("img_per_s", "gflops", "gbps") if k in r), "")
    print("%-44s %-12s %10.3f %12s" % (r["name"][:44], r.get("mode", "nsvq"), r["ms_median"], rate))
ms = {(r["name"], r.get("mode", "nsvq")): r["ms_median"] for r in rows}
print()
for (name, mode), t in sorted(ms.items()):
    if name.startswith("train-step") and mode.startswith("nsvq"):  # "nsvq fp32", "nsvq tf32", "nsvq fp32+graph"
        for tm in ("eager fp32", "eager tf32", "compile tf32"):
            tt = ms.get(("torch " + name, tm))
            if tt:
                print("%-24s %-16s %.2f ms vs torch %-12s %.2f ms: nsvq %.2fx as fast" % (name, mode, t, tm, tt, tt / t))
gemm = {r["name"].split()[1]: r["ms_median"] for r in rows if r["name"].startswith("gemm ")}
for r in rows:
    if r["name"].startswith("vq "):
        shape = r["name"].split()[-1]  # NxKxD; the GEMM is [N,D] x [K,D]^T: "gemm NxKxD tb"
        if shape in gemm:
            print("%-44s %.3f ms = %.2fx cuBLAS GEMM %s (%.3f ms)" % (r["name"][:44], r["ms_median"],
                  r["ms_median"] / gemm[shape], shape, gemm[shape]))
