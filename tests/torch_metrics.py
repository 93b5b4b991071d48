#!/usr/bin/env python3
"""tests/torch_metrics.py — the test helper of tests/torch_metrics_test.sh (not installed): nsvq's rFID and
LPIPS against PyTorch reproductions of pytorch-fid's InceptionV3 (FIDInceptionA/C/E_1/E_2 in place of
torchvision's Mixed_5b..Mixed_7c; resize to 299 bilinear, 2x-1; pool3) and the lpips package's LPIPS v0.1
VGG16 (ScalingLayer, relu1_2..relu5_3, unit-normalised channels, squared difference, 1x1 'lin' heads,
spatial mean, summed), both filled with deterministic "formula weights" that the C++ tests reproduce.
Needs torch, torchvision, scipy (Debian python3-torch, python3-torchvision, python3-scipy); PIL optional.

  torch_metrics.py prepare DIR            formula weights as the upstream files lay them out:
                                          DIR/w/pt_inception.pth (torchvision inception_v3's full state dict:
                                          fc.* and num_batches_tracked included), DIR/w/nobt/pt_inception.pth
                                          (the same without num_batches_tracked), DIR/w/vgg16.pth (features +
                                          classifier), DIR/w/lpips_vgg.pth ('lin0.model.1.weight' ..),
                                          DIR/w/bad_*.pth for the converter's error checks; and PNG sets
                                          DIR/img/a (RGB 48x48 and 64x64, one gray) and DIR/img/b (the same
                                          names and sizes, perturbed)
  torch_metrics.py verify INCEPTION.safetensors LPIPS.safetensors
                                          `tools/convert-weights.py` outputs hold exactly the formula weights
  torch_metrics.py fid PT_INCEPTION.pth A B FEATURES.safetensors FID.json
                                          PyTorch pool3 features and pytorch-fid's FID of the sets A, B vs
                                          `nsvq fid --json --save-features FEATURES.safetensors` (its stdout
                                          in FID.json)
  torch_metrics.py lpips VGG16.pth LPIPS_VGG.pth A B LPIPS.json
                                          PyTorch LPIPS per file-name pair vs `nsvq lpips --json`
  torch_metrics.py golden                 PyTorch outputs on the formula images, for the C++ tests

Formula weights: hash32(i, t) below; the tensors of the converted file (names sorted, t = the index in
that order, i = the row-major element index) get running_var 0.5 + u, running_mean 0.2 (2u - 1), 4-d
'lin*' 0.2 u, other 4-d [O, C, kh, kw] (2u - 1) sqrt(6 / (C kh kw)), '*.bn.weight' 0.5 + u, anything else
0.2 (2u - 1); computed in double, stored as float32. Formula image set k: [2, 3, 32, 32], element i =
floor(u(i, 1000 + k) * 255 + 0.5) / 255 (no ties occur for k = 0, 1: checked).
Comparisons print their measured figures on stdout; a failure is one line on stderr and exit 1.
"""
import json
import math
import os
import struct
import sys
import time

os.environ.setdefault("OMP_WAIT_POLICY", "passive")
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
import torchvision
from torchvision.models import inception as tvi

torch.set_num_threads(2)
torch.set_grad_enabled(False)

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tools"))
from torch_vqgan import read_safetensors  # noqa: E402  (F32 / I32 tensors and the metadata)

try:
    from PIL import Image
except ImportError:  # torchvision.io instead
    Image = None

FEAT_TOL = 1e-4   # max |diff| / max |feature|, per set
FID_TOL = 1e-3    # relative
LPIPS_RTOL, LPIPS_ATOL = 1e-4, 1e-6


def fail(msg):
    sys.stdout.flush()
    print("torch_metrics.py: " + msg, file=sys.stderr)
    sys.exit(1)


# ---- formula weights and images
M32 = np.uint64(0xFFFFFFFF)


def hash_u(n, t):
    """u(i, t) for i = 0 .. n-1, float64 in [0, 1)."""
    x = np.arange(n, dtype=np.uint64)
    x = (x * np.uint64(2654435761) + np.uint64(((t + 1) * 2246822519) & 0xFFFFFFFF)) & M32
    x ^= x >> np.uint64(15)
    x = (x * np.uint64(2246822507)) & M32
    x ^= x >> np.uint64(13)
    x = (x * np.uint64(3266489909)) & M32
    x ^= x >> np.uint64(16)
    return x.astype(np.float64) / 4294967296.0


