// tests/test_fdnet.cpp — the fd-net (train/fdnet.h): feature and logit shapes, save/load round trip
// with bitwise-identical features, batch chunking, fd_proxy of a set with itself ~ 0 and growing
// with noise, one-line errors (wrong channels or size, truncated / foreign / missing file,
// unlabelled data), and a few training steps on a tiny synthetic two-class set. Small nets only.
#include <doctest/doctest.h>
#include <unistd.h>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <cstring>
#include <fstream>
#include <functional>
#include "engine/rng.h"
#include "models/safetensors.h"
#include "train/fdnet.h"
#include "tests/test_util.h"

using namespace nsvq;
using nsvq_test::error_of;

namespace {

struct FdTmp {
  std::string dir;
  FdTmp() {
    char tmpl[] = "/tmp/nsvq_fdnet_XXXXXX";
    dir = mkdtemp(tmpl);
  }
  ~FdTmp() { std::filesystem::remove_all(dir); }
  std::string file(const std::string& n) const { return dir + "/" + n; }
};

FdNetConfig small_cfg(int C) {
  FdNetConfig c;
  c.in_channels = C;
  c.num_classes = 4;
  c.feature_dim = 16;
  c.width = 8;
  c.groups = 4;
  c.image_size = 32;
  return c;
}

// n smooth random images [n, C, 32, 32] in [-1, 1] (sums of a few random sinusoids)
std::vector<float> smooth_images(int64_t n, int64_t C, uint64_t seed) {
  Rng r(seed, 3);
  std::vector<float> x((size_t)(n * C * 32 * 32));
  for (int64_t i = 0; i < n * C; i++) {
    float a = r.uniform() * 0.3f + 0.05f, b = r.uniform() * 0.3f + 0.05f, p = r.uniform() * 6.28f, amp = r.uniform();
    for (int y = 0; y < 32; y++)
      for (int xx = 0; xx < 32; xx++) x[(size_t)((i * 32 + y) * 32 + xx)] = amp * std::sin(a * y + b * xx + p);
  }
  return x;
}

// features of x [n, C, 32, 32] from a net in its own graph (the reference for the extractor)
std::vector<float> direct_features(const FdNet& net, Backend* be, const std::vector<float>& x, int64_t n, int64_t C) {
  Graph g(be);
  Tensor* in = g.input(DType::f32, {n, C, 32, 32}, "x");
  Tensor* f = net.features(g, in);
  g.mark_output(f);
  g.set_f32(in, x);
  g.compute();
  return g.get_f32(f);
}


}  // namespace

TEST_CASE("fdnet features and logits shapes") {
  Backend* be = backend_cpu();
  Store st(be);
  FdNet net(st, small_cfg(3), 1);
  Graph g(be);
  Tensor* x = g.input(DType::f32, {5, 3, 32, 32}, "x");
  Tensor* f = net.features(g, x);
  Tensor* l = net.logits(g, f);
  CHECK(f->ndim == 2);
  CHECK(f->ne[0] == 5);
  CHECK(f->ne[1] == 16);
  CHECK(l->ne[0] == 5);
  CHECK(l->ne[1] == 4);
  CHECK(net.tensors().size() == 13);
  g.mark_output(l);
  g.set_f32(x, smooth_images(5, 3, 2));
  g.compute();
  for (float v : g.get_f32(l)) CHECK(std::isfinite(v));
}

