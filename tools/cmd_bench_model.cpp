// tools/cmd_bench_model.cpp — `nsvq bench model`: the forward pass of a preset's encoder
// (with quant_conv) or decoder (with post_quant_conv), timed as a median, with the planned arena and
// the process's peak resident memory — the edge use case and the bounded-memory check.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include "engine/rng.h"
#include "models/vqgan.h"
#include "tools/args.h"
#include "tools/bench_util.h"
#include "tools/commands.h"

namespace nsvq {

int bench_model(int argc, char** argv, int first) {
  Args a("bench model", "Times a preset's encoder or decoder forward pass and reports peak memory.",
         {{"preset", "", "fmnist", "fmnist | cifar10 | imagenet128"}, {"part", "", "decoder", "encoder | decoder"},
          {"batch", "", "1", "images"}, {"reps", "", "5", "timed runs"}, {"device", "", "cpu", "cpu | cuda | cuda:N"}, NSVQ_PRECISION_OPTION,
          {"threads", "t", "0", "CPU threads (0: all cores)"}, {"json", "", "", "one JSON object per result", true}},
         argc, argv, first);
  cpu_set_threads((int)a.i64("threads"));
  std::string preset = a.str("preset"), part = a.str("part");
  if (part != "encoder" && part != "decoder") fail("--part must be encoder or decoder, got '%s'", part.c_str());
  int64_t B = a.i64("batch"), reps = a.i64("reps");
  if (B < 1 || reps < 1) fail("--batch and --reps must be >= 1");
  Backend* be = backend_for(a.str("device"), a.str("precision"));
  VqganConfig cfg = vqgan_preset(preset);
  Store st(be);
  VqganAutoencoder ae(st, cfg, 1);
  Graph g(be);
  int64_t R = cfg.resolution, h = cfg.latent_size();
  Tensor* x = part == "encoder" ? g.input(DType::f32, {B, cfg.in_channels, R, R}, "x")
                                : g.input(DType::f32, {B, cfg.embed_dim, h, h}, "zq");
  Tensor* y = part == "encoder" ? ae.encode(g, x) : ae.decode(g, x);
  g.mark_output(y);
  std::vector<float> xv((size_t)x->numel());
  Rng r(5, 1);
  for (float& v : xv) v = r.normal();
  g.set_f32(x, xv);
  double ms = median_ms(1, (int)reps, [&] { g.compute(); });
  char name[128];
  snprintf(name, sizeof name, "%s %s b%lld %lldx%lld", preset.c_str(), part.c_str(), (long long)B, (long long)R, (long long)R);
  if (a.flag("json"))
    printf("{\"name\": \"%s\", \"ms_median\": %.3f, \"img_per_s\": %.2f, \"arena_mb\": %.1f, \"params_mb\": %.1f, "
           "\"peak_rss_mb\": %.1f, \"threads\": %d, \"device\": \"%s\"}\n",
           name, ms, B * 1000.0 / ms, g.arena_bytes() / 1048576.0, st.bytes() / 1048576.0, peak_rss_mb(),
           cpu_threads(), be->name().c_str());
  else
    printf("%s: %.1f ms, %.1f img/s, arena %.1f MB, parameters %.1f MB, peak RSS %.0f MB, %d threads, %s\n", name, ms,
           B * 1000.0 / ms, g.arena_bytes() / 1048576.0, st.bytes() / 1048576.0, peak_rss_mb(), cpu_threads(),
           be->name().c_str());
  return 0;
}

}  // namespace nsvq
