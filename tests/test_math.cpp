// tests/test_math.cpp — accuracy and special values of the vectorisable exp/tanh used by the CPU
// kernels, against double-precision libm.
#include <doctest/doctest.h>
#include <cmath>
#include <limits>
#include "ops/elementwise_math.h"

using namespace nsvq;

TEST_CASE("nsvq_expf: relative error below 4e-7 on [-87, 88.7], exact special values") {
  double worst = 0;
  for (int i = 0; i <= 2000000; i++) {
    float x = -87.0f + (88.7f + 87.0f) * (float)i / 2000000.0f;
    double ref = std::exp((double)x), got = nsvq_expf(x);
    worst = std::max(worst, std::fabs(got - ref) / ref);
  }
  CHECK(worst < 4e-7);
  CHECK(nsvq_expf(0.0f) == 1.0f);
  CHECK(nsvq_expf(-INFINITY) == 0.0f);
  CHECK(nsvq_expf(-1000.0f) == 0.0f);
  CHECK(std::isinf(nsvq_expf(INFINITY)));
  CHECK(std::isinf(nsvq_expf(1000.0f)));
  CHECK(std::isnan(nsvq_expf(std::numeric_limits<float>::quiet_NaN())));
}

TEST_CASE("nsvq_tanhf: absolute error below 3e-7, odd, saturating, NaN-preserving") {
  double worst = 0;
  for (int i = 0; i <= 400000; i++) {
    float x = -20.0f + 40.0f * (float)i / 400000.0f;
    worst = std::max(worst, std::fabs((double)nsvq_tanhf(x) - std::tanh((double)x)));
    if (nsvq_tanhf(-x) != -nsvq_tanhf(x)) FAIL("tanh not odd at " << x);
  }
  CHECK(worst < 3e-7);
  CHECK(nsvq_tanhf(INFINITY) == 1.0f);
  CHECK(nsvq_tanhf(-INFINITY) == -1.0f);
  CHECK(std::isnan(nsvq_tanhf(std::numeric_limits<float>::quiet_NaN())));
}
