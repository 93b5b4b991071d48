#!/usr/bin/env python3
"""tools/convert-weights.py — the metric networks' published PyTorch weights to nsvq's safetensors files.

nsvq computes rFID and LPIPS with user-supplied weights (it downloads nothing); this tool turns the
upstream .pth files into the F32 safetensors files that `nsvq fid --fid-weights` and
`nsvq lpips --lpips-weights` read. Optional (needs only torch, e.g. Debian's python3-torch); never
needed at run time.

  tools/convert-weights.py inception PT_INCEPTION.pth OUT.safetensors
      PT_INCEPTION.pth: pytorch-fid's pt_inception-2015-12-05-6726825d.pth (the FID InceptionV3, a state
      dict with torchvision inception_v3(num_classes=1008, aux_logits=False) names, with or without
      '*.num_batches_tracked'). OUT holds every tensor but 'fc.*' and '*.num_batches_tracked', names
      unchanged ('Conv2d_1a_3x3.conv.weight', 'Mixed_7c.branch_pool.bn.running_var', ...); metadata
      {"format": "nsvq-inception-fid", "source": <input basename>}.

  tools/convert-weights.py lpips VGG16.pth LPIPS_VGG.pth OUT.safetensors
      VGG16.pth: torchvision's ImageNet vgg16 state dict (vgg16-397923af.pth: 'features.*', 'classifier.*');
      LPIPS_VGG.pth: the lpips package's v0.1 vgg.pth ('lin0.model.1.weight' .. 'lin4.model.1.weight').
      OUT holds 'features.N.weight' / 'features.N.bias' for the 13 convolutions (N = 0, 2, 5, 7, 10, 12,
      14, 17, 19, 21, 24, 26, 28) and 'lin0.weight' .. 'lin4.weight' ([1, C, 1, 1]); metadata
      {"format": "nsvq-lpips-vgg", "source": "<vgg basename> + <lpips basename>"}.

The inputs are checked strictly: exactly the expected keys with the expected shapes, floating point,
finite. Otherwise one line on stderr naming the first missing / unexpected / mis-shaped key, and exit 1
(exit 2 for a usage error). The output is written atomically (a temporary file in the same folder, then
renamed over OUT).
"""
import json
import os
import pickle
import struct
import sys
import tempfile

PROG = "convert-weights.py"


class ConvertError(Exception):
    pass


# ---- the expected keys and shapes (torchvision's module names; built here so that only torch is needed)
def _basic_conv(out, prefix, cin, cout, kh, kw=None):
    """torchvision's BasicConv2d: conv (no bias) + BatchNorm2d(eps=0.001)."""
    kw = kh if kw is None else kw
    out[prefix + ".conv.weight"] = (cout, cin, kh, kw)
    for p in ("weight", "bias", "running_mean", "running_var"):
        out[prefix + ".bn." + p] = (cout,)


def inception_shapes():
    """The state dict of torchvision inception_v3(num_classes=1008, aux_logits=False, init_weights=False)
    without '*.num_batches_tracked', as {name: shape} in module order."""
    s = {}
    c = lambda name, cin, cout, kh, kw=None: _basic_conv(s, name, cin, cout, kh, kw)
    c("Conv2d_1a_3x3", 3, 32, 3)
    c("Conv2d_2a_3x3", 32, 32, 3)
    c("Conv2d_2b_3x3", 32, 64, 3)
    c("Conv2d_3b_1x1", 64, 80, 1)
    c("Conv2d_4a_3x3", 80, 192, 3)

    def block_a(m, cin, pool):
        c(m + ".branch1x1", cin, 64, 1)
        c(m + ".branch5x5_1", cin, 48, 1)
        c(m + ".branch5x5_2", 48, 64, 5)
        c(m + ".branch3x3dbl_1", cin, 64, 1)
        c(m + ".branch3x3dbl_2", 64, 96, 3)
        c(m + ".branch3x3dbl_3", 96, 96, 3)
        c(m + ".branch_pool", cin, pool, 1)

    def block_b(m, cin):
        c(m + ".branch3x3", cin, 384, 3)
        c(m + ".branch3x3dbl_1", cin, 64, 1)
        c(m + ".branch3x3dbl_2", 64, 96, 3)
        c(m + ".branch3x3dbl_3", 96, 96, 3)

    def block_c(m, cin, c7):
        c(m + ".branch1x1", cin, 192, 1)
        c(m + ".branch7x7_1", cin, c7, 1)
        c(m + ".branch7x7_2", c7, c7, 1, 7)
        c(m + ".branch7x7_3", c7, 192, 7, 1)
        c(m + ".branch7x7dbl_1", cin, c7, 1)
        c(m + ".branch7x7dbl_2", c7, c7, 7, 1)
        c(m + ".branch7x7dbl_3", c7, c7, 1, 7)
        c(m + ".branch7x7dbl_4", c7, c7, 7, 1)
        c(m + ".branch7x7dbl_5", c7, 192, 1, 7)
        c(m + ".branch_pool", cin, 192, 1)

    def block_d(m, cin):
        c(m + ".branch3x3_1", cin, 192, 1)
        c(m + ".branch3x3_2", 192, 320, 3)
        c(m + ".branch7x7x3_1", cin, 192, 1)
        c(m + ".branch7x7x3_2", 192, 192, 1, 7)
        c(m + ".branch7x7x3_3", 192, 192, 7, 1)
        c(m + ".branch7x7x3_4", 192, 192, 3)

    def block_e(m, cin):
        c(m + ".branch1x1", cin, 320, 1)
        c(m + ".branch3x3_1", cin, 384, 1)
        c(m + ".branch3x3_2a", 384, 384, 1, 3)
        c(m + ".branch3x3_2b", 384, 384, 3, 1)
        c(m + ".branch3x3dbl_1", cin, 448, 1)
        c(m + ".branch3x3dbl_2", 448, 384, 3)
        c(m + ".branch3x3dbl_3a", 384, 384, 1, 3)
        c(m + ".branch3x3dbl_3b", 384, 384, 3, 1)
        c(m + ".branch_pool", cin, 192, 1)

    block_a("Mixed_5b", 192, 32)
    block_a("Mixed_5c", 256, 64)
    block_a("Mixed_5d", 288, 64)
    block_b("Mixed_6a", 288)
    block_c("Mixed_6b", 768, 128)
    block_c("Mixed_6c", 768, 160)
    block_c("Mixed_6d", 768, 160)
    block_c("Mixed_6e", 768, 192)
    block_d("Mixed_7a", 768)
    block_e("Mixed_7b", 1280)
    block_e("Mixed_7c", 2048)
    s["fc.weight"] = (1008, 2048)
    s["fc.bias"] = (1008,)
    return s


