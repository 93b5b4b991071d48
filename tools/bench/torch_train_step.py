#!/usr/bin/env python3
# tools/bench/torch_train_step.py — the PyTorch side of `nsvq bench train-step`: the same VQGAN
# training step (taming-style encoder/decoder of the preset, vanilla VQ, PatchGAN; generator forward,
# backward and Adam, then discriminator forward, backward and Adam) timed on the CPU or a CUDA GPU,
# with the peak resident (CPU) or allocated (GPU) memory. Optional; never a build or test dependency.
# CPU, with Debian's python3-torch:
#   OMP_NUM_THREADS=2 /usr/bin/python3 tools/bench/torch_train_step.py --preset fmnist --batch 32 --threads 2
# GPU (strict FP32 like nsvq's default; --tf32 allows TF32 in cuDNN/cuBLAS, --compile uses torch.compile):
#   python3 tools/bench/torch_train_step.py --device cuda --preset cifar10 --batch 256 [--tf32] [--compile]
import argparse, json, resource, statistics, time
import torch
import torch.nn as nn
import torch.nn.functional as F

PRESETS = {  # the numbers of models/vqgan.cpp
    "fmnist": dict(cin=1, res=32, ch=32, mult=[1, 2, 2], nrb=1, groups=8, z=16, d=16, ndf=32, nl=2, attn=True),
    "cifar10": dict(cin=3, res=32, ch=32, mult=[1, 2, 2], nrb=1, groups=8, z=16, d=16, ndf=32, nl=2, attn=True),
    "imagenet128": dict(cin=3, res=128, ch=128, mult=[1, 2, 2, 4], nrb=2, groups=32, z=128, d=128, ndf=64, nl=3, attn=False),
}

def gn(c, g): return nn.GroupNorm(g, c, eps=1e-6)

class Res(nn.Module):
    def __init__(s, i, o, g):
        super().__init__()
        s.norm1, s.conv1, s.norm2, s.conv2 = gn(i, g), nn.Conv2d(i, o, 3, 1, 1), gn(o, g), nn.Conv2d(o, o, 3, 1, 1)
        s.nin = nn.Conv2d(i, o, 1) if i != o else None
    def forward(s, x):
        h = s.conv1(F.silu(s.norm1(x)))
        h = s.conv2(F.silu(s.norm2(h)))
        return (s.nin(x) if s.nin is not None else x) + h

class Attn(nn.Module):
    def __init__(s, c, g):
        super().__init__()
        s.norm, s.q, s.k, s.v, s.proj = gn(c, g), nn.Conv2d(c, c, 1), nn.Conv2d(c, c, 1), nn.Conv2d(c, c, 1), nn.Conv2d(c, c, 1)
    def forward(s, x):
        b, c, h, w = x.shape
        t = s.norm(x)
        q, k, v = [m(t).reshape(b, 1, c, h * w).transpose(2, 3) for m in (s.q, s.k, s.v)]
        o = F.scaled_dot_product_attention(q, k, v) if hasattr(F, "scaled_dot_product_attention") else \
            torch.softmax(q @ k.transpose(2, 3) / c ** 0.5, -1) @ v
        return x + s.proj(o.transpose(2, 3).reshape(b, c, h, w))

class Down(nn.Module):
    def __init__(s, c):
        super().__init__(); s.conv = nn.Conv2d(c, c, 3, 2, 0)
    def forward(s, x): return s.conv(F.pad(x, (0, 1, 0, 1)))

class Up(nn.Module):
    def __init__(s, c):
        super().__init__(); s.conv = nn.Conv2d(c, c, 3, 1, 1)
    def forward(s, x): return s.conv(F.interpolate(x, scale_factor=2.0, mode="nearest"))

def encoder(p):
    L, ch, g = [nn.Conv2d(p["cin"], p["ch"], 3, 1, 1)], p["ch"], p["groups"]
    cur = ch
    for i, m in enumerate(p["mult"]):
        for _ in range(p["nrb"]):
            L.append(Res(cur, ch * m, g)); cur = ch * m
        if i != len(p["mult"]) - 1: L.append(Down(cur))
    L += [Res(cur, cur, g)] + ([Attn(cur, g)] if p["attn"] else []) + [Res(cur, cur, g), gn(cur, g), nn.SiLU(),
          nn.Conv2d(cur, p["z"], 3, 1, 1), nn.Conv2d(p["z"], p["d"], 1)]
    return nn.Sequential(*L)

