// tests/test_nn.cpp — behaviour of the model-building ops beyond the op table: batch-norm running
// statistics.
#include <doctest/doctest.h>
#include <cmath>
#include "engine/rng.h"
#include "ops/ops.h"

using namespace nsvq;

TEST_CASE("batch_norm training updates the running statistics like PyTorch (momentum, unbiased variance)") {
  Store st(backend_cpu());
  Tensor* rm = st.add("rm", DType::f32, {2}, TF_PERSIST);
  Tensor* rv = st.add("rv", DType::f32, {2}, TF_PERSIST);
  st.upload_f32(rm, {0.5f, -0.5f});
  st.upload_f32(rv, {1.0f, 2.0f});
  Graph g(backend_cpu());
  Tensor* x = g.input(DType::f32, {3, 2, 2}, "x");
  Tensor* y = batch_norm(g, x, nullptr, nullptr, rm, rv, true, 0.1f);
  g.mark_output(y);
  std::vector<float> xv(12);
  Rng r(1, 1);
  for (float& v : xv) v = r.normal();
  g.set_f32(x, xv);
  g.compute();
  std::vector<float> m = st.download_f32(rm), v = st.download_f32(rv);
  for (int c = 0; c < 2; c++) {
    double mean = 0, var = 0;
    for (int n = 0; n < 3; n++)
      for (int s = 0; s < 2; s++) mean += xv[(n * 2 + c) * 2 + s];
    mean /= 6;
    for (int n = 0; n < 3; n++)
      for (int s = 0; s < 2; s++) var += std::pow(xv[(n * 2 + c) * 2 + s] - mean, 2);
    var /= 5;  // unbiased
    CHECK(m[c] == doctest::Approx(0.9 * (c ? -0.5 : 0.5) + 0.1 * mean).epsilon(1e-6));
    CHECK(v[c] == doctest::Approx(0.9 * (c ? 2.0 : 1.0) + 0.1 * var).epsilon(1e-6));
  }
}
