// tools/cmd_bench.cpp — `nsvq bench gemm` and `nsvq bench ops`: medians of repeated runs, GFLOP/s
// or GB/s, optionally one JSON object per line. Ratios are meaningful only within one run.
#include <sys/resource.h>
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <functional>
#include <utility>
#include "engine/cpu/gemm.h"
#include "engine/simd.h"
#include "engine/rng.h"
#include "ops/optim.h"
#include "tools/args.h"
#include "engine/dist.h"
#include "tools/bench_util.h"
#include "tools/commands.h"

namespace nsvq {

double median_ms(int warm, int reps, const std::function<void()>& f) {
  for (int i = 0; i < warm; i++) f();
  std::vector<double> t;
  for (int i = 0; i < reps; i++) {
    auto s = std::chrono::steady_clock::now();
    f();
    t.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - s).count());
  }
  std::sort(t.begin(), t.end());
  return t[t.size() / 2];
}

double peak_rss_mb() {
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  return ru.ru_maxrss / 1024.0;  // Linux reports KiB
}

namespace {

void report(bool json, const std::string& name, double ms, const char* unit, double value, int threads, const std::string& device) {
  if (json)
    printf("{\"name\": \"%s\", \"ms_median\": %.4f, \"%s\": %.3f, \"threads\": %d, \"device\": \"%s\"}\n", name.c_str(), ms,
           unit, value, threads, device.c_str());
  else
    printf("%-44s %10.4f ms  %10.2f %s  threads %d  %s\n", name.c_str(), ms, value, unit, threads, device.c_str());
  fflush(stdout);
}

std::vector<float> random_vec(size_t n, uint64_t seed, float lo = -1.0f, float hi = 1.0f) {
  Rng r(seed, 3);
  std::vector<float> v(n);
  for (float& x : v) x = lo + (hi - lo) * r.uniform();
  return v;
}

int bench_gemm(int argc, char** argv, int first) {
  Args a("bench gemm", "Times C = op(A) op(B) (row-major f32) and reports GFLOP/s.",
         {{"m", "", "1024", "rows of C"}, {"n", "", "1024", "columns of C"}, {"k", "", "1024", "inner dimension"},
          {"ta", "", "", "transpose A", true}, {"tb", "", "", "transpose B", true},
          {"reps", "", "10", "timed repetitions"}, {"device", "", "cpu", "cpu | cuda | cuda:N"}, NSVQ_PRECISION_OPTION,
          {"threads", "t", "0", "CPU threads (0: all cores)"}, {"json", "", "", "one JSON object per result", true}},
         argc, argv, first);
  cpu_set_threads((int)a.i64("threads"));
  int64_t M = a.i64("m"), N = a.i64("n"), K = a.i64("k");
  int reps = (int)a.i64("reps");
  if (M < 1 || N < 1 || K < 1 || reps < 1) fail("--m, --n, --k and --reps must be >= 1");
  bool ta = a.flag("ta"), tb = a.flag("tb");
  std::string dev = a.str("device");
  Backend* dbe = backend_for(dev, a.str("precision"));
  double flops = 2.0 * M * N * K;
  char name[128];
  snprintf(name, sizeof name, "gemm %lldx%lldx%lld%s%s", (long long)M, (long long)N, (long long)K, ta ? " ta" : "", tb ? " tb" : "");
  double ms;
  if (dev == "cpu") {
    std::vector<float> A = random_vec((size_t)(M * K), 1), B = random_vec((size_t)(K * N), 2), C((size_t)(M * N));
    int nt = cpu_threads();
    ms = median_ms(2, reps, [&] {
      sgemm(ta, tb, M, N, K, 1.0f, A.data(), ta ? M : K, B.data(), tb ? K : N, 0.0f, C.data(), N, nt);
    });
  } else {
    Backend* be = dbe;
    Graph g(be);
    Tensor* A = g.input(DType::f32, ta ? Shape{K, M} : Shape{M, K}, "A");
    Tensor* B = g.input(DType::f32, tb ? Shape{N, K} : Shape{K, N}, "B");
    Tensor* C = matmul(g, A, B, ta, tb);
    g.mark_output(C);
    g.set_f32(A, random_vec((size_t)(M * K), 1));
    g.set_f32(B, random_vec((size_t)(K * N), 2));
    ms = median_ms(2, reps, [&] { g.compute(); });
    dev = be->name();
  }
  report(a.flag("json"), name, ms, "gflops", flops / (ms * 1e6), cpu_threads(), dev);
  return 0;
}

// One benchmark row: builds its op on inputs filled with random values; work = bytes or flops.
struct OpCase {
  std::string name;
  bool flops;  // work counts FLOPs (else bytes moved)
  std::function<Tensor*(Graph&, std::vector<Tensor*>&)> build;
};

int bench_ops(int argc, char** argv, int first) {
  Args a("bench ops", "Times every op family on representative shapes (GB/s for memory-bound ops, GFLOP/s for matmul).",
         {{"reps", "", "10", "timed repetitions"}, {"device", "", "cpu", "cpu | cuda | cuda:N"}, NSVQ_PRECISION_OPTION,
          {"filter", "", "", "only cases whose name contains this"},
          {"threads", "t", "0", "CPU threads (0: all cores)"}, {"json", "", "", "one JSON object per result", true}},
         argc, argv, first);
  cpu_set_threads((int)a.i64("threads"));
  Backend* be = backend_for(a.str("device"), a.str("precision"));
  int reps = (int)a.i64("reps");
  if (reps < 1) fail("--reps must be >= 1");
  const int64_t E = 1 << 22;  // 4M elements
  auto in = [](Graph& g, std::vector<Tensor*>& ins, const Shape& s, DType dt = DType::f32) {
    Tensor* t = g.input(dt, s, "in" + std::to_string(ins.size()));
    ins.push_back(t);
    return t;
  };
  // the gradient (dx, or dgamma and dbeta) of sum(r * silu(group_norm(x))): norm forward, then the
  // norm backward kernels (NSVQ_PROFILE=1 shows each op's share)
  auto norm_grad = [](Graph& g, std::vector<Tensor*>& v, auto& in, int which) {
    Tensor *x = in(g, v, {32, 64, 32, 32}), *ga = in(g, v, {64}), *be = in(g, v, {64}), *r = in(g, v, {32, 64, 32, 32});
    Tensor* loss = sum(g, mul(g, group_norm(g, x, ga, be, 8, 1e-6f, true), r));
    g.mark_loss(loss);
    return g.gradients({{loss, 1.0f}}, {which == 0 ? x : ga})[0];
  };
  std::vector<OpCase> cases = {
      {"unary exp [4M]", false, [&](Graph& g, std::vector<Tensor*>& v) { return exp(g, in(g, v, {E})); }},
      {"unary silu [4M]", false, [&](Graph& g, std::vector<Tensor*>& v) { return silu(g, in(g, v, {E})); }},
      {"unary gelu [4M]", false, [&](Graph& g, std::vector<Tensor*>& v) { return gelu(g, in(g, v, {E})); }},
      {"binary add [4M]", false, [&](Graph& g, std::vector<Tensor*>& v) { return add(g, in(g, v, {E}), in(g, v, {E})); }},
      {"binary mul bcast [4096,1024]x[1024]", false,
       [&](Graph& g, std::vector<Tensor*>& v) { return mul(g, in(g, v, {4096, 1024}), in(g, v, {1024})); }},
      {"where [4M]", false,
       [&](Graph& g, std::vector<Tensor*>& v) { return where(g, in(g, v, {E}), in(g, v, {E}), in(g, v, {E})); }},
      {"reduce sum last [4096,1024]", false,
       [&](Graph& g, std::vector<Tensor*>& v) { return sum(g, in(g, v, {4096, 1024}), {1}); }},
      {"reduce sum first [4096,1024]", false,
       [&](Graph& g, std::vector<Tensor*>& v) { return sum(g, in(g, v, {4096, 1024}), {0}); }},
      {"reduce max all [4M]", false, [&](Graph& g, std::vector<Tensor*>& v) { return max(g, in(g, v, {E})); }},
      {"argmax [4096,1024]", false, [&](Graph& g, std::vector<Tensor*>& v) { return argmax(g, in(g, v, {4096, 1024}), 1); }},
      {"matmul 512x512x512", true,
       [&](Graph& g, std::vector<Tensor*>& v) { return matmul(g, in(g, v, {512, 512}), in(g, v, {512, 512})); }},
      {"matmul batched 16x[256x64]x[64x256]", true,
       [&](Graph& g, std::vector<Tensor*>& v) { return matmul(g, in(g, v, {16, 256, 64}), in(g, v, {16, 64, 256})); }},
      {"softmax [4096,1024]", false, [&](Graph& g, std::vector<Tensor*>& v) { return softmax(g, in(g, v, {4096, 1024})); }},
      {"log_softmax [4096,1024]", false,
       [&](Graph& g, std::vector<Tensor*>& v) { return log_softmax(g, in(g, v, {4096, 1024})); }},
      {"contiguous transpose [2048,2048]", false,
       [&](Graph& g, std::vector<Tensor*>& v) { return contiguous(g, transpose(g, in(g, v, {2048, 2048}), 0, 1)); }},
      {"concat 2x[2048,1024] axis 1", false,
       [&](Graph& g, std::vector<Tensor*>& v) { return concat(g, {in(g, v, {2048, 1024}), in(g, v, {2048, 1024})}, 1); }},
      {"pad [64,64,32,32] by 1", false,
       [&](Graph& g, std::vector<Tensor*>& v) { return pad(g, in(g, v, {64, 64, 32, 32}), {0, 0, 1, 1}, {0, 0, 1, 1}); }},
      {"get_rows [65536,64] x 16384", false,
       [&](Graph& g, std::vector<Tensor*>& v) { return get_rows(g, in(g, v, {65536, 64}), in(g, v, {16384}, DType::i32)); }},
      {"scatter_add_rows [16384,64] -> 65536", false,
       [&](Graph& g, std::vector<Tensor*>& v) {
         return scatter_add_rows(g, in(g, v, {16384, 64}), in(g, v, {16384}, DType::i32), 65536);
       }},
      {"loss_mse [4M]", false, [&](Graph& g, std::vector<Tensor*>& v) { return loss_mse(g, in(g, v, {E}), in(g, v, {E})); }},
      {"cross_entropy [4096,1000]", false,
       [&](Graph& g, std::vector<Tensor*>& v) { return cross_entropy(g, in(g, v, {4096, 1000}), in(g, v, {4096}, DType::i32)); }},
      {"random normal [4M]", false,
       [&](Graph& g, std::vector<Tensor*>& v) { return random(g, {E}, RAND_NORMAL, in(g, v, {4}, DType::i32), 0); }},
      {"group_norm+silu [32,64,32,32] 8 groups", false,
       [&](Graph& g, std::vector<Tensor*>& v) {
         return group_norm(g, in(g, v, {32, 64, 32, 32}), in(g, v, {64}), in(g, v, {64}), 8, 1e-6f, true);
       }},
      {"group_norm+silu backward: dx [32,64,32,32]", false,
       [&](Graph& g, std::vector<Tensor*>& v) { return norm_grad(g, v, in, 0); }},
      {"group_norm+silu backward: dgamma, dbeta [32,64,32,32]", false,
       [&](Graph& g, std::vector<Tensor*>& v) { return norm_grad(g, v, in, 1); }},
      {"layer_norm [4096,256]", false,
       [&](Graph& g, std::vector<Tensor*>& v) { return layer_norm(g, in(g, v, {4096, 256}), in(g, v, {256}), in(g, v, {256})); }},
      {"batch_norm train [32,64,16,16]", false,
       [&](Graph& g, std::vector<Tensor*>& v) {
         return batch_norm(g, in(g, v, {32, 64, 16, 16}), in(g, v, {64}), in(g, v, {64}), in(g, v, {64}), in(g, v, {64}), true);
       }},
      {"attention [32,4,64,32]", false,
       [&](Graph& g, std::vector<Tensor*>& v) {
         return attention(g, in(g, v, {32, 4, 64, 32}), in(g, v, {32, 4, 64, 32}), in(g, v, {32, 4, 64, 32}));
       }},
      {"upsample_nearest2x [32,64,16,16]", false,
       [&](Graph& g, std::vector<Tensor*>& v) { return upsample_nearest2x(g, in(g, v, {32, 64, 16, 16})); }},
      {"upsample_nearest2x_bwd [32,64,32,32]", false,
       [&](Graph& g, std::vector<Tensor*>& v) { return upsample_nearest2x_bwd(g, in(g, v, {32, 64, 32, 32})); }},
      {"max_pool2d [32,64,32,32] k2 s2", false,
       [&](Graph& g, std::vector<Tensor*>& v) { return max_pool2d(g, in(g, v, {32, 64, 32, 32}), 2, 2); }},
      {"max_pool2d forward+backward: dx [32,64,32,32] k2 s2", false,
       [&](Graph& g, std::vector<Tensor*>& v) {
         Tensor *x = in(g, v, {32, 64, 32, 32}), *r = in(g, v, {32, 64, 16, 16});
         Tensor* loss = sum(g, mul(g, max_pool2d(g, x, 2, 2), r));
         g.mark_loss(loss);
         return g.gradients({{loss, 1.0f}}, {x})[0];
       }},
      {"avg_pool2d [8,288,35,35] k3 s1 p1 no pad count", false,
       [&](Graph& g, std::vector<Tensor*>& v) { return avg_pool2d(g, in(g, v, {8, 288, 35, 35}), 3, 1, 1, false); }},
      {"resize_bilinear [8,3,32,32] -> 299x299", false,
       [&](Graph& g, std::vector<Tensor*>& v) { return resize_bilinear(g, in(g, v, {8, 3, 32, 32}), 299, 299); }},
      {"adamw [4M]", false,
       [&](Graph& g, std::vector<Tensor*>& v) {
         Tensor *p = in(g, v, {E}), *gr = in(g, v, {E}), *m = in(g, v, {E}), *s = in(g, v, {E}), *hp = in(g, v, {ADAM_HP_COUNT});
         return adamw_update(g, p, gr, m, s, hp, nullptr);
       }},
  };
  std::string filter = a.str("filter");
  for (OpCase& c : cases) {
    if (!filter.empty() && c.name.find(filter) == std::string::npos) continue;
    Graph g(be);
    std::vector<Tensor*> ins;
    Tensor* out = c.build(g, ins);
    g.mark_output(out);
    g.plan();
    double bytes = (double)out->nbytes();
    for (size_t i = 0; i < ins.size(); i++) {
      Tensor* t = ins[i];
      bytes += (double)t->nbytes();
      if (t->dtype == DType::i32) {
        std::vector<int32_t> v((size_t)t->numel());
        Rng r(i, 5);
        for (int32_t& x : v) x = (int32_t)r.below(t->numel() == 4 ? 1000u : c.name.find("cross") != std::string::npos ? 1000u : 16384u);
        g.set_i32(t, v);
      } else {
        bool positive = c.name.find("adamw") != std::string::npos && i == 3;
        g.set_f32(t, random_vec((size_t)t->numel(), i + 11, positive ? 0.0f : -1.0f, 1.0f));
      }
    }
    if (c.name.find("adamw") != std::string::npos) {
      std::vector<float> hp = {1e-3f, 0.9f, 0.999f, 1e-8f, 0.0f, 0.1f, 0.001f, 1.0f};
      g.set_f32(ins.back(), hp);
    }
    double ms = median_ms(2, reps, [&] { g.compute(); });
    if (getenv("NSVQ_PROFILE")) {  // each op of the case timed apart, over reps computes
      g.set_profile(true);
      for (int r = 0; r < reps; r++) g.compute();
      fprintf(stderr, "%s", g.profile_report().c_str());
    }
    double work = c.flops ? 2.0 * out->numel() * (c.name.find("512x512x512") != std::string::npos ? 512 : 64) : bytes;
    report(a.flag("json"), c.name, ms, c.flops ? "gflops" : "gbps", work / (ms * 1e6), cpu_threads(), be->name());
  }
  return 0;
}
int bench_conv(int argc, char** argv, int first) {
  Args a("bench conv", "Times conv2d forward, or forward + input and weight gradients (--mode fwdbwd).",
         {{"batch", "", "32", "images"}, {"cin", "", "64", "input channels"}, {"cout", "", "64", "output channels"},
          {"hw", "", "32", "input height = width"}, {"kernel", "", "3", "kernel size"}, {"stride", "", "1", "stride"},
          {"pad", "", "1", "zero padding on every side"}, {"mode", "", "fwdbwd", "fwd | fwdbwd"},
          {"reps", "", "10", "timed repetitions"}, {"device", "", "cpu", "cpu | cuda | cuda:N"}, NSVQ_PRECISION_OPTION,
          {"threads", "t", "0", "CPU threads (0: all cores)"}, {"json", "", "", "one JSON object per result", true}},
         argc, argv, first);
  cpu_set_threads((int)a.i64("threads"));
  int64_t B = a.i64("batch"), C = a.i64("cin"), O = a.i64("cout"), H = a.i64("hw"), K = a.i64("kernel");
  int S = (int)a.i64("stride"), P = (int)a.i64("pad"), reps = (int)a.i64("reps");
  std::string mode = a.str("mode");
  if (mode != "fwd" && mode != "fwdbwd") fail("--mode must be fwd or fwdbwd, got '%s'", mode.c_str());
  if (B < 1 || C < 1 || O < 1 || H < 1 || K < 1 || S < 1 || P < 0 || reps < 1) fail("sizes must be positive");
  Backend* be = backend_for(a.str("device"), a.str("precision"));
  Store st(be);
  Tensor* x = st.add("x", DType::f32, {B, C, H, H});
  Tensor* w = st.add("w", DType::f32, {O, C, K, K});
  Tensor* b = st.add("b", DType::f32, {O});
  st.upload_f32(x, random_vec((size_t)x->numel(), 1));
  st.upload_f32(w, random_vec((size_t)w->numel(), 2, -0.1f, 0.1f));
  Graph g(be);
  Tensor* y = conv2d(g, x, w, b, S, P);
  g.mark_output(y);
  double flops = 2.0 * y->numel() * C * K * K;
  if (mode == "fwdbwd") {
    Tensor* loss = sum(g, mul(g, y, g.constant_data(y->shape(), random_vec((size_t)y->numel(), 3))));
    g.mark_loss(loss);
    for (Tensor* gr : g.gradients({{loss, 1.0f}}, {x, w, b})) g.mark_output(gr);
    flops *= 3.0;
  }
  g.plan();
  double ms = median_ms(2, reps, [&] { g.compute(); });
  if (getenv("NSVQ_PROFILE")) {  // the forward and the two gradients timed apart, summed over reps computes
    g.set_profile(true);
    for (int r = 0; r < reps; r++) g.compute();
    fprintf(stderr, "%s", g.profile_report().c_str());
  }
  char name[160];
  snprintf(name, sizeof name, "conv %s b%lld %lld->%lld %lldx%lld k%lld s%d p%d", mode.c_str(), (long long)B, (long long)C,
           (long long)O, (long long)H, (long long)H, (long long)K, S, P);
  report(a.flag("json"), name, ms, "gflops", flops / (ms * 1e6), cpu_threads(), be->name());
  return 0;
}
}  // namespace

