// ops/cpu/pool.cpp — CPU kernels of max_pool2d, avg_pool2d, their gradients and resize_bilinear, with
// PyTorch's CPU arithmetic (float sums in window row-major order, sum / divisor, first maximum wins and
// NaN propagates). Forward kernels run OpenMP over output rows of the (n, c) planes; the gradients over
// planes: each plane's windows are visited in (oy, ox) order and add into dx, so every dx element sums
// its windows' contributions in ascending window order — the order of the CUDA gather kernels, giving
// bitwise the same results (and PyTorch's CPU results).
#include <cstring>
#include "ops/cpu/cpu_kernels.h"
#include "ops/ops_internal.h"

// The bilinear weights and their products are rounded one operation at a time (PyTorch's expression
// order, no fused multiply-add) so that results do not depend on the instruction set or compiler.
#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF
#define NSVQ_NO_CONTRACT
#elif defined(__GNUC__)
#define NSVQ_NO_CONTRACT __attribute__((optimize("fp-contract=off")))
#else
#define NSVQ_NO_CONTRACT
#endif

namespace nsvq {

namespace {

struct PoolGeom {
  int64_t planes, H, W, Ho, Wo;
  int k, s, p;
  bool count_pad;
};
// x [N, C, H, W] -> y [N, C, Ho, Wo] of the pooling node (or its gradient: dx = x's shape, gy = y's)
PoolGeom pool_geom(const Tensor* big, const Tensor* small, const Tensor* node) {
  return {big->ne[0] * big->ne[1], big->ne[2], big->ne[3], small->ne[2], small->ne[3],
          node->ip[0], node->ip[1], node->ip[2], node->ip[3] != 0};
}

// Window rows [lo, hi) clipped to the image for output position o (and the unclipped extent, clipped
// only at the far padded edge: PyTorch's count_include_pad divisor).
struct Span {
  int64_t lo, hi, padded;
};
inline Span window(int64_t o, int k, int s, int p, int64_t n) {
  int64_t a = o * s - p, b = std::min(a + k, n + p);
  Span r;
  r.padded = b - a;
  r.lo = std::max<int64_t>(a, 0);
  r.hi = std::min(b, n);
  return r;
}

int threads_for(int64_t work, int nthreads) { return work < 32768 ? 1 : nthreads; }

}  // namespace

// ---------------------------------------------------------------- max and average pooling
//
// Each output row is split into border columns (windows clipped by the image edge: one by one) and
// interior columns (windows fully inside horizontally: all at once, window element by window element,
// which vectorises). Per output the operations and their order are the same either way.

namespace {
// Output columns [a, b) whose windows lie inside the image horizontally.
void interior_cols(const PoolGeom& g, int64_t& a, int64_t& b) {
  a = std::min<int64_t>((g.p + g.s - 1) / g.s, g.Wo);
  b = g.W + g.p - g.k < 0 ? 0 : std::min<int64_t>((g.W + g.p - g.k) / g.s + 1, g.Wo);
  if (b < a) b = a;
}
// PyTorch's max update: the first maximum wins ties, a NaN replaces anything (and stays)
inline bool max_takes(float best, float v) { return v > best || v != v; }
inline float max_upd(float best, float v) { return max_takes(best, v) ? v : best; }

// One window row for n interior outputs: o[i] updated with q[i * S + j], j < K, in order (max: PyTorch's
// rule; sum: float additions). K, S fixed for the common geometries (the loops vectorise), 0 = runtime.
template <bool MAX, int K, int S>
inline void window_pass(float* __restrict o, const float* __restrict q, int64_t n, int k, int s) {
  const int kk = K ? K : k, ss = S ? S : s;
  for (int64_t i = 0; i < n; i++) {
    float a = o[i];
    for (int j = 0; j < kk; j++) a = MAX ? max_upd(a, q[i * ss + j]) : a + q[i * ss + j];
    o[i] = a;
  }
}
// The same for the argmax: arg[i] = plane index of the first maximum so far (base + r W + i s + j).
template <int K, int S>
inline void argmax_pass(float* __restrict best, int32_t* __restrict arg, const float* __restrict q, int64_t n, int k, int s,
                        int32_t base) {
  const int kk = K ? K : k, ss = S ? S : s;
  for (int64_t i = 0; i < n; i++) {
    float b = best[i];
    int32_t a = arg[i];
    for (int j = 0; j < kk; j++) {
      const float v = q[i * ss + j];
      const bool t = max_takes(b, v);
      b = t ? v : b;
      a = t ? base + (int32_t)(i * ss + j) : a;
    }
    best[i] = b;
    arg[i] = a;
  }
}
}  // namespace

// o[i] (i < n) = the max (MAX) or the sum / div of x0[r * W + i * s + j] over r < rows, j < k, row-major
template <bool MAX, int K, int S>
inline void pool_interior_t(float* __restrict o, const float* __restrict x0, int64_t n, int64_t W, int64_t rows, int k,
                            int s, float div) {
  for (int64_t i = 0; i < n; i++) o[i] = MAX ? -INFINITY : 0.0f;
  for (int64_t r = 0; r < rows; r++) window_pass<MAX, K, S>(o, x0 + r * W, n, k, s);
  if (!MAX)
    for (int64_t i = 0; i < n; i++) o[i] = o[i] / div;
}
template <bool MAX>
NSVQ_CLONES static void pool_interior(float* __restrict o, const float* __restrict x0, int64_t n, int64_t W, int64_t rows,
                                      int k, int s, float div) {
  if (k == 2 && s == 2) pool_interior_t<MAX, 2, 2>(o, x0, n, W, rows, k, s, div);
  else if (k == 3 && s == 1) pool_interior_t<MAX, 3, 1>(o, x0, n, W, rows, k, s, div);
  else if (k == 3 && s == 2) pool_interior_t<MAX, 3, 2>(o, x0, n, W, rows, k, s, div);
  else pool_interior_t<MAX, 0, 0>(o, x0, n, W, rows, k, s, div);
}

// arg[i] (i < n) = plane index of the first maximum of the windows at x0 (plane index base), as above
template <int K, int S>
inline void argmax_interior_t(int32_t* __restrict arg, float* __restrict best, const float* __restrict x0, int64_t n,
                              int64_t W, int64_t rows, int k, int s, int32_t base) {
  for (int64_t i = 0; i < n; i++) {
    best[i] = -INFINITY;
    arg[i] = base + (int32_t)(i * s);  // the window's first in-image element
  }
  for (int64_t r = 0; r < rows; r++) argmax_pass<K, S>(best, arg, x0 + r * W, n, k, s, base + (int32_t)(r * W));
}
NSVQ_CLONES static void argmax_interior(int32_t* __restrict arg, float* __restrict best, const float* __restrict x0,
                                        int64_t n, int64_t W, int64_t rows, int k, int s, int32_t base) {
  if (k == 2 && s == 2) argmax_interior_t<2, 2>(arg, best, x0, n, W, rows, k, s, base);
  else if (k == 3 && s == 1) argmax_interior_t<3, 1>(arg, best, x0, n, W, rows, k, s, base);
  else if (k == 3 && s == 2) argmax_interior_t<3, 2>(arg, best, x0, n, W, rows, k, s, base);
  else argmax_interior_t<0, 0>(arg, best, x0, n, W, rows, k, s, base);
}

// A clipped window, one output: the max (value and plane index of the first maximum) or the sum / divisor.
static float border_max(const PoolGeom& g, const float* xp, const Span& sy, const Span& sx, int64_t* arg) {
  float best = -INFINITY;
  int64_t a = sy.lo * g.W + sx.lo;
  for (int64_t iy = sy.lo; iy < sy.hi; iy++)
    for (int64_t ix = sx.lo; ix < sx.hi; ix++) {
      const float v = xp[iy * g.W + ix];
      if (max_takes(best, v)) {
        best = v;
        a = iy * g.W + ix;
      }
    }
  if (arg) *arg = a;
  return best;
}
static int64_t divisor(const PoolGeom& g, const Span& sy, const Span& sx) {
  return g.count_pad ? sy.padded * sx.padded : (sy.hi - sy.lo) * (sx.hi - sx.lo);
}
static float border_avg(const PoolGeom& g, const float* xp, const Span& sy, const Span& sx) {
  float sum = 0.0f;
  for (int64_t iy = sy.lo; iy < sy.hi; iy++)
    for (int64_t ix = sx.lo; ix < sx.hi; ix++) sum += xp[iy * g.W + ix];
  return sum / (float)divisor(g, sy, sx);
}

template <bool MAX>
static void pool_fwd_cpu(Tensor* y, const ExecCtx& c) {
  const PoolGeom g = pool_geom(y->src[0], y, y);
  const float* x = tdata<float>(y->src[0]);
  float* out = tdata<float>(y);
  int64_t ca, cb;
  interior_cols(g, ca, cb);
  const int64_t rows = g.planes * g.Ho;
#pragma omp parallel for num_threads(threads_for(rows * g.Wo * g.k, c.nthreads)) schedule(static)
  for (int64_t r = 0; r < rows; r++) {
    const float* xp = x + (r / g.Ho) * g.H * g.W;
    float* o = out + r * g.Wo;
    const Span sy = window(r % g.Ho, g.k, g.s, g.p, g.H);
    for (int64_t ox = 0; ox < g.Wo; ox++) {
      if (ox == ca && cb > ca) {  // the interior columns at once
        const Span sx = window(ca, g.k, g.s, g.p, g.W);
        pool_interior<MAX>(o + ca, xp + sy.lo * g.W + sx.lo, cb - ca, g.W, sy.hi - sy.lo, g.k, g.s,
                           (float)divisor(g, sy, sx));
        ox = cb - 1;
        continue;
      }
      const Span sx = window(ox, g.k, g.s, g.p, g.W);
      o[ox] = MAX ? border_max(g, xp, sy, sx, nullptr) : border_avg(g, xp, sy, sx);
    }
  }
}
static void max_pool2d_cpu(Tensor* y, const ExecCtx& c) { pool_fwd_cpu<true>(y, c); }
static void avg_pool2d_cpu(Tensor* y, const ExecCtx& c) { pool_fwd_cpu<false>(y, c); }

// ---------------------------------------------------------------- gradients

// dx: zero, then each window's gy added to its first maximum, windows in (oy, ox) order (the interior
// argmaxes of a row found in chunks of 64 at once, then added in column order)
static void max_pool2d_bwd_cpu(Tensor* dx, const ExecCtx& c) {
  const Tensor* xt = dx->src[0];
  const PoolGeom g = pool_geom(xt, dx->src[1], dx);
  const float* x = tdata<float>(xt);
  const float* gy = tdata<float>(dx->src[1]);
  float* out = tdata<float>(dx);
  int64_t ca, cb;
  interior_cols(g, ca, cb);
  if (g.H * g.W > INT32_MAX) cb = ca;  // plane indices beyond int32: every window one by one
#pragma omp parallel for num_threads(threads_for(g.planes * g.H * g.W, c.nthreads)) schedule(static)
  for (int64_t pl = 0; pl < g.planes; pl++) {
    const float* xp = x + pl * g.H * g.W;
    float* dp = out + pl * g.H * g.W;
    std::memset(dp, 0, (size_t)(g.H * g.W) * sizeof(float));
    constexpr int64_t CH = 64;
    int32_t arg[CH];
    float best[CH];
    for (int64_t oy = 0; oy < g.Ho; oy++) {
      const float* gp = gy + (pl * g.Ho + oy) * g.Wo;
      const Span sy = window(oy, g.k, g.s, g.p, g.H);
      for (int64_t ox = 0; ox < g.Wo; ox++) {
        if (ox == ca && cb > ca) {
          for (int64_t c0 = ca; c0 < cb; c0 += CH) {
            const int64_t n = std::min(CH, cb - c0);
            const int64_t off = sy.lo * g.W + c0 * g.s - g.p;
            argmax_interior(arg, best, xp + off, n, g.W, sy.hi - sy.lo, g.k, g.s, (int32_t)off);
            for (int64_t i = 0; i < n; i++) dp[arg[i]] += gp[c0 + i];
          }
          ox = cb - 1;
          continue;
        }
        int64_t a;
        border_max(g, xp, sy, window(ox, g.k, g.s, g.p, g.W), &a);
        dp[a] += gp[ox];
      }
    }
  }
}

// dx: zero, then each window's gy / divisor added to each of its in-image elements
static void avg_pool2d_bwd_cpu(Tensor* dx, const ExecCtx& c) {
  const PoolGeom g = pool_geom(dx, dx->src[0], dx);
  const float* gy = tdata<float>(dx->src[0]);
  float* out = tdata<float>(dx);
#pragma omp parallel for num_threads(threads_for(g.planes * g.H * g.W, c.nthreads)) schedule(static)
  for (int64_t pl = 0; pl < g.planes; pl++) {
    const float* gp = gy + pl * g.Ho * g.Wo;
    float* dp = out + pl * g.H * g.W;
    std::memset(dp, 0, (size_t)(g.H * g.W) * sizeof(float));
    for (int64_t oy = 0; oy < g.Ho; oy++) {
      const Span sy = window(oy, g.k, g.s, g.p, g.H);
      for (int64_t ox = 0; ox < g.Wo; ox++) {
        const Span sx = window(ox, g.k, g.s, g.p, g.W);
        const float d = gp[oy * g.Wo + ox] / (float)divisor(g, sy, sx);
        for (int64_t iy = sy.lo; iy < sy.hi; iy++)
          for (int64_t ix = sx.lo; ix < sx.hi; ix++) dp[iy * g.W + ix] += d;
      }
    }
  }
}

// ---------------------------------------------------------------- bilinear resize

namespace {
// Source indices and weights of one output row or column (PyTorch's upsample_bilinear2d,
// align_corners=False: src = scale (dst + 0.5) - 0.5 clamped at 0, in float).
struct Lin {
  int32_t i0, i1;
  float l0, l1;
};
NSVQ_NO_CONTRACT Lin lin_index(float scale, int64_t dst, int64_t in, int64_t out) {
  if (in == out) return {(int32_t)dst, (int32_t)dst, 1.0f, 0.0f};  // PyTorch copies: weights 1 and 0
  float src = scale * ((float)dst + 0.5f) - 0.5f;
  if (src < 0.0f) src = 0.0f;
  const int64_t i0 = std::min((int64_t)src, in - 1);
  const float l1 = std::min(std::max(src - (float)i0, 0.0f), 1.0f);
  return {(int32_t)i0, (int32_t)(i0 + (i0 < in - 1 ? 1 : 0)), 1.0f - l1, l1};
}
}  // namespace

// the row and column tables: (Ho + Wo) entries
static size_t resize_bilinear_scratch(const Tensor* y, BackendKind b) {
  return b == BK_CPU ? (size_t)(y->ne[2] + y->ne[3]) * sizeof(Lin) : 0;
}

NSVQ_NO_CONTRACT static void resize_row(float* __restrict o, const float* __restrict r0, const float* __restrict r1,
                                        const Lin* __restrict cols, int64_t Wo, float lh0, float lh1) {
  for (int64_t ox = 0; ox < Wo; ox++) {
    const Lin cw = cols[ox];
    const float t0 = cw.l0 * r0[cw.i0] + cw.l1 * r0[cw.i1];
    const float t1 = cw.l0 * r1[cw.i0] + cw.l1 * r1[cw.i1];
    o[ox] = lh0 * t0 + lh1 * t1;
  }
}

static void resize_bilinear_cpu(Tensor* y, const ExecCtx& c) {
  const Tensor* xt = y->src[0];
  const int64_t planes = xt->ne[0] * xt->ne[1], H = xt->ne[2], W = xt->ne[3], Ho = y->ne[2], Wo = y->ne[3];
  Lin* rows_t = (Lin*)c.scratch;
  Lin* cols_t = rows_t + Ho;
  const float sh = (float)H / (float)Ho, sw = (float)W / (float)Wo;
  for (int64_t i = 0; i < Ho; i++) rows_t[i] = lin_index(sh, i, H, Ho);
  for (int64_t i = 0; i < Wo; i++) cols_t[i] = lin_index(sw, i, W, Wo);
  const float* x = tdata<float>(xt);
  float* out = tdata<float>(y);
  const int64_t rows = planes * Ho;
#pragma omp parallel for num_threads(threads_for(rows * Wo, c.nthreads)) schedule(static)
  for (int64_t r = 0; r < rows; r++) {
    const int64_t plane = r / Ho;
    const Lin rw = rows_t[r % Ho];
    const float* xp = x + plane * H * W;
    resize_row(out + r * Wo, xp + rw.i0 * W, xp + rw.i1 * W, cols_t, Wo, rw.l0, rw.l1);
  }
}

void register_pool_cpu() {
  OpDef d;
  d.kernel[BK_CPU] = max_pool2d_cpu; op_register(OP_MAX_POOL2D, d);
  d.kernel[BK_CPU] = max_pool2d_bwd_cpu; op_register(OP_MAX_POOL2D_BWD, d);
  d.kernel[BK_CPU] = avg_pool2d_cpu; op_register(OP_AVG_POOL2D, d);
  d.kernel[BK_CPU] = avg_pool2d_bwd_cpu; op_register(OP_AVG_POOL2D_BWD, d);
  d.kernel[BK_CPU] = resize_bilinear_cpu;
  d.scratch = resize_bilinear_scratch;
  op_register(OP_RESIZE_BILINEAR, d);
}

}  // namespace nsvq