TEST_CASE("fdnet save/load round trip gives bitwise-identical features, in any chunking") {
  Backend* be = backend_cpu();
  FdTmp tmp;
  std::string path = tmp.file("net.safetensors");
  Store st(be);
  FdNet net(st, small_cfg(1), 7);
  FdNetInfo info;
  info.cfg = net.config();
  info.dataset = "fmnist";
  info.test_accuracy = 0.5;
  fdnet_save(path, st, net, info);
  const int64_t n = 10;
  std::vector<float> x = smooth_images(n, 1, 4);
  std::vector<float> ref = direct_features(net, be, x, n, 1);

  FdFeatures fx(path, be, 16);
  CHECK(fx.feature_dim() == 16);
  CHECK(fx.info().dataset == "fmnist");
  CHECK(fx.info().test_accuracy == doctest::Approx(0.5));
  CHECK(fx.info().cfg.width == 8);
  std::vector<float> got = fx.extract(x.data(), n, 1, 32);
  REQUIRE(got.size() == ref.size());
  CHECK(std::memcmp(got.data(), ref.data(), ref.size() * sizeof(float)) == 0);
  got = fx.extract(x.data(), n, 1, 32);  // the cached graph again
  CHECK(std::memcmp(got.data(), ref.data(), ref.size() * sizeof(float)) == 0);

  // chunks of 4, 4, 2: per-image features do not depend on the batch they were computed in
  FdFeatures fx4(path, be, 4);
  std::vector<float> chunked = fx4.extract(x.data(), n, 1, 32);
  double maxdiff = 0;
  for (size_t i = 0; i < ref.size(); i++) maxdiff = std::max(maxdiff, (double)std::fabs(chunked[i] - ref[i]));
  CHECK(maxdiff < 1e-5);
  CHECK(fdnet_read_info(path).cfg.feature_dim == 16);
}

TEST_CASE("fdnet fd_proxy: a set with itself is ~0, and grows as the fakes are noised") {
  Backend* be = backend_cpu();
  FdTmp tmp;
  std::string path = tmp.file("net.safetensors");
  {
    Store st(be);
    FdNet net(st, small_cfg(3), 3);
    fdnet_save(path, st, net, {net.config(), "cifar10", -1});
  }
  FdFeatures fx(path, be, 64);
  const int64_t n = 96, per = 3 * 32 * 32;
  std::vector<float> real = smooth_images(n, 3, 9);
  double self = fd_proxy(fx, real.data(), real.data(), n, 3, 32);
  Rng r(5, 1);
  std::vector<double> fds;
  for (float sigma : {0.05f, 0.2f, 0.6f}) {
    std::vector<float> fake(real);
    for (float& v : fake) v = std::min(1.0f, std::max(-1.0f, v + sigma * r.normal()));
    fds.push_back(fd_proxy(fx, real.data(), fake.data(), n, 3, 32));
  }
  MESSAGE("fd_proxy self " << self << ", noised " << fds[0] << " " << fds[1] << " " << fds[2]);
  CHECK(std::fabs(self) < 1e-6 * std::max(1.0, fds[2]));
  CHECK(fds[0] > self);
  CHECK(fds[1] > fds[0]);
  CHECK(fds[2] > fds[1]);
  // accumulated statistics give the same number as the one-call form
  FeatureStats a(fx.feature_dim()), b(fx.feature_dim());
  fx.accumulate(a, real.data(), 50, 3, 32);
  fx.accumulate(a, real.data() + 50 * per, n - 50, 3, 32);
  fx.accumulate(b, real.data(), n, 3, 32);
  CHECK(std::fabs(fd_proxy(a, b)) < 1e-6 * std::max(1.0, fds[2]));
  CHECK(error_of([&] { fd_proxy(FeatureStats(16), FeatureStats(16)); }).find("at least 2") != std::string::npos);
}

