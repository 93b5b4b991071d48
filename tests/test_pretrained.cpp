// tests/test_pretrained.cpp — the pretrained evaluation networks with deterministic "formula" weights
// (the hash rule tests/torch_metrics.py uses too): InceptionV3-FID features and LPIPS distances
// against golden values PyTorch computed (tests/torch_metrics.py golden), the weight-file checks,
// LPIPS' properties and gradient, FID of feature sets, and the perceptual loss in a training run.
#include <doctest/doctest.h>
#include <unistd.h>
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>
#include "engine/backend.h"
#include "models/inception_fid.h"
#include "models/lpips.h"
#include "models/safetensors.h"
#include "train/fid_lpips.h"
#include "train/trainer.h"
#include "tests/test_util.h"

using namespace nsvq;
using nsvq_test::error_of;

namespace {

// hash32(i, t) / 2^32: the formula of tests/torch_metrics.py
double formula_u(uint64_t i, uint64_t t) {
  uint32_t x = (uint32_t)(i * 2654435761ull + (t + 1) * 2246822519ull);
  x ^= x >> 15;
  x *= 2246822507u;
  x ^= x >> 13;
  x *= 3266489909u;
  x ^= x >> 16;
  return (double)x / 4294967296.0;
}

bool ends_with(const std::string& s, const std::string& e) {
  return s.size() >= e.size() && s.compare(s.size() - e.size(), e.size(), e) == 0;
}

// Every tensor of `spec`, tensor t = its index in the sorted names, by the rules of torch_metrics.py.
RawWeights formula_weights(const std::vector<WeightSpec>& spec) {
  std::vector<std::string> names;
  for (const WeightSpec& s : spec) names.push_back(s.name);
  std::sort(names.begin(), names.end());
  RawWeights w;
  for (const WeightSpec& s : spec) {
    const uint64_t t = (uint64_t)(std::lower_bound(names.begin(), names.end(), s.name) - names.begin());
    std::vector<float>& v = w[s.name];
    v.resize((size_t)s.shape.numel());
    const double fan_in = s.shape.ndim == 4 ? (double)(s.shape[1] * s.shape[2] * s.shape[3]) : 1.0;
    for (size_t i = 0; i < v.size(); i++) {
      const double u = formula_u(i, t);
      double x;
      if (ends_with(s.name, "running_var")) x = 0.5 + u;
      else if (ends_with(s.name, "running_mean")) x = 0.2 * (2 * u - 1);
      else if (s.shape.ndim == 4 && s.name.rfind("lin", 0) == 0) x = 0.2 * u;
      else if (s.shape.ndim == 4) x = (2 * u - 1) * std::sqrt(6.0 / fan_in);
      else if (ends_with(s.name, ".bn.weight")) x = 0.5 + u;
      else x = 0.2 * (2 * u - 1);
      v[i] = (float)x;
    }
  }
  return w;
}

// formula image set k: [2, 3, 32, 32], round(u(i, 1000 + k) * 255) as uint8
std::vector<uint8_t> formula_images(int k) {
  std::vector<uint8_t> v(2 * 3 * 32 * 32);
  for (size_t i = 0; i < v.size(); i++) v[i] = (uint8_t)std::lround(formula_u(i, 1000 + (uint64_t)k) * 255.0);
  return v;
}

// Writes raw weights as a converted file would hold them.
void write_weights(const std::string& path, const RawWeights& w, const std::vector<WeightSpec>& spec, const char* format) {
  std::vector<SafetensorsTensor> ts;
  for (const WeightSpec& s : spec)
    ts.push_back({s.name, DType::f32, std::vector<int64_t>(s.shape.ne, s.shape.ne + s.shape.ndim), w.at(s.name).data()});
  safetensors_write(path, ts, {{"format", format}});
}

std::string temp_path(const char* tag) {
  std::string d = (std::filesystem::temp_directory_path() / ("nsvq_pretrained_" + std::to_string(getpid()))).string();
  std::filesystem::create_directories(d);
  return d + "/" + tag;
}

const RawWeights& lpips_formula() {
  static const RawWeights w = formula_weights(LpipsVgg::spec());
  return w;
}

}  // namespace

