// tests/test_quantizer.cpp — exact checks of the quantizers (models/quantizer.h) and their kernels
// (ops/vq.h): argmin ties, blockwise search against brute force at sizes off the blocks, thread-count
// independence, EMA and replacement step by step on hand-sized examples, reproducibility under a
// seed, straight-through gradients, the image layout, and the toy drift experiment of method.md §3.6.
#include <doctest/doctest.h>
#include <cmath>
#include <cstring>
#include "engine/rng.h"
#include "models/quantize_toy.h"
#include "models/quantizer.h"
#include "ops/optim.h"

using namespace nsvq;

namespace {

std::vector<float> rand_vec(size_t n, uint64_t seed, float lo = -1.0f, float hi = 1.0f) {
  Rng r(seed, 5);
  std::vector<float> v(n);
  for (float& x : v) x = lo + (hi - lo) * r.uniform();
  return v;
}

double dist_ref(const std::vector<float>& z, int64_t i, const std::vector<float>& E, int64_t k, int64_t D) {
  double zz = 0, ee = 0, ze = 0;
  for (int64_t d = 0; d < D; d++) {
    double a = z[(size_t)(i * D + d)], b = E[(size_t)(k * D + d)];
    zz += a * a;
    ee += b * b;
    ze += a * b;
  }
  return std::max(zz + ee - 2 * ze, 0.0);
}

// search [N, 3] of z against E on the CPU with `threads` threads
std::vector<float> run_search(const std::vector<float>& z, const std::vector<float>& E, int64_t N, int64_t K, int64_t D,
                              int threads, float tau = 0.0f) {
  cpu_set_threads(threads);
  Graph g(backend_cpu());
  Tensor* zt = g.input(DType::f32, {N, D}, "z");
  Tensor* et = g.input(DType::f32, {K, D}, "E");
  Tensor* tt = tau > 0 ? g.input(DType::f32, {1}, "tau") : nullptr;
  Tensor* s = vq_nearest(g, zt, et, tt);
  g.mark_output(s);
  g.plan();
  g.set_f32(zt, z);
  g.set_f32(et, E);
  if (tt) g.set_f32(tt, &tau, 1);
  g.compute();
  std::vector<float> r = g.get_f32(s);
  cpu_set_threads(0);
  return r;
}

struct ThreadsGuard {
  ~ThreadsGuard() { cpu_set_threads(0); }
};

}  // namespace

TEST_CASE("vq search: ties go to the lowest index, across tiles and chunks") {
  const int64_t K = 3000, D = 3, N = 5;
  std::vector<float> E = rand_vec((size_t)(K * D), 1, 20.0f, 30.0f);  // far from the latents
  // code 2500 (another tile and chunk) duplicates code 7; code 1500 duplicates code 1200
  for (int d = 0; d < D; d++) {
    E[(size_t)(2500 * D + d)] = E[(size_t)(7 * D + d)] = 0.25f * (d + 1);
    E[(size_t)(1500 * D + d)] = E[(size_t)(1200 * D + d)] = -0.5f;
  }
  // codes 10 and 11 at equal distance 41 from latent 2; codes 20, 21 equal to latent 3 (d = 0)
  const float e10[3] = {1, 0, 0}, e11[3] = {0, 1, 0}, v[3] = {-3, 4, 5};
  for (int d = 0; d < D; d++) {
    E[(size_t)(10 * D + d)] = e10[d];
    E[(size_t)(11 * D + d)] = e11[d];
    E[(size_t)(20 * D + d)] = E[(size_t)(21 * D + d)] = v[d];
  }
  std::vector<float> z = {0.25f, 0.5f, 0.75f, -0.5f, -0.5f, -0.5f, 5, 5, 0, -3, 4, 5, 0.25f, 0.5f, 0.74f};
  for (int t : {1, 2}) {
    std::vector<float> s = run_search(z, E, N, K, D, t);
    CHECK(s[0 * 3 + 2] == 7.0f);
    CHECK(s[1 * 3 + 2] == 1200.0f);
    CHECK(s[2 * 3 + 2] == 10.0f);
    CHECK(s[3 * 3 + 2] == 20.0f);
    CHECK(s[3 * 3 + 0] == 0.0f);
    CHECK(s[4 * 3 + 2] == 7.0f);
  }
}