int cmd_bench(int argc, char** argv, int first) {
  if (first >= argc) fail("bench needs a target: gemm | ops | conv | vq | model | tokenize | train-step | dit-step | metrics | allreduce | data (see nsvq bench gemm --help)");
  std::string what = argv[first];
  // first line: the kernels in use (with --json a JSON object of its own, without "name")
  bool json = false, help = false;
  for (int i = first; i < argc; i++) {
    json |= std::strcmp(argv[i], "--json") == 0;
    help |= std::strcmp(argv[i], "--help") == 0 || std::strcmp(argv[i], "-h") == 0;
  }
  using bench_fn = int (*)(int, char**, int);
  const std::pair<const char*, bench_fn> targets[] = {
      {"gemm", bench_gemm},   {"ops", bench_ops},          {"conv", bench_conv},   {"train-step", bench_train_step},
      {"dit-step", bench_dit_step}, {"model", bench_model}, {"vq", bench_vq}, {"tokenize", bench_tokenize},
      {"metrics", bench_metrics}, {"allreduce", bench_allreduce}, {"data", bench_data}};
  for (const auto& [name, run] : targets) {
    if (what != name) continue;
    if (!help && dist().rank() == 0) {
      if (json)
        printf("{\"cpu\": \"%s\", \"simd\": \"%s\", \"gemm_kernel\": \"%s\"}\n", cpu_arch_name(), cpu_simd_level(),
               gemm_simd_level());
      else
        printf("cpu: %s %s (gemm kernel %s)\n", cpu_arch_name(), cpu_simd_level(), gemm_simd_level());
      fflush(stdout);
    }
    return run(argc, argv, first + 1);
  }
  fail("unknown benchmark '%s' (expected gemm, ops, conv, vq, model, tokenize, train-step, dit-step, metrics, allreduce or data)", what.c_str());
}

}  // namespace nsvq