TEST_CASE("pretrained weights: the file's format, names, shapes and dtypes are checked, one line each") {
  const std::vector<WeightSpec> spec = LpipsVgg::spec();
  CHECK(spec.size() == 31);  // 13 convs x (weight, bias) + 5 heads
  const RawWeights& w = lpips_formula();
  const std::string good = temp_path("lpips.safetensors");
  write_weights(good, w, spec, LpipsVgg::format());
  Backend* be = backend_by_name("cpu");
  CHECK_NOTHROW(LpipsMetric(good, be));
  const std::string wrong = temp_path("wrong.safetensors");
  write_weights(wrong, w, spec, "nsvq-inception-fid");
  std::string e = error_of([&] { LpipsMetric m(wrong, be); });
  CHECK(e.find("--lpips-weights") != std::string::npos);
  CHECK(e.find("not a nsvq-lpips-vgg weights file") != std::string::npos);
  CHECK(e.find("tools/convert-weights.py lpips") != std::string::npos);
  // a missing head, a transposed conv and an extra tensor: all named in one line
  std::vector<WeightSpec> bad = spec;
  bad.pop_back();                                   // lin4.weight
  std::swap(bad[0].shape.ne[0], bad[0].shape.ne[1]);  // features.0.weight [3, 64, 3, 3]
  RawWeights bw = w;
  bw["classifier.0.weight"] = std::vector<float>(4, 0.0f);
  bad.push_back({"classifier.0.weight", Shape{2, 2}});
  const std::string badf = temp_path("bad.safetensors");
  write_weights(badf, bw, bad, LpipsVgg::format());
  e = error_of([&] { LpipsMetric m(badf, be); });
  CHECK(e.find("missing 1: lin4.weight") != std::string::npos);
  CHECK(e.find("mismatched 1: features.0.weight (file F32[3, 64, 3, 3], expected F32[64, 3, 3, 3])") != std::string::npos);
  CHECK(e.find("unexpected 1: classifier.0.weight") != std::string::npos);
  CHECK(e.find('\n') == std::string::npos);
  CHECK(error_of([&] { FidFeatures f(good, be); }).find("not a nsvq-inception-fid weights file") != std::string::npos);
  CHECK(error_of([&] { FidFeatures f(temp_path("absent.safetensors"), be); }).find("absent.safetensors") != std::string::npos);
  // the InceptionV3 list: 94 BasicConv2d modules x (conv weight + 4 BatchNorm tensors)
  CHECK(InceptionFid::spec().size() == 94 * 5);
}

TEST_CASE("LPIPS: zero for identical images, symmetric, a repeated gray channel equals RGB; batch-independent") {
  Backend* be = backend_by_name("cpu");
  LpipsMetric m(lpips_formula(), be, 3);
  std::vector<uint8_t> a = formula_images(0), b = formula_images(1);
  std::vector<double> ab = m.distances_u8(a.data(), b.data(), 2, 3, 32, 32);
  std::vector<double> ba = m.distances_u8(b.data(), a.data(), 2, 3, 32, 32);
  std::vector<double> aa = m.distances_u8(a.data(), a.data(), 2, 3, 32, 32);
  for (int i = 0; i < 2; i++) {
    CHECK(ab[(size_t)i] > 0.01);
    CHECK(aa[(size_t)i] == 0.0);
    CHECK(ab[(size_t)i] == doctest::Approx(ba[(size_t)i]).epsilon(1e-6));
  }
  // one image at a time gives the same distances as the batch of two
  std::vector<double> one = m.distances_u8(a.data() + 3 * 1024, b.data() + 3 * 1024, 1, 3, 32, 32);
  CHECK(one[0] == doctest::Approx(ab[1]).epsilon(1e-6));
  // gray images: the channel repeated
  std::vector<uint8_t> g(a.begin(), a.begin() + 1024), h(b.begin(), b.begin() + 1024), g3, h3;
  for (int c = 0; c < 3; c++) {
    g3.insert(g3.end(), g.begin(), g.end());
    h3.insert(h3.end(), h.begin(), h.end());
  }
  CHECK(m.distances_u8(g.data(), h.data(), 1, 1, 32, 32)[0] == doctest::Approx(m.distances_u8(g3.data(), h3.data(), 1, 3, 32, 32)[0]).epsilon(1e-6));
  CHECK(error_of([&] { m.distances_u8(a.data(), b.data(), 1, 3, 8, 8); }).find("too small") != std::string::npos);
}