TEST_CASE("vq search: blockwise result equals brute force at sizes off the blocks; bitwise equal for 1 and 2 threads") {
  ThreadsGuard guard;
  struct Size {
    int64_t N, K, D;
  };
  for (Size sz : {Size{1, 1, 1}, Size{129, 1025, 3}, Size{257, 2049, 17}, Size{50, 7001, 8}, Size{300, 100, 64}}) {
    CAPTURE(sz.N);
    CAPTURE(sz.K);
    CAPTURE(sz.D);
    std::vector<float> z = rand_vec((size_t)(sz.N * sz.D), 10 + sz.N), E = rand_vec((size_t)(sz.K * sz.D), 20 + sz.K);
    const float tau = 0.7f;
    std::vector<float> s1 = run_search(z, E, sz.N, sz.K, sz.D, 1, tau), s2 = run_search(z, E, sz.N, sz.K, sz.D, 2, tau);
    CHECK(std::memcmp(s1.data(), s2.data(), s1.size() * 4) == 0);
    int bad = 0;
    for (int64_t i = 0; i < sz.N && bad < 3; i++) {
      double best = INFINITY, sum = 0;
      int64_t at = 0;
      for (int64_t k = 0; k < sz.K; k++) {
        double d = dist_ref(z, i, E, k, sz.D);
        if (d < best) {
          best = d;
          at = k;
        }
      }
      for (int64_t k = 0; k < sz.K; k++) sum += std::exp(-(dist_ref(z, i, E, k, sz.D) - best) / tau);
      int64_t got = (int64_t)s1[(size_t)(i * 3 + 2)];
      double scale = 1e-5 * (1.0 + sz.D);
      bool ok = got == at || std::fabs(dist_ref(z, i, E, got, sz.D) - best) < scale;  // a float near-tie
      ok = ok && std::fabs(s1[(size_t)(i * 3)] - best) < scale;
      ok = ok && std::fabs(s1[(size_t)(i * 3 + 1)] - (-best / tau + std::log(sum))) < 1e-4 * (1 + std::fabs(best / tau));
      if (!ok) {
        bad++;
        FAIL_CHECK("row " << i << ": got " << got << " (" << s1[(size_t)(i * 3)] << ", lse " << s1[(size_t)(i * 3 + 1)]
                          << ") expected " << at << " (" << best << ")");
      }
    }
  }
}

TEST_CASE("vq search: K = 262,144 codes works and matches brute force") {
  const int64_t N = 40, K = 262144, D = 4;
  std::vector<float> z = rand_vec((size_t)(N * D), 3), E = rand_vec((size_t)(K * D), 4);
  std::vector<float> s = run_search(z, E, N, K, D, 0);
  for (int64_t i = 0; i < N; i += 7) {
    double best = INFINITY;
    for (int64_t k = 0; k < K; k++) best = std::min(best, dist_ref(z, i, E, k, D));
    CHECK(dist_ref(z, i, E, (int64_t)s[(size_t)(i * 3 + 2)], D) == doctest::Approx(best).epsilon(1e-5));
  }
}

