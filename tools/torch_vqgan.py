#!/usr/bin/env python3
# tools/torch_vqgan.py — nsvq's inference files in PyTorch: taming-transformers' VQGAN modules (Encoder,
# Decoder, quant_conv, post_quant_conv, the codebook) built from the "vqgan" metadata of an
# `nsvq export` file, its weights loaded by name with strict=True, then images tokenized and tokens
# decoded in PyTorch, to compare with nsvq. Optional (needs Debian's python3-torch), never needed at
# run time; tests/torch_interop_test.sh runs it when torch is installed.
#   /usr/bin/python3 tools/torch_vqgan.py MODEL.safetensors TOKENS.txt [DECODED_DIR]
# TOKENS.txt is `nsvq tokenize -o TOKENS.txt IMAGES...` (a line per image: path, tokens); the images are
# tokenized again here and compared; with DECODED_DIR (`nsvq decode` of the same tokens) the decoded
# images are compared too. Prints one summary line; exit 1 when they disagree beyond float rounding.
import json, math, os, struct, sys, zlib
import torch
import torch.nn as nn
import torch.nn.functional as F


# ---- safetensors (F32 / I32 tensors) and PNG (8-bit gray / RGB, as nsvq writes them), no other packages
def read_safetensors(path):
    raw = open(path, "rb").read()
    if path.endswith(".zst"):
        sys.exit("torch_vqgan.py: give an uncompressed .safetensors file")
    n = struct.unpack("<Q", raw[:8])[0]
    header = json.loads(raw[8:8 + n])
    meta = header.pop("__metadata__", {})
    data = raw[8 + n:]
    out = {}
    for name, e in header.items():
        b, end = e["data_offsets"]
        dt = {"F32": torch.float32, "I32": torch.int32}[e["dtype"]]
        out[name] = torch.frombuffer(bytearray(data[b:end]), dtype=dt).reshape(e["shape"]).clone()
    return out, meta


def read_png(path):
    raw = open(path, "rb").read()
    assert raw[:8] == b"\x89PNG\r\n\x1a\n", path
    pos, idat, w = 8, b"", 0
    while pos < len(raw):
        ln, kind = struct.unpack(">I4s", raw[pos:pos + 8])
        body = raw[pos + 8:pos + 8 + ln]
        if kind == b"IHDR":
            w, h, depth, color = struct.unpack(">IIBB", body[:10])
            assert depth == 8 and color in (0, 2) and body[12] == 0, "8-bit gray or RGB, not interlaced"
            c = 1 if color == 0 else 3
        elif kind == b"IDAT":
            idat += body
        pos += 12 + ln
    rows, stride, prev = zlib.decompress(idat), w * c, bytearray(w * c)
    out = bytearray()
    for y in range(h):
        f, line = rows[y * (stride + 1)], bytearray(rows[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        for i in range(stride):
            a = line[i - c] if i >= c else 0
            b, cc = prev[i], prev[i - c] if i >= c else 0
            if f == 1: line[i] = (line[i] + a) & 255
            elif f == 2: line[i] = (line[i] + b) & 255
            elif f == 3: line[i] = (line[i] + (a + b) // 2) & 255
            elif f == 4:
                p = a + b - cc
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - cc)
                line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else cc)) & 255
        out += line
        prev = line
    return torch.tensor(list(out), dtype=torch.float32).reshape(h, w, c).permute(2, 0, 1)  # [C, H, W]


# ---- taming-transformers' modules (taming/modules/diffusionmodules/model.py), the same names
def norm(c, g, eps):
    return nn.GroupNorm(g, c, eps=eps, affine=True)


class ResnetBlock(nn.Module):
    def __init__(self, cin, cout, g, eps):
        super().__init__()
        self.norm1, self.conv1 = norm(cin, g, eps), nn.Conv2d(cin, cout, 3, 1, 1)
        self.norm2, self.conv2 = norm(cout, g, eps), nn.Conv2d(cout, cout, 3, 1, 1)
        if cin != cout:
            self.nin_shortcut = nn.Conv2d(cin, cout, 1)

    def forward(self, x):
        h = self.conv1(F.silu(self.norm1(x)))
        h = self.conv2(F.silu(self.norm2(h)))
        return (self.nin_shortcut(x) if hasattr(self, "nin_shortcut") else x) + h


