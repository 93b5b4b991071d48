#!/usr/bin/env python3
# tools/bench/torch_tokenize.py — the PyTorch side of `nsvq bench tokenize`: inference tokenization of
# a preset (taming-style Encoder, quant_conv, nearest code by argmin of ||z||^2 - 2 z e^T + ||e||^2)
# under torch.no_grad() on the CPU, as images per second over medians, with the peak resident memory.
# Reuses the network definition of torch_train_step.py. Optional; never a build or test dependency.
#   OMP_NUM_THREADS=2 /usr/bin/python3 tools/bench/torch_tokenize.py --preset fmnist --batch 32 --threads 2
import argparse, json, os, resource, statistics, sys, time
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from torch_train_step import PRESETS, encoder  # noqa: E402  (encoder ends with quant_conv)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--preset", default="fmnist", choices=list(PRESETS))
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--codes", type=int, default=1024)
    ap.add_argument("--reps", type=int, default=10)
    ap.add_argument("--cdist", action="store_true", help="nearest code by torch.cdist + argmin instead")
    ap.add_argument("--channels-last", action="store_true", help="model and input in channels_last memory format")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    p = PRESETS[a.preset]
    E = encoder(p).eval()
    codebook = torch.empty(a.codes, p["d"]).uniform_(-1 / a.codes, 1 / a.codes)
    x = torch.rand(a.batch, p["cin"], p["res"], p["res"]) * 2 - 1
    if a.channels_last:
        E = E.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)

    def tokenize():
        with torch.no_grad():
            z = E(x)
            b, d, h, w = z.shape
            zf = z.permute(0, 2, 3, 1).reshape(-1, d)
            if a.cdist:
                idx = torch.cdist(zf, codebook).argmin(1)
            else:
                dist = (zf ** 2).sum(1, keepdim=True) + (codebook ** 2).sum(1) - 2 * zf @ codebook.t()
                idx = dist.argmin(1)
            return idx.reshape(b, h, w)

    for _ in range(2):
        tokenize()
    t = []
    for _ in range(a.reps):
        s = time.perf_counter(); tokenize(); t.append(time.perf_counter() - s)
    ms = statistics.median(t) * 1e3
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    name = "torch tokenize %s b%d k%d%s" % (a.preset, a.batch, a.codes, " channels_last" if a.channels_last else "")
    print(json.dumps({"name": name, "ms_median": round(ms, 3),
                      "img_per_s": round(a.batch / ms * 1e3, 2), "peak_rss_mb": round(rss, 1), "threads": a.threads,
                      "device": "cpu (torch %s)" % torch.__version__}))


if __name__ == "__main__":
    main()
