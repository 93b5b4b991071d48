#!/usr/bin/env python3
# tools/bench/torch_metrics.py — the PyTorch side of `nsvq bench metrics`: pytorch-fid's InceptionV3 pool3
# features of a batch (resized to 299x299) under torch.no_grad(), and LPIPS-VGG16 forward and forward +
# backward to the second image (the perceptual loss), medians in ms (--device cpu | cuda). The networks are the ones
# tests/torch_metrics.py builds as pytorch-fid and lpips build them (torchvision's default init; speed
# does not depend on the values). Optional; never a build or test dependency. Use the tuned allocator:
#   MALLOC_MMAP_THRESHOLD_=4000000000 MALLOC_TRIM_THRESHOLD_=4000000000 OMP_NUM_THREADS=2 \
#     /usr/bin/python3 tools/bench/torch_metrics.py --batch 32 --size 32 --threads 2
import argparse, json, os, statistics, sys, time
import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tests"))
import torch_metrics as tm  # noqa: E402


def median_ms(fn, reps, dev):
    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)
    fn()
    sync()
    ts = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        sync()
        ts.append((time.perf_counter() - t0) * 1000)
    return statistics.median(ts)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--size", type=int, default=32)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--device", default="cpu")
    a = ap.parse_args()
    dev = torch.device(a.device)
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    B, S = a.batch, a.size
    x, y = torch.rand(B, 3, S, S, device=dev), torch.rand(B, 3, S, S, device=dev)
    rows = []
    inc = tm.InceptionPool3(tm.tv_inception().state_dict()).to(dev)
    with torch.no_grad():
        rows.append(("inception-fid pool3 b%d %dpx (-> 299)" % (B, S), median_ms(lambda: inc(x), a.reps, dev)))
    vgg = tm.vgg16_features()
    lp = tm.LPIPS({"features." + k: v for k, v in vgg.state_dict().items()},
                  {"lin%d.model.1.weight" % k: torch.rand(1, c, 1, 1) * 0.1 for k, c in enumerate(tm.LPIPS_CHANNELS)})
    lp = lp.to(dev)
    for p in lp.parameters():
        p.requires_grad_(False)
    a2, b2 = x * 2 - 1, y * 2 - 1
    with torch.no_grad():
        rows.append(("lpips-vgg16 forward b%d %dpx" % (B, S), median_ms(lambda: lp(a2, b2), a.reps, dev)))

    def fwd_bwd():
        with torch.enable_grad():  # tests/torch_metrics.py switches gradients off at import
            b = b2.clone().requires_grad_(True)
            lp(a2, b).mean().backward()
    rows.append(("lpips-vgg16 forward+backward b%d %dpx" % (B, S), median_ms(fwd_bwd, a.reps, dev)))
    for name, ms in rows:
        print(json.dumps({"name": name, "ms_median": round(ms, 3), "img_per_s": round(B * 1000 / ms, 2),
                          "threads": a.threads, "device": "%s (torch %s)" % (a.device, torch.__version__)}))


if __name__ == "__main__":
    main()