TEST_CASE("vq dense stats and soft mix are bitwise independent of the thread count") {
  ThreadsGuard guard;
  const int64_t N = 300, K = 2100, D = 6;
  std::vector<float> z = rand_vec((size_t)(N * D), 5), E = rand_vec((size_t)(K * D), 6);
  std::vector<float> out[2], mix[2];
  for (int t : {1, 2}) {
    cpu_set_threads(t);
    Graph g(backend_cpu());
    Tensor* zt = g.input(DType::f32, {N, D}, "z");
    Tensor* et = g.input(DType::f32, {K, D}, "E");
    Tensor* tt = g.input(DType::f32, {1}, "tau");
    Tensor* s = vq_nearest(g, zt, et, tt);
    Tensor* st = vq_dense_stats(g, zt, et, s, tt, zt, 0.01f, 1.0f);
    Tensor* a = vq_soft_mix(g, zt, et, s, tt, et, 0.01f);
    g.mark_output(st);
    g.mark_output(a);
    g.plan();
    g.set_f32(zt, z);
    g.set_f32(et, E);
    float tau = 0.5f;
    g.set_f32(tt, &tau, 1);
    g.compute();
    out[t - 1] = g.get_f32(st);
    mix[t - 1] = g.get_f32(a);
  }
  CHECK(std::memcmp(out[0].data(), out[1].data(), out[0].size() * 4) == 0);
  CHECK(std::memcmp(mix[0].data(), mix[1].data(), mix[0].size() * 4) == 0);
  // S_k sums to N (1 + the clipped non-winner weights) at least
  double S = 0;
  for (int64_t k = 0; k < K; k++) S += out[0][(size_t)(k * (D + 2) + D)];
  CHECK(S >= (double)N);
}

// ---------------------------------------------------------------------------- EMA

TEST_CASE("ema: cluster sizes, sums, Laplace smoothing and restarts follow the formulas step by step") {
  QuantizerConfig c;
  c.kind = QuantKind::ema;
  c.codes = 3;
  c.dim = 2;
  c.seed = 42;
  c.ema_decay = 0.9f;
  Store st(backend_cpu());
  Quantizer q(st, c);
  std::vector<float> E0 = {0, 0, 1, 1, 5, 5};
  st.upload_f32(q.embedding(), E0);
  st.upload_f32(st.get("quantize.ema.embed_sum"), E0);  // m = n e with n = 1
  Graph g(backend_cpu());
  Tensor* z = g.input(DType::f32, {4, 2}, "z");
  QuantOut o = q.build(g, z, true);
  g.plan();
  // two latents near code 0, two near code 1, none near code 2
  std::vector<float> zv = {0.1f, 0.0f, -0.1f, 0.2f, 1.2f, 0.8f, 0.9f, 1.1f};
  double n[3] = {1, 1, 1}, m[3][2] = {{0, 0}, {1, 1}, {5, 5}};
  for (int64_t step = 0; step < 2; step++) {
    std::vector<float> Ebefore = st.download_f32(q.embedding());
    g.set_f32(z, zv);
    q.begin_step(g, o, step);
    g.compute();
    // assignments from the codebook before the update
    std::vector<int32_t> idx = g.get_i32(o.indices);
    double cnt[3] = {0, 0, 0}, sum[3][2] = {{0, 0}, {0, 0}, {0, 0}};
    for (int i = 0; i < 4; i++) {
      int64_t best = 0;
      double bd = INFINITY;
      for (int k = 0; k < 3; k++) {
        double d = dist_ref(zv, i, Ebefore, k, 2);
        if (d < bd) {
          bd = d;
          best = k;
        }
      }
      CHECK(idx[(size_t)i] == best);
      cnt[best] += 1;
      sum[best][0] += zv[(size_t)(i * 2)];
      sum[best][1] += zv[(size_t)(i * 2 + 1)];
    }
    double tot = 0;
    for (int k = 0; k < 3; k++) {
      n[k] = 0.9 * n[k] + 0.1 * cnt[k];
      tot += n[k];
    }
    std::vector<float> E = st.download_f32(q.embedding()), nv = st.download_f32(st.get("quantize.ema.cluster_size"));
    std::vector<float> mv = st.download_f32(st.get("quantize.ema.embed_sum"));
    int restarts = 0;
    for (int k = 0; k < 3; k++) {
      double nk = (n[k] + 1e-5) / (tot + 3e-5) * tot;
      for (int d = 0; d < 2; d++) m[k][d] = 0.9 * m[k][d] + 0.1 * sum[k][d];
      double e[2] = {m[k][0] / nk, m[k][1] / nk};
      if (n[k] < 1.0) {  // restart from a batch latent drawn by Philox (seed, step, code)
        restarts++;
        uint32_t u = vq_draw_below(42, VQ_STREAM_EMA, (uint64_t)step, (uint64_t)k, 4);
        for (int d = 0; d < 2; d++) {
          e[d] = zv[(size_t)(u * 2 + d)];
          m[k][d] = e[d];
        }
        n[k] = 1.0;
      }
      CHECK(nv[(size_t)k] == doctest::Approx(n[k]).epsilon(1e-6));
      for (int d = 0; d < 2; d++) {
        CHECK(E[(size_t)(k * 2 + d)] == doctest::Approx(e[d]).epsilon(1e-5));
        CHECK(mv[(size_t)(k * 2 + d)] == doctest::Approx(m[k][d]).epsilon(1e-5));
      }
    }
    CHECK(q.read_stats(g, o).replaced == restarts);
    if (step == 0) CHECK(restarts == 1);  // code 2 is not used
  }
}

