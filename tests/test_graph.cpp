// tests/test_graph.cpp — graph-level behaviour: gradient accumulation through shared subgraphs,
// detach, frozen parameters, weighted losses, gradients w.r.t. chosen tensors, parameter groups,
// memory reuse, determinism, optimiser maths, RNG streams and graph-build errors.
#include <doctest/doctest.h>
#include <cmath>
#include <cstring>
#include "engine/rng.h"
#include "ops/optim.h"

using namespace nsvq;

namespace {
std::vector<float> rand_vec(size_t n, uint64_t seed) {
  Rng r(seed, 1);
  std::vector<float> v(n);
  for (float& x : v) x = 2.0f * r.uniform() - 1.0f;
  return v;
}
Tensor* param(Store& st, const std::string& name, const Shape& s, uint64_t seed, int group = 0) {
  Tensor* t = st.add(name, DType::f32, s, TF_PARAM, group);
  st.upload_f32(t, rand_vec((size_t)s.numel(), seed));
  return t;
}
std::vector<float> fetch(Graph& g, Tensor* t) { return g.get_f32(t); }
}  // namespace

TEST_CASE("gradients accumulate through a shared subgraph") {
  Store st(backend_cpu());
  Tensor* x = param(st, "x", {5}, 1);
  Graph g(backend_cpu());
  Tensor* h = mul(g, x, x);                                   // used twice below
  Tensor* loss = sum(g, add(g, h, add(g, scale(g, x, 3.0f), h)));  // 2x^2 + 3x
  g.mark_loss(loss);
  Tensor* gx = g.gradients({{loss, 1.0f}}, {x})[0];
  REQUIRE(gx);
  g.mark_output(gx);
  g.compute();
  std::vector<float> xv = st.download_f32(x), gv = fetch(g, gx);
  for (int i = 0; i < 5; i++) CHECK(gv[i] == doctest::Approx(4.0f * xv[i] + 3.0f).epsilon(1e-6));
}

TEST_CASE("detach stops gradients; frozen parameters get none and cost no gradient nodes") {
  Store st(backend_cpu());
  Tensor* x = param(st, "x", {4}, 2);
  {
    Graph g(backend_cpu());
    Tensor* loss = sum(g, mul(g, x, detach(g, x)));  // d/dx = detach(x), not 2x
    g.mark_loss(loss);
    Tensor* gx = g.gradients({{loss, 1.0f}}, {x})[0];
    g.mark_output(gx);
    g.compute();
    std::vector<float> xv = st.download_f32(x), gv = fetch(g, gx);
    for (int i = 0; i < 4; i++) CHECK(gv[i] == doctest::Approx(xv[i]));
  }
  Tensor* w = param(st, "w", {4, 4}, 3);
  auto build = [&](Graph& g) {
    Tensor* h = tanh(g, matmul(g, reshape(g, x, {1, 4}), w));
    Tensor* loss = sum(g, sqr(g, h));
    g.mark_loss(loss);
    g.backward(loss);
    return g.nodes().size();
  };
  Graph g1(backend_cpu());
  size_t n_all = build(g1);
  CHECK(g1.grad(x) != nullptr);
  CHECK(g1.grad(w) != nullptr);
  st.set_frozen(w, true);
  Graph g2(backend_cpu());
  size_t n_frozen = build(g2);
  CHECK(g2.grad(w) == nullptr);
  CHECK(g2.grad(x) != nullptr);
  CHECK(n_frozen < n_all);  // no gradient nodes for the frozen weight
  st.set_frozen(w, false);
}

