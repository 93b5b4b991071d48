// tests/test_models.cpp — the model building blocks: presets' encoder / decoder / discriminator
// shapes and parameter counts (computed here from the architecture formulas), taming names,
// forward + backward reaching every parameter, BatchNorm running statistics, deterministic
// per-name initialisation, safetensors save/load round trips (plain and zstd), the strict loader's
// report, corrupt-file errors, and the DiT (shape, parameter count, zero initial output).
#include <doctest/doctest.h>
#include <unistd.h>
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <functional>
#include "engine/rng.h"
#include "models/discriminator.h"
#include "models/dit.h"
#include "models/safetensors.h"
#include "models/vqgan.h"
#include "tests/test_util.h"

using namespace nsvq;
using nsvq_test::error_of;

namespace {

// ---- parameter counts from the architecture (taming model.py / discriminator/model.py)
int64_t conv_p(int64_t in, int64_t out, int64_t k, bool bias = true) { return out * in * k * k + (bias ? out : 0); }
int64_t gn_p(int64_t c) { return 2 * c; }
int64_t res_p(int64_t in, int64_t out) {
  return gn_p(in) + conv_p(in, out, 3) + gn_p(out) + conv_p(out, out, 3) + (in != out ? conv_p(in, out, 1) : 0);
}
int64_t attn_p(int64_t c) { return gn_p(c) + 4 * conv_p(c, c, 1); }

int64_t encoder_p(const VqganConfig& c) {
  int64_t n = conv_p(c.in_channels, c.ch, 3), block_in = c.ch;
  int res = c.resolution, L = (int)c.ch_mult.size();
  for (int i = 0; i < L; i++) {
    block_in = c.ch * (i == 0 ? 1 : c.ch_mult[i - 1]);
    int64_t out = c.ch * c.ch_mult[i];
    for (int j = 0; j < c.num_res_blocks; j++) {
      n += res_p(block_in, out);
      block_in = out;
      for (int r : c.attn_resolutions) n += r == res ? attn_p(out) : 0;
    }
    if (i < L - 1) n += conv_p(block_in, block_in, 3), res /= 2;
  }
  n += 2 * res_p(block_in, block_in) + (c.mid_attn ? attn_p(block_in) : 0);
  return n + gn_p(block_in) + conv_p(block_in, c.z_channels, 3);
}

int64_t decoder_p(const VqganConfig& c) {
  int L = (int)c.ch_mult.size();
  int64_t block_in = c.ch * c.ch_mult[L - 1];
  int res = c.resolution >> (L - 1);
  int64_t n = conv_p(c.z_channels, block_in, 3) + 2 * res_p(block_in, block_in) + (c.mid_attn ? attn_p(block_in) : 0);
  for (int i = L - 1; i >= 0; i--) {
    int64_t out = c.ch * c.ch_mult[i];
    for (int j = 0; j < c.dec_num_res_blocks; j++) {
      n += res_p(block_in, out);
      block_in = out;
      for (int r : c.attn_resolutions) n += r == res ? attn_p(out) : 0;
    }
    if (i > 0) n += conv_p(block_in, block_in, 3), res *= 2;
  }
  return n + gn_p(block_in) + conv_p(block_in, c.out_channels, 3);
}

int64_t disc_p(const DiscriminatorConfig& c) {
  int64_t n = conv_p(c.in_channels, c.ndf, 4), prev = c.ndf, nf = c.ndf;
  for (int k = 1; k <= c.n_layers; k++) {
    nf = c.ndf * std::min(1 << k, 8);
    n += conv_p(prev, nf, 4, false) + 2 * nf;  // conv (no bias) + BatchNorm weight, bias
    prev = nf;
  }
  return n + conv_p(nf, 1, 4);
}

std::vector<float> rand_vec(size_t n, uint64_t seed, float lo = -1.0f, float hi = 1.0f) {
  Rng r(seed, 7);
  std::vector<float> v(n);
  for (float& x : v) x = lo + (hi - lo) * r.uniform();
  return v;
}


struct TempDir {
  std::string path;
  TempDir() {
    char tmpl[] = "/tmp/nsvq_models_XXXXXX";
    path = mkdtemp(tmpl);
  }
  ~TempDir() { std::system(("rm -rf '" + path + "'").c_str()); }
  std::string file(const std::string& n) const { return path + "/" + n; }
};

std::vector<uint8_t> read_bytes(const std::string& p) {
  std::ifstream f(p, std::ios::binary);
  return std::vector<uint8_t>((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
}
void write_bytes(const std::string& p, const std::vector<uint8_t>& b) {
  std::ofstream f(p, std::ios::binary);
  f.write((const char*)b.data(), (std::streamsize)b.size());
}
// A raw safetensors byte string with the given header JSON (padded) and data bytes.
std::vector<uint8_t> raw_file(std::string header, size_t data_bytes) {
  while (header.size() % 8) header += ' ';
  std::vector<uint8_t> b(8 + header.size() + data_bytes, 0);
  for (int k = 0; k < 8; k++) b[(size_t)k] = (uint8_t)((uint64_t)header.size() >> (8 * k));
  std::memcpy(b.data() + 8, header.data(), header.size());
  return b;
}

bool same_bytes(const Store& a, const Tensor* ta, const Store& b, const Tensor* tb) {
  if (ta->nbytes() != tb->nbytes() || ta->dtype != tb->dtype || ta->shape() != tb->shape()) return false;
  std::vector<uint8_t> x(ta->nbytes()), y(tb->nbytes());
  a.download(ta, x.data(), x.size());
  b.download(tb, y.data(), y.size());
  return x == y;
}

}  // namespace

TEST_CASE("model presets: hand-computed parameter counts for fmnist") {
  // fmnist: in 1, ch 32, ch_mult [1,2,2], 1 res block (decoder 2), mid attention, GN 8, z 16, D 16.
  VqganConfig c = vqgan_preset("fmnist");
  CHECK(c.dec_num_res_blocks == c.num_res_blocks + 1);  // taming's decoder rule gives "decoder 2"
  // Encoder, term by term:
  //   conv_in 1->32 3x3: 32*1*9 + 32                                           =    320
  //   down.0.block.0 Res(32,32): 64 + (9216+32) + 64 + (9216+32)               = 18,624
  //   down.0.downsample 32->32 3x3: 9216 + 32                                  =  9,248
  //   down.1.block.0 Res(32,64): 64 + (18432+64) + 128 + (36864+64) + (2048+64) = 57,728
  //   down.1.downsample 64->64: 36864 + 64                                     = 36,928
  //   down.2.block.0 Res(64,64): 128 + 36928 + 128 + 36928                      = 74,112
  //   mid.block_1 + mid.block_2: 2 * 74,112                                     = 148,224
  //   mid.attn_1: 128 + 4 * (4096 + 64)                                        = 16,768
  //   norm_out 128, conv_out 64->16: 16*64*9 + 16 = 9,232                      =  9,360
  const int64_t enc = 320 + 18624 + 9248 + 57728 + 36928 + 74112 + 148224 + 16768 + 9360;
  CHECK(enc == 371312);
  // Decoder:
  //   conv_in 16->64: 64*16*9 + 64                                             =  9,280
  //   mid: 2 * 74,112 + 16,768                                                 = 164,992
  //   up.2: 2 * Res(64,64) + upsample conv 36,928                              = 185,152
  //   up.1: same                                                              = 185,152
  //   up.0: Res(64,32) 128 + (18432+32) + 64 + (9216+32) + (2048+32) = 29,984; Res(32,32) 18,624
  //   norm_out 64, conv_out 32->1: 1*32*9 + 1 = 289
  const int64_t dec = 9280 + 164992 + 185152 + 185152 + 29984 + 18624 + 64 + 289;
  CHECK(dec == 593537);
  // Discriminator (n_layers 2, ndf 32): main.0 1->32 4x4 + bias 32*16 + 32 = 544; main.2 32->64
  // 4x4 no bias 32,768, main.3 BN 128; main.5 64->128 4x4 s1 131,072, main.6 BN 256; main.8
  // 128->1 4x4 + bias 2,049.
  const int64_t disc = 544 + 32768 + 128 + 131072 + 256 + 2049;
  CHECK(disc == 166817);
  // The formula helpers used for the other presets agree with the hand sums.
  CHECK(encoder_p(c) == enc);
  CHECK(decoder_p(c) == dec);
  CHECK(disc_p(discriminator_preset("fmnist")) == disc);

  Store st(backend_cpu());
  VqganAutoencoder ae(st, c, 1);
  NLayerDiscriminator d(st, discriminator_preset("fmnist"), 1);
  CHECK(count_params(st, "encoder.") == enc);
  CHECK(count_params(st, "decoder.") == dec);
  CHECK(count_params(st, "quant_conv.") == 16 * 16 + 16);
  CHECK(count_params(st, "post_quant_conv.") == 16 * 16 + 16);
  CHECK(count_params(st, "loss.discriminator.") == disc);
  CHECK(count_buffers(st, "loss.discriminator.") == (2 * 64 + 1) + (2 * 128 + 1));
  CHECK(count_params(st) == enc + dec + 2 * 272 + disc);
}

TEST_CASE("model presets: taming names, layouts and groups") {
  Store st(backend_cpu());
  VqganConfig c = vqgan_preset("fmnist");
  VqganAutoencoder ae(st, c, 1);
  NLayerDiscriminator d(st, discriminator_preset("fmnist"), 1);
  auto shape_of = [&](const char* n) { return st.get(n)->shape(); };
  CHECK(shape_of("encoder.conv_in.weight") == Shape{32, 1, 3, 3});
  CHECK(shape_of("encoder.down.0.block.0.norm1.weight") == Shape{32});
  CHECK(shape_of("encoder.down.1.block.0.nin_shortcut.weight") == Shape{64, 32, 1, 1});
  CHECK(shape_of("encoder.down.1.downsample.conv.weight") == Shape{64, 64, 3, 3});
  CHECK(st.find("encoder.down.2.downsample.conv.weight") == nullptr);  // none at the last level
  CHECK(shape_of("encoder.mid.attn_1.q.weight") == Shape{64, 64, 1, 1});
  CHECK(shape_of("encoder.mid.attn_1.proj_out.bias") == Shape{64});
  CHECK(shape_of("encoder.conv_out.weight") == Shape{16, 64, 3, 3});
  CHECK(shape_of("quant_conv.weight") == Shape{16, 16, 1, 1});
  CHECK(shape_of("post_quant_conv.weight") == Shape{16, 16, 1, 1});
  CHECK(shape_of("decoder.conv_in.weight") == Shape{64, 16, 3, 3});
  CHECK(shape_of("decoder.up.0.block.1.conv2.weight") == Shape{32, 32, 3, 3});
  CHECK(shape_of("decoder.up.0.block.0.nin_shortcut.weight") == Shape{32, 64, 1, 1});
  CHECK(shape_of("decoder.up.1.upsample.conv.weight") == Shape{64, 64, 3, 3});
  CHECK(st.find("decoder.up.0.upsample.conv.weight") == nullptr);
  CHECK(shape_of("decoder.conv_out.weight") == Shape{1, 32, 3, 3});
  CHECK(shape_of("loss.discriminator.main.0.weight") == Shape{32, 1, 4, 4});
  CHECK(st.find("loss.discriminator.main.2.bias") == nullptr);  // convs before BatchNorm have no bias
  CHECK(shape_of("loss.discriminator.main.3.running_var") == Shape{64});
  CHECK(st.get("loss.discriminator.main.6.num_batches_tracked")->dtype == DType::i32);
  CHECK(shape_of("loss.discriminator.main.8.weight") == Shape{1, 128, 4, 4});
  CHECK(st.get("encoder.conv_in.weight")->group == GROUP_GENERATOR);
  CHECK(st.get("loss.discriminator.main.0.weight")->group == GROUP_DISCRIMINATOR);
  CHECK(!st.get("loss.discriminator.main.3.running_mean")->has(TF_PARAM));
  CHECK(st.get("loss.discriminator.main.3.running_mean")->has(TF_PERSIST));

  // initial values: GN 1/0, PyTorch conv bound, discriminator N(0, 0.02), BN weight N(1, 0.02), running_var 1
  auto v = [&](const char* n) { return st.download_f32(st.get(n)); };
  for (float x : v("encoder.norm_out.weight")) CHECK(x == 1.0f);
  for (float x : v("encoder.norm_out.bias")) CHECK(x == 0.0f);
  for (float x : v("loss.discriminator.main.3.running_var")) CHECK(x == 1.0f);
  float bound = 1.0f / std::sqrt(64.0f * 9.0f), mx = 0;
  for (float x : v("encoder.conv_out.weight")) mx = std::max(mx, std::fabs(x));
  CHECK(mx <= bound);
  CHECK(mx > 0.9f * bound);
  auto stats = [](const std::vector<float>& x) {
    double m = 0, s = 0;
    for (float a : x) m += a;
    m /= (double)x.size();
    for (float a : x) s += (a - m) * (a - m);
    return std::make_pair(m, std::sqrt(s / (double)x.size()));
  };
  auto sd = stats(v("loss.discriminator.main.5.weight"));  // 131,072 values
  CHECK(std::fabs(sd.first) < 1e-3);
  CHECK(sd.second == doctest::Approx(0.02).epsilon(0.02));
  auto bn = stats(v("loss.discriminator.main.6.weight"));
  CHECK(bn.first == doctest::Approx(1.0).epsilon(0.01));
}

TEST_CASE("model presets: per-name deterministic initialisation") {
  Store a(backend_cpu()), b(backend_cpu()), c(backend_cpu());
  ParamSet pa(a, 42), pb(b, 42), pc(c, 43);
  pa.param("x.weight", {100}, Init::normal(0, 1));
  Tensor* ya = pa.param("y.weight", {50}, Init::fan_in_uniform(10));
  Tensor* yb = pb.param("y.weight", {50}, Init::fan_in_uniform(10));  // no "x" before it
  Tensor* yc = pc.param("y.weight", {50}, Init::fan_in_uniform(10));
  CHECK(same_bytes(a, ya, b, yb));
  CHECK(!same_bytes(a, ya, c, yc));
  // two builds of a preset with one seed are identical
  Store s1(backend_cpu()), s2(backend_cpu());
  VqganAutoencoder m1(s1, vqgan_preset("fmnist"), 5), m2(s2, vqgan_preset("fmnist"), 5);
  for (size_t i = 0; i < s1.tensors().size(); i++) CHECK(same_bytes(s1, s1.tensors()[i], s2, s2.tensors()[i]));
  CHECK(error_of([] { vqgan_preset("mnist"); }).find("fmnist, cifar10, imagenet128") != std::string::npos);
}

namespace {
// Forward + backward of encoder -> (identity quantizer seam) -> decoder with an L1 loss, and of the
// discriminator with a hinge loss, at batch B. Checks shapes, that every parameter gets a finite
// gradient, and the BatchNorm running statistics update.
void check_train_step(const std::string& preset, int B) {
  VqganConfig c = vqgan_preset(preset);
  DiscriminatorConfig dc = discriminator_preset(preset);
  Store st(backend_cpu());
  VqganAutoencoder ae(st, c, 3);
  NLayerDiscriminator d(st, dc, 3);
  Graph g(backend_cpu());
  int R = c.resolution, h = c.latent_size();
  Tensor* x = g.input(DType::f32, {B, c.in_channels, R, R}, "x");
  Tensor* ze = ae.encode(g, x);
  CHECK(ze->shape() == Shape{B, c.embed_dim, h, h});
  Tensor* xr = ae.decode(g, ze);
  CHECK(xr->shape() == Shape{B, c.out_channels, R, R});
  Tensor* rec = loss_l1(g, xr, x);
  Tensor* real = d.forward(g, x, true);
  Tensor* fake = d.forward(g, detach(g, xr), true);
  int64_t o = NLayerDiscriminator::output_size(R, dc.n_layers);
  CHECK(real->shape() == Shape{B, 1, o, o});
  Tensor* dl = hinge_d_loss(g, real, fake);
  g.mark_loss(rec);
  g.mark_loss(dl);
  g.backward({{rec, 1.0f}}, GROUP_GENERATOR);
  g.backward({{dl, 1.0f}}, GROUP_DISCRIMINATOR);
  std::vector<Tensor*> params = st.params();
  for (Tensor* p : params) {
    Tensor* gp = g.grad(p);
    INFO(p->name);
    REQUIRE(gp != nullptr);
    g.mark_output(gp);
  }
  g.set_f32(x, rand_vec((size_t)B * c.in_channels * R * R, 11));
  g.compute();
  CHECK(std::isfinite(g.get_scalar(rec)));
  CHECK(std::isfinite(g.get_scalar(dl)));
  int nonzero = 0;
  for (Tensor* p : params) {
    std::vector<float> gv = g.get_f32(g.grad(p));
    bool finite = true, nz = false;
    for (float v : gv) finite = finite && std::isfinite(v), nz = nz || v != 0.0f;
    INFO(p->name);
    CHECK(finite);
    nonzero += nz;
  }
  CHECK(nonzero == (int)params.size());
  // training-mode BatchNorm moved its running statistics (twice: real and fake passes)
  std::vector<float> rv = st.download_f32(st.get("loss.discriminator.main.3.running_var"));
  CHECK(rv[0] != 1.0f);
  d.count_batch(st);
  int32_t nbt = 0;
  st.download(st.get("loss.discriminator.main.3.num_batches_tracked"), &nbt, 4);
  CHECK(nbt == 1);
}
}  // namespace

TEST_CASE("model presets: fmnist and cifar10 forward + backward reach every parameter") {
  for (const char* p : {"fmnist", "cifar10"}) {
    INFO(p);
    check_train_step(p, 2);
  }
  // cifar10 differs from fmnist only in the image channels (conv_in, conv_out, discriminator main.0)
  VqganConfig c = vqgan_preset("cifar10");
  Store st(backend_cpu());
  VqganAutoencoder ae(st, c, 1);
  NLayerDiscriminator d(st, discriminator_preset("cifar10"), 1);
  CHECK(count_params(st, "encoder.") == 371312 + 32 * 2 * 9);  // conv_in 3 channels instead of 1
  CHECK(count_params(st, "decoder.") == 593537 + 2 * (32 * 9 + 1));  // conv_out 3 channels
  CHECK(count_params(st, "loss.discriminator.") == 166817 + 32 * 2 * 16);
  CHECK(encoder_p(c) == count_params(st, "encoder."));
  CHECK(decoder_p(c) == count_params(st, "decoder."));
}

TEST_CASE("model presets: imagenet128 shapes, parameter counts, forward (batch 1) and checkpoint round trip") {
  VqganConfig c = vqgan_preset("imagenet128");
  DiscriminatorConfig dc = discriminator_preset("imagenet128");
  CHECK(c.latent_size() == 16);
  CHECK(c.dec_num_res_blocks == 3);
  Store st(backend_cpu());
  VqganAutoencoder ae(st, c, 1);
  NLayerDiscriminator d(st, dc, 1);
  // formula: ch 128, ch_mult [1,2,2,4], 2 res blocks (decoder 3), no attention, z = D = 128, 3 channels
  CHECK(count_params(st, "encoder.") == encoder_p(c));
  CHECK(count_params(st, "decoder.") == decoder_p(c));
  CHECK(count_params(st, "quant_conv.") == 128 * 128 + 128);
  // discriminator n_layers 3, ndf 64: 3->64 (+bias), 64->128, 128->256, 256->512 (s1), 512->1 (+bias)
  const int64_t disc = (64 * 3 * 16 + 64) + (128 * 64 * 16 + 256) + (256 * 128 * 16 + 512) + (512 * 256 * 16 + 1024) +
                       (512 * 16 + 1);
  CHECK(disc == 2765633);
  CHECK(count_params(st, "loss.discriminator.") == disc);
  CHECK(st.find("encoder.mid.attn_1.q.weight") == nullptr);
  Graph g(backend_cpu());
  Tensor* x = g.input(DType::f32, {1, 3, 128, 128}, "x");
  Tensor* ze = ae.encode(g, x);
  Tensor* xr = ae.decode(g, ze);
  Tensor* logits = d.forward(g, x, false);
  g.mark_output(ze);
  g.mark_output(xr);
  g.mark_output(logits);
  CHECK(ze->shape() == Shape{1, 128, 16, 16});
  CHECK(xr->shape() == Shape{1, 3, 128, 128});
  CHECK(logits->shape() == Shape{1, 1, 14, 14});
  g.set_f32(x, rand_vec(3 * 128 * 128, 5));
  g.compute();
  for (float v : g.get_f32(xr)) REQUIRE(std::isfinite(v));
  for (float v : g.get_f32(logits)) REQUIRE(std::isfinite(v));

  // save -> wipe -> load round trip of all 250 tensors (about 257 MB), bit-exact by name
  TempDir tmp;
  std::vector<std::vector<uint8_t>> before;
  for (Tensor* t : st.tensors()) {
    before.emplace_back(t->nbytes());
    st.download(t, before.back().data(), t->nbytes());
  }
  std::string path = tmp.file("imagenet128.safetensors");
  save_store(st, path);
  for (Tensor* t : st.tensors()) {
    std::vector<uint8_t> z(t->nbytes(), 0);
    st.upload(t, z.data(), z.size());
  }
  CHECK(load_store(st, path).loaded.size() == st.tensors().size());
  for (size_t i = 0; i < st.tensors().size(); i++) {
    std::vector<uint8_t> after(before[i].size());
    st.download(st.tensors()[i], after.data(), after.size());
    INFO(st.tensors()[i]->name);
    CHECK(after == before[i]);
  }
}

TEST_CASE("model checkpoints: save -> load round trip by name, bit-exact, plain and zstd") {
  TempDir tmp;
  for (const char* preset : {"fmnist", "cifar10"}) {  // imagenet128: in its own test above
    INFO(preset);
    Store a(backend_cpu()), b(backend_cpu());
    VqganAutoencoder ma(a, vqgan_preset(preset), 1), mb(b, vqgan_preset(preset), 2);
    NLayerDiscriminator da(a, discriminator_preset(preset), 1), db(b, discriminator_preset(preset), 2);
    da.count_batch(a);  // a non-zero i32 buffer
    std::string path = tmp.file(std::string(preset) + (std::string(preset) == "fmnist" ? ".safetensors.zst" : ".safetensors"));
    save_store(a, path, {{"preset", preset}});
    LoadReport r = load_store(b, path);
    CHECK(r.loaded.size() == a.tensors().size());
    CHECK(r.metadata.at("preset") == preset);
    for (Tensor* t : a.tensors()) CHECK(same_bytes(a, t, b, b.get(t->name)));
  }
  // the file is plain safetensors: names, dtypes, shapes readable by any implementation
  SafetensorsFile f = safetensors_read(tmp.file("cifar10.safetensors"));
  const SafetensorsEntry* e = f.find("encoder.conv_in.weight");
  REQUIRE(e);
  CHECK(e->dtype == "F32");
  CHECK(e->shape == std::vector<int64_t>{32, 3, 3, 3});
  CHECK(f.find("loss.discriminator.main.3.num_batches_tracked")->dtype == "I32");
  CHECK(f.find("loss.discriminator.main.3.num_batches_tracked")->shape.empty());
  CHECK((f.data_start % 8) == 0);
  // no temporary files left behind by the atomic writer
  CHECK(std::system(("test -z \"$(ls " + tmp.path + " | grep tmp)\"").c_str()) == 0);
}

TEST_CASE("model checkpoints: the strict loader lists missing, unexpected and mis-shaped tensors") {
  TempDir tmp;
  Store st(backend_cpu());
  ParamSet ps(st, 1);
  Tensor* w = ps.param("layer.weight", {4, 3}, Init::normal(0, 1));
  Tensor* bb = ps.param("layer.bias", {4}, Init::normal(0, 1));
  ps.param("other.weight", {2}, Init::normal(0, 1));
  Tensor* cnt = ps.buffer_i32("bn.num_batches_tracked", Shape{});
  std::vector<float> wv(12, 1.5f), bv(5, 2.0f), extra(3, 0.0f);
  int64_t nbt = 7;  // PyTorch writes this counter as I64
  std::string path = tmp.file("bad.safetensors");
  safetensors_write(path, {{"layer.weight", DType::f32, {4, 3}, wv.data()},
                           {"layer.bias", DType::f32, {5}, bv.data()},
                           {"extra.weight", DType::f32, {3}, extra.data()}});
  std::string err = error_of([&] { load_store(st, path, true); });
  CHECK(err.find("bad.safetensors") != std::string::npos);
  CHECK(err.find("missing 2: other.weight, bn.num_batches_tracked") != std::string::npos);
  CHECK(err.find("unexpected 1: extra.weight") != std::string::npos);
  CHECK(err.find("mismatched 1: layer.bias: file F32[5] vs store f32[4]") != std::string::npos);
  CHECK(err.find('\n') == std::string::npos);
  CHECK(st.download_f32(w)[0] != 1.5f);  // strict failure writes nothing

  // non-strict: loads the intersection and reports the rest; a shape mismatch still fails
  CHECK(error_of([&] { load_store(st, path, false); }).find("mismatched") != std::string::npos);
  std::vector<uint8_t> i64(8);
  std::memcpy(i64.data(), &nbt, 8);
  std::string ok = tmp.file("ok.safetensors");
  std::vector<uint8_t> hdr_file = raw_file(
      "{\"layer.weight\":{\"dtype\":\"F32\",\"shape\":[4,3],\"data_offsets\":[0,48]},"
      "\"bn.num_batches_tracked\":{\"dtype\":\"I64\",\"shape\":[],\"data_offsets\":[48,56]},"
      "\"extra.weight\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[56,68]}}",
      68);
  std::memcpy(hdr_file.data() + hdr_file.size() - 68, wv.data(), 48);
  std::memcpy(hdr_file.data() + hdr_file.size() - 20, i64.data(), 8);
  write_bytes(ok, hdr_file);
  LoadReport r = load_store(st, ok, false);
  CHECK(r.loaded == std::vector<std::string>{"layer.weight", "bn.num_batches_tracked"});
  CHECK(r.missing == std::vector<std::string>{"layer.bias", "other.weight"});
  CHECK(r.unexpected == std::vector<std::string>{"extra.weight"});
  CHECK(st.download_f32(w)[5] == 1.5f);
  int32_t got = 0;
  st.download(cnt, &got, 4);
  CHECK(got == 7);  // I64 counter loaded into the i32 buffer
  (void)bb;
}

TEST_CASE("model checkpoints: corrupt and truncated safetensors files fail with one clear line") {
  TempDir tmp;
  std::vector<float> v(6, 1.0f);
  std::string good = tmp.file("good.safetensors");
  safetensors_write(good, {{"a", DType::f32, {2, 3}, v.data()}}, {{"step", "10"}});
  std::vector<uint8_t> g = read_bytes(good);
  CHECK(safetensors_parse(g, "mem").metadata.at("step") == "10");

  auto parse_err = [](std::vector<uint8_t> b) { return error_of([&] { safetensors_parse(std::move(b), "f.st"); }); };
  auto has = [](const std::string& e, const char* s) {
    INFO(e);
    CHECK(e.find(s) != std::string::npos);
    CHECK(e.find("f.st") != std::string::npos);
  };
  has(parse_err({1, 2, 3}), "too short");
  std::vector<uint8_t> trunc(g.begin(), g.end() - 4);
  has(parse_err(trunc), "run past");
  std::vector<uint8_t> huge = g;
  huge[5] = 0x7f;
  has(parse_err(huge), "exceeds");
  const char* T = "{\"a\":{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[0,24]}";
  has(parse_err(raw_file(std::string(T) + ",}", 24)), "invalid header JSON");
  has(parse_err(raw_file(std::string(T) + "}x", 24)), "invalid header JSON");
  has(parse_err(raw_file(std::string(T) + ",\"a\":{}}", 24)), "duplicate key");
  has(parse_err(raw_file("{\"a\":{\"dtype\":\"F99\",\"shape\":[2],\"data_offsets\":[0,8]}}", 8)), "unknown dtype \"F99\"");
  has(parse_err(raw_file("{\"a\":{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[0,20]}}", 20)), "needs 24 bytes");
  has(parse_err(raw_file("{\"a\":{\"dtype\":\"F32\",\"shape\":[-2],\"data_offsets\":[0,8]}}", 8)), "non-negative integer");
  has(parse_err(raw_file("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
                         "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}", 12)), "overlap");
  has(parse_err(raw_file("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,16]}}", 16)), "gap");
  has(parse_err(raw_file("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 12)), "cover 8 data bytes");
  has(parse_err(raw_file("{\"__metadata__\":{\"k\":1}}", 0)), "not a string");
  has(parse_err(raw_file("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8],\"x\":1}}", 8)), "unknown field");
  // a recognised dtype nsvq cannot load
  std::string bf = tmp.file("bf16.safetensors");
  write_bytes(bf, raw_file("{\"a\":{\"dtype\":\"BF16\",\"shape\":[2,3],\"data_offsets\":[0,12]}}", 12));
  Store st(backend_cpu());
  ParamSet(st, 0).param("a", {2, 3}, Init::zeros());
  std::string e = error_of([&] { load_store(st, bf); });
  CHECK(e.find("unsupported dtype") != std::string::npos);
  CHECK(e.find("a (BF16)") != std::string::npos);
  // missing file, truncated zstd
  CHECK(error_of([&] { safetensors_read(tmp.file("nope.safetensors")); }).find("cannot open") != std::string::npos);
  std::string z = tmp.file("m.safetensors.zst");
  safetensors_write(z, {{"a", DType::f32, {2, 3}, v.data()}});
  CHECK(safetensors_read(z).find("a") != nullptr);
  std::vector<uint8_t> zb = read_bytes(z);
  zb.resize(zb.size() - 6);
  write_bytes(z, zb);
  e = error_of([&] { safetensors_read(z); });
  CHECK(e.find("m.safetensors.zst") != std::string::npos);
  CHECK(e.find("zstd") != std::string::npos);
}

TEST_CASE("model dit: tier1 shape, parameter count and zero initial output") {
  DitConfig c = dit_preset("tier1");
  Store st(backend_cpu());
  Dit dit(st, c, 9);
  // hidden h = 128, 16 latent channels, 64 tokens, 11 class rows, 4 blocks, MLP 512:
  //   x_embedder.proj 16*128 + 128 = 2,176; t_embedder 256*128+128 + 128*128+128 = 49,408;
  //   y_embedder 11*128 = 1,408; per block qkv 128*384+384 + proj 128*128+128 + fc1 128*512+512 +
  //   fc2 512*128+128 + adaLN 128*768+768 = 296,832; final linear 128*16+16 + adaLN 128*256+256 = 35,088
  const int64_t per_block = (128 * 384 + 384) + (128 * 128 + 128) + (128 * 512 + 512) + (512 * 128 + 128) + (128 * 768 + 768);
  CHECK(per_block == 296832);
  const int64_t total = 2176 + 49408 + 1408 + 4 * per_block + 35088;
  CHECK(total == 1275408);
  CHECK(count_params(st) == total);
  CHECK(count_buffers(st) == 64 * 128);  // pos_embed
  CHECK(st.get("blocks.3.adaLN_modulation.1.weight")->shape() == Shape{768, 128});
  CHECK(st.get("y_embedder.embedding_table.weight")->shape() == Shape{11, 128});
  CHECK(st.get("x_embedder.proj.weight")->shape() == Shape{128, 16, 1, 1});
  CHECK(st.get("final_layer.linear.weight")->shape() == Shape{16, 128});

  const int B = 2;
  Graph g(backend_cpu());
  Tensor* x = g.input(DType::f32, {B, 16, 8, 8}, "x");
  Tensor* t = g.input(DType::i32, {B}, "t");
  Tensor* tf = g.input(DType::f32, {B, 256}, "t_freq");
  Tensor* y = g.input(DType::i32, {B}, "y");
  Tensor* eps = dit.forward(g, x, t, y);
  Tensor* eps2 = dit.forward(g, x, tf, y);
  CHECK(eps->shape() == Shape{B, 16, 8, 8});
  Tensor* loss = loss_mse(g, eps, x);
  g.mark_loss(loss);
  g.mark_output(eps);
  g.mark_output(eps2);
  g.backward(loss);
  Tensor* gfin = g.grad(st.get("final_layer.linear.weight"));
  REQUIRE(gfin);
  g.mark_output(gfin);
  g.set_f32(x, rand_vec((size_t)B * 16 * 64, 3));
  g.set_i32(t, std::vector<int32_t>{10, 999});
  g.set_f32(tf, dit_timestep_embedding({10.0f, 999.0f}, 256));
  g.set_i32(y, std::vector<int32_t>{3, 10});  // 10 = the null class
  g.compute();
  for (float v : g.get_f32(eps)) REQUIRE(v == 0.0f);  // zero-initialised final layer
  for (float v : g.get_f32(eps2)) REQUIRE(v == 0.0f);
  double gs = 0;
  for (float v : g.get_f32(gfin)) gs += std::fabs(v);
  CHECK(gs > 0.0);  // but the final layer learns from the first step
  // the position table matches DiT's get_2d_sincos_pos_embed at a few known entries
  std::vector<float> pe = dit_pos_embed(128, 8);
  CHECK(pe[0] == 0.0f);                               // token (0,0): sin(0)
  CHECK(pe[32] == 1.0f);                              // cos(0)
  CHECK(pe[(size_t)1 * 128 + 0] == doctest::Approx(std::sin(1.0)));   // token (0,1): column 1 in the first half
  CHECK(pe[(size_t)8 * 128 + 64] == doctest::Approx(std::sin(1.0)));  // token (1,0): row 1 in the second half
}

// Not run by default (timing): nsvq_tests -tc='*model timing*' --no-skip
TEST_CASE("model timing: fmnist batch 32 encoder + decoder forward + backward" * doctest::skip()) {
  VqganConfig c = vqgan_preset("fmnist");
  Store st(backend_cpu());
  VqganAutoencoder ae(st, c, 1);
  NLayerDiscriminator d(st, discriminator_preset("fmnist"), 1);
  const int B = 32;
  auto run = [&](bool with_disc) {
    Graph g(backend_cpu());
    Tensor* x = g.input(DType::f32, {B, 1, 32, 32}, "x");
    Tensor* xr = ae.decode(g, ae.encode(g, x));
    Tensor* loss = loss_l1(g, xr, x);
    g.mark_loss(loss);
    g.backward({{loss, 1.0f}}, GROUP_GENERATOR);
    if (with_disc) {
      Tensor* dl = hinge_d_loss(g, d.forward(g, x, true), d.forward(g, detach(g, xr), true));
      g.mark_loss(dl);
      g.backward({{dl, 1.0f}}, GROUP_DISCRIMINATOR);
    }
    for (Tensor* p : st.params())  // gradients are outputs, as an optimizer update would consume them
      if (g.grad(p)) g.mark_output(g.grad(p));
    g.plan();
    g.set_f32(x, rand_vec((size_t)B * 1024, 1));
    g.compute();
    double best = 1e9;
    for (int i = 0; i < 5; i++) {
      auto t0 = std::chrono::steady_clock::now();
      g.compute();
      best = std::min(best, std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
    }
    std::string what = with_disc ? "enc+dec+disc" : "enc+dec";
    MESSAGE(what << " fwd+bwd batch 32: " << best << " ms (best of 5); " << g.plan_summary());
  };
  run(false);
  run(true);
}

TEST_CASE("model checkpoints: a lazily opened file reads only the tensors visited, plain and zstd, and fails on truncation") {
  TempDir tmp;
  Rng rng(5, 0);
  std::vector<std::vector<float>> data;
  std::vector<SafetensorsTensor> ts;
  // big enough that a .zst spans several decompression chunks; an empty tensor in the middle and at the end
  const std::vector<std::vector<int64_t>> shapes = {{300, 1000}, {7}, {0}, {50000}, {3, 0}};
  for (size_t i = 0; i < shapes.size(); i++) {
    int64_t n = 1;
    for (int64_t d : shapes[i]) n *= d;
    data.emplace_back((size_t)n);
    for (float& x : data.back()) x = rng.normal();
  }
  for (size_t i = 0; i < shapes.size(); i++) ts.push_back({"t" + std::to_string(i), DType::f32, shapes[i], data[i].data()});
  for (const char* name : {"l.safetensors", "l.safetensors.zst"}) {
    INFO(name);
    const std::string path = tmp.file(name);
    safetensors_write(path, ts, {{"k", "v"}});
    SafetensorsFile f = safetensors_open(path);
    CHECK(f.lazy);
    CHECK(f.bytes.empty());
    CHECK(f.metadata.at("k") == "v");
    REQUIRE(f.entries.size() == shapes.size());
    CHECK(error_of([&] { f.data(f.entries[0]); }).find("opened lazily") != std::string::npos);
    // every subset comes back bit for bit, in file order, whatever order it was asked in
    for (std::vector<size_t> pick : std::vector<std::vector<size_t>>{{3, 1}, {0, 1, 2, 3, 4}, {4}, {2}, {}}) {
      std::vector<const SafetensorsEntry*> want;
      for (size_t i : pick) want.push_back(f.find("t" + std::to_string(i)));
      std::vector<std::string> seen;
      f.visit(want, [&](const SafetensorsEntry& e, const uint8_t* p) {
        size_t i = (size_t)std::stoi(e.name.substr(1));
        seen.push_back(e.name);
        REQUIRE(p != nullptr);  // also for an empty tensor
        if (!data[i].empty()) CHECK(std::memcmp(p, data[i].data(), data[i].size() * 4) == 0);
      });
      std::sort(pick.begin(), pick.end());
      std::vector<std::string> expect;
      for (size_t i : pick) expect.push_back("t" + std::to_string(i));
      CHECK(seen == expect);
    }
    // the loader by path reads lazily and loads the same values
    Store st(backend_cpu());
    ParamSet ps(st, 0);
    Tensor* t3 = ps.param("t3", {50000}, Init::zeros());
    LoadReport r = load_tensors(st, path, {t3}, false);
    CHECK(r.loaded == std::vector<std::string>{"t3"});
    CHECK(st.download_f32(t3) == data[3]);
    // truncated: a plain file fails when opened, a .zst one when read
    std::vector<uint8_t> b = read_bytes(path);
    b.resize(b.size() - 100);
    write_bytes(path, b);
    std::string e = error_of([&] {
      SafetensorsFile g = safetensors_open(path);
      g.visit({g.find("t0")}, [](const SafetensorsEntry&, const uint8_t*) {});
    });
    INFO(e);
    CHECK(e.find(name) != std::string::npos);
    CHECK((e.find("run past") != std::string::npos || e.find("truncated") != std::string::npos));
  }
  CHECK(error_of([&] { safetensors_open(tmp.file("none.safetensors")); }).find("cannot open") != std::string::npos);
  write_bytes(tmp.file("junk.safetensors.zst"), std::vector<uint8_t>{1, 2, 3, 4, 5, 6, 7, 8, 9});
  CHECK(error_of([&] { safetensors_open(tmp.file("junk.safetensors.zst")); }).find("not a zstd file") != std::string::npos);
}