// ---------------------------------------------------------------------------- replacement

namespace {
struct NsvqRun {
  std::vector<std::vector<float>> codebooks;  // after each step
  std::vector<std::vector<float>> reservoirs;
  std::vector<int32_t> replaced;
};

// K = 4 codes, D = 2, window 2, reservoir 3, batches of 2 latents; Adam lr 0 so only the
// replacement moves codes.
NsvqRun nsvq_hand_run(uint64_t seed, int steps, const std::vector<float>& E0, const std::vector<std::vector<float>>& batches) {
  QuantizerConfig c;
  c.kind = QuantKind::nsvq;
  c.codes = 4;
  c.dim = 2;
  c.seed = seed;
  c.replace_window = 2;
  c.reservoir = 3;
  c.tau.relative = false;
  c.tau.tau_peak = 0.5f;
  Store st(backend_cpu());
  Quantizer q(st, c);
  st.upload_f32(q.embedding(), E0);
  Graph g(backend_cpu());
  Tensor* z = g.input(DType::f32, {2, 2}, "z");
  QuantOut o = q.build(g, z, true);
  g.backward(o.loss);
  g.plan();
  NsvqRun r;
  for (int s = 0; s < steps; s++) {
    g.set_f32(z, batches[(size_t)s]);
    q.begin_step(g, o, s);
    g.compute();
    r.codebooks.push_back(st.download_f32(q.embedding()));
    r.reservoirs.push_back(st.download_f32(st.get("quantize.reservoir")));
    r.replaced.push_back(q.read_stats(g, o).replaced);
  }
  return r;
}
}  // namespace

TEST_CASE("nsvq replacement: reservoir FIFO, dead codes from the reservoir at window starts, reproducible under a seed") {
  std::vector<float> E0 = {0, 0, 1, 0, 10, 10, -10, 10};
  std::vector<std::vector<float>> b = {{0.1f, 0, 0.9f, 0.1f}, {0, 0.2f, 1.1f, 0}, {0.2f, 0.1f, 0.1f, 0.1f}, {1, 1, 2, 2}};
  NsvqRun r = nsvq_hand_run(7, 4, E0, b);
  // step 0 (a window start): codes 0 and 1 are used; 2 and 3 are dead and get reservoir rows,
  // which hold batch 0 (pushed before the replacement)
  std::vector<float> R0 = {0.1f, 0, 0.9f, 0.1f, 0, 0};
  CHECK(r.reservoirs[0] == R0);
  CHECK(r.replaced[0] == 2);
  for (int k = 2; k < 4; k++) {
    uint32_t u = vq_draw_below(7, VQ_STREAM_REPLACE, 0, (uint64_t)k, 2);
    CHECK(r.codebooks[0][(size_t)(k * 2)] == R0[u * 2]);
    CHECK(r.codebooks[0][(size_t)(k * 2 + 1)] == R0[u * 2 + 1]);
  }
  // step 1: not a window start: nothing replaced (the count still reports the last replacement);
  // the reservoir wraps: slot 2 <- row 0 of batch 1, slot 0 <- row 1
  CHECK(r.codebooks[1] == r.codebooks[0]);
  std::vector<float> R1 = {1.1f, 0, 0.9f, 0.1f, 0, 0.2f};
  CHECK(r.reservoirs[1] == R1);
  // step 2: window start; counts of steps 1 and 2 decide
  std::vector<float> Eprev = r.codebooks[1];
  std::vector<int> cnt(4, 0);
  for (int s = 1; s <= 2; s++)
    for (int i = 0; i < 2; i++) {
      int64_t best = 0;
      double bd = INFINITY;
      for (int k = 0; k < 4; k++) {
        double d = dist_ref(b[(size_t)s], i, Eprev, k, 2);
        if (d < bd) {
          bd = d;
          best = k;
        }
      }
      cnt[(size_t)best]++;
    }
  std::vector<float> R2 = r.reservoirs[2];
  int dead = 0;
  for (int k = 0; k < 4; k++) {
    if (cnt[(size_t)k] >= 1) {
      CHECK(r.codebooks[2][(size_t)(k * 2)] == Eprev[(size_t)(k * 2)]);
      continue;
    }
    dead++;
    uint32_t u = vq_draw_below(7, VQ_STREAM_REPLACE, 2, (uint64_t)k, 3);
    CHECK(r.codebooks[2][(size_t)(k * 2)] == R2[u * 2]);
    CHECK(r.codebooks[2][(size_t)(k * 2 + 1)] == R2[u * 2 + 1]);
  }
  CHECK(r.replaced[2] == dead);
  // reproducible: same seed, same run; another seed draws other rows
  NsvqRun again = nsvq_hand_run(7, 4, E0, b);
  CHECK(again.codebooks == r.codebooks);
  bool differs = false;
  for (uint64_t s = 8; s < 16 && !differs; s++) differs = nsvq_hand_run(s, 1, E0, b).codebooks[0] != r.codebooks[0];
  CHECK(differs);
}

