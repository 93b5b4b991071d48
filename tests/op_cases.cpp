// tests/op_cases.cpp — the op test table: one entry per op case with its inputs, builder and a
// plain scalar reference (double precision, no shared code with the kernels except Philox).
#include "tests/op_cases.h"
#include <cmath>
#include <algorithm>
#include "engine/rng.h"
#include "ops/optim.h"

namespace nsvq {
namespace test {

int64_t ravel(const Shape& s, const int64_t* c) {
  int64_t i = 0;
  for (int d = 0; d < s.ndim; d++) i = i * s.ne[d] + c[d];
  return i;
}
void unravel(const Shape& s, int64_t i, int64_t* c) {
  for (int d = s.ndim - 1; d >= 0; d--) {
    c[d] = s.ne[d] ? i % s.ne[d] : 0;
    i = s.ne[d] ? i / s.ne[d] : 0;
  }
}
Host host_f32(const Shape& s) {
  Host h;
  h.s = s;
  h.f.assign((size_t)s.numel(), 0.0f);
  return h;
}
Host host_i32(const Shape& s) {
  Host h;
  h.s = s;
  h.dt = DType::i32;
  h.i.assign((size_t)s.numel(), 0);
  return h;
}

namespace {

double ref_unary(int k, double x, double p0, double p1) {
  const double PI = 3.14159265358979323846;
  auto sig = [](double v) { return 1.0 / (1.0 + std::exp(-v)); };
  auto gi = [&](double v) { return std::sqrt(2.0 / PI) * (v + 0.044715 * v * v * v); };
  switch (k) {
    case UN_NEG: return -x;
    case UN_EXP: return std::exp(x);
    case UN_LOG: return std::log(x);
    case UN_SQRT: return std::sqrt(x);
    case UN_RSQRT: return 1.0 / std::sqrt(x);
    case UN_ABS: return std::fabs(x);
    case UN_SIGN: return x > 0 ? 1.0 : x < 0 ? -1.0 : 0.0;
    case UN_SQR: return x * x;
    case UN_RELU: return x > 0 ? x : 0.0;
    case UN_LEAKY_RELU: return x > 0 ? x : p0 * x;
    case UN_SILU: return x * sig(x);
    case UN_SIGMOID: return sig(x);
    case UN_TANH: return std::tanh(x);
    case UN_GELU: return 0.5 * x * (1.0 + std::tanh(gi(x)));
    case UN_POW: return std::pow(x, p0);
    case UN_CLAMP: return std::min(std::max(x, p0), p1);
    case UN_AFFINE: return p0 * x + p1;
    case UN_RECIP: return p0 / (x + p1);
    case UN_STEP: return x > 0 ? 1.0 : 0.0;
    case UN_INSIDE: return (x >= p0 && x <= p1) ? 1.0 : 0.0;
    case UN_SILU_GRAD: return sig(x) * (1.0 + x * (1.0 - sig(x)));
    case UN_GELU_GRAD: {
      double t = std::tanh(gi(x));
      return 0.5 * (1.0 + t) + 0.5 * x * (1.0 - t * t) * std::sqrt(2.0 / PI) * (1.0 + 3.0 * 0.044715 * x * x);
    }
    case UN_SOFTPLUS: return std::log1p(std::exp(x));
  }
  return 0;
}

double ref_binary(int k, double a, double b) {
  switch (k) {
    case BIN_ADD: return a + b;
    case BIN_SUB: return a - b;
    case BIN_MUL: return a * b;
    case BIN_DIV: return a / b;
    case BIN_MAX: return std::max(a, b);
    case BIN_MIN: return std::min(a, b);
    case BIN_EQ: return a == b;
    case BIN_GT: return a > b;
  }
  return 0;
}

// value of h at the broadcast position c of shape s (numpy rules)
double bval(const Host& h, const Shape& s, const int64_t* c) {
  int64_t cc[MAX_DIMS];
  int off = s.ndim - h.s.ndim;
  for (int d = 0; d < h.s.ndim; d++) cc[d] = h.s.ne[d] == 1 ? 0 : c[d + off];
  return h.f[(size_t)ravel(h.s, cc)];
}

Host map_unary(const Host& x, int k, float p0, float p1) {
  Host y = host_f32(x.s);
  for (int64_t i = 0; i < x.n(); i++) y.f[i] = (float)ref_unary(k, x.f[i], p0, p1);
  return y;
}

// generic permutation of a host tensor: y.ne[i] = x.ne[perm[i]]
Host permute_host(const Host& x, const std::vector<int>& perm) {
  Shape s;
  s.ndim = x.s.ndim;
  for (int i = 0; i < s.ndim; i++) s.ne[i] = x.s.ne[perm[i]];
  Host y = host_f32(s);
  int64_t c[MAX_DIMS], cx[MAX_DIMS];
  for (int64_t i = 0; i < y.n(); i++) {
    unravel(s, i, c);
    for (int d = 0; d < s.ndim; d++) cx[perm[d]] = c[d];
    y.f[i] = x.f[(size_t)ravel(x.s, cx)];
  }
  return y;
}

Host reduce_host(const Host& x, int kind, std::vector<int> axes, bool keep) {
  if (axes.empty())
    for (int d = 0; d < x.s.ndim; d++) axes.push_back(d);
  auto red = [&](int d) { return std::find(axes.begin(), axes.end(), d) != axes.end(); };
  Shape s;
  for (int d = 0; d < x.s.ndim; d++)
    if (!red(d)) s.ne[s.ndim++] = x.s.ne[d];
    else if (keep) s.ne[s.ndim++] = 1;
  std::vector<double> acc((size_t)s.numel(), kind == RED_MAX ? -INFINITY : kind == RED_MIN ? INFINITY : 0.0);
  int64_t L = 1;
  for (int d : axes) L *= x.s.ne[d];
  int64_t c[MAX_DIMS], co[MAX_DIMS];
  for (int64_t i = 0; i < x.n(); i++) {
    unravel(x.s, i, c);
    int k = 0;
    for (int d = 0; d < x.s.ndim; d++)
      if (!red(d)) co[k++] = c[d];
      else if (keep) co[k++] = 0;
    double& a = acc[(size_t)ravel(s, co)];
    double v = x.f[i];
    if (kind == RED_MAX) a = std::max(a, v);
    else if (kind == RED_MIN) a = std::min(a, v);
    else if (kind == RED_SUMSQ) a += v * v;
    else a += v;
  }
  Host y = host_f32(s);
  for (size_t i = 0; i < acc.size(); i++) y.f[i] = (float)(kind == RED_MEAN ? acc[i] / L : acc[i]);
  return y;
}

Host argred_host(const Host& x, int axis, bool is_min) {
  Shape s;
  for (int d = 0; d < x.s.ndim; d++)
    if (d != axis) s.ne[s.ndim++] = x.s.ne[d];
  Host y = host_i32(s);
  std::vector<float> best((size_t)s.numel(), is_min ? INFINITY : -INFINITY);
  int64_t c[MAX_DIMS], co[MAX_DIMS];
  for (int64_t i = 0; i < x.n(); i++) {
    unravel(x.s, i, c);
    int k = 0;
    for (int d = 0; d < x.s.ndim; d++)
      if (d != axis) co[k++] = c[d];
    int64_t o = ravel(s, co);
    float v = x.f[i];
    if (is_min ? v < best[o] : v > best[o]) {
      best[o] = v;
      y.i[o] = (int32_t)c[axis];
    }
  }
  return y;
}

// [..., M, K] x [..., K, N] with transposes and one-sided batch sharing, in double
Host matmul_host(const Host& a, const Host& b, bool ta, bool tb) {
  int na = a.s.ndim, nb = b.s.ndim;
  int64_t M = ta ? a.s.ne[na - 1] : a.s.ne[na - 2], K = ta ? a.s.ne[na - 2] : a.s.ne[na - 1];
  int64_t N = tb ? b.s.ne[nb - 2] : b.s.ne[nb - 1];
  int64_t BA = a.n() / (M * K), BB = b.n() / (K * N), Bn = std::max(BA, BB);
  Shape s;
  const Host& big = na >= nb ? a : b;
  for (int d = 0; d < big.s.ndim - 2; d++) s.ne[s.ndim++] = big.s.ne[d];
  s.ne[s.ndim++] = M;
  s.ne[s.ndim++] = N;
  Host y = host_f32(s);
  for (int64_t bi = 0; bi < Bn; bi++) {
    const float* A = a.f.data() + (BA > 1 ? bi * M * K : 0);
    const float* B = b.f.data() + (BB > 1 ? bi * K * N : 0);
    for (int64_t i = 0; i < M; i++)
      for (int64_t j = 0; j < N; j++) {
        double acc = 0;
        for (int64_t k = 0; k < K; k++) acc += (double)(ta ? A[k * M + i] : A[i * K + k]) * (tb ? B[j * K + k] : B[k * N + j]);
        y.f[(size_t)((bi * M + i) * N + j)] = (float)acc;
      }
  }
  return y;
}

Host softmax_host(const Host& x, bool lg) {
  Host y = host_f32(x.s);
  int64_t n = x.s.ne[x.s.ndim - 1];
  for (int64_t r = 0; r < x.n() / n; r++) {
    double mx = -INFINITY, s = 0;
    for (int64_t j = 0; j < n; j++) mx = std::max(mx, (double)x.f[r * n + j]);
    for (int64_t j = 0; j < n; j++) s += std::exp(x.f[r * n + j] - mx);
    for (int64_t j = 0; j < n; j++)
      y.f[r * n + j] = (float)(lg ? x.f[r * n + j] - mx - std::log(s) : std::exp(x.f[r * n + j] - mx) / s);
  }
  return y;
}

InputSpec F(Shape s, float lo = -1.0f, float hi = 1.0f, std::vector<float> avoid = {}) { return {s, DType::f32, lo, hi, avoid, true}; }
InputSpec FN(Shape s, float lo = -1.0f, float hi = 1.0f) { return {s, DType::f32, lo, hi, {}, false}; }
InputSpec I(Shape s, int lo, int hi) { return {s, DType::i32, (float)lo, (float)hi, {}, false}; }

}  // namespace

static std::vector<std::vector<OpCase> (*)()>& case_tables() {
  static std::vector<std::vector<OpCase> (*)()> t;
  return t;
}

int register_op_cases(std::vector<OpCase> (*fn)()) {
  case_tables().push_back(fn);
  return (int)case_tables().size();
}

static std::vector<OpCase> core_cases();

std::vector<OpCase> op_cases() {
  std::vector<OpCase> all = core_cases();
  for (auto fn : case_tables()) {
    std::vector<OpCase> more = fn();
    all.insert(all.end(), more.begin(), more.end());
  }
  return all;
}

static std::vector<OpCase> core_cases() {
  std::vector<OpCase> cs;
  // ------------------------------------------------------------ unary, every kind
  struct UK { int k; float lo, hi, p0, p1; std::vector<float> avoid; bool grad; };
  std::vector<UK> uks = {
      {UN_NEG, -1, 1, 0, 0, {}, true},        {UN_EXP, -1, 1, 0, 0, {}, true},
      {UN_LOG, 0.5f, 2, 0, 0, {}, true},      {UN_SQRT, 0.5f, 2, 0, 0, {}, true},
      {UN_RSQRT, 0.5f, 2, 0, 0, {}, true},    {UN_ABS, -1, 1, 0, 0, {0}, true},
      {UN_SIGN, -1, 1, 0, 0, {0}, false},     {UN_SQR, -1, 1, 0, 0, {}, true},
      {UN_RELU, -1, 1, 0, 0, {0}, true},      {UN_LEAKY_RELU, -1, 1, 0.2f, 0, {0}, true},
      {UN_SILU, -3, 3, 0, 0, {}, true},       {UN_SIGMOID, -3, 3, 0, 0, {}, true},
      {UN_TANH, -2, 2, 0, 0, {}, true},       {UN_GELU, -3, 3, 0, 0, {}, true},
      {UN_POW, 0.5f, 2, 2.5f, 0, {}, true},   {UN_CLAMP, -1, 1, -0.5f, 0.5f, {-0.5f, 0.5f}, true},
      {UN_AFFINE, -1, 1, 1.5f, -0.25f, {}, true}, {UN_RECIP, -1, 1, 1.5f, 2.0f, {}, true},
      {UN_STEP, -1, 1, 0, 0, {0}, false},     {UN_INSIDE, -1, 1, -0.5f, 0.5f, {-0.5f, 0.5f}, false},
      {UN_SILU_GRAD, -3, 3, 0, 0, {}, false}, {UN_GELU_GRAD, -3, 3, 0, 0, {}, false},
      {UN_SOFTPLUS, -4, 4, 0, 0, {}, true},
  };
  for (const UK& u : uks) {
    OpCase c;
    c.name = std::string("unary ") + unary_kind_name(u.k);
    c.inputs = {{Shape{4, 9}, DType::f32, u.lo, u.hi, u.avoid, u.grad}};
    c.build = [u](Graph& g, const std::vector<Tensor*>& x) { return unary(g, x[0], u.k, u.p0, u.p1); };
    c.ref = [u](const std::vector<Host>& x) { return map_unary(x[0], u.k, u.p0, u.p1); };
    cs.push_back(c);
  }
  // strided input (transposed view) through the generic path
  cs.push_back({"unary tanh strided", {F({5, 7}, -2, 2)},
                [](Graph& g, const std::vector<Tensor*>& x) { return tanh(g, transpose(g, x[0], 0, 1)); },
                [](const std::vector<Host>& x) { return map_unary(permute_host(x[0], {1, 0}), UN_TANH, 0, 0); }});
  cs.push_back({"unary exp large [70000]", {FN({70000})},
                [](Graph& g, const std::vector<Tensor*>& x) { return exp(g, x[0]); },
                [](const std::vector<Host>& x) { return map_unary(x[0], UN_EXP, 0, 0); }});
  // ------------------------------------------------------------ binary
  auto bin_ref = [](int k) {
    return [k](const std::vector<Host>& x) {
      Shape s = shape_broadcast("ref", x[0].s, x[1].s);
      Host y = host_f32(s);
      int64_t c[MAX_DIMS];
      for (int64_t i = 0; i < y.n(); i++) {
        unravel(s, i, c);
        y.f[i] = (float)ref_binary(k, bval(x[0], s, c), bval(x[1], s, c));
      }
      return y;
    };
  };
  for (int k = 0; k < BIN_COUNT; k++) {
    bool diff = k != BIN_EQ && k != BIN_GT;
    float blo = k == BIN_DIV ? 0.5f : -1.0f, bhi = k == BIN_DIV ? 2.0f : 1.0f;
    OpCase c;
    c.name = std::string("binary ") + binary_kind_name(k);
    c.inputs = {{Shape{3, 8}, DType::f32, -1, 1, {}, diff}, {Shape{3, 8}, DType::f32, blo, bhi, {}, diff}};
    c.build = [k](Graph& g, const std::vector<Tensor*>& x) { return binary(g, x[0], x[1], k); };
    c.ref = bin_ref(k);
    if (k == BIN_MAX || k == BIN_MIN) {  // b = a + d with |d| >= 0.05: never a tie within the FD step
      c.inputs[1].avoid = {0.0f};
      c.build = [k](Graph& g, const std::vector<Tensor*>& x) { return binary(g, x[0], add(g, x[0], x[1]), k); };
      c.ref = [k](const std::vector<Host>& x) {
        Host y = host_f32(x[0].s);
        for (int64_t i = 0; i < y.n(); i++) y.f[i] = (float)ref_binary(k, x[0].f[i], x[0].f[i] + x[1].f[i]);
        return y;
      };
    }
    cs.push_back(c);
  }
  cs.push_back({"binary add broadcast [4,1,6]+[5,1]", {F({4, 1, 6}), F({5, 1})},
                [](Graph& g, const std::vector<Tensor*>& x) { return add(g, x[0], x[1]); }, bin_ref(BIN_ADD)});
  cs.push_back({"binary mul broadcast [6]*[3,6]", {F({6}), F({3, 6})},
                [](Graph& g, const std::vector<Tensor*>& x) { return mul(g, x[0], x[1]); }, bin_ref(BIN_MUL)});
  cs.push_back({"binary div broadcast scalar", {F({3, 5}), F({}, 0.5f, 2.0f)},
                [](Graph& g, const std::vector<Tensor*>& x) { return div(g, x[0], x[1]); }, bin_ref(BIN_DIV)});
  cs.push_back({"binary sub permuted", {F({4, 6}), F({6, 4})},
                [](Graph& g, const std::vector<Tensor*>& x) { return sub(g, x[0], transpose(g, x[1], 0, 1)); },
                [](const std::vector<Host>& x) {
                  Host b = permute_host(x[1], {1, 0}), y = host_f32(x[0].s);
                  for (int64_t i = 0; i < y.n(); i++) y.f[i] = x[0].f[i] - b.f[i];
                  return y;
                }});
  cs.push_back({"where", {FN({3, 7}, -1, 1), F({3, 7}), F({7})},
                [](Graph& g, const std::vector<Tensor*>& x) { return where(g, unary(g, x[0], UN_STEP), x[1], x[2]); },
                [](const std::vector<Host>& x) {
                  Host y = host_f32(x[1].s);
                  for (int64_t i = 0; i < y.n(); i++) y.f[i] = x[0].f[i] > 0 ? x[1].f[i] : x[2].f[i % 7];
                  return y;
                }});
  // ------------------------------------------------------------ reductions
  struct RK { int k; Shape s; std::vector<int> axes; bool keep; };
  std::vector<RK> rks = {
      {RED_SUM, {4, 6}, {1}, false},      {RED_MEAN, {4, 6}, {0}, false},   {RED_MAX, {3, 4, 5}, {2}, true},
      {RED_MIN, {3, 4, 5}, {0, 2}, false}, {RED_SUMSQ, {3, 4, 5}, {}, false}, {RED_SUM, {3, 4, 5}, {0, 2}, true},
      {RED_MEAN, {3, 4, 5}, {1, 2}, false}, {RED_MAX, {3, 4, 5}, {}, false},  {RED_SUM, {2, 20000}, {1}, false},
      {RED_SUM, {300, 70}, {0}, false},
  };
  for (const RK& r : rks) {
    OpCase c;
    c.name = std::string("reduce ") + reduce_kind_name(r.k) + " " + r.s.str() + " axes";
    for (int a : r.axes) c.name += " " + std::to_string(a);
    if (r.keep) c.name += " keepdim";
    bool big = r.s.numel() > 10000;
    c.inputs = {{r.s, DType::f32, -1, 1, {}, true, r.k == RED_MAX || r.k == RED_MIN}};
    c.build = [r](Graph& g, const std::vector<Tensor*>& x) { return reduce(g, x[0], r.k, r.axes, r.keep); };
    c.ref = [r](const std::vector<Host>& x) { return reduce_host(x[0], r.k, r.axes, r.keep); };
    if (big) c.ref_tol = 1e-4f;
    cs.push_back(c);
  }
  cs.push_back({"argmax axis 1", {FN({5, 7})}, [](Graph& g, const std::vector<Tensor*>& x) { return argmax(g, x[0], 1); },
                [](const std::vector<Host>& x) { return argred_host(x[0], 1, false); }});
  cs.push_back({"argmin axis 0", {FN({6, 4, 3})}, [](Graph& g, const std::vector<Tensor*>& x) { return argmin(g, x[0], 0); },
                [](const std::vector<Host>& x) { return argred_host(x[0], 0, true); }});
  cs.push_back({"sum_to [4,3,5] -> [3,1]", {F({4, 3, 5})},
                [](Graph& g, const std::vector<Tensor*>& x) { return sum_to(g, x[0], {3, 1}); },
                [](const std::vector<Host>& x) {
                  Host r = reduce_host(x[0], RED_SUM, {0, 2}, false);
                  r.s = Shape{3, 1};
                  return r;
                }});
  // ------------------------------------------------------------ matmul and softmax
  struct MK { Shape a, b; bool ta, tb; };
  std::vector<MK> mks = {
      {{5, 7}, {7, 3}, false, false},       {{7, 5}, {7, 3}, true, false},      {{5, 7}, {3, 7}, false, true},
      {{7, 5}, {3, 7}, true, true},         {{2, 4, 6}, {2, 6, 3}, false, false}, {{2, 4, 6}, {6, 3}, false, false},
      {{4, 6}, {2, 6, 3}, false, false},    {{2, 6, 4}, {6, 3}, true, false},   {{2, 4, 6}, {3, 6}, false, true},
      {{17, 33}, {33, 19}, false, false},
  };
  for (const MK& m : mks) {
    OpCase c;
    c.name = "matmul " + m.a.str() + (m.ta ? "^T" : "") + " x " + m.b.str() + (m.tb ? "^T" : "");
    c.inputs = {F(m.a), F(m.b)};
    c.build = [m](Graph& g, const std::vector<Tensor*>& x) { return matmul(g, x[0], x[1], m.ta, m.tb); };
    c.ref = [m](const std::vector<Host>& x) { return matmul_host(x[0], x[1], m.ta, m.tb); };
    c.ref_tol = 1e-5f;
    cs.push_back(c);
  }
  cs.push_back({"matmul 300x200x150 (blocked paths)", {FN({300, 150}), FN({150, 200})},
                [](Graph& g, const std::vector<Tensor*>& x) { return matmul(g, x[0], x[1]); },
                [](const std::vector<Host>& x) { return matmul_host(x[0], x[1], false, false); }, 1e-4f});
  cs.push_back({"softmax [4,9]", {F({4, 9}, -2, 2)}, [](Graph& g, const std::vector<Tensor*>& x) { return softmax(g, x[0]); },
                [](const std::vector<Host>& x) { return softmax_host(x[0], false); }});
  cs.push_back({"log_softmax [3,2,7]", {F({3, 2, 7}, -2, 2)},
                [](Graph& g, const std::vector<Tensor*>& x) { return log_softmax(g, x[0]); },
                [](const std::vector<Host>& x) { return softmax_host(x[0], true); }});
  // ------------------------------------------------------------ views and layout
  cs.push_back({"reshape [2,3,4] -> [6,-1]", {F({2, 3, 4})},
                [](Graph& g, const std::vector<Tensor*>& x) { return reshape(g, x[0], {6, -1}); },
                [](const std::vector<Host>& x) { Host y = x[0]; y.s = {6, 4}; return y; }});
  cs.push_back({"permute [2,3,4] (2,0,1)", {F({2, 3, 4})},
                [](Graph& g, const std::vector<Tensor*>& x) { return permute(g, x[0], {2, 0, 1}); },
                [](const std::vector<Host>& x) { return permute_host(x[0], {2, 0, 1}); }});
  cs.push_back({"slice [5,6] axis 1 [1,4)", {F({5, 6})},
                [](Graph& g, const std::vector<Tensor*>& x) { return slice(g, x[0], 1, 1, 4); },
                [](const std::vector<Host>& x) {
                  Host y = host_f32({5, 3});
                  for (int i = 0; i < 5; i++)
                    for (int j = 0; j < 3; j++) y.f[i * 3 + j] = x[0].f[i * 6 + j + 1];
                  return y;
                }});
  cs.push_back({"expand [3,1] -> [2,3,4]", {F({3, 1})},
                [](Graph& g, const std::vector<Tensor*>& x) { return expand(g, x[0], {2, 3, 4}); },
                [](const std::vector<Host>& x) {
                  Host y = host_f32({2, 3, 4});
                  for (int64_t i = 0; i < 24; i++) y.f[i] = x[0].f[(i / 4) % 3];
                  return y;
                }});
  cs.push_back({"contiguous of transpose [6,5]", {F({6, 5})},
                [](Graph& g, const std::vector<Tensor*>& x) { return contiguous(g, transpose(g, x[0], 0, 1)); },
                [](const std::vector<Host>& x) { return permute_host(x[0], {1, 0}); }});
  auto concat_ref = [](int axis) {
    return [axis](const std::vector<Host>& x) {
      Shape s = x[0].s;
      s.ne[axis] = 0;
      for (const Host& h : x) s.ne[axis] += h.s.ne[axis];
      Host y = host_f32(s);
      int64_t c[MAX_DIMS];
      for (int64_t i = 0; i < y.n(); i++) {
        unravel(s, i, c);
        size_t k = 0;
        while (c[axis] >= x[k].s.ne[axis]) c[axis] -= x[k++].s.ne[axis];
        y.f[i] = x[k].f[(size_t)ravel(x[k].s, c)];
      }
      return y;
    };
  };
  cs.push_back({"concat axis 1 [2,3]+[2,1]+[2,4]", {F({2, 3}), F({2, 1}), F({2, 4})},
                [](Graph& g, const std::vector<Tensor*>& x) { return concat(g, x, 1); }, concat_ref(1)});
  cs.push_back({"concat axis 0 of a transposed view", {F({3, 4}), F({4, 2})},
                [](Graph& g, const std::vector<Tensor*>& x) { return concat(g, {x[0], transpose(g, x[1], 0, 1)}, 0); },
                [concat_ref](const std::vector<Host>& x) { return concat_ref(0)({x[0], permute_host(x[1], {1, 0})}); }});
  cs.push_back({"pad [2,3,4] before (0,1,2) after (1,0,1) value 0.5", {F({2, 3, 4})},
                [](Graph& g, const std::vector<Tensor*>& x) { return pad(g, x[0], {0, 1, 2}, {1, 0, 1}, 0.5f); },
                [](const std::vector<Host>& x) {
                  Host y = host_f32({3, 4, 7});
                  int64_t c[MAX_DIMS];
                  for (int64_t i = 0; i < y.n(); i++) {
                    unravel(y.s, i, c);
                    int64_t a = c[0], b = c[1] - 1, d = c[2] - 2;
                    bool in = a < 2 && b >= 0 && b < 3 && d >= 0 && d < 4;
                    y.f[i] = in ? x[0].f[(a * 3 + b) * 4 + d] : 0.5f;
                  }
                  return y;
                }});
  // ------------------------------------------------------------ indexing
  cs.push_back({"get_rows [10,6] by [3,4]", {F({10, 6}), I({3, 4}, 0, 10)},
                [](Graph& g, const std::vector<Tensor*>& x) { return get_rows(g, x[0], x[1]); },
                [](const std::vector<Host>& x) {
                  Host y = host_f32({3, 4, 6});
                  for (int64_t i = 0; i < 12; i++)
                    for (int j = 0; j < 6; j++) y.f[i * 6 + j] = x[0].f[x[1].i[i] * 6 + j];
                  return y;
                }});
  cs.push_back({"scatter_add_rows [7,5] into 4", {F({7, 5}), I({7}, 0, 4)},
                [](Graph& g, const std::vector<Tensor*>& x) { return scatter_add_rows(g, x[0], x[1], 4); },
                [](const std::vector<Host>& x) {
                  Host y = host_f32({4, 5});
                  for (int i = 0; i < 7; i++)
                    for (int j = 0; j < 5; j++) y.f[x[1].i[i] * 5 + j] += x[0].f[i * 5 + j];
                  return y;
                }});
  // ------------------------------------------------------------ losses
  cs.push_back({"loss_l1", {F({4, 6}, 0.05f, 1), F({4, 6}, -1, -0.05f)},
                [](Graph& g, const std::vector<Tensor*>& x) { return loss_l1(g, x[0], x[1]); },
                [](const std::vector<Host>& x) {
                  Host y = host_f32({});
                  double s = 0;
                  for (int64_t i = 0; i < x[0].n(); i++) s += std::fabs(x[0].f[i] - x[1].f[i]);
                  y.f[0] = (float)(s / x[0].n());
                  return y;
                }});
  cs.push_back({"loss_mse", {F({3, 2, 5}), F({3, 2, 5})},
                [](Graph& g, const std::vector<Tensor*>& x) { return loss_mse(g, x[0], x[1]); },
                [](const std::vector<Host>& x) {
                  Host y = host_f32({});
                  double s = 0;
                  for (int64_t i = 0; i < x[0].n(); i++) s += (double)(x[0].f[i] - x[1].f[i]) * (x[0].f[i] - x[1].f[i]);
                  y.f[0] = (float)(s / x[0].n());
                  return y;
                }});
  cs.push_back({"cross_entropy [6,5]", {F({6, 5}, -2, 2), I({6}, 0, 5)},
                [](Graph& g, const std::vector<Tensor*>& x) { return cross_entropy(g, x[0], x[1]); },
                [](const std::vector<Host>& x) {
                  Host ls = softmax_host(x[0], true), y = host_f32({});
                  double s = 0;
                  for (int r = 0; r < 6; r++) s -= ls.f[r * 5 + x[1].i[r]];
                  y.f[0] = (float)(s / 6);
                  return y;
                }});
  // ------------------------------------------------------------ optimiser and randomness
  cs.push_back({"adamw update (decoupled, wd 0.1, gscale 0.5)", {FN({5, 3}), FN({5, 3}), FN({5, 3}), FN({5, 3}, 0.01f, 1)},
                [](Graph& g, const std::vector<Tensor*>& x) {
                  Tensor* hp = g.constant_data({ADAM_HP_COUNT}, {0.01f, 0.9f, 0.99f, 1e-8f, 0.1f, 0.19f, 0.0199f, 1.0f});
                  return adamw_update(g, x[0], x[1], x[2], x[3], hp, g.constant({}, 0.5f));
                },
                [](const std::vector<Host>& x) {
                  Host y = x[0];
                  for (int64_t i = 0; i < y.n(); i++) {
                    double gr = 0.5 * x[1].f[i];
                    double m = 0.9 * x[2].f[i] + 0.1 * gr, v = 0.99 * x[3].f[i] + 0.01 * gr * gr;
                    double upd = (m / 0.19) / (std::sqrt(v / 0.0199) + 1e-8) + 0.1 * x[0].f[i];
                    y.f[i] = (float)(x[0].f[i] - 0.01 * upd);
                  }
                  return y;
                }, 1e-5f});
  cs.push_back({"random normal [1000]", {I({4}, 0, 1000)},
                [](Graph& g, const std::vector<Tensor*>& x) { return random(g, {1000}, RAND_NORMAL, x[0], 3); },
                [](const std::vector<Host>& x) {
                  Host y = host_f32({1000});
                  uint64_t seed = (uint32_t)x[0].i[0] | (uint64_t)(uint32_t)x[0].i[1] << 32;
                  uint64_t step = (uint32_t)x[0].i[2] | (uint64_t)(uint32_t)x[0].i[3] << 32;
                  for (int i = 0; i < 1000; i++) y.f[i] = philox_element(seed, 3, step, (uint64_t)i, RAND_NORMAL);
                  return y;
                }});
  return cs;
}

}  // namespace test
}  // namespace nsvq
