// tests/test_ldm.cpp — the latent-diffusion maths against hand-computed values: the linear beta
// schedule, the DDIM timestep spacing and the DDIM (eta = 0) update; the config's JSON; and a small
// class-conditional DiT trained by the trainer's step, batches and optimizer at ldm-train's defaults
// on synthetic latents, whose sampled latents must be of the class asked for (guided more than not,
// unconditional at chance). The trainer, the latent cache and decoding are exercised end to end by
// tests/cli_ldm_test.sh.
#include <doctest/doctest.h>
#include <cmath>
#include "engine/rng.h"
#include "train/ldm.h"

using namespace nsvq;

TEST_CASE("ddpm linear schedule: betas from linspace of square roots, alpha_bar their running product") {
  DdpmSchedule s = ddpm_linear(3, 0.0015, 0.0195);
  REQUIRE(s.T == 3);
  // sqrt(0.0015) = 0.038729833, sqrt(0.0195) = 0.139642400, midpoint 0.089186117 -> 0.007954163
  CHECK(s.beta[0] == doctest::Approx(0.0015).epsilon(1e-12));
  CHECK(s.beta[1] == doctest::Approx(0.00795416).epsilon(1e-6));
  CHECK(s.beta[2] == doctest::Approx(0.0195).epsilon(1e-12));
  CHECK(s.alpha_bar[0] == doctest::Approx(0.9985).epsilon(1e-12));
  CHECK(s.alpha_bar[1] == doctest::Approx(0.9985 * (1 - 0.00795416)).epsilon(1e-6));
  CHECK(s.alpha_bar[2] == doctest::Approx(0.9985 * (1 - 0.00795416) * 0.9805).epsilon(1e-6));
  DdpmSchedule big = ddpm_linear(1000);
  CHECK(big.alpha_bar[999] == doctest::Approx(0.0047).epsilon(0.02));  // LDM's value: about 4.7e-3
  for (int64_t t = 1; t < 1000; t++) CHECK(big.alpha_bar[(size_t)t] < big.alpha_bar[(size_t)(t - 1)]);
  CHECK_THROWS(ddpm_linear(0));
  CHECK_THROWS(ddpm_linear(10, 0.02, 0.01));
}

TEST_CASE("ddim timesteps: uniform spacing floor(i T / S), ascending") {
  CHECK(ddim_timesteps(1000, 4) == std::vector<int64_t>{0, 250, 500, 750});
  CHECK(ddim_timesteps(10, 3) == std::vector<int64_t>{0, 3, 6});
  CHECK(ddim_timesteps(5, 5) == std::vector<int64_t>{0, 1, 2, 3, 4});
  CHECK_THROWS(ddim_timesteps(10, 0));
  CHECK_THROWS(ddim_timesteps(10, 11));
}

TEST_CASE("ddim step (eta 0): x0 from the noise prediction, then re-noised to the previous alpha_bar") {
  // x = 0.5, eps = 0.2, ab = 0.64, ab_prev = 0.81: x0 = (0.5 - 0.6*0.2)/0.8 = 0.475,
  // x_prev = 0.9*0.475 + sqrt(0.19)*0.2 = 0.4275 + 0.0871779789 = 0.5146779789
  float x[2] = {0.5f, -1.0f}, eps[2] = {0.2f, 0.0f};
  ddim_step(x, eps, 2, 0.64, 0.81);
  CHECK(x[0] == doctest::Approx(0.5146779789).epsilon(1e-6));
  CHECK(x[1] == doctest::Approx(-1.0 / 0.8 * 0.9).epsilon(1e-6));  // no noise: x0 = x/0.8, scaled by 0.9
  // the last step (ab_prev = 1) returns the clean estimate x0
  float y[1] = {0.3f}, e[1] = {-0.5f};
  ddim_step(y, e, 1, 0.25, 1.0);
  CHECK(y[0] == doctest::Approx((0.3 + std::sqrt(0.75) * 0.5) / 0.5).epsilon(1e-6));
}