TEST_CASE("weighted losses and the gradient with respect to a chosen intermediate tensor") {
  Store st(backend_cpu());
  Tensor* x = param(st, "x", {6}, 4);
  Graph g(backend_cpu());
  Tensor* h = sigmoid(g, x);  // intermediate we differentiate with respect to
  Tensor* l1 = sum(g, sqr(g, h));
  Tensor* l2 = sum(g, scale(g, h, 3.0f));
  g.mark_loss(l1);
  g.mark_loss(l2);
  std::vector<Tensor*> gr = g.gradients({{l1, 2.0f}, {l2, 0.5f}}, {h, x});
  REQUIRE(gr[0]);
  REQUIRE(gr[1]);
  g.mark_output(gr[0]);
  g.mark_output(gr[1]);
  g.mark_output(h);
  g.compute();
  std::vector<float> hv = fetch(g, h), gh = fetch(g, gr[0]), gxv = fetch(g, gr[1]);
  for (int i = 0; i < 6; i++) {
    float expect_h = 2.0f * 2.0f * hv[i] + 0.5f * 3.0f;
    CHECK(gh[i] == doctest::Approx(expect_h).epsilon(1e-6));
    CHECK(gxv[i] == doctest::Approx(expect_h * hv[i] * (1.0f - hv[i])).epsilon(1e-5));
  }
}

TEST_CASE("parameter groups: backward and Adam per group") {
  Store st(backend_cpu());
  Tensor* a = param(st, "a", {3}, 5, 0);
  Tensor* b = param(st, "b", {3}, 6, 1);
  std::vector<float> a0 = st.download_f32(a), b0 = st.download_f32(b);
  AdamW opt(st, st.params(), AdamConfig{});
  opt.set_lr(0, 0.0f);  // group 0 does not move
  opt.set_lr(1, 0.1f);
  Graph g(backend_cpu());
  Tensor* loss = sum(g, sqr(g, add(g, a, b)));
  g.mark_loss(loss);
  g.backward({{loss, 1.0f}}, 1);
  CHECK(g.grad(a) == nullptr);
  REQUIRE(g.grad(b) != nullptr);
  opt.append_update(g);
  opt.begin_step(g);
  g.compute();
  CHECK(st.download_f32(a) == a0);
  std::vector<float> b1 = st.download_f32(b);
  for (int i = 0; i < 3; i++) {
    // first Adam step moves each coordinate by lr * sign(grad) (bias-corrected m/sqrt(v) = +-1)
    float gsign = (a0[i] + b0[i]) > 0 ? 1.0f : -1.0f;
    CHECK(b1[i] == doctest::Approx(b0[i] - 0.1f * gsign).epsilon(1e-5));
  }
}

TEST_CASE("gradient norm and clipping") {
  Store st(backend_cpu());
  Tensor* a = param(st, "a", {4}, 7);
  Tensor* b = param(st, "b", {2, 3}, 8);
  AdamConfig cfg;
  cfg.lr = 0.0f;
  AdamW opt(st, st.params(), cfg);
  opt.clip_norm = 0.5f;
  Graph g(backend_cpu());
  Tensor* loss = add(g, sum(g, scale(g, a, 3.0f)), sum(g, sqr(g, b)));
  g.mark_loss(loss);
  g.backward(loss);
  Tensor* norm = opt.append_update(g);
  opt.begin_step(g);
  g.compute();
  std::vector<float> bv = st.download_f32(b);
  double ss = 4 * 9.0;
  for (float v : bv) ss += 4.0 * v * v;
  CHECK(g.get_scalar(norm) == doctest::Approx(std::sqrt(ss)).epsilon(1e-5));
  Graph c(backend_cpu());
  Tensor* n = c.constant({}, 2.0f);
  Tensor* coef = clip_coef(c, n, 0.5f);
  Tensor* coef2 = clip_coef(c, c.constant({}, 0.1f), 0.5f);
  c.mark_output(coef);
  c.mark_output(coef2);
  c.compute();
  CHECK(c.get_scalar(coef) == doctest::Approx(0.25f).epsilon(1e-5));
  CHECK(c.get_scalar(coef2) == 1.0f);
}

