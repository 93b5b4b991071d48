// tests/test_trainer.cpp — the trainer's parts: the config's JSON round trip and its errors, the
// stage schedule, the stage controller (encoder and quant_conv unchanged after the freeze while the
// decoder trains), Adam skipping a step with a non-finite gradient, per-parameter lr multipliers,
// the safetensors header of a checkpoint, and evaluation-mode decoding of indices equal to the
// reconstruction path.
#include <doctest/doctest.h>
#include <unistd.h>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <functional>
#include <limits>
#include "models/json.h"
#include "models/safetensors.h"
#include "ops/optim.h"
#include "train/fdnet.h"
#include "train/metrics.h"
#include "train/tokenizer.h"
#include "train/trainer.h"
#include "tests/test_util.h"

using namespace nsvq;
using nsvq_test::error_of;

namespace {

std::string temp_dir(const char* tag) {
  std::string d = std::filesystem::temp_directory_path().string() + "/nsvq_test_" + tag + "_" + std::to_string(getpid());
  std::filesystem::remove_all(d);
  return d;
}


std::vector<float> tensor_of(const SafetensorsFile& f, const std::string& name) {
  const SafetensorsEntry* e = f.find(name);
  REQUIRE(e);
  std::vector<float> v((size_t)e->numel());
  std::memcpy(v.data(), f.data(*e), v.size() * 4);
  return v;
}

}  // namespace

TEST_CASE("trainer: config JSON round trip, every field, and its errors") {
  TrainConfig c = train_preset("fmnist");
  c.quantizer = "simvq";
  c.codes = 4096;
  c.lr = 3.25e-4;
  c.replace = false;
  c.tau_mode = "absolute";
  c.stage1 = 1234;
  std::string j = train_config_json(c);
  Json parsed = json_parse(j, "test");
  CHECK(parsed.obj.size() == train_fields().size());
  TrainConfig d = train_config_from_json(j, "x");
  for (const TrainField& f : train_fields()) CHECK_MESSAGE(f.get(c) == f.get(d), f.name);
  CHECK(error_of([&] { train_config_from_json("{\"preset\": 1}", "ck"); }).find("ck: config \"preset\" has the wrong type") != std::string::npos);
  CHECK(error_of([&] { train_config_from_json("{}", "ck"); }).find("config has no \"preset\"") != std::string::npos);
  CHECK(error_of([&] { train_config_from_json("{", "ck"); }).find("ck: config") != std::string::npos);
  CHECK(error_of([&] { train_preset("mnist"); }).find("unknown preset 'mnist'") != std::string::npos);
  CHECK(error_of([&] { train_fields()[0].set(c, "x"), train_fields()[4].set(c, "12q"); }).find("--codes expects an integer") != std::string::npos);
}

TEST_CASE("trainer: automatic values and the stage schedule") {
  TrainConfig c = train_preset("fmnist");
  train_config_resolve(c, 1875);
  CHECK(c.stage1 == 3000);  // method.md §5.4 tier 1
  CHECK(c.warmup == 300);
  CHECK(c.disc_start == 1800);
  CHECK(c.tau_period == 300);
  CHECK(c.replace_window == 500);
  CHECK(stage_of(c, 2999) == Stage::stage1);
  CHECK(stage_of(c, 3000) == Stage::warmup);
  CHECK(stage_of(c, 3299) == Stage::warmup);
  CHECK(stage_of(c, 3300) == Stage::stage2);
  TrainConfig b = train_preset("fmnist");
  b.quantizer = "vq";
  b.replace_window = -1;
  train_config_resolve(b, 300);
  CHECK(b.stage1 == b.steps);  // baselines never freeze by default
  CHECK(stage_of(b, b.steps - 1) == Stage::stage1);
  CHECK(b.replace_window == 300);
  TrainConfig bad = train_preset("quickstart");
  bad.adv = "sometimes";
  CHECK(error_of([&] { train_config_resolve(bad, 100); }).find("--adv must be fixed or adaptive") != std::string::npos);
}