class AttnBlock(nn.Module):
    def __init__(self, c, g, eps):
        super().__init__()
        self.norm = norm(c, g, eps)
        self.q, self.k, self.v, self.proj_out = (nn.Conv2d(c, c, 1) for _ in range(4))

    def forward(self, x):
        h = self.norm(x)
        b, c, hh, ww = h.shape
        q = self.q(h).reshape(b, c, hh * ww).permute(0, 2, 1)
        k = self.k(h).reshape(b, c, hh * ww)
        a = torch.softmax(torch.bmm(q, k) * c ** -0.5, dim=2)
        o = torch.bmm(self.v(h).reshape(b, c, hh * ww), a.permute(0, 2, 1)).reshape(b, c, hh, ww)
        return x + self.proj_out(o)


class Resample(nn.Module):  # Downsample (pad right/bottom, 3x3 stride 2) or Upsample (nearest x2, 3x3)
    def __init__(self, c, down):
        super().__init__()
        self.down, self.conv = down, nn.Conv2d(c, c, 3, 2 if down else 1, 0 if down else 1)

    def forward(self, x):
        return self.conv(F.pad(x, (0, 1, 0, 1)) if self.down else F.interpolate(x, scale_factor=2.0, mode="nearest"))


class Mid(nn.Module):
    def __init__(self, c, cfg):
        super().__init__()
        g, eps = cfg["gn_groups"], cfg["gn_eps"]
        self.block_1, self.block_2 = ResnetBlock(c, c, g, eps), ResnetBlock(c, c, g, eps)
        if cfg["mid_attn"]:
            self.attn_1 = AttnBlock(c, g, eps)

    def forward(self, x):
        x = self.block_1(x)
        return self.block_2(self.attn_1(x) if hasattr(self, "attn_1") else x)


def run_level(lvl, h, resample):  # one resolution level: blocks (each with its attention, if any), resampler
    for j, blk in enumerate(lvl.block):
        h = blk(h)
        if len(lvl.attn):
            h = lvl.attn[j](h)
    return getattr(lvl, resample)(h) if hasattr(lvl, resample) else h


