// ops/cpu/elementwise.cpp — CPU kernels of unary, binary and where. The contiguous loops are
// compiled for AVX-512, AVX2 and baseline x86-64 (GCC target_clones: chosen at run time).
#include "ops/cpu/cpu_kernels.h"
#include "ops/elementwise_math.h"
#include "ops/ops_internal.h"

namespace nsvq {

template <int K>
NSVQ_CLONES void unary_loop(float* __restrict y, const float* __restrict x, int64_t n, float p0, float p1) {
  for (int64_t i = 0; i < n; i++) y[i] = unary_apply<K>(x[i], p0, p1);
}

template <int K>
NSVQ_CLONES void binary_loop(float* __restrict y, const float* __restrict a, const float* __restrict b, int64_t n) {
  for (int64_t i = 0; i < n; i++) y[i] = binary_apply<K>(a[i], b[i]);
}

// a or b broadcast as a scalar along the run (stride 0): the common "tensor op bias" case
template <int K>
NSVQ_CLONES void binary_loop_bs(float* __restrict y, const float* __restrict a, float b, int64_t n) {
  for (int64_t i = 0; i < n; i++) y[i] = binary_apply<K>(a[i], b);
}
template <int K>
NSVQ_CLONES void binary_loop_as(float* __restrict y, float a, const float* __restrict b, int64_t n) {
  for (int64_t i = 0; i < n; i++) y[i] = binary_apply<K>(a, b[i]);
}

static void unary_cpu(Tensor* y, const ExecCtx& c) {
  const Tensor* ts[2] = {y, y->src[0]};
  NdIter it = nd_iter_make(ts, 2);
  float* yd = tdata<float>(y);
  const float* xd = tdata<float>(y->src[0]);
  int64_t sx = it.st[1][it.ndim - 1];
  float p0 = y->fp[0], p1 = y->fp[1];
  kind_dispatch<UN_COUNT>(y->ip[0], [&](auto k) {
    constexpr int K = decltype(k)::value;
    nd_iter_for(it, c.nthreads, [&](const int64_t* off, int64_t n) {
      if (sx == 1) unary_loop<K>(yd + off[0], xd + off[1], n, p0, p1);
      else
        for (int64_t i = 0; i < n; i++) yd[off[0] + i] = unary_apply<K>(xd[off[1] + i * sx], p0, p1);
    });
  });
}

static void binary_cpu(Tensor* y, const ExecCtx& c) {
  const Tensor* ts[3] = {y, y->src[0], y->src[1]};
  NdIter it = nd_iter_make(ts, 3);
  float* yd = tdata<float>(y);
  const float* ad = tdata<float>(y->src[0]);
  const float* bd = tdata<float>(y->src[1]);
  int64_t sa = it.st[1][it.ndim - 1], sb = it.st[2][it.ndim - 1];
  kind_dispatch<BIN_COUNT>(y->ip[0], [&](auto k) {
    constexpr int K = decltype(k)::value;
    nd_iter_for(it, c.nthreads, [&](const int64_t* off, int64_t n) {
      float* yp = yd + off[0];
      const float *ap = ad + off[1], *bp = bd + off[2];
      if (sa == 1 && sb == 1) binary_loop<K>(yp, ap, bp, n);
      else if (sa == 1 && sb == 0) binary_loop_bs<K>(yp, ap, *bp, n);
      else if (sa == 0 && sb == 1) binary_loop_as<K>(yp, *ap, bp, n);
      else
        for (int64_t i = 0; i < n; i++) yp[i] = binary_apply<K>(ap[i * sa], bp[i * sb]);
    });
  });
}

static void where_cpu(Tensor* y, const ExecCtx& c) {
  const Tensor* ts[4] = {y, y->src[0], y->src[1], y->src[2]};
  NdIter it = nd_iter_make(ts, 4);
  float* yd = tdata<float>(y);
  const float *cd = tdata<float>(y->src[0]), *ad = tdata<float>(y->src[1]), *bd = tdata<float>(y->src[2]);
  int L = it.ndim - 1;
  int64_t sc = it.st[1][L], sa = it.st[2][L], sb = it.st[3][L];
  nd_iter_for(it, c.nthreads, [&](const int64_t* off, int64_t n) {
    for (int64_t i = 0; i < n; i++)
      yd[off[0] + i] = cd[off[1] + i * sc] != 0.0f ? ad[off[2] + i * sa] : bd[off[3] + i * sb];
  });
}

void register_elementwise_cpu() {
  OpDef d;
  d.kernel[BK_CPU] = unary_cpu; op_register(OP_UNARY, d);
  d.kernel[BK_CPU] = binary_cpu; op_register(OP_BINARY, d);
  d.kernel[BK_CPU] = where_cpu; op_register(OP_WHERE, d);
}

}  // namespace nsvq