TEST_CASE("trainer: after the freeze the encoder and quant_conv stay fixed while the decoder trains") {
  TrainConfig c = train_preset("quickstart");
  c.steps = 6;
  c.stage1 = 2;
  c.warmup = 2;
  c.disc_start = 0;
  c.codes = 32;
  c.eval_n = 0;
  c.drift_every = 3;
  c.probe = 8;
  c.ckpt_every = 100;
  TrainOptions o;
  o.out = temp_dir("freeze");
  o.quiet = true;
  o.stop_after = 2;
  Backend* be = backend_by_name("cpu");
  CHECK(train_run(c, o, be) == 0);
  SafetensorsFile at_freeze = safetensors_read(o.out + "/checkpoint.safetensors");
  o.stop_after = -1;
  o.resume = true;
  CHECK(train_run(c, o, be) == 0);
  SafetensorsFile end = safetensors_read(o.out + "/checkpoint.safetensors");
  CHECK(end.metadata.at("step") == "6");
  CHECK(end.metadata.at("stage") == "stage2");
  int enc = 0, dec = 0;
  for (const SafetensorsEntry& e : end.entries) {
    bool is_enc = e.name.rfind("encoder.", 0) == 0 || e.name.rfind("quant_conv.", 0) == 0;
    bool is_dec = e.name.rfind("decoder.", 0) == 0 || e.name.rfind("loss.discriminator.", 0) == 0;
    if (!is_enc && !is_dec) continue;
    if (e.dtype != "F32" || e.name.find("running_") != std::string::npos) continue;
    bool same = tensor_of(at_freeze, e.name) == tensor_of(end, e.name);
    if (is_enc) {
      CHECK_MESSAGE(same, e.name);
      enc++;
    } else if (!same) {
      dec++;
    }
  }
  CHECK(enc > 10);
  CHECK(dec > 10);  // decoder and discriminator weights moved
  // the checkpoint is a valid safetensors file: header length, JSON, offsets covering the data
  std::vector<uint8_t> raw;
  {
    FILE* f = fopen((o.out + "/checkpoint.safetensors").c_str(), "rb");
    REQUIRE(f);
    uint8_t b[8];
    REQUIRE(fread(b, 1, 8, f) == 8);
    uint64_t n = 0;
    for (int i = 7; i >= 0; i--) n = n << 8 | b[i];
    raw.resize(n);
    REQUIRE(fread(raw.data(), 1, n, f) == n);
    fclose(f);
  }
  Json h = json_parse((const char*)raw.data(), raw.size(), "header");
  uint64_t expect = 0;
  for (const auto& kv : h.obj) {
    if (kv.first == "__metadata__") continue;
    const Json* off = kv.second.find("data_offsets");
    REQUIRE(off);
    CHECK(std::stoull(off->arr[0].str) == expect);
    expect = std::stoull(off->arr[1].str);
  }
  CHECK(end.bytes.size() == end.data_start + expect);
  Json cfg = json_parse(h.find("__metadata__")->find("config")->str, "config");
  CHECK(cfg.find("codes")->str == "32");
  std::filesystem::remove_all(o.out);
}

TEST_CASE("trainer: Adam skips a step whose gradient is not finite; lr multipliers apply per parameter") {
  Backend* be = backend_by_name("cpu");
  Store st(be);
  Tensor* a = st.add("a", DType::f32, {3});
  Tensor* b = st.add("b", DType::f32, {3});
  st.upload_f32(a, {1, 2, 3});
  st.upload_f32(b, {1, 2, 3});
  AdamConfig ac;
  ac.lr = 0.1f;
  AdamW opt(st, {a, b}, ac);
  opt.set_lr_mult({b}, 0.5f);
  Graph g(be);
  Tensor* s = g.input(DType::f32, {3}, "s");
  Tensor* loss = add(g, sum(g, mul(g, a, s)), sum(g, mul(g, b, s)));
  g.mark_loss(loss);
  g.backward(loss);
  Tensor* norm = opt.append_update(g);
  g.plan();
  g.set_f32(s, {1, 1, 1});
  opt.begin_step(g);
  g.compute();
  std::vector<float> a1 = st.download_f32(a), b1 = st.download_f32(b);
  CHECK(a1[0] == doctest::Approx(0.9f));  // first Adam step moves by lr
  CHECK(b1[0] == doctest::Approx(0.95f));  // half the lr
  g.set_f32(s, {1, std::numeric_limits<float>::quiet_NaN(), 1});
  opt.begin_step(g);
  g.compute();
  CHECK(std::isnan(g.get_scalar(norm)));
  CHECK(st.download_f32(a) == a1);  // nothing moved
  CHECK(st.download_f32(b) == b1);
  opt.undo_step();
  CHECK(opt.step() == 1);
  g.set_f32(s, {1, 1, std::numeric_limits<float>::infinity()});
  opt.begin_step(g);
  g.compute();
  CHECK(st.download_f32(a) == a1);
  CHECK(std::isinf(g.get_scalar(norm)));
}

