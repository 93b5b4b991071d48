// tools/cmd_bench_metrics.cpp — `nsvq bench metrics`: the cost of the standard metrics' networks with
// random weights of the right shapes (speed does not depend on the values): pytorch-fid's InceptionV3
// pool3 features of a batch (resized to 299x299), and LPIPS-VGG16 forward and forward + backward (the
// perceptual loss of a training step). tools/bench/torch_metrics.py times the same in PyTorch.
#include <cmath>
#include <cstdlib>
#include <cstdio>
#include "engine/backend.h"
#include "engine/rng.h"
#include "models/inception_fid.h"
#include "models/lpips.h"
#include "ops/ops.h"
#include "tools/args.h"
#include "tools/bench_util.h"
#include "tools/commands.h"

namespace nsvq {

namespace {

// Conv weights U(+-sqrt(3 / fan_in)), BatchNorm at identity, LPIPS heads U(0, 0.1), biases 0.
RawWeights random_weights(const std::vector<WeightSpec>& spec) {
  RawWeights w;
  Rng r(11, 5);
  for (const WeightSpec& s : spec) {
    std::vector<float>& v = w[s.name];
    v.assign((size_t)s.shape.numel(), 0.0f);
    const bool var = s.name.find("running_var") != std::string::npos, bnw = s.name.find(".bn.weight") != std::string::npos;
    if (var || bnw) v.assign(v.size(), 1.0f);
    if (s.shape.ndim != 4) continue;
    const float b = std::sqrt(3.0f / (float)(s.shape[1] * s.shape[2] * s.shape[3]));
    const bool head = s.name.rfind("lin", 0) == 0;
    for (float& x : v) x = head ? 0.1f * r.uniform() : b * (2.0f * r.uniform() - 1.0f);
  }
  return w;
}

// NSVQ_PROFILE set: a few more computes of g, timed per op, to stderr
void profile(Graph& g) {
  if (!getenv("NSVQ_PROFILE")) return;
  g.set_profile(true);
  for (int i = 0; i < 3; i++) g.compute();
  fprintf(stderr, "%s", g.profile_report().c_str());
}

void row(bool json, const std::string& name, double ms, int64_t B, Backend* be) {
  if (json)
    printf("{\"name\": \"%s\", \"ms_median\": %.3f, \"img_per_s\": %.2f, \"threads\": %d, \"device\": \"%s\"}\n",
           name.c_str(), ms, B * 1000.0 / ms, cpu_threads(), be->name().c_str());
  else
    printf("%-52s %10.2f ms  %8.1f img/s  threads %d  %s\n", name.c_str(), ms, B * 1000.0 / ms, cpu_threads(),
           be->name().c_str());
  fflush(stdout);
}

}  // namespace

int bench_metrics(int argc, char** argv, int first) {
  Args a("bench metrics",
         "InceptionV3-FID features and LPIPS-VGG16 (forward, forward + backward) with random weights: median ms.",
         {{"batch", "", "32", "images per batch"}, {"size", "", "32", "input images are SIZE x SIZE (RGB)"},
          {"reps", "", "5", "timed repetitions (after one warm-up)"}, {"json", "", "", "one JSON object per row", true},
          {"device", "", "cpu", "cpu | cuda | cuda:N"}, NSVQ_PRECISION_OPTION, {"threads", "t", "0", "CPU threads (0: all cores)"}},
         argc, argv, first);
  const int64_t B = a.i64("batch"), S = a.i64("size"), reps = a.i64("reps");
  if (B < 1 || S < 16 || reps < 1) fail("bench metrics: --batch and --reps must be >= 1, --size >= 16");
  cpu_set_threads((int)a.i64("threads"));
  Backend* be = backend_for(a.str("device"), a.str("precision"));
  Rng r(5, 1);
  std::vector<float> x((size_t)(B * 3 * S * S)), y(x.size());
  for (size_t i = 0; i < x.size(); i++) {
    x[i] = r.uniform();
    y[i] = r.uniform();
  }
  const std::string tag = " b" + std::to_string(B) + " " + std::to_string(S) + "px";
  {
    Store st(be);
    InceptionFid net(st, random_weights(InceptionFid::spec()));
    Graph g(be);
    Tensor* in = g.input(DType::f32, {B, 3, S, S}, "x");
    Tensor* f = net.features(g, in);
    g.mark_output(f);
    g.plan();
    g.set_f32(in, x);
    row(a.flag("json"), "inception-fid pool3" + tag + " (-> 299)", median_ms(1, (int)reps, [&] {
          g.compute();
          g.get_f32(f);
        }), B, be);
    profile(g);
  }
  Store st(be);
  LpipsVgg net(st, random_weights(LpipsVgg::spec()));
  for (int bwd = 0; bwd < 2; bwd++) {
    Graph g(be);
    Tensor* ia = g.input(DType::f32, {B, 3, S, S}, "a");
    Tensor* ib = g.input(DType::f32, {B, 3, S, S}, "b");
    Tensor* d = mean(g, net.distance(g, ia, ib));
    Tensor* out = bwd ? g.gradients({{d, 1.0f}}, {ib})[0] : d;
    g.mark_output(out);
    g.plan();
    g.set_f32(ia, x);
    g.set_f32(ib, y);
    row(a.flag("json"), std::string(bwd ? "lpips-vgg16 forward+backward" : "lpips-vgg16 forward") + tag,
        median_ms(1, (int)reps, [&] {
          g.compute();
          g.get_f32(out);
        }), B, be);
    profile(g);
  }
  return 0;
}

}  // namespace nsvq