def formula_tensor(name, shape, t):
    n = int(np.prod(shape)) if len(shape) else 1
    u = hash_u(n, t)
    if name.endswith("running_var"):
        v = 0.5 + u
    elif name.endswith("running_mean"):
        v = 0.2 * (2.0 * u - 1.0)
    elif len(shape) == 4 and name.startswith("lin"):
        v = 0.2 * u
    elif len(shape) == 4:
        _, c, kh, kw = shape
        v = (2.0 * u - 1.0) * math.sqrt(6.0 / (c * kh * kw))
    elif name.endswith(".bn.weight"):
        v = 0.5 + u
    else:
        v = 0.2 * (2.0 * u - 1.0)
    return torch.from_numpy(v.astype(np.float32).reshape(shape))


def formula_weights(shapes):
    """{converted name: shape} -> {converted name: float32 tensor}, t from the sorted names."""
    return {k: formula_tensor(k, tuple(shapes[k]), t) for t, k in enumerate(sorted(shapes))}


def formula_images(k):
    v = np.floor(hash_u(2 * 3 * 32 * 32, 1000 + k) * 255.0 + 0.5)
    return torch.from_numpy((v / 255.0).astype(np.float32).reshape(2, 3, 32, 32))


# ---- pytorch-fid's InceptionV3 (pytorch_fid/inception.py), pool3 only
class FIDInceptionA(tvi.InceptionA):
    def forward(self, x):
        branch1x1 = self.branch1x1(x)
        branch5x5 = self.branch5x5_2(self.branch5x5_1(x))
        branch3x3dbl = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
        branch_pool = F.avg_pool2d(x, kernel_size=3, stride=1, padding=1, count_include_pad=False)
        branch_pool = self.branch_pool(branch_pool)
        return torch.cat([branch1x1, branch5x5, branch3x3dbl, branch_pool], 1)


class FIDInceptionC(tvi.InceptionC):
    def forward(self, x):
        branch1x1 = self.branch1x1(x)
        branch7x7 = self.branch7x7_3(self.branch7x7_2(self.branch7x7_1(x)))
        branch7x7dbl = self.branch7x7dbl_1(x)
        branch7x7dbl = self.branch7x7dbl_2(branch7x7dbl)
        branch7x7dbl = self.branch7x7dbl_3(branch7x7dbl)
        branch7x7dbl = self.branch7x7dbl_4(branch7x7dbl)
        branch7x7dbl = self.branch7x7dbl_5(branch7x7dbl)
        branch_pool = F.avg_pool2d(x, kernel_size=3, stride=1, padding=1, count_include_pad=False)
        branch_pool = self.branch_pool(branch_pool)
        return torch.cat([branch1x1, branch7x7, branch7x7dbl, branch_pool], 1)


class _FIDInceptionE(tvi.InceptionE):
    def pool(self, x):
        raise NotImplementedError

    def forward(self, x):
        branch1x1 = self.branch1x1(x)
        branch3x3 = self.branch3x3_1(x)
        branch3x3 = torch.cat([self.branch3x3_2a(branch3x3), self.branch3x3_2b(branch3x3)], 1)
        branch3x3dbl = self.branch3x3dbl_2(self.branch3x3dbl_1(x))
        branch3x3dbl = torch.cat([self.branch3x3dbl_3a(branch3x3dbl), self.branch3x3dbl_3b(branch3x3dbl)], 1)
        branch_pool = self.branch_pool(self.pool(x))
        return torch.cat([branch1x1, branch3x3, branch3x3dbl, branch_pool], 1)


class FIDInceptionE_1(_FIDInceptionE):  # average pooling, padding not counted
    def pool(self, x):
        return F.avg_pool2d(x, kernel_size=3, stride=1, padding=1, count_include_pad=False)


class FIDInceptionE_2(_FIDInceptionE):  # the TF graph's bug: max pooling in the last block
    def pool(self, x):
        return F.max_pool2d(x, kernel_size=3, stride=1, padding=1)