class Encoder(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        ch, mult, g, eps = cfg["ch"], cfg["ch_mult"], cfg["gn_groups"], cfg["gn_eps"]
        self.conv_in = nn.Conv2d(cfg["in_channels"], ch, 3, 1, 1)
        self.down, res, cin = nn.ModuleList(), cfg["resolution"], ch
        for i, m in enumerate(mult):
            lvl = nn.Module()
            lvl.block, lvl.attn = nn.ModuleList(), nn.ModuleList()
            for _ in range(cfg["num_res_blocks"]):
                lvl.block.append(ResnetBlock(cin, ch * m, g, eps))
                cin = ch * m
                if res in cfg["attn_resolutions"]:
                    lvl.attn.append(AttnBlock(cin, g, eps))
            if i != len(mult) - 1:
                lvl.downsample, res = Resample(cin, True), res // 2
            self.down.append(lvl)
        self.mid, self.norm_out = Mid(cin, cfg), norm(cin, g, eps)
        self.conv_out = nn.Conv2d(cin, cfg["z_channels"], 3, 1, 1)

    def forward(self, x):
        h = self.conv_in(x)
        for lvl in self.down:
            h = run_level(lvl, h, "downsample")
        return self.conv_out(F.silu(self.norm_out(self.mid(h))))


class Decoder(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        ch, mult, g, eps = cfg["ch"], cfg["ch_mult"], cfg["gn_groups"], cfg["gn_eps"]
        cin, res = ch * mult[-1], cfg["resolution"] // 2 ** (len(mult) - 1)
        self.conv_in = nn.Conv2d(cfg["z_channels"], cin, 3, 1, 1)
        self.mid, self.up = Mid(cin, cfg), nn.ModuleList([None] * len(mult))
        for i in reversed(range(len(mult))):
            lvl = nn.Module()
            lvl.block, lvl.attn = nn.ModuleList(), nn.ModuleList()
            for _ in range(cfg["dec_num_res_blocks"]):
                lvl.block.append(ResnetBlock(cin, ch * mult[i], g, eps))
                cin = ch * mult[i]
                if res in cfg["attn_resolutions"]:
                    lvl.attn.append(AttnBlock(cin, g, eps))
            if i != 0:
                lvl.upsample, res = Resample(cin, False), res * 2
            self.up[i] = lvl
        self.norm_out, self.conv_out = norm(cin, g, eps), nn.Conv2d(cin, cfg["out_ch"], 3, 1, 1)

    def forward(self, z):
        h = self.mid(self.conv_in(z))
        for lvl in reversed(self.up):
            h = run_level(lvl, h, "upsample")
        return self.conv_out(F.silu(self.norm_out(h)))


class Quantize(nn.Module):
    def __init__(self, k, d, simvq):
        super().__init__()
        self.embedding = nn.Embedding(k, d)
        if simvq:
            self.embedding_proj = nn.Linear(d, d)

    def codebook(self):
        e = self.embedding.weight
        return self.embedding_proj(e) if hasattr(self, "embedding_proj") else e


class VQModel(nn.Module):
    def __init__(self, cfg, codes, part, simvq, l2):
        super().__init__()
        if part in ("all", "encoder"):
            self.encoder, self.quant_conv = Encoder(cfg), nn.Conv2d(cfg["z_channels"], cfg["embed_dim"], 1)
        if part in ("all", "decoder"):
            self.decoder, self.post_quant_conv = Decoder(cfg), nn.Conv2d(cfg["embed_dim"], cfg["z_channels"], 1)
        self.quantize, self.l2 = Quantize(codes, cfg["embed_dim"], simvq), l2

    def book(self):
        e = self.quantize.codebook()
        return F.normalize(e, dim=1) if self.l2 else e

    def tokenize(self, x):  # x [B, C, H, W] in [-1, 1] -> [B, h, w]
        z = self.quant_conv(self.encoder(x))
        b, d, h, w = z.shape
        zf = z.permute(0, 2, 3, 1).reshape(-1, d)
        if self.l2:
            zf = F.normalize(zf, dim=1)
        e = self.book()
        dist = (zf ** 2).sum(1, keepdim=True) + (e ** 2).sum(1) - 2 * zf @ e.t()
        return dist.argmin(1).reshape(b, h, w)

    def decode(self, idx):  # [B, h, w] -> [B, C, H, W] in [-1, 1]
        q = self.book()[idx].permute(0, 3, 1, 2)
        return self.decoder(self.post_quant_conv(q))


def main():
    if len(sys.argv) not in (3, 4):
        sys.exit(__doc__ or "usage: torch_vqgan.py MODEL.safetensors TOKENS.txt [DECODED_DIR]")
    torch.set_grad_enabled(False)
    sd, meta = read_safetensors(sys.argv[1])
    cfg, train = json.loads(meta["vqgan"]), json.loads(meta["config"])
    q = train["quantizer"]
    model = VQModel(cfg, train["codes"], meta.get("part", "all"), q == "simvq", q == "vq-l2")
    model.load_state_dict(sd, strict=True)  # every name and shape as nsvq wrote them, nothing missing or extra
    lines = [l.split() for l in open(sys.argv[2]) if l.strip()]
    x = torch.stack([read_png(l[0]) for l in lines]) * (2.0 / 255.0) - 1.0
    want = torch.tensor([[int(t) for t in l[1:]] for l in lines])
    got = model.tokenize(x).reshape(len(lines), -1)
    same = (got == want).float().mean().item()
    msg = f"torch_vqgan: {len(sd)} tensors loaded strictly; tokens of {len(lines)} images: {100 * same:.2f}% equal to nsvq's"
    ok = same >= 0.99  # argmin near-ties may flip under different summation orders
    if len(sys.argv) == 4:
        idx = want.reshape(len(lines), cfg["resolution"] // 2 ** (len(cfg["ch_mult"]) - 1), -1)
        img = ((model.decode(idx).clamp(-1, 1) + 1) * 127.5).round()
        ref = torch.stack([read_png(os.path.join(sys.argv[3], f"{i:05d}.png")) for i in range(len(lines))])
        diff = (img - ref).abs().max().item()
        msg += f"; decoded images: max |difference| {diff:.0f} of 255"
        ok = ok and diff <= 2
    print(msg)
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
