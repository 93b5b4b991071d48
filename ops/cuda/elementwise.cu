// ops/cuda/elementwise.cu — CUDA kernels of unary, binary and where. Operands are arbitrary strided
// views (stride 0 = broadcast); dims are merged as on the CPU (CuNd) and one thread computes each
// output element with the shared scalar maths of ops/elementwise_math.h (so the formulas are the
// CPU's). Paths: one merged dim (contiguous or a single stride per operand: no index division),
// N-d with 32-bit index maths, N-d with 64-bit index maths.
#include "engine/cuda/cuda_common.cuh"
#include "ops/elementwise_math.h"
#include "ops/ops_internal.h"

namespace nsvq {

// ---------------------------------------------------------------- unary

template <int K>
__global__ void unary_1d_kernel(float* __restrict__ y, const float* __restrict__ x, int64_t n, int64_t sy, int64_t sx,
                                float p0, float p1) {
  for (int64_t e = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; e < n; e += (int64_t)gridDim.x * blockDim.x)
    y[e * sy] = unary_apply<K>(x[e * sx], p0, p1);
}

template <int K, class I>
__global__ void unary_nd_kernel(float* __restrict__ y, const float* __restrict__ x, CuNd<2> it, float p0, float p1) {
  I n = (I)it.n;
  for (I e = (I)blockIdx.x * blockDim.x + threadIdx.x; e < n; e += (I)gridDim.x * blockDim.x) {
    I off[2];
    cu_nd_offsets<2, I>(it, e, off);
    y[off[0]] = unary_apply<K>(x[off[1]], p0, p1);
  }
}

static void unary_cuda(Tensor* y, const ExecCtx& c) {
  CudaState* st = cuda_state(c);
  const Tensor* ts[2] = {y, y->src[0]};
  CuNd<2> it = cu_nd_make<2>(ts);
  if (it.n == 0) return;
  float* yd = (float*)y->data;
  const float* xd = (const float*)y->src[0]->data;
  float p0 = y->fp[0], p1 = y->fp[1];
  unsigned int nb = cu_blocks(it.n);
  bool fits32 = cu_nd_fits32(it);
  bool found = false;
  kind_dispatch<UN_COUNT>(y->ip[0], [&](auto k) {
    constexpr int K = decltype(k)::value;
    found = true;
    if (it.ndim == 1)
      unary_1d_kernel<K><<<nb, CU_THREADS, 0, st->stream>>>(yd, xd, it.n, it.st[0][0], it.st[1][0], p0, p1);
    else if (fits32)
      unary_nd_kernel<K, int32_t><<<nb, CU_THREADS, 0, st->stream>>>(yd, xd, it, p0, p1);
    else
      unary_nd_kernel<K, int64_t><<<nb, CU_THREADS, 0, st->stream>>>(yd, xd, it, p0, p1);
  });
  if (!found) fail("unary: unknown kind %d", y->ip[0]);
  CUDA_LAUNCH_CHECK();
}

// ---------------------------------------------------------------- binary

template <int K>
__global__ void binary_1d_kernel(float* __restrict__ y, const float* __restrict__ a, const float* __restrict__ b,
                                 int64_t n, int64_t sy, int64_t sa, int64_t sb) {
  for (int64_t e = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; e < n; e += (int64_t)gridDim.x * blockDim.x)
    y[e * sy] = binary_apply<K>(a[e * sa], b[e * sb]);
}

// all three contiguous: the commonest case, no stride multiplies
template <int K>
__global__ void binary_contig_kernel(float* __restrict__ y, const float* __restrict__ a, const float* __restrict__ b,
                                     int64_t n) {
  for (int64_t e = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; e < n; e += (int64_t)gridDim.x * blockDim.x)
    y[e] = binary_apply<K>(a[e], b[e]);
}

template <int K, class I>
__global__ void binary_nd_kernel(float* __restrict__ y, const float* __restrict__ a, const float* __restrict__ b,
                                 CuNd<3> it) {
  I n = (I)it.n;
  for (I e = (I)blockIdx.x * blockDim.x + threadIdx.x; e < n; e += (I)gridDim.x * blockDim.x) {
    I off[3];
    cu_nd_offsets<3, I>(it, e, off);
    y[off[0]] = binary_apply<K>(a[off[1]], b[off[2]]);
  }
}

static void binary_cuda(Tensor* y, const ExecCtx& c) {
  CudaState* st = cuda_state(c);
  const Tensor* ts[3] = {y, y->src[0], y->src[1]};
  CuNd<3> it = cu_nd_make<3>(ts);
  if (it.n == 0) return;
  float* yd = (float*)y->data;
  const float* ad = (const float*)y->src[0]->data;
  const float* bd = (const float*)y->src[1]->data;
  unsigned int nb = cu_blocks(it.n);
  bool fits32 = cu_nd_fits32(it);
  bool contig = it.ndim == 1 && it.st[0][0] == 1 && it.st[1][0] == 1 && it.st[2][0] == 1;
  bool found = false;
  kind_dispatch<BIN_COUNT>(y->ip[0], [&](auto k) {
    constexpr int K = decltype(k)::value;
    found = true;
    if (contig)
      binary_contig_kernel<K><<<nb, CU_THREADS, 0, st->stream>>>(yd, ad, bd, it.n);
    else if (it.ndim == 1)
      binary_1d_kernel<K><<<nb, CU_THREADS, 0, st->stream>>>(yd, ad, bd, it.n, it.st[0][0], it.st[1][0], it.st[2][0]);
    else if (fits32)
      binary_nd_kernel<K, int32_t><<<nb, CU_THREADS, 0, st->stream>>>(yd, ad, bd, it);
    else
      binary_nd_kernel<K, int64_t><<<nb, CU_THREADS, 0, st->stream>>>(yd, ad, bd, it);
  });
  if (!found) fail("binary: unknown kind %d", y->ip[0]);
  CUDA_LAUNCH_CHECK();
}

// ---------------------------------------------------------------- where

template <class I>
__global__ void where_kernel(float* __restrict__ y, const float* __restrict__ cd, const float* __restrict__ a,
                             const float* __restrict__ b, CuNd<4> it) {
  I n = (I)it.n;
  for (I e = (I)blockIdx.x * blockDim.x + threadIdx.x; e < n; e += (I)gridDim.x * blockDim.x) {
    I off[4];
    cu_nd_offsets<4, I>(it, e, off);
    y[off[0]] = cd[off[1]] != 0.0f ? a[off[2]] : b[off[3]];
  }
}

static void where_cuda(Tensor* y, const ExecCtx& c) {
  CudaState* st = cuda_state(c);
  const Tensor* ts[4] = {y, y->src[0], y->src[1], y->src[2]};
  CuNd<4> it = cu_nd_make<4>(ts);
  if (it.n == 0) return;
  float* yd = (float*)y->data;
  const float* cd = (const float*)y->src[0]->data;
  const float* ad = (const float*)y->src[1]->data;
  const float* bd = (const float*)y->src[2]->data;
  unsigned int nb = cu_blocks(it.n);
  if (cu_nd_fits32(it)) where_kernel<int32_t><<<nb, CU_THREADS, 0, st->stream>>>(yd, cd, ad, bd, it);
  else where_kernel<int64_t><<<nb, CU_THREADS, 0, st->stream>>>(yd, cd, ad, bd, it);
  CUDA_LAUNCH_CHECK();
}

void register_elementwise_cuda() {
  OpDef d;
  d.kernel[BK_CUDA] = unary_cuda; op_register(OP_UNARY, d);
  d.kernel[BK_CUDA] = binary_cuda; op_register(OP_BINARY, d);
  d.kernel[BK_CUDA] = where_cuda; op_register(OP_WHERE, d);
}

}  // namespace nsvq