def tv_inception():
    return torchvision.models.inception_v3(weights=None, num_classes=1008, aux_logits=False, init_weights=False)


def fid_inception_v3(state_dict):
    """pytorch-fid's fid_inception_v3(): torchvision's network with the FID blocks, loaded strictly."""
    m = tv_inception()
    m.Mixed_5b = FIDInceptionA(192, pool_features=32)
    m.Mixed_5c = FIDInceptionA(256, pool_features=64)
    m.Mixed_5d = FIDInceptionA(288, pool_features=64)
    m.Mixed_6b = FIDInceptionC(768, channels_7x7=128)
    m.Mixed_6c = FIDInceptionC(768, channels_7x7=160)
    m.Mixed_6d = FIDInceptionC(768, channels_7x7=160)
    m.Mixed_6e = FIDInceptionC(768, channels_7x7=192)
    m.Mixed_7b = FIDInceptionE_1(1280)
    m.Mixed_7c = FIDInceptionE_2(2048)
    m.load_state_dict(state_dict)
    return m


class InceptionPool3(nn.Module):
    """pytorch-fid's InceptionV3(output_blocks=[3]) with resize_input and normalize_input."""

    def __init__(self, state_dict):
        super().__init__()
        i = fid_inception_v3(state_dict)
        self.blocks = nn.Sequential(
            i.Conv2d_1a_3x3, i.Conv2d_2a_3x3, i.Conv2d_2b_3x3, nn.MaxPool2d(kernel_size=3, stride=2),
            i.Conv2d_3b_1x1, i.Conv2d_4a_3x3, nn.MaxPool2d(kernel_size=3, stride=2),
            i.Mixed_5b, i.Mixed_5c, i.Mixed_5d, i.Mixed_6a, i.Mixed_6b, i.Mixed_6c, i.Mixed_6d, i.Mixed_6e,
            i.Mixed_7a, i.Mixed_7b, i.Mixed_7c, nn.AdaptiveAvgPool2d(output_size=(1, 1)))
        self.eval()

    def forward(self, x):  # x: [N, 3, H, W] in [0, 1] -> [N, 2048]
        x = F.interpolate(x, size=(299, 299), mode="bilinear", align_corners=False)
        x = 2 * x - 1
        return self.blocks(x).flatten(1)


def inception_converted_shapes():
    """The names/shapes of `convert-weights.py inception`'s output, from torchvision's own network."""
    return {k: tuple(v.shape) for k, v in tv_inception().state_dict().items()
            if not k.startswith("fc.") and not k.endswith("num_batches_tracked")}


def inception_state_dict(with_bt=True):
    """A pt_inception-2015-12-05 style state dict (torchvision names, fc.* included) of formula weights."""
    ref = tv_inception().state_dict()
    w = formula_weights(inception_converted_shapes())
    sd = {}
    for k, v in ref.items():
        if k.endswith("num_batches_tracked"):
            if with_bt:
                sd[k] = torch.tensor(0, dtype=torch.long)
        elif k.startswith("fc."):  # dropped by the converter; formula values all the same
            sd[k] = formula_tensor(k, tuple(v.shape), 900 + (k == "fc.bias"))
        else:
            sd[k] = w[k]
    return sd


# ---- the lpips package's LPIPS v0.1 with VGG16 (lpips/lpips.py, lpips/pretrained_networks.py)
def vgg16_features():
    """torchvision vgg16().features (what lpips takes), without building the 100M-weight classifier."""
    return torchvision.models.vgg.make_layers(torchvision.models.vgg.cfgs["D"], batch_norm=False)


LPIPS_CHANNELS = [64, 128, 256, 512, 512]


class ScalingLayer(nn.Module):
    def __init__(self):
        super().__init__()
        self.register_buffer("shift", torch.Tensor([-.030, -.088, -.188])[None, :, None, None])
        self.register_buffer("scale", torch.Tensor([.458, .448, .450])[None, :, None, None])

    def forward(self, inp):
        return (inp - self.shift) / self.scale


