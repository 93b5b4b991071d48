// tests/test_ldm.cpp — the latent-diffusion maths against hand-computed values: the linear beta
// schedule, the DDIM timestep spacing and the DDIM (eta = 0) update; the trainer, the latent cache
// and sampling are exercised end to end by tests/cli_ldm_test.sh.
#include <doctest/doctest.h>
#include <cmath>
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