VGG16_CONVS = [(0, 3, 64), (2, 64, 64), (5, 64, 128), (7, 128, 128), (10, 128, 256), (12, 256, 256),
               (14, 256, 256), (17, 256, 512), (19, 512, 512), (21, 512, 512), (24, 512, 512),
               (26, 512, 512), (28, 512, 512)]
LPIPS_CHANNELS = [64, 128, 256, 512, 512]


def vgg16_shapes():
    """torchvision vgg16()'s state dict, {name: shape}."""
    s = {}
    for n, cin, cout in VGG16_CONVS:
        s["features.%d.weight" % n] = (cout, cin, 3, 3)
        s["features.%d.bias" % n] = (cout,)
    s["classifier.0.weight"] = (4096, 512 * 7 * 7)
    s["classifier.0.bias"] = (4096,)
    s["classifier.3.weight"] = (4096, 4096)
    s["classifier.3.bias"] = (4096,)
    s["classifier.6.weight"] = (1000, 4096)
    s["classifier.6.bias"] = (1000,)
    return s


def lpips_lin_shapes():
    return {"lin%d.model.1.weight" % k: (1, c, 1, 1) for k, c in enumerate(LPIPS_CHANNELS)}


# ---- loading and checking
def load_state_dict(path):
    import torch
    if not os.path.isfile(path):
        raise ConvertError("%s: no such file" % path)
    try:
        try:  # torch >= 1.13: no code from the file is run
            obj = torch.load(path, map_location="cpu", weights_only=True)
        except TypeError:
            obj = torch.load(path, map_location="cpu")
    except (pickle.UnpicklingError, RuntimeError, EOFError, OSError, ValueError, AttributeError,
            ImportError, KeyError, IndexError) as e:
        msg = " ".join(str(e).split())
        if "WeightsUnpickler error:" in msg:  # torch's safe loader: keep its reason, not its advice
            msg = "the safe loader refuses it: " + msg.split("WeightsUnpickler error:", 1)[1].strip()
        else:
            msg = "%s: %s" % (type(e).__name__, msg[:200])
        raise ConvertError("%s: not a PyTorch state dict file (%s)" % (path, msg)) from None
    if isinstance(obj, dict) and "state_dict" in obj and isinstance(obj["state_dict"], dict):
        obj = obj["state_dict"]
    if not isinstance(obj, dict):
        raise ConvertError("%s: holds a %s, not a state dict" % (path, type(obj).__name__))
    return obj