class VGG16Slices(nn.Module):  # lpips.pretrained_networks.vgg16
    def __init__(self, features):
        super().__init__()
        self.slice1, self.slice2, self.slice3, self.slice4, self.slice5 = (nn.Sequential() for _ in range(5))
        for x in range(4):
            self.slice1.add_module(str(x), features[x])
        for x in range(4, 9):
            self.slice2.add_module(str(x), features[x])
        for x in range(9, 16):
            self.slice3.add_module(str(x), features[x])
        for x in range(16, 23):
            self.slice4.add_module(str(x), features[x])
        for x in range(23, 30):
            self.slice5.add_module(str(x), features[x])

    def forward(self, x):
        h1 = self.slice1(x)
        h2 = self.slice2(h1)
        h3 = self.slice3(h2)
        h4 = self.slice4(h3)
        h5 = self.slice5(h4)
        return [h1, h2, h3, h4, h5]  # relu1_2, relu2_2, relu3_3, relu4_3, relu5_3


class NetLinLayer(nn.Module):
    def __init__(self, chn_in, chn_out=1, use_dropout=True):
        super().__init__()
        layers = [nn.Dropout()] if use_dropout else []
        layers += [nn.Conv2d(chn_in, chn_out, 1, stride=1, padding=0, bias=False)]
        self.model = nn.Sequential(*layers)

    def forward(self, x):
        return self.model(x)


def normalize_tensor(in_feat, eps=1e-10):
    norm_factor = torch.sqrt(torch.sum(in_feat ** 2, dim=1, keepdim=True))
    return in_feat / (norm_factor + eps)


class LPIPS(nn.Module):
    """lpips.LPIPS(net='vgg', version='0.1', lpips=True, spatial=False), eval mode."""

    def __init__(self, vgg_state_dict, lin_state_dict):
        super().__init__()
        feats = vgg16_features()
        feats.load_state_dict({k[len("features."):]: v for k, v in vgg_state_dict.items()
                               if k.startswith("features.")})
        self.scaling_layer = ScalingLayer()
        self.net = VGG16Slices(feats)
        self.lin0, self.lin1, self.lin2, self.lin3, self.lin4 = (NetLinLayer(c) for c in LPIPS_CHANNELS)
        self.lins = nn.ModuleList([self.lin0, self.lin1, self.lin2, self.lin3, self.lin4])
        want = {"lin%d.model.1.weight" % k for k in range(len(LPIPS_CHANNELS))}
        assert set(lin_state_dict) == want, sorted(set(lin_state_dict) ^ want)
        self.load_state_dict(lin_state_dict, strict=False)  # as lpips does
        for k, v in lin_state_dict.items():
            assert torch.equal(self.state_dict()[k], v), k
        self.eval()

    def forward(self, in0, in1, normalize=False):  # [N, 3, H, W] in [-1, 1] (or [0, 1] with normalize)
        if normalize:
            in0, in1 = 2 * in0 - 1, 2 * in1 - 1
        outs0, outs1 = self.net(self.scaling_layer(in0)), self.net(self.scaling_layer(in1))
        val = 0
        for kk in range(len(LPIPS_CHANNELS)):
            diff = (normalize_tensor(outs0[kk]) - normalize_tensor(outs1[kk])) ** 2
            val = val + self.lins[kk](diff).mean([2, 3], keepdim=True)
        return val  # [N, 1, 1, 1]


def lpips_converted_shapes():
    s = {k: tuple(v.shape) for k, v in vgg16_features().state_dict().items()}
    s = {"features." + k: v for k, v in s.items()}
    for k, c in enumerate(LPIPS_CHANNELS):
        s["lin%d.weight" % k] = (1, c, 1, 1)
    return s


def lpips_state_dicts():
    """(torchvision vgg16 state dict, lpips vgg.pth dict) of formula weights."""
    w = formula_weights(lpips_converted_shapes())
    vgg = {k: v for k, v in w.items() if k.startswith("features.")}
    # the classifier as torchvision names it (dropped by the converter): zeros
    for k, shape in [("classifier.0.weight", (4096, 25088)), ("classifier.0.bias", (4096,)),
                     ("classifier.3.weight", (4096, 4096)), ("classifier.3.bias", (4096,)),
                     ("classifier.6.weight", (1000, 4096)), ("classifier.6.bias", (1000,))]:
        vgg[k] = torch.zeros(1).expand(shape)  # saved as one float: a small file, the same keys and shapes
    lin = {"lin%d.model.1.weight" % k: w["lin%d.weight" % k] for k in range(len(LPIPS_CHANNELS))}
    return vgg, lin