def decoder(p):
    ch, g, cur = p["ch"], p["groups"], p["ch"] * p["mult"][-1]
    L = [nn.Conv2d(p["d"], p["z"], 1), nn.Conv2d(p["z"], cur, 3, 1, 1), Res(cur, cur, g)] + \
        ([Attn(cur, g)] if p["attn"] else []) + [Res(cur, cur, g)]
    for i in reversed(range(len(p["mult"]))):
        for _ in range(p["nrb"] + 1):
            L.append(Res(cur, ch * p["mult"][i], g)); cur = ch * p["mult"][i]
        if i != 0: L.append(Up(cur))
    L += [gn(cur, g), nn.SiLU(), nn.Conv2d(cur, p["cin"], 3, 1, 1)]
    return nn.Sequential(*L)

def discriminator(p):
    ndf, L = p["ndf"], [nn.Conv2d(p["cin"], p["ndf"], 4, 2, 1), nn.LeakyReLU(0.2)]
    m = 1
    for n in range(1, p["nl"]):
        pm, m = m, min(2 ** n, 8)
        L += [nn.Conv2d(ndf * pm, ndf * m, 4, 2, 1, bias=False), nn.BatchNorm2d(ndf * m), nn.LeakyReLU(0.2)]
    pm, m = m, min(2 ** p["nl"], 8)
    L += [nn.Conv2d(ndf * pm, ndf * m, 4, 1, 1, bias=False), nn.BatchNorm2d(ndf * m), nn.LeakyReLU(0.2),
          nn.Conv2d(ndf * m, 1, 4, 1, 1)]
    return nn.Sequential(*L)

def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--preset", default="fmnist", choices=list(PRESETS))
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--codes", type=int, default=1024)
    ap.add_argument("--reps", type=int, default=10)
    ap.add_argument("--device", default="cpu", help="cpu | cuda")
    ap.add_argument("--tf32", action="store_true", help="cuda: allow TF32 tensor cores (default: strict FP32)")
    ap.add_argument("--compile", action="store_true", help="torch.compile the three networks")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    dev = torch.device(a.device)
    cuda = dev.type == "cuda"
    if cuda:
        torch.backends.cuda.matmul.allow_tf32 = a.tf32
        torch.backends.cudnn.allow_tf32 = a.tf32
        torch.backends.cudnn.benchmark = True
    p = PRESETS[a.preset]
    E, G, D = encoder(p).to(dev), decoder(p).to(dev), discriminator(p).to(dev)
    codebook = nn.Embedding(a.codes, p["d"]).to(dev); codebook.weight.data.uniform_(-1 / a.codes, 1 / a.codes)
    opt_g = torch.optim.Adam(list(E.parameters()) + list(G.parameters()) + list(codebook.parameters()), 2e-4, betas=(0.5, 0.9))
    opt_d = torch.optim.Adam(D.parameters(), 2e-4, betas=(0.5, 0.9))
    x = torch.rand(a.batch, p["cin"], p["res"], p["res"], device=dev) * 2 - 1
    if a.compile:
        E, G, D = torch.compile(E), torch.compile(G), torch.compile(D)
    sync = torch.cuda.synchronize if cuda else (lambda: None)

    def step():
        z = E(x)
        zf = z.permute(0, 2, 3, 1).reshape(-1, p["d"])
        e = codebook.weight
        d = (zf ** 2).sum(1, keepdim=True) + (e ** 2).sum(1) - 2 * zf @ e.t()
        q = e[d.argmin(1)]
        vq = F.mse_loss(q, zf.detach()) + 0.25 * F.mse_loss(zf, q.detach())
        zq = (zf + (q - zf).detach()).reshape(z.shape[0], z.shape[2], z.shape[3], -1).permute(0, 3, 1, 2)
        xr = G(zq)
        loss_g = (x - xr).abs().mean() + 0.1 * -D(xr).mean() + vq
        opt_g.zero_grad(set_to_none=True); loss_g.backward(); opt_g.step()
        loss_d = 0.5 * (F.relu(1 - D(x)).mean() + F.relu(1 + D(xr.detach())).mean())
        opt_d.zero_grad(set_to_none=True); loss_d.backward(); opt_d.step()

    for _ in range(3 if a.compile else 2):
        step()
    sync()
    t = []
    for _ in range(a.reps):
        s = time.perf_counter(); step(); sync(); t.append(time.perf_counter() - s)
    ms = statistics.median(t) * 1e3
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    mode = ("compile" if a.compile else "eager") + (" tf32" if a.tf32 else " fp32" if cuda else "")
    r = {"name": "torch train-step %s b%d" % (a.preset, a.batch), "mode": mode, "ms_median": round(ms, 3),
         "img_per_s": round(a.batch / ms * 1e3, 2), "peak_rss_mb": round(rss, 1), "threads": a.threads,
         "device": "%s (torch %s)" % (torch.cuda.get_device_name(dev) if cuda else "cpu", torch.__version__)}
    if cuda:
        r["peak_gpu_mb"] = round(torch.cuda.max_memory_allocated(dev) / 1048576.0, 1)
    print(json.dumps(r))

if __name__ == "__main__":
    main()