TEST_CASE("LPIPS: the gradient with respect to the reconstruction matches finite differences") {
  Backend* be = backend_by_name("cpu");
  Store st(be);
  LpipsVgg net(st, lpips_formula());
  const int64_t B = 1, C = 3, S = 16, n = B * C * S * S;
  Graph g(be);
  Tensor* a = g.input(DType::f32, {B, C, S, S}, "a");
  Tensor* b = g.input(DType::f32, {B, C, S, S}, "b");
  Tensor* d = mean(g, net.distance(g, a, b));
  Tensor* gb = g.gradients({{d, 1.0f}}, {b})[0];
  REQUIRE(gb != nullptr);
  g.mark_output(d);
  g.mark_output(gb);
  g.plan();
  std::vector<float> va((size_t)n), vb((size_t)n);
  for (int64_t i = 0; i < n; i++) {
    va[(size_t)i] = (float)(2 * formula_u((uint64_t)i, 7) - 1);
    vb[(size_t)i] = (float)(2 * formula_u((uint64_t)i, 8) - 1);
  }
  g.set_f32(a, va);
  auto eval = [&](const std::vector<float>& x) {
    g.set_f32(b, x);
    g.compute();
    return (double)g.get_scalar(d);
  };
  eval(vb);
  std::vector<float> grad = g.get_f32(gb);
  for (float v : grad) REQUIRE(std::isfinite(v));
  std::vector<int64_t> idx((size_t)n);
  for (int64_t i = 0; i < n; i++) idx[(size_t)i] = i;
  std::partial_sort(idx.begin(), idx.begin() + 8, idx.end(),
                    [&](int64_t x, int64_t y) { return std::fabs(grad[(size_t)x]) > std::fabs(grad[(size_t)y]); });
  const float eps = 2e-3f;
  for (int k = 0; k < 8; k++) {
    std::vector<float> p = vb, m = vb;
    p[(size_t)idx[(size_t)k]] += eps;
    m[(size_t)idx[(size_t)k]] -= eps;
    const double fd = (eval(p) - eval(m)) / (2.0 * eps);
    CHECK_MESSAGE(fd == doctest::Approx(grad[(size_t)idx[(size_t)k]]).epsilon(3e-2), "element ", idx[(size_t)k]);
  }
}

TEST_CASE("FID: features are batch-independent, float images round like uint8 ones, and a set is 0 from itself") {
  Backend* be = backend_by_name("cpu");
  static const RawWeights w = formula_weights(InceptionFid::spec());
  FidFeatures fx(w, be, 2);
  std::vector<uint8_t> a = formula_images(0), b = formula_images(1);
  std::vector<uint8_t> four(a);
  four.insert(four.end(), b.begin(), b.end());
  std::vector<float> f4 = fx.extract_u8(four.data(), 4, 3, 32, 32);  // batches of 2
  std::vector<float> f1 = fx.extract_u8(b.data() + 3 * 1024, 1, 3, 32, 32);
  REQUIRE(f4.size() == 4 * 2048);
  double worst = 0, scale = 0;
  for (int j = 0; j < 2048; j++) {
    worst = std::max(worst, (double)std::fabs(f4[3 * 2048 + j] - f1[j]));
    scale = std::max(scale, (double)std::fabs(f1[j]));
  }
  CHECK(scale > 0);
  CHECK(worst <= 1e-5 * scale);
  // floats in [-1, 1] that round to the same uint8 values give the same statistics
  std::vector<float> xf(four.size());
  for (size_t i = 0; i < four.size(); i++) xf[i] = (float)four[i] / 127.5f - 1.0f + 1e-3f;
  FeatureStats s1(2048), s2(2048);
  fx.accumulate(s1, xf.data(), 4, 3, 32);
  s2.add(f4.data(), 4);
  CHECK(frechet_distance(s1, s2, "fid") == doctest::Approx(0.0).epsilon(1e-9));
  std::vector<double> m1 = s1.mean(), m2 = s2.mean();
  for (int j = 0; j < 2048; j += 97) CHECK(m1[(size_t)j] == doctest::Approx(m2[(size_t)j]).epsilon(1e-6));
  FeatureStats s3(2048);
  s3.add(f4.data(), 2);  // set 0 only
  CHECK(frechet_distance(s2, s3, "fid") > 0);
  CHECK(error_of([&] { frechet_distance(s1, FeatureStats(2048), "rfid"); }).find("rfid: needs at least 2 images") == 0);
}

