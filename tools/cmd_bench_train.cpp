// tools/cmd_bench_train.cpp — `nsvq bench train-step` and `bench dit-step` (the latent-diffusion step): one full VQGAN training step of a preset
// (generator forward, backward and Adam; discriminator forward, backward and Adam; vanilla VQ,
// L1 + 0.1 hinge generator loss + VQ loss, hinge discriminator loss), timed as medians, with the
// process's peak resident memory. tools/bench/torch_train_step.py times the same step in PyTorch.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include "engine/rng.h"
#include "models/discriminator.h"
#include "models/dit.h"
#include "train/ldm.h"
#include "models/quantizer.h"
#include "models/vqgan.h"
#include "ops/optim.h"
#include "tools/args.h"
#include "tools/bench_util.h"
#include "tools/commands.h"

namespace nsvq {

int bench_train_step(int argc, char** argv, int first) {
  Args a("bench train-step", "Times one generator + discriminator training step of a preset.",
         {{"preset", "", "fmnist", "fmnist | cifar10 | imagenet128"}, {"batch", "", "32", "images per step"},
          {"codes", "", "1024", "codebook size K"}, {"reps", "", "5", "timed steps"},
          {"device", "", "cpu", "cpu | cuda | cuda:N"}, NSVQ_PRECISION_OPTION, {"threads", "t", "0", "CPU threads (0: all cores)"},
          {"json", "", "", "one JSON object per result", true}},
         argc, argv, first);
  cpu_set_threads((int)a.i64("threads"));
  std::string preset = a.str("preset");
  int64_t B = a.i64("batch"), reps = a.i64("reps");
  if (B < 1 || reps < 1) fail("--batch and --reps must be >= 1");
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
  NLayerDiscriminator disc(st, discriminator_preset(preset), 2);
  AdamConfig ac;
  ac.lr = 2e-4f;
  ac.beta1 = 0.5f;
  ac.beta2 = 0.9f;
  AdamW opt_g(st, st.params(GROUP_GENERATOR), ac, "adam_g");
  AdamW opt_d(st, st.params(GROUP_DISCRIMINATOR), ac, "adam_d");

  Graph g(be);
  int64_t R = cfg.resolution;
  Tensor* x = g.input(DType::f32, {B, cfg.in_channels, R, R}, "x");
  QuantOut q = quant.build(g, ae.encode(g, x), true);
  Tensor* xr = ae.decode(g, q.zq);
  Tensor* l_rec = loss_l1(g, xr, x);
  Tensor* l_adv = hinge_g_loss(g, disc.forward(g, xr, true));
  Tensor* l_d = hinge_d_loss(g, disc.forward(g, x, true), disc.forward(g, detach(g, xr), true));
  for (Tensor* l : {l_rec, l_adv, l_d, q.loss}) g.mark_loss(l);
  g.backward({{l_rec, 1.0f}, {l_adv, 0.1f}, {q.loss, 1.0f}}, GROUP_GENERATOR);
  g.backward({{l_d, 1.0f}}, GROUP_DISCRIMINATOR);
  opt_g.append_update(g);
  opt_d.append_update(g);
  g.plan();

  std::vector<float> xv((size_t)x->numel());
  Rng r(3, 1);
  for (float& v : xv) v = 2.0f * r.uniform() - 1.0f;
  g.set_f32(x, xv);
  int64_t step = 0;
  auto run = [&] {
    quant.begin_step(g, q, step++);
    opt_g.begin_step(g);
    opt_d.begin_step(g);
    g.compute();
  };
  double ms = median_ms(2, (int)reps, run);
  if (getenv("NSVQ_PROFILE")) {  // one more step, timed per op
    g.set_profile(true);
    run();
    fprintf(stderr, "%s", g.profile_report().c_str());
  }
  double rss = peak_rss_mb();
  char name[128];
  snprintf(name, sizeof name, "train-step %s b%lld", preset.c_str(), (long long)B);
  // mode: the matrix precision, "+graph" when the step was replayed as a CUDA graph (NSVQ_CUDA_GRAPH=1)
  std::string mode = "nsvq " + be->precision() + (be->kind() == BK_CUDA && g.replay_on() ? "+graph" : "");
  if (a.flag("json"))
    printf("{\"name\": \"%s\", \"mode\": \"%s\", \"ms_median\": %.3f, \"img_per_s\": %.2f, \"peak_rss_mb\": %.1f, "
           "\"threads\": %d, \"device\": \"%s\"}\n",
           name, mode.c_str(), ms, B * 1000.0 / ms, rss, cpu_threads(), be->name().c_str());
  else
    printf("%s: %.1f ms/step, %.1f img/s, peak RSS %.0f MB, %d threads, %s (%s)\n", name, ms, B * 1000.0 / ms, rss,
           cpu_threads(), be->name().c_str(), g.plan_summary().c_str());
  return 0;
}

}  // namespace nsvq