TEST_CASE("ldm config JSON round trip") {
  LdmConfig c;
  c.data = "cifar10:/d";
  c.n_train = 123;
  c.steps = 77;
  c.lr = 3e-4;
  c.ema = 0.99;
  c.seed = 5;
  LdmConfig r = ldm_config_from_json(ldm_config_json(c), "test");
  CHECK(ldm_config_json(r) == ldm_config_json(c));
  CHECK(r.data == "cifar10:/d");
  CHECK(r.steps == 77);
  CHECK_THROWS(ldm_config_from_json("{\"data\": 1}", "test"));
}

// Ten classes of synthetic latents, each a fixed pattern mu_c [4, 4, 4] (unit-normal entries) plus 0.1
// noise; a small DiT trained by the trainer's own step graph, batches and optimizer at ldm-train's
// default settings, sampled by the sampler of `nsvq sample`. Returns the share of samples nearest the
// pattern of the class they were drawn for, per guidance weight.
static std::vector<double> synthetic_class_accuracy(const std::vector<double>& weights, int64_t train_steps) {
  const int K = 10;
  DitConfig dc;
  dc.in_channels = 4;
  dc.input_size = 4;
  dc.hidden = 32;
  dc.depth = 2;
  dc.heads = 2;
  dc.num_classes = K;
  dc.freq_dim = 64;
  const int64_t per = 64;
  LdmConfig cfg;  // lr, batch, class dropout, T and betas as ldm-train's defaults
  Backend* be = backend_cpu();
  Store st(be);
  Dit dit(st, dc, 1);
  AdamW adam(st, st.params(GROUP_DIT), ldm_adam_config(cfg), "adam");
  Graph g(be);
  DitStep ds = dit_train_step(g, dit, adam, cfg.batch);
  DdpmSchedule sch = ddpm_linear(cfg.T, cfg.beta_start, cfg.beta_end);
  Rng data(3, 0);
  std::vector<float> mu((size_t)(K * per));
  for (float& v : mu) v = data.normal();
  LdmBatch buf;
  double first = 0, last = 0;
  for (int64_t step = 0; step < train_steps; step++) {
    ldm_fill_batch(g, ds, cfg, sch, K, step, [&](float* y0) {
      int c = (int)data.below(K);
      for (int64_t k = 0; k < per; k++) y0[k] = mu[(size_t)(c * per + k)] + 0.1f * data.normal();
      return c;
    }, buf);
    adam.begin_step(g);
    g.compute();
    double l = g.get_scalar(ds.loss);
    if (step < 20) first += l / 20;
    if (step >= train_steps - 20) last += l / 20;
  }
  CHECK(last < 0.5 * first);  // it learns at all
  DitSampler sampler(dit, be, sch);
  std::vector<int32_t> labels;
  for (int c = 0; c < K; c++)
    for (int k = 0; k < 20; k++) labels.push_back(c);
  std::vector<double> acc;
  for (double w : weights) {
    std::vector<float> y = sampler.sample(labels, 20, w, 7);
    REQUIRE(y.size() == labels.size() * per);
    int64_t hit = 0;
    for (size_t i = 0; i < labels.size(); i++) {
      int best = 0;
      double bd = 1e300;
      for (int c = 0; c < K; c++) {
        double d = 0;
        for (int64_t k = 0; k < per; k++) d += std::pow(y[i * per + (size_t)k] - mu[(size_t)(c * per + k)], 2);
        if (d < bd) bd = d, best = c;
      }
      hit += best == labels[i];
    }
    acc.push_back((double)hit / (double)labels.size());
  }
  return acc;
}

TEST_CASE("a class-conditional DiT at ldm-train's defaults draws the class it is asked for; guidance sharpens it") {
  // w = 0: the null class only (unconditional: chance, 10%); w = 1: conditional; w = 3: guided
  std::vector<double> acc = synthetic_class_accuracy({0.0, 1.0, 3.0}, 1000);
  MESSAGE("class accuracy: null class " << acc[0] << ", conditional " << acc[1] << ", guided (w 3) " << acc[2]);
  CHECK(acc[0] < 0.3);
  CHECK(acc[1] > 0.5);
  CHECK(acc[2] > 0.8);
  CHECK(acc[2] >= acc[1]);
}
