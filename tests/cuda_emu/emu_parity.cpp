// tests/cuda_emu/emu_parity.cpp — CPU against (emulated) CUDA parity on shapes chosen to reach every
// kernel path of ops/cuda: two-pass and column reductions, warp/block row variants, tiled transposes,
// multi-tile attention, scatter ownership, index errors (same message as the CPU), AdamW steps, and
// bitwise repeatability of each CUDA result. Built and run by tests/cuda_emu/emu_check.sh; it also
// runs unchanged against a real GPU when linked with the real CUDA objects.
#include <cmath>
#include <cstdio>
#include <cstring>
#include <functional>
#include <string>
#include <vector>
#include "engine/rng.h"
#include "ops/ops.h"
#include "ops/optim.h"

using namespace nsvq;

namespace nsvq {  // ops/cuda families that ops_init() may not register yet (registering twice is harmless)
void register_norm_cuda();
void register_attention_cuda();
}  // namespace nsvq

struct In {
  Shape s;
  DType dt = DType::f32;
  float lo = -1, hi = 1;
  bool grad = true;
  bool ties = false;  // f32: values from a small set (ties for arg-reduce)
};
using Builder = std::function<Tensor*(Graph&, const std::vector<Tensor*>&)>;

struct Result {
  std::vector<std::vector<float>> f;  // out, then grads
  std::vector<int32_t> i;
  std::string err;
};

static std::vector<std::vector<float>> g_in_f;
static std::vector<std::vector<int32_t>> g_in_i;

static void make_inputs(const std::vector<In>& ins, uint64_t seed) {
  Rng r(seed, 7);
  g_in_f.clear();
  g_in_i.clear();
  for (const In& s : ins) {
    int64_t n = s.s.numel();
    std::vector<float> f;
    std::vector<int32_t> iv;
    for (int64_t k = 0; k < n; k++) {
      if (s.dt == DType::i32) iv.push_back((int32_t)s.lo + (int32_t)r.below((uint32_t)(s.hi - s.lo)));
      else if (s.ties) f.push_back((float)(int)r.below(5));
      else f.push_back(s.lo + (s.hi - s.lo) * r.uniform());
    }
    g_in_f.push_back(f);
    g_in_i.push_back(iv);
  }
}

static Result run(Backend* be, const std::vector<In>& ins, const Builder& b, bool grads) {
  Result res;
  try {
    Store st(be);
    std::vector<Tensor*> xs;
    for (size_t k = 0; k < ins.size(); k++) {
      bool diff = grads && ins[k].dt == DType::f32 && ins[k].grad;
      Tensor* t = st.add("in" + std::to_string(k), ins[k].dt, ins[k].s, diff ? TF_PARAM : TF_PERSIST);
      if (ins[k].dt == DType::f32) st.upload(t, g_in_f[k].data(), g_in_f[k].size() * 4);
      else st.upload(t, g_in_i[k].data(), g_in_i[k].size() * 4);
      xs.push_back(t);
    }
    Graph g(be);
    Tensor* out = contiguous(g, b(g, xs));
    g.mark_output(out);
    std::vector<Tensor*> gts;
    if (grads && out->dtype == DType::f32) {
      std::vector<float> proj((size_t)out->numel());
      Rng r(5, 5);
      for (float& v : proj) v = 2 * r.uniform() - 1;
      Tensor* loss = sum(g, mul(g, out, g.constant_data(out->shape(), proj)));
      g.mark_loss(loss);
      std::vector<Tensor*> wrt;
      for (Tensor* x : xs)
        if (x->has(TF_PARAM)) wrt.push_back(x);
      std::vector<Tensor*> gr = g.gradients({{loss, 1.0f}}, wrt);
      for (Tensor* t : gr) {
        if (!t) continue;
        t = contiguous(g, t);
        g.mark_output(t);
        gts.push_back(t);
      }
    }
    g.compute();
    if (out->dtype == DType::f32) res.f.push_back(g.get_f32(out));
    else res.i = g.get_i32(out);
    for (Tensor* t : gts) res.f.push_back(g.get_f32(t));
  } catch (const Error& e) {
    res.err = e.what();
  }
  return res;
}

