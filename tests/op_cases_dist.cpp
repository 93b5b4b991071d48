// tests/op_cases_dist.cpp — the collective ops (allreduce, allgather, reduce_scatter_sum). In one process (the op table: forward, finite-difference gradients, CUDA
// parity) they are copies and scalings; launched as several ranks (mpirun -np 2 nsvq_tests
// -tc='dist*', tests/dist_test.sh) the doctest cases check sums in rank order, the gather order and
// the gradients of the gather / scatter pair against values computed locally.
#include <doctest/doctest.h>
#include "engine/backend.h"
#include "engine/dist.h"
#include "ops/ops_internal.h"
#include "tests/op_cases.h"

namespace nsvq {
namespace test {
namespace {

Tensor* flat(Graph& g, Tensor* t) { return reshape(g, t, {t->numel()}); }

std::vector<OpCase> dist_cases() {
  std::vector<OpCase> cs;
  if (dist().size() != 1) return cs;  // the table's references are the one-rank results
  cs.push_back({"allreduce of 3 tensors x 0.5 (one bucket; 1 rank)",
                {{{2, 3}}, {{5}}, {{2, 2, 2}}},
                [](Graph& g, const std::vector<Tensor*>& x) {
                  std::vector<Tensor*> r = allreduce(g, x, 0.5f);
                  return concat(g, {flat(g, r[0]), flat(g, r[1]), flat(g, r[2])}, 0);
                },
                [](const std::vector<Host>& x) {
                  Host y = host_f32({6 + 5 + 8});
                  size_t k = 0;
                  for (const Host& h : x)
                    for (float v : h.f) y.f[k++] = 0.5f * v;
                  return y;
                }});
  cs.push_back({"allreduce in buckets of 64 bytes (1 rank)",
                {{{4, 5}}, {{3, 7}}},
                [](Graph& g, const std::vector<Tensor*>& x) {
                  std::vector<Tensor*> r = allreduce(g, x, 2.0f, 64);
                  return concat(g, {flat(g, r[0]), flat(g, r[1])}, 0);
                },
                [](const std::vector<Host>& x) {
                  Host y = host_f32({41});
                  size_t k = 0;
                  for (const Host& h : x)
                    for (float v : h.f) y.f[k++] = 2.0f * v;
                  return y;
                }});
  cs.push_back({"allgather [3, 4] (1 rank)", {{{3, 4}}},
                [](Graph& g, const std::vector<Tensor*>& x) { return allgather(g, x[0]); },
                [](const std::vector<Host>& x) { return x[0]; }});
  cs.push_back({"allgather of a transposed [4, 3] (1 rank)", {{{3, 4}}},
                [](Graph& g, const std::vector<Tensor*>& x) { return allgather(g, transpose(g, x[0], 0, 1)); },
                [](const std::vector<Host>& x) {
                  Host y = host_f32({4, 3});
                  for (int64_t i = 0; i < 4; i++)
                    for (int64_t j = 0; j < 3; j++) y.f[i * 3 + j] = x[0].f[j * 4 + i];
                  return y;
                }});
  cs.push_back({"reduce_scatter_sum [4, 3] (1 rank)", {{{4, 3}}},
                [](Graph& g, const std::vector<Tensor*>& x) { return reduce_scatter_sum(g, x[0]); },
                [](const std::vector<Host>& x) { return x[0]; }});
  return cs;
}
int reg = register_op_cases(dist_cases);

}  // namespace

TEST_CASE("dist: graphs built for another rank count fail; shapes that do not split fail") {
  Graph g2(backend_cpu());
  Tensor* x = g2.input(DType::f32, {2}, "x");
  Tensor* y = allgather(g2, x);
  y->ip[1] = dist().size() + 1;  // as if built in a group of another size
  g2.mark_output(y);
  g2.set_f32(x, {1, 2});
  CHECK_THROWS_WITH_AS(g2.compute(), doctest::Contains("built for"), Error);
  if (dist().size() > 1) {  // (every size splits over one rank)
    Graph g3(backend_cpu());
    CHECK_THROWS_WITH_AS(reduce_scatter_sum(g3, g3.input(DType::f32, {2 * dist().size() + 1}, "x")),
                         doctest::Contains("does not split"), Error);
  }
}

TEST_CASE("dist: collectives across ranks (mpirun -np R nsvq_tests -tc='dist*')") {
  const int R = dist().size(), r = dist().rank();
  auto val = [](int rank, int64_t i) { return 0.1f * (float)(rank + 1) * (float)i + (float)rank / 3.0f; };
  const int64_t n = 37, rows = 3, cols = 5;
  {  // allreduce: the sum in rank order, the same bits on every rank; also a host collective above 8M values
    Graph g(backend_cpu());
    Tensor* x = g.input(DType::f32, {n}, "x");
    Tensor* y = allreduce(g, {x}, 1.0f)[0];
    g.mark_output(y);
    std::vector<float> v(n);
    for (int64_t i = 0; i < n; i++) v[i] = val(r, i);
    g.set_f32(x, v);
    g.compute();
    std::vector<float> got = g.get_f32(y);
    for (int64_t i = 0; i < n; i++) {
      float want = val(0, i);
      for (int q = 1; q < R; q++) want += val(q, i);
      CHECK(got[i] == want);
    }
    std::vector<float> big((size_t)(9 << 20), (float)(r + 1));
    dist().allreduce_sum(big.data(), (int64_t)big.size(), 1.0f);
    CHECK(big.front() == (float)(R * (R + 1) / 2));
    CHECK(big.back() == (float)(R * (R + 1) / 2));
  }
  {  // allgather in rank order; its gradient under sum_r L_r with L_r = sum(w_r * y): the sum over
     // ranks of w_r's rows of this rank (a reduce-scatter)
    Graph g(backend_cpu());
    Tensor* x = g.input(DType::f32, {rows, cols}, "x");
    Tensor* w = g.input(DType::f32, {R * rows, cols}, "w");
    Tensor* y = allgather(g, x);
    Tensor* gx = g.gradients({{sum(g, mul(g, w, y)), 1.0f}}, {x})[0];
    g.mark_output(y);
    g.mark_output(gx);
    std::vector<float> xv(rows * cols), wv(R * rows * cols);
    for (int64_t i = 0; i < rows * cols; i++) xv[i] = val(r, i);
    for (int64_t i = 0; i < R * rows * cols; i++) wv[i] = val(r, i + 100);
    g.set_f32(x, xv);
    g.set_f32(w, wv);
    g.compute();
    std::vector<float> yv = g.get_f32(y), gv = g.get_f32(gx);
    for (int q = 0; q < R; q++)
      for (int64_t i = 0; i < rows * cols; i++) CHECK(yv[q * rows * cols + i] == val(q, i));
    for (int64_t i = 0; i < rows * cols; i++) {
      float want = val(0, r * rows * cols + i + 100);
      for (int q = 1; q < R; q++) want += val(q, r * rows * cols + i + 100);
      CHECK(gv[i] == want);
    }
  }
  {  // reduce_scatter_sum: this rank's rows summed over ranks in rank order
    Graph g(backend_cpu());
    Tensor* x = g.input(DType::f32, {R * rows, cols}, "x");
    Tensor* y = reduce_scatter_sum(g, x);
    g.mark_output(y);
    std::vector<float> xv(R * rows * cols);
    for (int64_t i = 0; i < R * rows * cols; i++) xv[i] = val(r, i);
    g.set_f32(x, xv);
    g.compute();
    std::vector<float> yv = g.get_f32(y);
    for (int64_t i = 0; i < rows * cols; i++) {
      float want = val(0, r * rows * cols + i);
      for (int q = 1; q < R; q++) want += val(q, r * rows * cols + i);
      CHECK(yv[i] == want);
    }
  }
  CHECK(dist().allreduce_max(r) == R - 1);
  std::vector<char> name(8, 0);
  if (r == 0) name = {'r', 'a', 'n', 'k', '0', 0, 0, 0};
  dist().broadcast(name.data(), name.size());
  CHECK(std::string(name.data()) == "rank0");
}

}  // namespace test
}  // namespace nsvq
