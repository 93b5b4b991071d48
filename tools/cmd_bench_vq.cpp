// tools/cmd_bench_vq.cpp — `nsvq bench vq`: the blockwise nearest-code search and the NSVQ dense-loss
// passes (ops/vq.h) at N x K x D, medians of repeated runs, GFLOP/s counted as 2 N K D per GEMM-sized
// pass. With --gemm, the SGEMM of the same M, N, K (= N, K, D) is timed in the same run for the ratio.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <functional>
#include "engine/cpu/gemm.h"
#include "engine/rng.h"
#include "ops/vq.h"
#include "tools/args.h"
#include "tools/bench_util.h"
#include "tools/commands.h"

namespace nsvq {

namespace {

std::vector<float> vq_random(size_t n, uint64_t seed) {
  Rng r(seed, 3);
  std::vector<float> v(n);
  for (float& x : v) x = 2.0f * r.uniform() - 1.0f;
  return v;
}

}  // namespace

int bench_vq(int argc, char** argv, int first) {
  Args a("bench vq",
         "Times the nearest-code search (GEMM distances with a fused running argmin), the search with the row\n"
         "log-sum-exp (NSVQ pass A) and the dense-loss statistics pass (pass B: distances again, weights, W^T Z).",
         {{"n", "", "2048", "latents N"}, {"codes", "", "65536", "codebook size K"}, {"dim", "", "16", "code dimension D"},
          {"tau", "", "1", "kernel temperature of the dense passes"}, {"lambda", "", "0.01", "non-winner scale"},
          {"reps", "", "5", "timed repetitions"}, {"gemm", "", "", "also time the SGEMM [N,D] x [D,K] (cpu)", true},
          {"device", "", "cpu", "cpu | cuda | cuda:N"}, NSVQ_PRECISION_OPTION, {"threads", "t", "0", "CPU threads (0: all cores)"},
          {"json", "", "", "one JSON object per result", true}},
         argc, argv, first);
  cpu_set_threads((int)a.i64("threads"));
  const int64_t N = a.i64("n"), K = a.i64("codes"), D = a.i64("dim");
  const int reps = (int)a.i64("reps");
  if (N < 1 || K < 1 || D < 1 || reps < 1) fail("--n, --codes, --dim and --reps must be >= 1");
  const float tau = (float)a.f64("tau"), lambda = (float)a.f64("lambda");
  if (!(tau > 0.0f) || !(lambda >= 0.0f)) fail("--tau must be > 0 and --lambda >= 0");
  Backend* be = backend_for(a.str("device"), a.str("precision"));
  const bool json = a.flag("json");
  const std::string dev = be->name();
  const double pass = 2.0 * (double)N * (double)K * (double)D;
  auto report = [&](const char* what, double ms, double flops) {
    char name[160];
    snprintf(name, sizeof name, "vq %s %lldx%lldx%lld", what, (long long)N, (long long)K, (long long)D);
    if (json)
      printf("{\"name\": \"%s\", \"ms_median\": %.4f, \"gflops\": %.3f, \"threads\": %d, \"device\": \"%s\"}\n", name, ms,
             flops / (ms * 1e6), cpu_threads(), dev.c_str());
    else
      printf("%-44s %10.4f ms  %10.2f gflops  threads %d  %s\n", name, ms, flops / (ms * 1e6), cpu_threads(), dev.c_str());
    fflush(stdout);
  };

  std::vector<float> zv = vq_random((size_t)(N * D), 1), ev = vq_random((size_t)(K * D), 2);
  double ms_gemm = 0.0;
  if (a.flag("gemm")) {
    if (be->kind() != BK_CPU) fail("bench vq: --gemm times the CPU SGEMM; run it with --device cpu");
    std::vector<float> C((size_t)(N * K));
    int nt = cpu_threads();
    ms_gemm = median_ms(1, reps, [&] { sgemm(false, true, N, K, D, 1.0f, zv.data(), D, ev.data(), D, 0.0f, C.data(), K, nt); });
    report("gemm reference", ms_gemm, pass);
  }

  // pass A graph: search without and with the LSE; pass B graph: stats from a given search
  Graph ga(be);
  Tensor* z = ga.input(DType::f32, {N, D}, "z");
  Tensor* E = ga.input(DType::f32, {K, D}, "E");
  Tensor* s0 = vq_nearest(ga, z, E);
  ga.mark_output(s0);
  ga.plan();
  ga.set_f32(z, zv);
  ga.set_f32(E, ev);
  double ms_near = median_ms(1, reps, [&] { ga.compute(); });
  report("nearest", ms_near, pass);

  Graph gl(be);
  Tensor* z2 = gl.input(DType::f32, {N, D}, "z");
  Tensor* E2 = gl.input(DType::f32, {K, D}, "E");
  Tensor* t2 = gl.input(DType::f32, {1}, "tau");
  Tensor* s1 = vq_nearest(gl, z2, E2, t2);
  gl.mark_output(s1);
  gl.plan();
  gl.set_f32(z2, zv);
  gl.set_f32(E2, ev);
  gl.set_f32(t2, &tau, 1);
  double ms_a = median_ms(1, reps, [&] { gl.compute(); });
  report("nearest+lse (pass A)", ms_a, pass);
  std::vector<float> search = gl.get_f32(s1);

  Graph gb(be);
  Tensor* z3 = gb.input(DType::f32, {N, D}, "z");
  Tensor* E3 = gb.input(DType::f32, {K, D}, "E");
  Tensor* t3 = gb.input(DType::f32, {1}, "tau");
  Tensor* s3 = gb.input(DType::f32, {N, 3}, "search");
  Tensor* st = vq_dense_stats(gb, z3, E3, s3, t3, z3, lambda, 1.0f);
  gb.mark_output(st);
  gb.plan();
  gb.set_f32(z3, zv);
  gb.set_f32(E3, ev);
  gb.set_f32(t3, &tau, 1);
  gb.set_f32(s3, search);
  double ms_b = median_ms(1, reps, [&] { gb.compute(); });
  report("dense stats (pass B)", ms_b, 2.0 * pass);
  report("dense total (pass A + B)", ms_a + ms_b, 3.0 * pass);
  if (!json) {
    printf("ratios: dense loss beyond the search (A - nearest + B) / nearest = %.2f, (A + B) / nearest = %.2f",
           (ms_a - ms_near + ms_b) / ms_near, (ms_a + ms_b) / ms_near);
    if (ms_gemm > 0) printf(", nearest GFLOP/s / gemm GFLOP/s = %.2f", ms_gemm / ms_near);
    printf("\n");
  }
  return 0;
}

}  // namespace nsvq