static int g_fail = 0, g_pass = 0;

static void check(const char* name, const std::vector<In>& ins, const Builder& b, bool grads = true, float tol = 1e-4f,
                  bool expect_bitwise_repeat = true) {
  make_inputs(ins, 1234);
  Result c = run(backend_cpu(), ins, b, grads);
  Result u = run(backend_cuda(0), ins, b, grads);
  Result u2 = run(backend_cuda(0), ins, b, grads);
  bool ok = true;
  std::string why;
  if (c.err != u.err) {
    ok = false;
    why = "errors differ: cpu '" + c.err + "' cuda '" + u.err + "'";
  } else if (!c.err.empty()) {
    why = "both threw: " + c.err;
  }
  if (ok && c.i != u.i) {
    ok = false;
    for (size_t k = 0; k < c.i.size(); k++)
      if (c.i[k] != u.i[k]) {
        why = "i32 element " + std::to_string(k) + ": cpu " + std::to_string(c.i[k]) + " cuda " + std::to_string(u.i[k]);
        break;
      }
  }
  double maxrel = 0;
  if (ok && c.f.size() != u.f.size()) {
    ok = false;
    why = "output count differs";
  }
  for (size_t t = 0; ok && t < c.f.size(); t++) {
    if (c.f[t].size() != u.f[t].size()) {
      ok = false;
      why = "size differs";
      break;
    }
    for (size_t k = 0; k < c.f[t].size(); k++) {
      float a = u.f[t][k], e = c.f[t][k];
      double rel = std::fabs(a - e) / std::max(1.0f, std::fabs(e));
      if (!(rel <= tol)) {
        ok = false;
        char buf[200];
        snprintf(buf, sizeof buf, "tensor %zu element %zu: cuda %.9g cpu %.9g", t, k, a, e);
        why = buf;
        break;
      }
      if (rel > maxrel) maxrel = rel;
    }
  }
  if (ok && expect_bitwise_repeat) {
    bool same = u.f.size() == u2.f.size() && u.i == u2.i;
    for (size_t t = 0; same && t < u.f.size(); t++) same = std::memcmp(u.f[t].data(), u2.f[t].data(), u.f[t].size() * 4) == 0;
    if (!same) {
      ok = false;
      why = "cuda not bitwise repeatable";
    }
  }
  printf("%-4s %-60s maxrel %.2e %s\n", ok ? "ok" : "FAIL", name, maxrel, why.c_str());
  (ok ? g_pass : g_fail)++;
}

static int parity_main();
int main() {
  try {
    return parity_main();
  } catch (const Error& e) {
    fprintf(stderr, "cuda parity: %s\n", e.what());
    return 1;
  }
}

