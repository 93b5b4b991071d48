// tools/cmd_bench_tokenize.cpp — `nsvq bench tokenize`: inference-only tokenization throughput of a
// preset (encoder + quant_conv + nearest-code search, vanilla VQ codebook of K codes), as images per
// second over medians of repeated tokenizations of a batch (one g.compute(), or --micro M: B/M calls of
// M images each, inputs in and indices out included), with the process's peak resident memory.
// tools/bench/torch_tokenize.py times the same network in PyTorch under torch.no_grad().
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include "engine/rng.h"
#include "models/quantizer.h"
#include "models/vqgan.h"
#include "tools/args.h"
#include "tools/bench_util.h"
#include "tools/commands.h"

namespace nsvq {

int bench_tokenize(int argc, char** argv, int first) {
  Args a("bench tokenize", "Times inference tokenization (encoder, quant_conv, nearest code) of a preset.",
         {{"preset", "", "fmnist", "fmnist | cifar10 | imagenet128"},
          {"batch", "", "32", "images per tokenization (one graph call unless --micro)"},
          {"codes", "", "1024", "codebook size K"}, {"reps", "", "10", "timed tokenizations (after two untimed)"},
          {"micro", "", "0", "run the batch as graph calls of this many images (0: one call)"},
          {"device", "", "cpu", "cpu | cuda | cuda:N"}, NSVQ_PRECISION_OPTION, {"threads", "t", "0", "CPU threads (0: all cores)"},
          {"full", "", "", "also compute the quantizer's zq, losses and statistics (not only the indices)", true},
          {"json", "", "", "one JSON object per result", true}},
         argc, argv, first);
  cpu_set_threads((int)a.i64("threads"));
  std::string preset = a.str("preset");
  int64_t B = a.i64("batch"), reps = a.i64("reps"), M = a.i64("micro");
  if (B < 1 || reps < 1 || M < 0) fail("--batch and --reps must be >= 1, --micro >= 0");
  if (M == 0 || M > B) M = B;
  if (B % M) fail("--batch %lld is not a multiple of --micro %lld", (long long)B, (long long)M);
  Backend* be = backend_for(a.str("device"), a.str("precision"));
  VqganConfig cfg = vqgan_preset(preset);
  Store st(be);
  VqganAutoencoder ae(st, cfg, 1);
  QuantizerConfig qc;
  qc.kind = QuantKind::vq;
  qc.codes = a.i64("codes");
  qc.dim = cfg.embed_dim;
  qc.group = GROUP_GENERATOR;
  Quantizer quant(st, qc);

  Graph g(be);
  int64_t R = cfg.resolution;
  Tensor* x = g.input(DType::f32, {M, cfg.in_channels, R, R}, "x");
  QuantOut q = quant.build(g, ae.encode(g, x), /*training=*/false);
  if (!a.flag("full"))  // tokenization needs only the indices: drop zq, the losses and the statistics
    for (Tensor* n : g.nodes()) n->flags &= ~TF_OUTPUT;
  g.mark_output(q.indices);
  g.plan();

  std::vector<float> xv((size_t)(B * x->numel() / M));
  Rng r(3, 1);
  for (float& v : xv) v = 2.0f * r.uniform() - 1.0f;
  std::vector<int32_t> idx;
  auto tokenize = [&] {  // the batch, in graph calls of M images
    idx.clear();
    const size_t n = (size_t)x->numel();
    for (int64_t c = 0; c < B / M; c++) {
      g.set_f32(x, xv.data() + c * n, n);
      g.compute();
      std::vector<int32_t> part = g.get_i32(q.indices);
      idx.insert(idx.end(), part.begin(), part.end());
    }
  };
  double ms = median_ms(2, (int)reps, tokenize);
  if (getenv("NSVQ_PROFILE")) {  // a few more calls, timed per op
    g.set_profile(true);
    for (int i = 0; i < 5; i++) g.compute();
    fprintf(stderr, "%s", g.profile_report().c_str());
  }
  uint64_t h = 1469598103934665603ull;  // FNV-1a of the indices: the same tokens on every thread count
  for (int32_t v : idx) h = (h ^ (uint32_t)v) * 1099511628211ull;
  double rss = peak_rss_mb();
  char name[128];
  snprintf(name, sizeof name, "tokenize %s b%lld%s k%lld", preset.c_str(), (long long)B,
           M < B ? (" micro" + std::to_string(M)).c_str() : "", (long long)qc.codes);
  if (a.flag("json"))
    printf("{\"name\": \"%s\", \"ms_median\": %.3f, \"img_per_s\": %.2f, \"peak_rss_mb\": %.1f, \"threads\": %d, "
           "\"device\": \"%s\", \"tokens_hash\": \"%016llx\"}\n",
           name, ms, B * 1000.0 / ms, rss, cpu_threads(), be->name().c_str(), (unsigned long long)h);
  else
    printf("%s: %.3f ms/batch, %.1f img/s, peak RSS %.0f MB, %d threads, %s, tokens %016llx (%s)\n", name, ms,
           B * 1000.0 / ms, rss, cpu_threads(), be->name().c_str(), (unsigned long long)h, g.plan_summary().c_str());
  return 0;
}

}  // namespace nsvq