TEST_CASE("nsvq: relative tau is calibrated on the first batch after the step-0 replacement, then follows the schedule") {
  QuantizerConfig c;
  c.kind = QuantKind::nsvq;
  c.codes = 16;
  c.dim = 3;
  c.tau.rho = 10.0f;
  c.tau.period = 2;
  c.tau.decay = 0.5f;
  Store st(backend_cpu());
  Quantizer q(st, c);
  Graph g(backend_cpu());
  Tensor* z = g.input(DType::f32, {64, 3}, "z");
  QuantOut o = q.build(g, z, true);
  g.backward(o.loss);
  g.plan();
  float tau1 = 0;
  for (int s = 0; s < 6; s++) {
    std::vector<float> zv = rand_vec(64 * 3, 9 + s);
    std::vector<float> E = st.download_f32(q.embedding());  // the codebook this step searches
    g.set_f32(z, zv);
    q.begin_step(g, o, s);
    g.compute();
    float t = q.read_stats(g, o).tau;
    if (s <= 1) {  // rho * median over rows of the distance to the nearest code (before any replacement)
      std::vector<double> d;
      for (int i = 0; i < 64; i++) {
        double b = INFINITY;
        for (int k = 0; k < 16; k++) b = std::min(b, dist_ref(zv, i, E, k, 3));
        d.push_back(b);
      }
      std::sort(d.begin(), d.end());
      CHECK(t == doctest::Approx(10.0 * 0.5 * (d[31] + d[32])).epsilon(1e-4));
      tau1 = t;
    } else {
      CHECK(t == doctest::Approx(tau1 * std::pow(0.5, s / 2)).epsilon(1e-6));
    }
  }
  TauSchedule ts;
  ts.warmup = 10;
  ts.period = 5;
  ts.decay = 0.1f;
  CHECK(ts.factor(9) == 1.0f);
  CHECK(ts.factor(14) == 1.0f);
  CHECK(ts.factor(15) == doctest::Approx(0.1f));
  CHECK(ts.factor(24) == doctest::Approx(0.01f));
}

// ---------------------------------------------------------------------------- gradients and layout