# ---- files
def read_rgb(path):
    """uint8 [3, H, W]; gray replicated to RGB as PIL's convert('RGB') does."""
    if Image is not None:
        with Image.open(path) as im:
            a = np.asarray(im.convert("RGB"), dtype=np.uint8)
        return torch.from_numpy(a.copy()).permute(2, 0, 1).contiguous()
    from torchvision.io import read_image, ImageReadMode
    return read_image(path, ImageReadMode.RGB)


def write_png(path, a):  # a: uint8 numpy [H, W] or [H, W, 3]
    if Image is not None:
        Image.fromarray(a).save(path)
    else:
        from torchvision.io import write_png as tv_write_png
        t = torch.from_numpy(a)
        tv_write_png(t[None] if t.dim() == 2 else t.permute(2, 0, 1).contiguous(), path)


def png_names(folder):
    names = sorted(n for n in os.listdir(folder) if n.lower().endswith(".png"))
    if not names:
        fail("%s: no PNG files" % folder)
    return names


def read_json(path, what):
    txt = open(path).read()
    try:
        return json.loads(txt)
    except ValueError:
        a, b = txt.find("{"), txt.rfind("}")
        try:
            return json.loads(txt[a:b + 1])
        except ValueError:
            fail("%s: no JSON object in %s's output: %r" % (path, what, txt[:200]))


# ---- modes
def cmd_prepare(d):
    t0 = time.time()
    write_weights(os.path.join(d, "w"))
    write_images(os.path.join(d, "img"))
    print("prepared %s (%.1f s)" % (d, time.time() - t0))


def write_weights(d):
    os.makedirs(os.path.join(d, "nobt"), exist_ok=True)
    sd = inception_state_dict(with_bt=True)
    torch.save(sd, os.path.join(d, "pt_inception.pth"))
    torch.save({k: v for k, v in sd.items() if not k.endswith("num_batches_tracked")},
               os.path.join(d, "nobt", "pt_inception.pth"))
    vgg, lin = lpips_state_dicts()
    torch.save(vgg, os.path.join(d, "vgg16.pth"))
    torch.save(lin, os.path.join(d, "lpips_vgg.pth"))
    # for the converter's error checks: the same keys and shapes, every tensor a broadcast zero (small files)
    small = {k: torch.zeros((1,) * v.dim(), dtype=v.dtype).expand(v.shape) for k, v in sd.items()}
    bad = dict(small)
    del bad["Mixed_6b.branch7x7_2.bn.running_var"]
    torch.save({"state_dict": bad}, os.path.join(d, "bad_missing.pth"))  # checkpoints wrap it so
    bad = dict(small)
    bad["Mixed_5b.branch1x1.conv.num_batches_tracked"] = torch.tensor(0)  # only BatchNorms have one
    torch.save(bad, os.path.join(d, "bad_bt.pth"))
    bad = dict(lin)
    bad["lin3.model.1.weight"] = torch.zeros(1, 256, 1, 1)
    torch.save(bad, os.path.join(d, "bad_lin.pth"))
    print("formula weights in %s" % d)


def cmd_verify(inc_path, lp_path):
    for path, shapes, fmt, src in [
            (inc_path, inception_converted_shapes(), "nsvq-inception-fid", "pt_inception.pth"),
            (lp_path, lpips_converted_shapes(), "nsvq-lpips-vgg", "vgg16.pth + lpips_vgg.pth")]:
        got, meta = read_safetensors(path)
        hlen = struct.unpack("<Q", open(path, "rb").read(8))[0]
        if hlen % 8:
            fail("%s: header length %d is not a multiple of 8" % (path, hlen))
        if meta != {"format": fmt, "source": src}:
            fail("%s: metadata %s, expected format %s, source %s" % (path, meta, fmt, src))
        if set(got) != set(shapes):
            fail("%s: names differ from the expected ones (%s)" % (path, sorted(set(got) ^ set(shapes))[:3]))
        want = formula_weights(shapes)
        for k in sorted(want):
            if tuple(got[k].shape) != tuple(want[k].shape) or not torch.equal(got[k], want[k]):
                fail("%s: '%s' differs from the formula weights" % (path, k))
        print("%s: %d tensors = the formula weights, metadata %s" % (os.path.basename(path), len(got), meta))