TEST_CASE("the planner reuses memory: peak arena below the sum of intermediates") {
  Graph g(backend_cpu());
  Tensor* x = g.input(DType::f32, {1000}, "x");
  Tensor* h = x;
  for (int i = 0; i < 20; i++) h = tanh(g, scale(g, h, 1.01f));
  g.mark_output(h);
  g.plan();
  CHECK(g.intermediates_bytes() >= 40 * 4000);
  CHECK(g.arena_bytes() <= 3 * 4032);  // a chain needs about two live buffers
  std::vector<float> v = rand_vec(1000, 9);
  g.set_f32(x, v);
  g.compute();
  std::vector<float> out = g.get_f32(h);
  float ref = v[17];
  for (int i = 0; i < 20; i++) ref = std::tanh(ref * 1.01f);
  CHECK(out[17] == doctest::Approx(ref).epsilon(1e-5));
}

namespace {
// 30 steps of a small MLP on fixed random data; returns the final parameters' bytes.
std::vector<float> train_tiny(uint64_t seed, int threads) {
  cpu_set_threads(threads);
  Store st(backend_cpu());
  Tensor* w1 = param(st, "w1", {64, 32}, seed);
  Tensor* b1 = param(st, "b1", {64}, seed + 1);
  Tensor* w2 = param(st, "w2", {10, 64}, seed + 2);
  AdamW opt(st, st.params(), AdamConfig{});
  Graph g(backend_cpu());
  Tensor* x = g.input(DType::f32, {256, 32}, "x");
  Tensor* y = g.input(DType::i32, {256}, "y");
  Tensor* ctr = g.input(DType::i32, {4}, "ctr");
  Tensor* noisy = add(g, x, scale(g, random(g, {256, 32}, RAND_NORMAL, ctr, 1), 0.1f));
  Tensor* h = gelu(g, add(g, matmul(g, noisy, w1, false, true), b1));
  Tensor* loss = cross_entropy(g, matmul(g, h, w2, false, true), y);
  g.mark_loss(loss);
  g.backward(loss);
  opt.append_update(g);
  Rng r(seed, 2);
  std::vector<float> xv(256 * 32);
  std::vector<int32_t> yv(256);
  for (int s = 0; s < 30; s++) {
    for (float& v : xv) v = r.normal();
    for (int32_t& v : yv) v = (int32_t)r.below(10);
    g.set_f32(x, xv);
    g.set_i32(y, yv);
    g.set_i32(ctr, std::vector<int32_t>{(int32_t)seed, 0, s, 0});
    opt.begin_step(g);
    g.compute();
  }
  std::vector<float> out;
  for (Tensor* p : st.params()) {
    std::vector<float> v = st.download_f32(p);
    out.insert(out.end(), v.begin(), v.end());
  }
  cpu_set_threads(0);
  return out;
}
}  // namespace

TEST_CASE("same seed gives bitwise identical training, whatever the thread count") {
  std::vector<float> a = train_tiny(11, 2), b = train_tiny(11, 2), c = train_tiny(11, 1), d = train_tiny(12, 2);
  REQUIRE(a.size() == b.size());
  CHECK(std::memcmp(a.data(), b.data(), a.size() * 4) == 0);
  CHECK(std::memcmp(a.data(), c.data(), a.size() * 4) == 0);
  CHECK(std::memcmp(a.data(), d.data(), a.size() * 4) != 0);
}