TEST_CASE("fdnet errors: wrong channels or size, truncated, foreign and missing files") {
  Backend* be = backend_cpu();
  FdTmp tmp;
  std::string path = tmp.file("net.safetensors");
  Store st(be);
  FdNet net(st, small_cfg(1), 1);
  fdnet_save(path, st, net, {net.config(), "fmnist", 0.9});
  FdFeatures fx(path, be);
  std::vector<float> x = smooth_images(2, 3, 1);
  std::string e = error_of([&] { fx.extract(x.data(), 2, 3, 32); });
  CHECK(e.find("3 channels") != std::string::npos);
  CHECK(e.find("1-channel") != std::string::npos);
  CHECK(e.find('\n') == std::string::npos);
  CHECK(error_of([&] { fx.extract(x.data(), 1, 1, 64); }).find("64x64") != std::string::npos);
  {
    Graph g(be);
    Tensor* in = g.input(DType::f32, {2, 3, 32, 32}, "x");
    CHECK(error_of([&] { net.features(g, in); }).find("3 channels") != std::string::npos);
  }
  // truncated
  std::string cut = tmp.file("cut.safetensors");
  {
    std::ifstream in(path, std::ios::binary);
    std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    std::ofstream out(cut, std::ios::binary);
    out.write(bytes.data(), (std::streamsize)(bytes.size() / 2));
  }
  e = error_of([&] { FdFeatures bad(cut, be); });
  CHECK(e.find(cut) != std::string::npos);
  CHECK(e.find('\n') == std::string::npos);
  // a valid safetensors file that is not an fd-net
  std::string other = tmp.file("other.safetensors");
  save_tensors(st, other, net.tensors());
  e = error_of([&] { FdFeatures bad(other, be); });
  CHECK(e.find("not an fd-net file") != std::string::npos);
  CHECK(e.find(other) != std::string::npos);
  // missing
  e = error_of([&] { fdnet_load(tmp.file("none.safetensors"), be); });
  CHECK(e.find("none.safetensors") != std::string::npos);
}

TEST_CASE("fdnet training: a few steps learn a two-class toy set; unlabelled data is refused") {
  Backend* be = backend_cpu();
  // class 0: dark images with a bright left half; class 1: the mirror image
  Dataset d;
  d.name = "toy";
  d.C = 1;
  d.S = 32;
  d.num_classes = 2;
  Rng r(1, 2);
  for (int i = 0; i < 48; i++) {
    int label = i % 2;
    d.h.push_back(32);
    d.w.push_back(32);
    d.off.push_back((int64_t)d.px.size());
    for (int y = 0; y < 32; y++)
      for (int x = 0; x < 32; x++) d.px.push_back((uint8_t)(((x < 16) != (label == 1) ? 180 : 40) + r.below(40)));
    d.labels.push_back(label);
  }
  FdTrainConfig tc;
  tc.epochs = 10;
  tc.batch = 16;
  tc.width = 8;
  tc.feature_dim = 16;
  tc.max_steps = 16;
  tc.quiet = true;
  FdNetModel m = fdnet_train(tc, d, d, be);
  CHECK(m.info.test_accuracy >= 0.95);
  CHECK(m.info.cfg.in_channels == 1);
  CHECK(m.info.cfg.num_classes == 2);
  CHECK(fdnet_accuracy(*m.net, d, be) == doctest::Approx(m.info.test_accuracy));
  {  // the evaluation-time extractor predicts the same classes (eval-gen's class_acc), in any chunking
    FdTmp tmp;
    std::string path = tmp.file("toy.safetensors");
    fdnet_save(path, *m.store, *m.net, m.info);
    std::vector<float> x((size_t)(48 * 32 * 32));
    for (int64_t i = 0; i < 48; i++) dataset_sample(d, i, x.data() + i * 32 * 32, false, 0);
    FdFeatures fx(path, be, 20);
    std::vector<int32_t> cls;
    std::vector<float> f = fx.extract(x.data(), 48, 1, 32, &cls);
    REQUIRE(cls.size() == 48);
    int hit = 0;
    for (int i = 0; i < 48; i++) hit += cls[(size_t)i] == d.labels[(size_t)i];
    CHECK((double)hit / 48 == doctest::Approx(m.info.test_accuracy));
    CHECK(hit >= 46);
  }

  Dataset u = d;
  u.num_classes = 0;
  for (int32_t& l : u.labels) l = -1;
  CHECK(error_of([&] { fdnet_train(tc, u, u, be); }).find("labelled") != std::string::npos);
}