TEST_CASE("trainer: decoding indices equals the evaluation reconstruction, for every quantizer") {
  for (const char* q : {"vq", "vq-l2", "ema", "simvq", "nsvq"}) {
    TrainConfig c = train_preset("quickstart");
    c.quantizer = q;
    c.codes = 64;
    train_config_resolve(c, 100);
    Store st(backend_by_name("cpu"));
    TokenizerModel m(st, c);
    const int64_t B = 3, per = m.channels() * m.resolution() * m.resolution();
    std::vector<float> x((size_t)(B * per)), xr(x.size()), xd(x.size());
    for (size_t i = 0; i < x.size(); i++) x[i] = std::sin(0.37f * (float)i);
    std::vector<int32_t> idx((size_t)(B * m.grid() * m.grid())), idx2(idx.size());
    m.reconstruct(x.data(), B, xr.data(), idx.data());
    m.encode(x.data(), B, idx2.data());
    m.decode(idx.data(), B, xd.data());
    CHECK_MESSAGE(idx == idx2, q);
    CHECK_MESSAGE(xr == xd, q);
    idx[0] = 64;
    CHECK(error_of([&] { m.decode(idx.data(), B, xd.data()); }).find("code index 64 out of range") != std::string::npos);
  }
}

TEST_CASE("trainer: evaluation counts every token, averages per-image PSNR/SSIM, and computes fd_proxy with an fd-net") {
  TrainConfig c = train_preset("quickstart");
  c.codes = 64;
  train_config_resolve(c, 100);
  Backend* be = backend_by_name("cpu");
  Store st(be);
  TokenizerModel m(st, c);
  Dataset d;
  d.name = "synthetic";
  d.C = 1;
  d.S = 32;
  const int64_t n = 7, per = 32 * 32;
  for (int64_t i = 0; i < n; i++) {
    d.h.push_back(32);
    d.w.push_back(32);
    d.off.push_back((int64_t)d.px.size());
    d.labels.push_back(-1);
    for (int64_t j = 0; j < per; j++) d.px.push_back((uint8_t)((j * (i + 3) + i * 17) % 251));
  }
  std::string path = temp_dir("fdnet") + ".safetensors";
  {
    Store fs(be);
    FdNetConfig fc;
    fc.in_channels = 1;
    fc.num_classes = 4;
    fc.feature_dim = 16;
    fc.width = 8;
    fc.groups = 4;
    FdNet net(fs, fc, 5);
    FdNetInfo info;
    info.cfg = fc;
    info.dataset = "synthetic";
    fdnet_save(path, fs, net, info);
  }
  FdFeatures fx(path, be);
  EvalResult r = tokenizer_evaluate(m, d, n, 3, &fx);  // batches of 3, 3 and 1
  int64_t total = 0;
  for (int64_t k : r.counts) total += k;
  CHECK(total == n * m.grid() * m.grid());
  CHECK(r.images == n);
  CHECK(r.fd_proxy > 0);
  CHECK(std::isfinite(r.fd_proxy));
  // per-image PSNR / SSIM against a direct computation
  double psnr = 0, ssim = 0;
  std::vector<float> x((size_t)per), xr((size_t)per);
  std::vector<uint8_t> a((size_t)per), b((size_t)per);
  for (int64_t i = 0; i < n; i++) {
    dataset_sample(d, i, x.data(), false, 0);
    m.reconstruct(x.data(), 1, xr.data(), nullptr);
    for (int64_t j = 0; j < per; j++) a[(size_t)j] = to_uint8(x[(size_t)j]), b[(size_t)j] = to_uint8(xr[(size_t)j]);
    CHECK(std::equal(a.begin(), a.end(), d.px.begin() + i * per));  // [-1, 1] -> uint8 is exact
    psnr += psnr_u8(a.data(), b.data(), per) / n;
    ssim += ssim_u8(a.data(), b.data(), 1, 32, 32) / n;
  }
  CHECK(r.psnr == doctest::Approx(psnr).epsilon(1e-9));
  CHECK(r.ssim == doctest::Approx(ssim).epsilon(1e-9));
  EvalResult r2 = tokenizer_evaluate(m, d, n, 7, &fx);  // one batch: the same numbers
  CHECK(r2.counts == r.counts);
  CHECK(r2.psnr == doctest::Approx(r.psnr).epsilon(1e-12));
  std::filesystem::remove(path);
}