TEST_CASE("Philox4x32-10 known answers, stream statistics and resumable host RNG") {
  // Random123 known-answer vectors
  Philox4 z = philox4x32(0, 0, 0, 0, 0, 0);
  CHECK(z.v[0] == 0x6627e8d5u);
  CHECK(z.v[1] == 0xe169c58du);
  CHECK(z.v[2] == 0xbc57ac4cu);
  CHECK(z.v[3] == 0x9b00dbd8u);
  Philox4 f = philox4x32(~0u, ~0u, ~0u, ~0u, ~0u, ~0u);
  CHECK(f.v[0] == 0x408f276du);
  CHECK(f.v[1] == 0x41c83b0eu);
  CHECK(f.v[2] == 0xa20bc7c6u);
  CHECK(f.v[3] == 0x6d5451fdu);
  Graph g(backend_cpu());
  Tensor* ctr = g.input(DType::i32, {4}, "ctr");
  Tensor* n = random(g, {200000}, RAND_NORMAL, ctr, 0);
  Tensor* u = random(g, {200000}, RAND_UNIFORM, ctr, 1);
  g.mark_output(n);
  g.mark_output(u);
  g.set_i32(ctr, std::vector<int32_t>{5, 0, 1, 0});
  g.compute();
  std::vector<float> nv = g.get_f32(n), uv = g.get_f32(u);
  double m = 0, s2 = 0, um = 0;
  for (float v : nv) m += v;
  m /= nv.size();
  for (float v : nv) s2 += (v - m) * (v - m);
  int outside = 0;
  for (float v : uv) {
    um += v;
    outside += !(v > 0.0f && v <= 1.0f);
  }
  CHECK(outside == 0);
  CHECK(std::fabs(m) < 0.01);
  CHECK(std::sqrt(s2 / nv.size()) == doctest::Approx(1.0).epsilon(0.01));
  CHECK(um / uv.size() == doctest::Approx(0.5).epsilon(0.01));
  Rng a(3, 4);
  for (int i = 0; i < 7; i++) a.next_u32();
  Rng b(3, 4);
  b.set_counter(a.counter());
  for (int i = 0; i < 10; i++) CHECK(a.next_u32() == b.next_u32());
}

TEST_CASE("bad input fails at graph-build time naming the op and both shapes") {
  Graph g(backend_cpu());
  Tensor* a = g.input(DType::f32, {2, 3}, "a");
  Tensor* b = g.input(DType::f32, {4, 3}, "b");
  auto msg = [](auto f) {
    try {
      f();
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  std::string m = msg([&] { add(g, a, b); });
  CHECK(m.find("add") != std::string::npos);
  CHECK(m.find("[2, 3]") != std::string::npos);
  CHECK(m.find("[4, 3]") != std::string::npos);
  m = msg([&] { matmul(g, a, b); });
  CHECK(m.find("matmul") != std::string::npos);
  CHECK(m.find("[2, 3]") != std::string::npos);
  CHECK(m.find("[4, 3]") != std::string::npos);
  CHECK(msg([&] { reshape(g, a, {5}); }).find("reshape") != std::string::npos);
  CHECK(msg([&] { concat(g, {a, b}, 1); }).find("concat") != std::string::npos);
  CHECK(msg([&] { cross_entropy(g, a, b); }).find("cross_entropy") != std::string::npos);
  CHECK(msg([&] { slice(g, a, 1, 2, 5); }).find("slice") != std::string::npos);
  CHECK(msg([&] { backend_by_name("tpu"); }).find("unknown device") != std::string::npos);
  Store st(backend_cpu());
  CHECK(msg([&] { st.add("huge", DType::f32, {1LL << 40, 1LL << 20}); }).find("out of memory") != std::string::npos);
  // out-of-range indices are an error at compute time, before anything is written
  Graph g2(backend_cpu());
  Tensor* tab = g2.input(DType::f32, {4, 2}, "tab");
  Tensor* idx = g2.input(DType::i32, {3}, "idx");
  Tensor* rows = get_rows(g2, tab, idx);
  g2.mark_output(rows);
  g2.set_i32(idx, std::vector<int32_t>{0, 4, 1});
  CHECK(msg([&] { g2.compute(); }).find("out of range") != std::string::npos);
}

TEST_CASE("argmax and argmin ties go to the lowest index") {
  Graph g(backend_cpu());
  Tensor* x = g.input(DType::f32, {2, 5}, "x");
  Tensor* mx = argmax(g, x, 1);
  Tensor* mn = argmin(g, x, 1);
  g.mark_output(mx);
  g.mark_output(mn);
  g.set_f32(x, std::vector<float>{1, 3, 3, 0, 0, 2, 2, -1, 2, -1});
  g.compute();
  CHECK(g.get_i32(mx) == std::vector<int32_t>{1, 0});
  CHECK(g.get_i32(mn) == std::vector<int32_t>{3, 2});
}