TEST_CASE("trainer: the perceptual loss trains, logs its value and cost, is not checkpointed; eval reports LPIPS") {
  const std::string wfile = temp_path("lpips-train.safetensors");
  write_weights(wfile, lpips_formula(), LpipsVgg::spec(), LpipsVgg::format());
  TrainConfig c = train_preset("quickstart");
  c.steps = 2;
  c.batch = 4;
  c.codes = 32;
  c.eval_n = 8;
  c.eval_batch = 8;
  c.drift_every = 100;
  c.probe = 8;
  c.lpips_weights = wfile;
  TrainOptions o;
  o.out = temp_path("run");
  o.quiet = true;
  Backend* be = backend_by_name("cpu");
  REQUIRE(train_run(c, o, be) == 0);
  std::ifstream in(o.out + "/metrics.jsonl");
  std::string line, last_step;
  bool cfg_ok = false;
  while (std::getline(in, line)) {
    if (line.find("\"perceptual-weight\": 1,") != std::string::npos) cfg_ok = true;
    if (line.find("\"perc\": ") != std::string::npos) last_step = line;
  }
  CHECK(cfg_ok);
  REQUIRE(!last_step.empty());
  CHECK(last_step.find("\"perc_ms\": ") != std::string::npos);
  const double perc = std::atof(last_step.c_str() + last_step.find("\"perc\": ") + 8);
  CHECK(perc > 0);
  std::ifstream ej(o.out + "/eval.json");
  std::stringstream es;
  es << ej.rdbuf();
  const std::string ev = es.str();
  CHECK(ev.find("\"rfid\": null") != std::string::npos);
  const size_t lp = ev.find("\"lpips\": ");
  REQUIRE(lp != std::string::npos);
  CHECK(std::atof(ev.c_str() + lp + 9) > 0);
  SafetensorsFile ck = safetensors_open(o.out + "/checkpoint.safetensors");
  for (const SafetensorsEntry& e : ck.entries) CHECK_MESSAGE(e.name.rfind("lpips.", 0) != 0, e.name);
  // stopped after a step and resumed (the weights file read again from the stored path): bitwise the same run
  const std::string full = o.out;
  o.out = temp_path("run-resumed");
  o.stop_after = 1;
  REQUIRE(train_run(c, o, be) == 0);
  o.stop_after = -1;
  o.resume = true;
  REQUIRE(train_run(c, o, be) == 0);
  auto bytes = [](const std::string& f) {
    std::ifstream i(f, std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(i), std::istreambuf_iterator<char>());
  };
  CHECK(bytes(full + "/checkpoint.safetensors") == bytes(o.out + "/checkpoint.safetensors"));
  o.resume = false;
  // a perceptual weight without the network is refused
  TrainConfig bad = train_preset("quickstart");
  bad.perceptual_weight = 0.5;
  o.out = temp_path("run-bad");
  CHECK(error_of([&] { train_run(bad, o, be); }).find("--perceptual-weight needs --lpips-weights") != std::string::npos);
}

TEST_CASE("InceptionV3-FID and LPIPS match PyTorch on formula weights and images (golden values)") {
  // /usr/bin/python3 tests/torch_metrics.py golden: pytorch-fid's pipeline (resize to 299, 2x - 1,
  // FIDInception blocks, pool3) and the lpips package's LPIPS v0.1 on the same formula weights
  static const int kFidGoldenIndex[7] = {0, 1, 2, 3, 511, 1024, 2047};
  static const double kFidGolden[2][8] = {  // 7 features, then the mean of all 2048
      {1.78605604, 0, 0, 0.698735774, 0, 10.0307293, 18.2953129, 4.59998214},
      {1.86215496, 0, 0, 0.657022357, 0, 9.67708588, 17.8807564, 4.547186},
  };
  static const double kFidRms[2] = {7.90481854, 7.80964018};
  static const double kLpipsGolden[2] = {0.155777767, 0.154713273};
  Backend* be = backend_by_name("cpu");
  static const RawWeights w = formula_weights(InceptionFid::spec());
  FidFeatures fx(w, be);
  std::vector<uint8_t> a = formula_images(0), b = formula_images(1);
  std::vector<float> f = fx.extract_u8(a.data(), 2, 3, 32, 32);
  double worst = 0;
  for (int i = 0; i < 2; i++) {
    double mean = 0, rms = 0;
    for (int j = 0; j < 2048; j++) {
      mean += f[(size_t)(i * 2048 + j)] / 2048.0;
      rms += (double)f[(size_t)(i * 2048 + j)] * f[(size_t)(i * 2048 + j)] / 2048.0;
    }
    rms = std::sqrt(rms);
    for (int k = 0; k < 7; k++)
      worst = std::max(worst, std::fabs(f[(size_t)(i * 2048 + kFidGoldenIndex[k])] - kFidGolden[i][k]) / kFidRms[i]);
    worst = std::max(worst, std::fabs(mean - kFidGolden[i][7]) / kFidRms[i]);
    CHECK(rms == doctest::Approx(kFidRms[i]).epsilon(1e-5));
  }
  MESSAGE("InceptionV3-FID: largest difference from PyTorch / feature rms = ", worst);
  CHECK(worst < 2e-5);
  LpipsMetric m(lpips_formula(), be);
  std::vector<double> d = m.distances_u8(a.data(), b.data(), 2, 3, 32, 32);
  for (int i = 0; i < 2; i++) CHECK(d[(size_t)i] == doctest::Approx(kLpipsGolden[i]).epsilon(1e-5));
}