def check_keys(path, sd, expected, optional=lambda k: False):
    """Exactly the keys of `expected` ({name: shape}) with those shapes, floating point and finite; keys
    for which optional(k) is true may also be present (and are ignored). Raises ConvertError naming the
    first offending key."""
    import torch
    for k in expected:
        if k not in sd:
            raise ConvertError("%s: missing key '%s' (%d keys expected, the file has %d)"
                               % (path, k, len(expected), len(sd)))
    for k in sd:
        if k not in expected and not optional(k):
            raise ConvertError("%s: unexpected key '%s'" % (path, k))
    for k, shape in expected.items():
        t = sd[k]
        if not isinstance(t, torch.Tensor):
            raise ConvertError("%s: '%s' is a %s, not a tensor" % (path, k, type(t).__name__))
        if tuple(t.shape) != tuple(shape):
            raise ConvertError("%s: '%s' has shape %s, expected %s"
                               % (path, k, list(t.shape), list(shape)))
        if not t.is_floating_point():
            raise ConvertError("%s: '%s' has dtype %s, expected floating point" % (path, k, t.dtype))
        if not bool(torch.isfinite(t).all()):
            raise ConvertError("%s: '%s' holds NaN or Inf" % (path, k))


def f32(t):
    import torch
    return t.detach().to(device="cpu", dtype=torch.float32).contiguous()


# ---- safetensors
def write_safetensors(path, tensors, metadata):
    """tensors: {name: float32 CPU tensor}; written in sorted name order, atomically."""
    import numpy as np
    header = {"__metadata__": {str(k): str(v) for k, v in metadata.items()}}
    blobs, off = [], 0
    for name in sorted(tensors):
        t = tensors[name]
        data = np.ascontiguousarray(t.numpy(), dtype="<f4").tobytes()
        header[name] = {"dtype": "F32", "shape": list(t.shape), "data_offsets": [off, off + len(data)]}
        blobs.append(data)
        off += len(data)
    hj = json.dumps(header, separators=(",", ":")).encode("utf-8")
    hj += b" " * ((-len(hj)) % 8)
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix="." + os.path.basename(path) + ".", suffix=".tmp", dir=folder)
    try:
        mask = os.umask(0)
        os.umask(mask)
        os.fchmod(fd, 0o666 & ~mask)  # mkstemp's 0600 -> what open() would have made
        with os.fdopen(fd, "wb") as f:
            f.write(struct.pack("<Q", len(hj)))
            f.write(hj)
            for b in blobs:
                f.write(b)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


# ---- the two conversions
def convert_inception(src, out):
    sd = load_state_dict(src)
    expected = inception_shapes()
    bn_prefixes = {k[:-len("running_mean")] for k in expected if k.endswith(".bn.running_mean")}
    optional = lambda k: k.endswith(".num_batches_tracked") and \
        k[:-len("num_batches_tracked")] in bn_prefixes
    check_keys(src, sd, expected, optional)
    tensors = {k: f32(sd[k]) for k in expected if not k.startswith("fc.")}
    write_safetensors(out, tensors, {"format": "nsvq-inception-fid", "source": os.path.basename(src)})
    return len(tensors)


def convert_lpips(vgg_src, lin_src, out):
    lin = load_state_dict(lin_src)  # the small file first
    check_keys(lin_src, lin, lpips_lin_shapes())
    vgg = load_state_dict(vgg_src)
    check_keys(vgg_src, vgg, vgg16_shapes())
    tensors = {}
    for n, _, _ in VGG16_CONVS:
        for p in ("weight", "bias"):
            k = "features.%d.%s" % (n, p)
            tensors[k] = f32(vgg[k])
    for k in range(len(LPIPS_CHANNELS)):
        tensors["lin%d.weight" % k] = f32(lin["lin%d.model.1.weight" % k])
    write_safetensors(out, tensors, {"format": "nsvq-lpips-vgg", "source": "%s + %s" % (
        os.path.basename(vgg_src), os.path.basename(lin_src))})
    return len(tensors)


USAGE = """usage: %s inception PT_INCEPTION.pth OUT.safetensors
       %s lpips VGG16.pth LPIPS_VGG.pth OUT.safetensors""" % (PROG, PROG)


def main(argv):
    if len(argv) >= 1 and argv[0] in ("-h", "--help"):
        print(__doc__.strip())
        return 0
    if len(argv) == 3 and argv[0] == "inception":
        args = argv[1:]
    elif len(argv) == 4 and argv[0] == "lpips":
        args = argv[1:]
    else:
        print(USAGE, file=sys.stderr)
        return 2
    import importlib.util
    if importlib.util.find_spec("torch") is None:
        print("%s: needs PyTorch (pip install torch, or apt-get install python3-torch)" % PROG,
              file=sys.stderr)
        return 1
    try:
        if argv[0] == "inception":
            n = convert_inception(*args)
        else:
            n = convert_lpips(*args)
    except ConvertError as e:
        print("%s: %s" % (PROG, e), file=sys.stderr)
        return 1
    except OSError as e:
        print("%s: %s: %s" % (PROG, args[-1], e.strerror or e), file=sys.stderr)
        return 1
    print("%s: wrote %s (%d tensors)" % (PROG, args[-1], n))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