namespace nsvq {

// `nsvq bench dit-step`: one latent-diffusion training step (DiT forward, MSE to the noise, backward,
// AdamW) on random latents, as ldm-train runs it.
int bench_dit_step(int argc, char** argv, int first) {
  Args a("bench dit-step", "Times one DiT training step (forward, epsilon MSE, backward, AdamW) of a preset.",
         {{"dit", "", "tier1", "tier1 | tier2"}, {"batch", "", "64", "latents per step"},
          {"reps", "", "5", "timed steps"}, {"device", "", "cpu", "cpu | cuda | cuda:N"}, NSVQ_PRECISION_OPTION,
          {"threads", "t", "0", "CPU threads (0: all cores)"}, {"json", "", "", "one JSON object per result", true}},
         argc, argv, first);
  cpu_set_threads((int)a.i64("threads"));
  int64_t B = a.i64("batch"), reps = a.i64("reps");
  if (B < 1 || reps < 1) fail("--batch and --reps must be >= 1");
  Backend* be = backend_for(a.str("device"), a.str("precision"));
  DitConfig dc = dit_preset(a.str("dit"));
  Store st(be);
  Dit dit(st, dc, 1);
  AdamConfig ac;
  ac.lr = 1e-4f;
  AdamW opt(st, st.params(GROUP_DIT), ac, "adam");
  Graph g(be);
  const DitStep ds = dit_train_step(g, dit, opt, B);
  Tensor *x = ds.xt, *t = ds.t, *y = ds.y, *eps = ds.eps;
  Rng r(3, 1);
  std::vector<float> xv((size_t)x->numel()), ev((size_t)eps->numel());
  for (float& v : xv) v = r.normal();
  for (float& v : ev) v = r.normal();
  std::vector<int32_t> tv((size_t)B), yv((size_t)B);
  for (int64_t i = 0; i < B; i++) tv[(size_t)i] = (int32_t)r.below(1000), yv[(size_t)i] = (int32_t)r.below(11);
  g.set_f32(x, xv);
  g.set_f32(eps, ev);
  g.set_i32(t, tv);
  g.set_i32(y, yv);
  auto run = [&] {
    opt.begin_step(g);
    g.compute();
  };
  double ms = median_ms(2, (int)reps, run);
  if (getenv("NSVQ_PROFILE")) {
    g.set_profile(true);
    run();
    fprintf(stderr, "%s", g.profile_report().c_str());
  }
  char name[96];
  snprintf(name, sizeof name, "dit-step %s b%lld", a.str("dit").c_str(), (long long)B);
  if (a.flag("json"))
    printf("{\"name\": \"%s\", \"ms_median\": %.3f, \"img_per_s\": %.2f, \"peak_rss_mb\": %.1f, \"threads\": %d, "
           "\"device\": \"%s\"}\n",
           name, ms, B * 1000.0 / ms, peak_rss_mb(), cpu_threads(), be->name().c_str());
  else
    printf("%s: %.1f ms/step, %.1f latents/s, peak RSS %.0f MB, %d threads, %s (%s)\n", name, ms, B * 1000.0 / ms,
           peak_rss_mb(), cpu_threads(), be->name().c_str(), g.plan_summary().c_str());
  return 0;
}

}  // namespace nsvq