static int parity_main() {
  ops_init();
  register_norm_cuda();
  register_attention_cuda();
  printf("backend: %s\n", backend_cuda(0)->name().c_str());
  // ---------------- reductions
  check("sum last axis [3,20000] (two-pass)", {{{3, 20000}}}, [](Graph& g, auto& x) { return sum(g, x[0], {1}); });
  check("mean last axis [5,700] (block per row)", {{{5, 700}}}, [](Graph& g, auto& x) { return mean(g, x[0], {1}); });
  check("max last axis [4000,40] (warp per row)", {{{4000, 40}}}, [](Graph& g, auto& x) { return max(g, x[0], {1}); }, false);
  check("min last axis [50,5] (short rows)", {{{50, 5}}}, [](Graph& g, auto& x) { return reduce(g, x[0], RED_MIN, {1}); }, false);
  check("sum axis 0 [3000,3] (cols, few outputs)", {{{3000, 3}}}, [](Graph& g, auto& x) { return sum(g, x[0], {0}); });
  check("sum_sq axes {0,2} [7,33,9]", {{{7, 33, 9}}}, [](Graph& g, auto& x) { return sum_sq(g, x[0], {0, 2}); });
  check("mean axis 1 keepdim [6,300,70]", {{{6, 300, 70}}}, [](Graph& g, auto& x) { return mean(g, x[0], {1}, true); });
  check("sum all [100000] (two-pass, 13 chunks)", {{{100000}}}, [](Graph& g, auto& x) { return sum(g, x[0]); });
  check("sum_sq all [9000,3]", {{{9000, 3}}}, [](Graph& g, auto& x) { return sum_sq(g, x[0]); });
  check("max all [20000] (two-pass max)", {{{20000}}}, [](Graph& g, auto& x) { return max(g, x[0]); }, false);
  check("argmax axis 1 [40,3000] ties", {{{40, 3000}, DType::f32, 0, 1, false, true}},
        [](Graph& g, auto& x) { return argmax(g, x[0], 1); }, false);
  check("argmin axis 0 [3000,7] ties", {{{3000, 7}, DType::f32, 0, 1, false, true}},
        [](Graph& g, auto& x) { return argmin(g, x[0], 0); }, false);
  check("argmax [1,70000]", {{{1, 70000}}}, [](Graph& g, auto& x) { return argmax(g, x[0], 1); }, false);
  check("argmax axis 1 [5,33,40] ties", {{{5, 33, 40}, DType::f32, 0, 1, false, true}},
        [](Graph& g, auto& x) { return argmax(g, x[0], 1); }, false);
  // ---------------- softmax / losses
  check("softmax [3,2000] (block)", {{{3, 2000}}}, [](Graph& g, auto& x) { return softmax(g, x[0]); });
  check("log_softmax [100,10] (warp)", {{{100, 10}}}, [](Graph& g, auto& x) { return log_softmax(g, x[0]); });
  check("softmax of a transposed view [30,50]", {{{50, 30}}}, [](Graph& g, auto& x) { return softmax(g, transpose(g, x[0], 0, 1)); });
  check("cross_entropy [300,1500] (block)", {{{300, 1500}, DType::f32, -3, 3}, {{300}, DType::i32, 0, 1500}},
        [](Graph& g, auto& x) { return cross_entropy(g, x[0], x[1]); });
  check("cross_entropy [1000,10] (warp)", {{{1000, 10}, DType::f32, -3, 3}, {{1000}, DType::i32, 0, 10}},
        [](Graph& g, auto& x) { return cross_entropy(g, x[0], x[1]); });
  check("cross_entropy bad label", {{{6, 10}}, {{6}, DType::i32, 7, 12}},
        [](Graph& g, auto& x) { return cross_entropy(g, x[0], x[1]); });
  check("loss_mse [50000] (13 chunks)", {{{50000}}, {{50000}}}, [](Graph& g, auto& x) { return loss_mse(g, x[0], x[1]); });
  check("loss_l1 [7,9]", {{{7, 9}}, {{7, 9}}}, [](Graph& g, auto& x) { return loss_l1(g, x[0], x[1]); });
  // ---------------- indexing
  check("get_rows [500,70] idx[3000] (+ scatter_add grad)", {{{500, 70}}, {{3000}, DType::i32, 0, 500}},
        [](Graph& g, auto& x) { return get_rows(g, x[0], x[1]); });
  check("get_rows [5,3] idx[2,40] few rows", {{{5, 3}}, {{2, 40}, DType::i32, 0, 5}},
        [](Graph& g, auto& x) { return get_rows(g, x[0], x[1]); });
  check("scatter_add_rows src[4000,40] -> [37,40]", {{{4000, 40}}, {{4000}, DType::i32, 0, 37}},
        [](Graph& g, auto& x) { return scatter_add_rows(g, x[0], x[1], 37); });
  check("get_rows bad index", {{{5, 3}}, {{9}, DType::i32, 0, 7}}, [](Graph& g, auto& x) { return get_rows(g, x[0], x[1]); });
  check("scatter_add_rows bad index", {{{9, 3}}, {{9}, DType::i32, -2, 3}},
        [](Graph& g, auto& x) { return scatter_add_rows(g, x[0], x[1], 3); });
  // ---------------- matmul
  check("matmul [4,5,6]x[6,7] (flattened)", {{{4, 5, 6}}, {{6, 7}}}, [](Graph& g, auto& x) { return matmul(g, x[0], x[1]); });
  check("matmul [4,6,5]^T x[6,7]", {{{4, 6, 5}}, {{6, 7}}}, [](Graph& g, auto& x) { return matmul(g, x[0], x[1], true, false); });
  check("matmul [5,6] x [3,7,6]^T", {{{5, 6}}, {{3, 7, 6}}}, [](Graph& g, auto& x) { return matmul(g, x[0], x[1], false, true); });
  check("matmul [2,3,6,5]^T x [2,3,7,6]^T", {{{2, 3, 6, 5}}, {{2, 3, 7, 6}}},
        [](Graph& g, auto& x) { return matmul(g, x[0], x[1], true, true); });
  check("matmul [33,17] x [17,1]", {{{33, 17}}, {{17, 1}}}, [](Graph& g, auto& x) { return matmul(g, x[0], x[1]); });
  check("matmul [1,17] x [17,40]", {{{1, 17}}, {{17, 40}}}, [](Graph& g, auto& x) { return matmul(g, x[0], x[1]); });
  // ---------------- elementwise and layout
  check("binary add [2,3,4,5,6,7] + [4,1,6,1] broadcast", {{{2, 3, 4, 5, 6, 7}}, {{4, 1, 6, 1}}},
        [](Graph& g, auto& x) { return add(g, x[0], x[1]); });
  check("binary mul permuted", {{{3, 4, 5}}, {{5, 4, 3}}},
        [](Graph& g, auto& x) { return mul(g, x[0], permute(g, x[1], {2, 1, 0})); });
  check("binary div by scalar broadcast", {{{300, 7}}, {{1}, DType::f32, 1, 2}}, [](Graph& g, auto& x) { return div(g, x[0], x[1]); });
  check("unary gelu of a slice", {{{20, 30}}}, [](Graph& g, auto& x) { return gelu(g, slice(g, x[0], 1, 3, 25)); });
  check("unary exp/tanh/silu chain", {{{1000}}}, [](Graph& g, auto& x) { return silu(g, tanh(g, exp(g, x[0]))); });
  check("where broadcast", {{{5, 1}, DType::f32, -1, 1, false}, {{5, 8}}, {{8}}},
        [](Graph& g, auto& x) { return where(g, binary(g, x[0], g.constant({1}, 0.0f), BIN_GT), x[1], x[2]); });
  check("concat axis 1 of 3 (one transposed)", {{{4, 3}}, {{5, 4}}, {{4, 2}}},
        [](Graph& g, auto& x) { return concat(g, {x[0], transpose(g, x[1], 0, 1), x[2]}, 1); });
  check("pad 4d", {{{2, 3, 4, 5}}}, [](Graph& g, auto& x) { return pad(g, x[0], {0, 1, 2, 0}, {1, 0, 1, 3}, 0.5f); });
  check("contiguous of a 5d permute", {{{2, 3, 4, 5, 6}}},
        [](Graph& g, auto& x) { return contiguous(g, permute(g, x[0], {4, 2, 0, 3, 1})); });
  check("contiguous NCHW->NHWC [2,16,9,10] (tiled transpose)", {{{2, 16, 9, 10}}},
        [](Graph& g, auto& x) { return contiguous(g, permute(g, x[0], {0, 2, 3, 1})); });
  check("contiguous NHWC->NCHW [3,7,5,40] (tiled transpose)", {{{3, 7, 5, 40}}},
        [](Graph& g, auto& x) { return contiguous(g, permute(g, x[0], {0, 3, 1, 2})); });
  check("contiguous matrix transpose [40,50]", {{{40, 50}}},
        [](Graph& g, auto& x) { return contiguous(g, transpose(g, x[0], 0, 1)); });
  check("expand then contiguous", {{{3, 1, 5}}}, [](Graph& g, auto& x) { return contiguous(g, expand(g, x[0], {2, 3, 4, 5})); });
  // ---------------- norm and attention
  check("group_norm [2,64,8,8] 8 groups (warp)", {{{2, 64, 8, 8}}, {{64}, DType::f32, 0.5f, 1.5f}, {{64}}},
        [](Graph& g, auto& x) { return group_norm(g, x[0], x[1], x[2], 8); });
  check("group_norm+silu [2,32,16,16] 4 groups (block)", {{{2, 32, 16, 16}}, {{32}, DType::f32, 0.5f, 1.5f}, {{32}}},
        [](Graph& g, auto& x) { return group_norm(g, x[0], x[1], x[2], 4, 1e-6f, true); });
  check("layer_norm [50,2000] (block)", {{{50, 2000}}, {{2000}, DType::f32, 0.5f, 1.5f}, {{2000}}},
        [](Graph& g, auto& x) { return layer_norm(g, x[0], x[1], x[2]); });
  check("layer_norm [300,24] (warp)", {{{300, 24}}, {{24}, DType::f32, 0.5f, 1.5f}, {{24}}},
        [](Graph& g, auto& x) { return layer_norm(g, x[0], x[1], x[2]); });
  check("batch_norm train [8,16,12,12]",
        {{{8, 16, 12, 12}}, {{16}, DType::f32, 0.5f, 1.5f}, {{16}}, {{16}, DType::f32, -1, 1, false}, {{16}, DType::f32, 0.5f, 2, false}},
        [](Graph& g, auto& x) { return batch_norm(g, x[0], x[1], x[2], x[3], x[4], true, 0.1f, 1e-5f); });
  check("attention [2,3,70,16] x [2,3,45,16|24]", {{{2, 3, 70, 16}}, {{2, 3, 45, 16}}, {{2, 3, 45, 24}}},
        [](Graph& g, auto& x) { return attention(g, x[0], x[1], x[2]); });
  check("attention [1,1,5,63] x [1,1,33,63|7]", {{{1, 1, 5, 63}}, {{1, 1, 33, 63}}, {{1, 1, 33, 7}}},
        [](Graph& g, auto& x) { return attention(g, x[0], x[1], x[2], 0.3f); });
  // ---------------- pooling and resizing: the same float operations in the same order, so bitwise
  // equal (tol 0); ties exercise the first-maximum rule of the forward and of the gradient gather
  check("max_pool2d [2,3,9,11] k2 s2 p0 ties (+ grad gather)", {{{2, 3, 9, 11}, DType::f32, 0, 1, true, true}},
        [](Graph& g, auto& x) { return max_pool2d(g, x[0], 2, 2, 0); }, true, 0.0f);
  check("max_pool2d [2,3,9,11] k3 s2 p1 ties (+ grad gather)", {{{2, 3, 9, 11}, DType::f32, 0, 1, true, true}},
        [](Graph& g, auto& x) { return max_pool2d(g, x[0], 3, 2, 1); }, true, 0.0f);
  check("max_pool2d [1,4,13,10] k3 s1 p1 (+ grad gather)", {{{1, 4, 13, 10}}},
        [](Graph& g, auto& x) { return max_pool2d(g, x[0], 3, 1, 1); }, true, 0.0f);
  check("max_pool2d [1,2,6,150] k3 s1 p1 ties (CPU argmax chunks)", {{{1, 2, 6, 150}, DType::f32, 0, 1, true, true}},
        [](Graph& g, auto& x) { return max_pool2d(g, x[0], 3, 1, 1); }, true, 0.0f);
  check("max_pool2d [1,2,7,8] k4 s3 p2 (generic geometry)", {{{1, 2, 7, 8}}},
        [](Graph& g, auto& x) { return max_pool2d(g, x[0], 4, 3, 2); }, true, 0.0f);
  check("avg_pool2d [2,3,17,15] k3 s1 p1 no pad count (+ grad gather)", {{{2, 3, 17, 15}}},
        [](Graph& g, auto& x) { return avg_pool2d(g, x[0], 3, 1, 1, false); }, true, 0.0f);
  check("avg_pool2d [2,3,17,15] k3 s2 p1 count_include_pad (+ grad gather)", {{{2, 3, 17, 15}}},
        [](Graph& g, auto& x) { return avg_pool2d(g, x[0], 3, 2, 1, true); }, true, 0.0f);
  check("avg_pool2d [1,2,8,8] k2 s2 p0 (+ grad gather)", {{{1, 2, 8, 8}}},
        [](Graph& g, auto& x) { return avg_pool2d(g, x[0], 2, 2, 0); }, true, 0.0f);
  check("avg_pool2d [2,1,9,10] k5 s2 p2 count_include_pad (+ grad gather)", {{{2, 1, 9, 10}}},
        [](Graph& g, auto& x) { return avg_pool2d(g, x[0], 5, 2, 2, true); }, true, 0.0f);
  check("resize_bilinear [2,3,32,32] -> 299x299", {{{2, 3, 32, 32}}},
        [](Graph& g, auto& x) { return resize_bilinear(g, x[0], 299, 299); }, false, 0.0f);
  check("resize_bilinear [1,2,13,11] -> 4x6 (down)", {{{1, 2, 13, 11}}},
        [](Graph& g, auto& x) { return resize_bilinear(g, x[0], 4, 6); }, false, 0.0f);
  check("resize_bilinear [1,2,7,9] -> 7x20 (rows kept)", {{{1, 2, 7, 9}}},
        [](Graph& g, auto& x) { return resize_bilinear(g, x[0], 7, 20); }, false, 0.0f);
  // ---------------- random and adamw
  {
    auto rnd = [](int kind) {
      return [kind](Graph& g, auto& x) {
        (void)x;
        Tensor* ctr = g.constant_data({4}, {0, 0, 0, 0});
        ctr->dtype = DType::i32;  // bit pattern 0 either way
        return random(g, {3, 337}, kind, ctr, 3);
      };
    };
    check("random uniform [3,337]", {}, rnd(RAND_UNIFORM), false, 0.0f);
    check("random normal [3,337]", {}, rnd(RAND_NORMAL), false, 1e-5f);
  }
  // AdamW: 3 steps on a small regression, both decoupled and L2 flavours, with clipping
  for (int dec = 0; dec < 2; dec++) {
    auto train = [&](Backend* be) {
      Store st(be);
      Tensor* W = st.add("W", DType::f32, {20, 30});
      Rng r(3, 3);
      std::vector<float> w0(600), xv(7 * 20), tv(7 * 30);
      for (float& v : w0) v = r.uniform() - 0.5f;
      for (float& v : xv) v = r.uniform() - 0.5f;
      for (float& v : tv) v = r.uniform() - 0.5f;
      st.upload_f32(W, w0);
      AdamConfig cfg;
      cfg.lr = 0.01f;
      cfg.weight_decay = 0.1f;
      cfg.decoupled = dec;
      AdamW opt(st, {W}, cfg);
      opt.clip_norm = 0.5f;
      Graph g(be);
      Tensor* x = g.input(DType::f32, {7, 20}, "x");
      Tensor* t = g.input(DType::f32, {7, 30}, "t");
      Tensor* loss = loss_mse(g, matmul(g, x, W), t);
      g.mark_loss(loss);
      g.backward(loss);
      opt.append_update(g);
      g.plan();
      g.set_f32(x, xv);
      g.set_f32(t, tv);
      for (int s = 0; s < 3; s++) {
        opt.begin_step(g);
        g.compute();
      }
      return st.download_f32(W);
    };
    std::vector<float> a = train(backend_cpu()), b = train(backend_cuda(0));
    double mr = 0;
    for (size_t k = 0; k < a.size(); k++) mr = std::max(mr, (double)std::fabs(a[k] - b[k]) / std::max(1.0f, std::fabs(a[k])));
    bool ok = mr < 1e-5;
    printf("%-4s %-60s maxrel %.2e\n", ok ? "ok" : "FAIL", dec ? "adamw decoupled 3 steps" : "adam L2 3 steps", mr);
    (ok ? g_pass : g_fail)++;
  }
  printf("%d passed, %d failed\n", g_pass, g_fail);
  return g_fail ? 1 : 0;
}