TEST_CASE("straight-through: dz = dzq exactly; the modified STE sends a dzq to the selected codes") {
  for (bool modified : {false, true}) {
    CAPTURE(modified);
    QuantizerConfig c;
    c.kind = QuantKind::nsvq;
    c.codes = 8;
    c.dim = 3;
    c.modified_ste = modified;
    c.dense_loss = false;  // isolate the STE: the codebook loss then only reaches the chosen codes
    c.replace = false;
    Store st(backend_cpu());
    Quantizer q(st, c);
    std::vector<float> E = rand_vec(24, 3);
    st.upload_f32(q.embedding(), E);
    Tensor* z = st.add("z", DType::f32, {5, 3}, TF_PARAM);
    std::vector<float> zv = rand_vec(15, 4);
    st.upload_f32(z, zv);
    Graph g(backend_cpu());
    QuantOut o = q.build(g, z, true);
    std::vector<float> P = rand_vec(15, 5);
    Tensor* proj = sum(g, mul(g, o.zq, g.constant_data({5, 3}, P)));
    std::vector<Tensor*> gr = g.gradients({{proj, 1.0f}}, {z, q.embedding()});
    g.mark_output(gr[0]);
    if (modified) g.mark_output(gr[1]);
    g.plan();
    q.begin_step(g, o, 0);
    g.compute();
    std::vector<float> gz = g.get_f32(gr[0]), zq = g.get_f32(o.zq);
    std::vector<int32_t> idx = g.get_i32(o.indices);
    for (int i = 0; i < 15; i++) CHECK(gz[(size_t)i] == P[(size_t)i]);
    for (int i = 0; i < 5; i++)
      for (int d = 0; d < 3; d++) CHECK(zq[(size_t)(i * 3 + d)] == doctest::Approx(E[(size_t)(idx[(size_t)i] * 3 + d)]).epsilon(1e-6));
    if (!modified) {
      CHECK(gr[1] == nullptr);
      continue;
    }
    std::vector<float> ge = g.get_f32(gr[1]), want(24, 0.0f);
    const float a = 2.0f / 15.0f;
    for (int i = 0; i < 5; i++)
      for (int d = 0; d < 3; d++) want[(size_t)(idx[(size_t)i] * 3 + d)] += a * P[(size_t)(i * 3 + d)];
    for (int j = 0; j < 24; j++) CHECK(ge[(size_t)j] == doctest::Approx(want[(size_t)j]).epsilon(1e-5));
  }
}

TEST_CASE("quantizers take image latents [B, D, h, w]; simvq recomputes its codebook every step") {
  for (std::string name : {"vq", "vq-l2", "ema", "simvq", "nsvq"}) {
    CAPTURE(name);
    QuantizerConfig c;
    c.kind = quant_kind_from_name(name);
    c.codes = 10;
    c.dim = 4;
    c.replace_window = 1;
    Store st(backend_cpu());
    Quantizer q(st, c);
    AdamConfig ac;
    ac.lr = 0.05f;
    AdamW opt(st, st.params(), ac);
    Graph g(backend_cpu());
    Tensor* z = g.input(DType::f32, {2, 4, 3, 5}, "z");
    QuantOut o = q.build(g, z, true);
    g.backward(o.loss);
    opt.append_update(g);
    g.plan();
    CHECK(o.zq->shape() == Shape({2, 4, 3, 5}));
    CHECK(o.indices->shape() == Shape({2, 3, 5}));
    std::vector<float> zv = rand_vec(120, 8);
    std::vector<float> first, C0 = st.download_f32(q.embedding());
    for (int s = 0; s < 3; s++) {
      std::vector<float> cb = q.codebook();  // the codebook this step quantizes with (before updates)
      g.set_f32(z, zv);
      q.begin_step(g, o, s);
      opt.begin_step(g);
      g.compute();
      if (s == 0) first = cb;
      if (c.kind != QuantKind::vq) continue;
      std::vector<float> zq = g.get_f32(o.zq);
      std::vector<int32_t> idx = g.get_i32(o.indices);
      for (int b = 0; b < 2; b++)
        for (int p = 0; p < 15; p++)
          for (int d = 0; d < 4; d++)
            CHECK(zq[(size_t)((b * 4 + d) * 15 + p)] == doctest::Approx(cb[(size_t)(idx[(size_t)(b * 15 + p)] * 4 + d)]).epsilon(1e-6));
    }
    CHECK(q.codebook() != first);  // every variant's codebook moves
    if (c.kind == QuantKind::simvq) {
      CHECK(C0 == st.download_f32(q.embedding()));  // C is frozen
      CHECK(st.get("quantize.embedding.weight")->has(TF_FROZEN));
      CHECK(st.find("quantize.embedding_proj.weight"));
      CHECK(st.find("quantize.embedding_proj.bias"));
    }
    QuantStats s = q.read_stats(g, o);
    CHECK(s.used >= 1);
    CHECK(s.perplexity >= 1.0f);
    CHECK(std::isfinite(s.quant_error));
  }
}

