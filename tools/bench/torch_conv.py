#!/usr/bin/env python3
# tools/bench/torch_conv.py — the PyTorch side of `nsvq bench conv`: times the same conv2d forward
# and forward+backward (input and weight gradients, bias gradient) on the CPU and prints the same
# JSON lines. Optional; never a build or test dependency. Run with Debian's python3-torch:
#   OMP_NUM_THREADS=2 /usr/bin/python3 tools/bench/torch_conv.py --threads 2 --batch 32 --cin 64 ...
import argparse, json, statistics, time
import torch

p = argparse.ArgumentParser()
for name, d in [("batch", 32), ("cin", 64), ("cout", 64), ("hw", 32), ("kernel", 3), ("stride", 1), ("pad", 1),
                ("threads", 2), ("reps", 10)]:
    p.add_argument("--" + name, type=int, default=d)
p.add_argument("--mode", default="fwdbwd", choices=["fwd", "fwdbwd"])
a = p.parse_args()
torch.set_num_threads(a.threads)
torch.manual_seed(0)
x = torch.randn(a.batch, a.cin, a.hw, a.hw, requires_grad=a.mode == "fwdbwd")
conv = torch.nn.Conv2d(a.cin, a.cout, a.kernel, a.stride, a.pad)
y0 = conv(x)
gy = torch.randn_like(y0)

def step():
    if a.mode == "fwd":
        with torch.no_grad():
            conv(x)
    else:
        conv.zero_grad(set_to_none=True)
        x.grad = None
        conv(x).backward(gy)

for _ in range(2):
    step()
times = []
for _ in range(a.reps):
    t = time.perf_counter()
    step()
    times.append((time.perf_counter() - t) * 1e3)
ms = statistics.median(times)
flops = 2.0 * y0.numel() * a.cin * a.kernel * a.kernel * (3 if a.mode == "fwdbwd" else 1)
name = "torch conv %s b%d %d->%d %dx%d k%d s%d p%d" % (a.mode, a.batch, a.cin, a.cout, a.hw, a.hw, a.kernel, a.stride, a.pad)
print(json.dumps({"name": name, "ms_median": round(ms, 4), "gflops": round(flops / (ms * 1e6), 3),
                  "threads": a.threads, "device": "cpu (torch %s)" % torch.__version__}))
