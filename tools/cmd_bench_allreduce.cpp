// tools/cmd_bench_allreduce.cpp — `nsvq bench allreduce`: the collective ops of data-parallel training
// by message size, under `mpirun -np R nsvq bench allreduce [--op allreduce|allgather|reduce-scatter]`:
// the gradient all-reduce as the trainer builds it (copy into one flat buffer, then the collective), the
// quantizer's all-gather and its gradient's reduce-scatter; MPI on the CPU, NCCL for --device cuda.
// Rank 0 prints the median time, the algorithm bandwidth (full message bytes / time) and the bus
// bandwidth (what each rank's links carry in a ring, comparable across R: x 2 (R - 1) / R for the
// all-reduce, x (R - 1) / R for the others).
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <vector>
#include "engine/backend.h"
#include "engine/dist.h"
#include "ops/ops.h"
#include "tools/args.h"
#include "tools/commands.h"

namespace nsvq {

int bench_allreduce(int argc, char** argv, int first) {
  Args a("bench allreduce",
         "Collectives of f32 buffers across the ranks of mpirun -np R: median ms and MB/s by message size.",
         {{"op", "", "allreduce", "allreduce (mean) | allgather | reduce-scatter (sum); sizes are the full message"},
          {"min-kb", "", "4", "smallest message (KB)"},
          {"max-mb", "", "64", "largest message (MB)"},
          {"reps", "", "20", "timed repetitions per size (after 3 untimed)"},
          {"device", "", "cpu", "cpu | cuda (NCCL when built with it)"},
          {"threads", "t", "1", "CPU threads per rank"},
          {"json", "", "", "one JSON object per size", true}},
         argc, argv, first);
  cpu_set_threads((int)a.i64("threads"));
  std::string device = a.str("device");
  if (device == "cuda" && dist().size() > 1 && cuda_device_count() > 0)
    device = "cuda:" + std::to_string(dist().local_rank() % cuda_device_count());
  Backend* be = backend_by_name(device);
  const int R = dist().size(), reps = (int)a.i64("reps");
  const bool json = a.flag("json"), root = dist().rank() == 0;
  if (reps < 1) fail("--reps must be at least 1");
  const std::string op = a.str("op");
  if (op != "allreduce" && op != "allgather" && op != "reduce-scatter")
    fail("--op must be allreduce, allgather or reduce-scatter, got '%s'", op.c_str());
  const double bus = op == "allreduce" ? 2.0 * (R - 1) / R : (double)(R - 1) / R;
  const int64_t lo = std::max<int64_t>(1, a.i64("min-kb")) * 1024, hi = std::max<int64_t>(1, a.i64("max-mb")) << 20;
  if (root && !json)
    printf("%s; %s; %s\n%12s %10s %12s %12s\n", op.c_str(), dist().describe().c_str(), be->name().c_str(), "bytes", "ms",
           "algbw MB/s", "busbw MB/s");
  for (int64_t bytes = lo; bytes <= hi; bytes *= 4) {
    const int64_t n = bytes / 4 / R * R, per = n / R;  // the full message; per rank for the gather / scatter
    Graph g(be);
    Tensor* x = g.input(DType::f32, {op == "allgather" ? per : n}, "x");
    Tensor* y = op == "allgather" ? allgather(g, x)
                : op == "reduce-scatter" ? reduce_scatter_sum(g, x)
                                         : allreduce(g, {x}, 1.0f / (float)R, (size_t)bytes)[0];
    g.mark_output(y);
    g.plan();
    std::vector<float> v((size_t)x->numel(), (float)(dist().rank() + 1));
    g.set_f32(x, v);
    std::vector<double> ms;
    for (int i = 0; i < reps + 3; i++) {
      dist().barrier();
      auto t0 = std::chrono::steady_clock::now();
      g.compute();
      be->sync();
      double t = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
      if (i >= 3) ms.push_back(t);
    }
    // all-reduce: the mean of 1..R everywhere; all-gather: rank k's block holds k + 1; reduce-scatter: 1 + ... + R
    std::vector<float> out = g.get_f32(y);
    for (int64_t i : {(int64_t)0, (int64_t)out.size() / 2, (int64_t)out.size() - 1}) {
      const float want = op == "allreduce" ? (float)(R + 1) / 2.0f
                         : op == "allgather" ? (float)(i / per + 1)
                                             : (float)(R * (R + 1) / 2);
      if (out[(size_t)i] != want) fail("bench %s: %lld bytes: got %g, want %g", op.c_str(), (long long)bytes, out[(size_t)i], want);
    }
    std::sort(ms.begin(), ms.end());
    const double med = ms[ms.size() / 2], alg = (double)(n * 4) / (med * 1e3), busbw = alg * bus;
    if (!root) continue;
    if (json)
      printf("{\"name\": \"%s\", \"bytes\": %lld, \"ranks\": %d, \"ms_median\": %.4f, \"algbw_mb_s\": %.1f, "
             "\"busbw_mb_s\": %.1f, \"device\": \"%s\"}\n",
             op.c_str(), (long long)(n * 4), R, med, alg, busbw, be->name().c_str());
    else
      printf("%12lld %10.4f %12.1f %12.1f\n", (long long)(n * 4), med, alg, busbw);
    fflush(stdout);
  }
  if (root && R == 1 && !json) printf("(one rank: copies only; launch with mpirun -np R to measure the collective)\n");
  return 0;
}

}  // namespace nsvq