TEST_CASE("nsvq and ema training steps are bitwise identical with 1 and 2 threads") {
  ThreadsGuard guard;
  for (QuantKind kind : {QuantKind::nsvq, QuantKind::ema}) {
    std::vector<float> result[2];
    for (int t : {1, 2}) {
      cpu_set_threads(t);
      QuantizerConfig c;
      c.kind = kind;
      c.codes = 2100;
      c.dim = 16;
      c.seed = 3;
      c.replace_window = 4;
      c.reservoir = 1000;
      Store st(backend_cpu());
      Quantizer q(st, c);
      AdamConfig ac;
      ac.lr = 0.01f;
      AdamW opt(st, st.params(), ac);
      Graph g(backend_cpu());
      Tensor* z = g.input(DType::f32, {600, 16}, "z");
      QuantOut o = q.build(g, z, true);
      g.backward(o.loss);
      opt.append_update(g);
      g.plan();
      for (int s = 0; s < 9; s++) {
        g.set_f32(z, rand_vec(600 * 16, 100 + s));
        q.begin_step(g, o, s);
        opt.begin_step(g);
        g.compute();
      }
      result[t - 1] = st.download_f32(q.embedding());
    }
    CHECK(std::memcmp(result[0].data(), result[1].data(), result[0].size() * 4) == 0);
  }
}

TEST_CASE("nsvq and ema resume bit-exactly from their Store tensors and the step number") {
  for (QuantKind kind : {QuantKind::nsvq, QuantKind::ema}) {
    QuantizerConfig c;
    c.kind = kind;
    c.codes = 40;
    c.dim = 3;
    c.seed = 11;
    c.replace_window = 2;
    c.reservoir = 50;
    struct Run {
      Store st{backend_cpu()};
      Quantizer q;
      AdamW opt;
      Graph g{backend_cpu()};
      Tensor* z;
      QuantOut o;
      explicit Run(const QuantizerConfig& c) : q(st, c), opt(st, st.params(), AdamConfig()) {
        z = g.input(DType::f32, {30, 3}, "z");
        o = q.build(g, z, true);
        g.backward(o.loss);
        opt.append_update(g);
        g.plan();
      }
      void step(int s) {
        g.set_f32(z, rand_vec(90, 300 + s));
        q.begin_step(g, o, s);
        opt.begin_step(g);
        g.compute();
      }
    };
    Run straight(c), first(c), resumed(c);
    for (int s = 0; s < 6; s++) straight.step(s);
    for (int s = 0; s < 3; s++) first.step(s);
    for (Tensor* t : first.st.tensors()) {  // "checkpoint": every Store tensor, bit for bit
      std::vector<char> bytes(t->nbytes());
      first.st.download(t, bytes.data(), bytes.size());
      resumed.st.upload(resumed.st.get(t->name), bytes.data(), bytes.size());
    }
    resumed.opt.set_step(first.opt.step());
    for (int s = 3; s < 6; s++) resumed.step(s);
    for (Tensor* t : straight.st.tensors()) {
      std::vector<char> a(t->nbytes()), b(t->nbytes());
      straight.st.download(t, a.data(), a.size());
      resumed.st.download(resumed.st.get(t->name), b.data(), b.size());
      CHECK_MESSAGE(a == b, t->name);
    }
  }
}

