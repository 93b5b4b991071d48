// tools/cmd_bench_tokenize.cpp — `nsvq bench tokenize`: inference-only tokenization throughput of a
// preset (encoder + quant_conv + nearest-code search, vanilla VQ codebook of K codes), as images per
// second over medians of repeated tokenizations of a batch (one g.compute(), or --micro M: B/M calls of
// M images each, inputs in and indices out included), with the process's peak resident memory.
// With -m CKPT it tokenizes with a checkpoint's own model as `nsvq tokenize` loads it (only the encoder
// half read from the file), or with --api through the C API (include/nsvq.h), and reports the weights
// it holds beside the peak memory: the lean-inference measure.
// tools/bench/torch_tokenize.py times the same network in PyTorch under torch.no_grad().
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include "engine/rng.h"
#include "include/nsvq.h"
#include "models/quantizer.h"
#include "models/vqgan.h"
#include "tools/args.h"
#include "tools/bench_util.h"
#include "tools/commands.h"
#include "train/tokenizer.h"

namespace nsvq {

namespace {

// -m CKPT [--api]: tokenization as `nsvq tokenize` or a C API user runs it, peak memory against the weights held
int bench_tokenize_model(const Args& a, int64_t B, int64_t reps, int64_t M, Backend* be) {
  const std::string path = a.str("model");
  nsvq_model* api = nullptr;
  LoadedTokenizer L;
  int64_t C, R, hw, K;
  double weights_mb = 0;
  std::string preset;
  if (a.flag("api")) {
    if (be->kind() != BK_CPU) fail("bench tokenize: the C API runs on the CPU");
    char err[512];
    api = nsvq_open(path.c_str(), cpu_threads(), err, sizeof err);
    if (!api) fail("%s", err);
    nsvq_model_info in;
    nsvq_get_info(api, &in);
    C = in.channels, R = in.image_size, hw = (int64_t)in.grid_h * in.grid_w, K = in.codes;
    if (nsvq_set_batch(api, (int)M) != NSVQ_OK) fail("%s", nsvq_error(api));
    preset = "api";
  } else {
    L = tokenizer_load(path, be, true, ModelPart::encoder);
    C = L.model->channels(), R = L.model->resolution(), hw = L.model->grid() * L.model->grid(), K = L.model->codes();
    for (Tensor* t : L.model->weights()) weights_mb += (double)t->nbytes() / 1048576.0;
    preset = L.model->vqgan().name;
  }
  const int64_t per = C * R * R;
  std::vector<uint8_t> px((size_t)(B * per));
  std::vector<float> xv((size_t)(B * per));
  Rng r(3, 1);
  for (size_t i = 0; i < px.size(); i++) {
    px[i] = (uint8_t)(r.below(256));
    xv[i] = px[i] * (2.0f / 255.0f) - 1.0f;  // planar or interleaved: random pixels either way
  }
  std::vector<int32_t> idx((size_t)(B * hw));
  auto tokenize = [&] {
    if (api) {
      if (nsvq_tokenize(api, px.data(), (int)B, (int)R, (int)R, (int)C, idx.data()) != NSVQ_OK) fail("%s", nsvq_error(api));
      return;
    }
    for (int64_t c = 0; c < B / M; c++) L.model->encode(xv.data() + c * M * per, M, idx.data() + c * M * hw);
  };
  double ms = median_ms(2, (int)reps, tokenize);
  const double rss = peak_rss_mb();
  nsvq_close(api);
  if (api) {  // the weights the API held: its encoder half (counted here, after the peak was taken)
    LoadedTokenizer probe = tokenizer_load(path, backend_cpu(), true, ModelPart::encoder);
    for (Tensor* t : probe.model->weights()) weights_mb += (double)t->nbytes() / 1048576.0;
  }
  char name[160];
  snprintf(name, sizeof name, "tokenize %s b%lld%s k%lld (%s)", preset.c_str(), (long long)B,
           M < B ? (" micro" + std::to_string(M)).c_str() : "", (long long)K, a.flag("api") ? "C API" : "checkpoint");
  if (a.flag("json"))
    printf("{\"name\": \"%s\", \"ms_median\": %.3f, \"img_per_s\": %.2f, \"peak_rss_mb\": %.1f, \"weights_mb\": %.1f, "
           "\"threads\": %d, \"device\": \"%s\", \"checkpoint\": \"%s\"}\n",
           name, ms, B * 1000.0 / ms, rss, weights_mb, cpu_threads(), be->name().c_str(), path.c_str());
  else
    printf("%s: %.3f ms/batch, %.1f img/s, peak RSS %.0f MB (weights held %.1f MB), %d threads, %s\n", name, ms,
           B * 1000.0 / ms, rss, weights_mb, cpu_threads(), be->name().c_str());
  return 0;
}

}  // namespace

int bench_tokenize(int argc, char** argv, int first) {
  Args a("bench tokenize", "Times inference tokenization (encoder, quant_conv, nearest code) of a preset.",
         {{"preset", "", "fmnist", "fmnist | cifar10 | imagenet128"},
          {"model", "m", "", "a checkpoint or exported file: tokenize with its model (its preset and codes)"},
          {"api", "", "", "with -m: through the C API (nsvq_open, nsvq_tokenize on uint8 pixels)", true},
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
  if (!a.str("model").empty()) return bench_tokenize_model(a, B, reps, M, be);
  if (a.flag("api")) fail("bench tokenize: --api needs a model (-m CKPT)");
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