def smooth_field(rng, h, w):
    low = torch.from_numpy(rng.uniform(0, 255, size=(1, 3, 4, 4)).astype(np.float32))
    return F.interpolate(low, size=(h, w), mode="bilinear", align_corners=False)[0].permute(1, 2, 0).numpy()


def write_images(d):
    rng = np.random.RandomState(20240611)
    a_dir, b_dir = os.path.join(d, "a"), os.path.join(d, "b")
    os.makedirs(a_dir, exist_ok=True)
    os.makedirs(b_dir, exist_ok=True)
    sizes = [48] * 7 + [64, 64] + [48]  # the last one gray
    for j, s in enumerate(sizes):
        img = smooth_field(rng, s, s)
        yy, xx = np.mgrid[0:s, 0:s]
        cy, cx, r = rng.uniform(s * 0.3, s * 0.7, 2).tolist() + [rng.uniform(s * 0.1, s * 0.25)]
        img[(yy - cy) ** 2 + (xx - cx) ** 2 < r * r] = rng.uniform(0, 255, 3)
        y0, x0 = rng.randint(0, s // 2, 2)
        img[y0:y0 + rng.randint(4, s // 3), x0:x0 + rng.randint(4, s // 3)] = rng.uniform(0, 255, 3)
        # perturbed: shift by 1-2 pixels, a 3x3 box blur on every other image, noise
        p = np.roll(img, (rng.randint(1, 3), -rng.randint(1, 3)), axis=(0, 1))
        if j % 2:
            q = np.pad(p, ((1, 1), (1, 1), (0, 0)), mode="edge")
            p = sum(q[dy:dy + s, dx:dx + s] for dy in range(3) for dx in range(3)) / 9.0
        p = p + rng.normal(0, 12, p.shape)
        a8 = np.clip(np.rint(img), 0, 255).astype(np.uint8)
        b8 = np.clip(np.rint(p), 0, 255).astype(np.uint8)
        if j == len(sizes) - 1:
            a8, b8 = a8.mean(2).astype(np.uint8), b8.mean(2).astype(np.uint8)
        name = "img%02d.png" % j
        write_png(os.path.join(a_dir, name), a8)
        write_png(os.path.join(b_dir, name), b8)
    print("%d image pairs in %s/{a,b} (7 RGB 48x48, 2 RGB 64x64, 1 gray 48x48)" % (len(sizes), d))


def frechet_distance(mu1, sigma1, mu2, sigma2, eps=1e-6):
    """pytorch_fid.fid_score.calculate_frechet_distance."""
    from scipy import linalg
    mu1, mu2 = np.atleast_1d(mu1), np.atleast_1d(mu2)
    sigma1, sigma2 = np.atleast_2d(sigma1), np.atleast_2d(sigma2)
    assert mu1.shape == mu2.shape and sigma1.shape == sigma2.shape
    diff = mu1 - mu2
    covmean, _ = linalg.sqrtm(sigma1.dot(sigma2), disp=False)
    offset_used = False
    if not np.isfinite(covmean).all():
        print("fid calculation produces singular product; adding %s to diagonal of cov estimates" % eps)
        offset = np.eye(sigma1.shape[0]) * eps
        covmean = linalg.sqrtm((sigma1 + offset).dot(sigma2 + offset))
        offset_used = True
    if np.iscomplexobj(covmean):
        if not np.allclose(np.diagonal(covmean).imag, 0, atol=1e-3):
            m = np.max(np.abs(covmean.imag))
            raise ValueError("Imaginary component {}".format(m))
        covmean = covmean.real
    tr_covmean = np.trace(covmean)
    return float(diff.dot(diff) + np.trace(sigma1) + np.trace(sigma2) - 2 * tr_covmean), offset_used


def frechet_distance_eig(mu1, sigma1, mu2, sigma2):
    """The same quantity without sqrtm (for the report): tr sqrt(S1 S2) = sum sqrt(eig(sqrt(S1) S2 sqrt(S1)))."""
    w, v = np.linalg.eigh(sigma1)
    r = (v * np.sqrt(np.clip(w, 0, None))) @ v.T
    e = np.linalg.eigvalsh(r @ sigma2 @ r)
    diff = mu1 - mu2
    return float(diff.dot(diff) + np.trace(sigma1) + np.trace(sigma2) - 2 * np.sqrt(np.clip(e, 0, None)).sum())


def torch_features(net, folder):
    """pytorch-fid's pipeline; each image resized on its own (sizes differ), then one batch."""
    xs = [F.interpolate(read_rgb(os.path.join(folder, n)).float()[None] / 255.0, size=(299, 299),
                        mode="bilinear", align_corners=False) for n in png_names(folder)]
    return net.blocks(2 * torch.cat(xs) - 1).flatten(1).numpy()


def cmd_fid(pth, a_dir, b_dir, feat_path, json_path):
    t0 = time.time()
    sd = torch.load(pth, map_location="cpu")
    net = InceptionPool3(sd)
    fa, fb = torch_features(net, a_dir), torch_features(net, b_dir)
    t_feat = time.time() - t0
    got, _ = read_safetensors(feat_path)
    ok = True
    for key, ref in (("a", fa), ("b", fb)):
        if key not in got:
            fail("%s: no '%s' tensor (has %s)" % (feat_path, key, sorted(got)))
        g = got[key].numpy()
        if g.shape != ref.shape:
            fail("%s: '%s' has shape %s, PyTorch's features %s" % (feat_path, key, list(g.shape), list(ref.shape)))
        rel = float(np.abs(g - ref).max() / np.abs(ref).max())
        print("fid features %s: %d x %d, max |diff| / max |feature| = %.3g (max |feature| %.4g; limit %g)"
              % (key, ref.shape[0], ref.shape[1], rel, float(np.abs(ref).max()), FEAT_TOL))
        ok = ok and rel <= FEAT_TOL
    t1 = time.time()
    mu1, s1 = np.mean(fa, axis=0), np.cov(fa, rowvar=False)
    mu2, s2 = np.mean(fb, axis=0), np.cov(fb, rowvar=False)
    try:
        fid, offset_used = frechet_distance(mu1, s1, mu2, s2)
    except ValueError as e:
        fail("pytorch-fid's calculate_frechet_distance fails on these features: %s" % e)
    t_fid = time.time() - t1
    fid_eig = frechet_distance_eig(mu1.astype(np.float64), s1, mu2.astype(np.float64), s2)
    js = read_json(json_path, "nsvq fid")
    if "fid" not in js:
        fail("%s: no \"fid\" in nsvq's JSON: %s" % (json_path, json.dumps(js)[:200]))
    nf = float(js["fid"])
    rel = abs(nf - fid) / max(abs(fid), 1e-12)
    print("fid: nsvq %.9g, pytorch-fid %.9g%s (relative diff %.3g, limit %g); eigenvalue form %.9g"
          % (nf, fid, " (eps offset used)" if offset_used else "", rel, FID_TOL, fid_eig))
    print("PyTorch time: features %.1f s (%d images), sqrtm %.1f s" % (t_feat, len(fa) + len(fb), t_fid))
    if not ok:
        fail("nsvq's pool3 features differ from PyTorch's beyond %g" % FEAT_TOL)
    if not rel <= FID_TOL:
        fail("nsvq's fid %.9g differs from pytorch-fid's %.9g (relative %.3g > %g)" % (nf, fid, rel, FID_TOL))


def cmd_lpips(vgg_pth, lin_pth, a_dir, b_dir, json_path):
    t0 = time.time()
    net = LPIPS(torch.load(vgg_pth, map_location="cpu"), torch.load(lin_pth, map_location="cpu"))
    names = png_names(a_dir)
    if png_names(b_dir) != names:
        fail("%s and %s hold different file names" % (a_dir, b_dir))
    ref = []
    for n in names:
        x0 = read_rgb(os.path.join(a_dir, n)).float()[None] / 127.5 - 1
        x1 = read_rgb(os.path.join(b_dir, n)).float()[None] / 127.5 - 1
        ref.append(float(net(x0, x1).item()))
    t_ref = time.time() - t0
    js = read_json(json_path, "nsvq lpips")
    d = js.get("distances")
    if not isinstance(d, list) or len(d) != len(ref):
        fail("%s: \"distances\" should list %d values: %s" % (json_path, len(ref), json.dumps(js)[:200]))
    if js.get("pairs") != len(ref):
        fail("%s: \"pairs\" is %s, expected %d" % (json_path, js.get("pairs"), len(ref)))
    worst_rel, worst_abs, bad = 0.0, 0.0, []
    for n, g, r in zip(names, d, ref):
        ad = abs(float(g) - r)
        rd = ad / max(abs(r), 1e-30)
        worst_rel, worst_abs = max(worst_rel, rd), max(worst_abs, ad)
        if not (rd <= LPIPS_RTOL or ad <= LPIPS_ATOL):
            bad.append("%s: nsvq %.9g, PyTorch %.9g" % (n, float(g), r))
    mean_ref = sum(ref) / len(ref)
    mrel = abs(float(js.get("lpips", float("nan"))) - mean_ref) / max(abs(mean_ref), 1e-30)
    print("lpips: %d pairs, PyTorch mean %.9g, nsvq %.9g; per pair max relative diff %.3g, max absolute %.3g "
          "(limits %g relative or %g absolute)" % (len(ref), mean_ref, float(js.get("lpips", float("nan"))),
                                                   worst_rel, worst_abs, LPIPS_RTOL, LPIPS_ATOL))
    print("PyTorch time: lpips %.1f s" % t_ref)
    if bad:
        fail("LPIPS differs for %d of %d pairs, first %s" % (len(bad), len(ref), bad[0]))
    if not (mrel <= LPIPS_RTOL):
        fail("nsvq's mean lpips differs from the mean of PyTorch's distances (relative %.3g)" % mrel)


def cmd_golden():
    t0 = time.time()
    for k in (0, 1):  # floor(v + 0.5) and round-half-even agree: no v = m + 0.5
        v = hash_u(2 * 3 * 32 * 32, 1000 + k) * 255.0
        assert not np.any(v - np.floor(v) == 0.5)
    x0, x1 = formula_images(0), formula_images(1)
    inc = InceptionPool3(inception_state_dict())
    f = inc(x0)
    vgg, lin = lpips_state_dicts()
    lp = LPIPS(vgg, lin)
    d = lp(2 * x0 - 1, 2 * x1 - 1).flatten()
    d2 = lp(x0, x1, normalize=True).flatten()
    assert torch.equal(d, d2)
    idx = [0, 1, 2, 3, 511, 1024, 2047]
    g = lambda v: "%.9g" % v
    print("// tests/torch_metrics.py golden (torch %s, torchvision %s): formula weights, formula images"
          % (torch.__version__, torchvision.__version__))
    print("// InceptionV3-FID pool3 of formula image set 0 ([2, 3, 32, 32] in [0, 1] -> 299x299 bilinear -> 2x-1):")
    print("// features at indices {%s}, then the mean of all 2048, per image" % ", ".join(map(str, idx)))
    print("static const int kFidGoldenIndex[7] = {%s};" % ", ".join(map(str, idx)))
    print("static const double kFidGolden[2][8] = {")
    for n in range(2):
        print("    {%s}," % ", ".join([g(f[n, i].item()) for i in idx] + [g(f[n].double().mean().item())]))
    print("};")
    print("// (per image: %s of the 2048 features are 0; root mean square %s)" % (
        " and ".join(str(int((f[n] == 0).sum())) for n in range(2)),
        " and ".join(g(f[n].double().pow(2).mean().sqrt().item()) for n in range(2))))
    print("// LPIPS v0.1 VGG16 between formula image sets 0 and 1 (both 2x-1), per image pair")
    print("static const double kLpipsGolden[2] = {%s};" % ", ".join(g(v.item()) for v in d))
    print("// (%.1f s)" % (time.time() - t0))


def main(argv):
    modes = {"prepare": (cmd_prepare, 1), "verify": (cmd_verify, 2),
             "fid": (cmd_fid, 5), "lpips": (cmd_lpips, 5), "golden": (cmd_golden, 0)}
    if not argv or argv[0] not in modes or len(argv) - 1 != modes[argv[0]][1]:
        print(__doc__.strip(), file=sys.stderr)
        return 2
    modes[argv[0]][0](*argv[1:])
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