TEST_CASE("quantizers on CUDA match the CPU step by step (skipped without a GPU)") {
  if (cuda_device_count() == 0) {
    MESSAGE("no CUDA device: quantizer CPU-vs-CUDA check skipped");
    return;
  }
  for (std::string name : {"vq", "vq-l2", "ema", "simvq", "nsvq"}) {
    CAPTURE(name);
    std::vector<float> book[2];
    std::vector<int32_t> idx[2];
    float loss[2] = {0, 0};
    for (int b = 0; b < 2; b++) {
      Backend* be = b == 0 ? backend_cpu() : backend_cuda(0);
      QuantizerConfig c;
      c.kind = quant_kind_from_name(name);
      c.codes = 150;
      c.dim = 5;
      c.replace_window = 2;
      c.reservoir = 100;
      Store st(be);
      Quantizer q(st, c);
      AdamConfig ac;
      ac.lr = 0.01f;
      AdamW opt(st, st.params(), ac);
      Graph g(be);
      Tensor* z = g.input(DType::f32, {70, 5}, "z");
      QuantOut o = q.build(g, z, true);
      g.backward(o.loss);
      opt.append_update(g);
      g.plan();
      for (int s = 0; s < 3; s++) {
        g.set_f32(z, rand_vec(70 * 5, 200 + s));
        q.begin_step(g, o, s);
        opt.begin_step(g);
        g.compute();
      }
      book[b] = q.codebook();
      idx[b] = g.get_i32(o.indices);
      loss[b] = g.get_scalar(o.loss);
    }
    CHECK(idx[0] == idx[1]);
    CHECK(loss[1] == doctest::Approx(loss[0]).epsilon(1e-4));
    for (size_t i = 0; i < book[0].size(); i++)
      if (std::fabs(book[0][i] - book[1][i]) > 1e-4f * (1.0f + std::fabs(book[0][i]))) {
        FAIL_CHECK("codebook element " << i << ": cpu " << book[0][i] << " cuda " << book[1][i]);
        break;
      }
  }
}

TEST_CASE("quantizer: bad settings are one-line errors") {
  Store st(backend_cpu());
  CHECK_THROWS_WITH_AS(quant_kind_from_name("pq"), doctest::Contains("unknown quantizer 'pq'"), Error);
  CHECK_THROWS_WITH_AS(toy_drift_from_name("spin"), doctest::Contains("unknown drift 'spin'"), Error);
  QuantizerConfig c;
  c.codes = 0;
  CHECK_THROWS_WITH_AS(Quantizer(st, c), doctest::Contains("--codes must be >= 1"), Error);
  c.codes = 4;
  c.dim = 3;
  Quantizer q(st, c);
  Graph g(backend_cpu());
  CHECK_THROWS_WITH_AS(q.build(g, g.input(DType::f32, {5, 2}, "z"), true), doctest::Contains("must be [N, 3]"), Error);
  CHECK_THROWS_WITH_AS(vq_nearest(g, g.input(DType::f32, {5, 3}, "a"), g.input(DType::f32, {7, 2}, "b")),
                       doctest::Contains("differ in dimension"), Error);
}

// ---------------------------------------------------------------------------- toy drift (§3.6)

TEST_CASE("toy drift: vanilla VQ collapses under translation and shrinking; NSVQ and EMA keep their codes") {
  for (ToyDrift d : {ToyDrift::translate, ToyDrift::shrink}) {
    for (QuantKind k : {QuantKind::vq, QuantKind::nsvq, QuantKind::ema, QuantKind::simvq}) {
      ToyDriftConfig c;
      c.kind = k;
      c.drift = d;
      c.log_every = 0;
      ToyDriftResult r = toy_drift_run(c);
      float u = r.final_point.utilization;
      MESSAGE("toy drift " << std::string(toy_drift_name(d)) << " " << std::string(quant_kind_name(k)) << ": utilization " << u << ", quant error "
                           << r.final_point.quant_error << " (" << r.seconds << " s)");
      if (k == QuantKind::vq) CHECK(u <= 0.5f);
      if (k == QuantKind::nsvq || k == QuantKind::ema) CHECK(u >= 0.85f);
    }
  }
}
