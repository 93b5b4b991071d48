// ops/cuda/pool.cu — CUDA kernels of max_pool2d, avg_pool2d, their gradients and resize_bilinear: one
// thread per output element (forward, resize) or per input element (the gradients gather, for each
// input element, the windows that contain it in ascending (oy, ox) order — the order in which the CPU
// kernels add into dx). Float operations are the CPU's, one rounding each (__fadd_rn / __fmul_rn keep
// nvcc from fusing multiply-adds): results equal the CPU's bitwise. No atomics: deterministic.
#include "engine/cuda/cuda_common.cuh"
#include "ops/ops_internal.h"

namespace nsvq {

namespace {

struct CuPool {
  int64_t H, W, Ho, Wo;
  int k, s, p;
  int count_pad;
};

// window rows [lo, hi) clipped to the image for output position o, and its extent clipped only at the
// far padded edge (count_include_pad's divisor), as on the CPU
struct CuSpan {
  int64_t lo, hi, padded;
};
__device__ __forceinline__ CuSpan cu_window(int64_t o, int k, int s, int p, int64_t n) {
  const int64_t a = o * s - p;
  const int64_t b = a + k < n + p ? a + k : n + p;
  CuSpan r;
  r.padded = b - a;
  r.lo = a > 0 ? a : 0;
  r.hi = b < n ? b : n;
  return r;
}

// output positions whose windows contain input position i: [lo, hi] (empty when lo > hi)
__device__ __forceinline__ void cu_covering(int64_t i, int k, int s, int p, int64_t nout, int64_t& lo, int64_t& hi) {
  const int64_t a = i + p - k + 1;  // o * s >= a
  lo = a <= 0 ? 0 : (a + s - 1) / s;
  hi = (i + p) / s;
  if (hi > nout - 1) hi = nout - 1;
}

// plane index of the first maximum of window (oy, ox): the first in-image element unless a later one is
// greater or NaN (PyTorch's rule)
__device__ __forceinline__ int64_t cu_window_argmax(const float* __restrict__ xp, const CuPool& g, const CuSpan& sy,
                                                    const CuSpan& sx) {
  int64_t arg = sy.lo * g.W + sx.lo;
  float best = -INFINITY;
  for (int64_t iy = sy.lo; iy < sy.hi; iy++)
    for (int64_t ix = sx.lo; ix < sx.hi; ix++) {
      const float v = xp[iy * g.W + ix];
      if (v > best || v != v) {
        best = v;
        arg = iy * g.W + ix;
      }
    }
  return arg;
}

__device__ __forceinline__ int64_t cu_divisor(const CuPool& g, const CuSpan& sy, const CuSpan& sx) {
  return g.count_pad ? sy.padded * sx.padded : (sy.hi - sy.lo) * (sx.hi - sx.lo);
}

}  // namespace

__global__ void max_pool2d_kernel(float* __restrict__ y, const float* __restrict__ x, int64_t n, CuPool g) {
  for (int64_t e = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; e < n; e += (int64_t)gridDim.x * blockDim.x) {
    const int64_t ox = e % g.Wo, t = e / g.Wo, oy = t % g.Ho, pl = t / g.Ho;
    const float* xp = x + pl * g.H * g.W;
    const CuSpan sy = cu_window(oy, g.k, g.s, g.p, g.H), sx = cu_window(ox, g.k, g.s, g.p, g.W);
    float best = -INFINITY;
    for (int64_t iy = sy.lo; iy < sy.hi; iy++)
      for (int64_t ix = sx.lo; ix < sx.hi; ix++) {
        const float v = xp[iy * g.W + ix];
        if (v > best || v != v) best = v;
      }
    y[e] = best;
  }
}

// dx element e sums gy over the windows (ascending oy, then ox) whose first maximum it is
__global__ void max_pool2d_bwd_kernel(float* __restrict__ dx, const float* __restrict__ x, const float* __restrict__ gy,
                                      int64_t n, CuPool g) {
  for (int64_t e = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; e < n; e += (int64_t)gridDim.x * blockDim.x) {
    const int64_t ix = e % g.W, t = e / g.W, iy = t % g.H, pl = t / g.H;
    const float* xp = x + pl * g.H * g.W;
    const float* gp = gy + pl * g.Ho * g.Wo;
    const int64_t self = iy * g.W + ix;
    int64_t oy0, oy1, ox0, ox1;
    cu_covering(iy, g.k, g.s, g.p, g.Ho, oy0, oy1);
    cu_covering(ix, g.k, g.s, g.p, g.Wo, ox0, ox1);
    float acc = 0.0f;
    for (int64_t oy = oy0; oy <= oy1; oy++) {
      const CuSpan sy = cu_window(oy, g.k, g.s, g.p, g.H);
      for (int64_t ox = ox0; ox <= ox1; ox++) {
        const CuSpan sx = cu_window(ox, g.k, g.s, g.p, g.W);
        if (cu_window_argmax(xp, g, sy, sx) == self) acc = __fadd_rn(acc, gp[oy * g.Wo + ox]);
      }
    }
    dx[e] = acc;
  }
}

__global__ void avg_pool2d_kernel(float* __restrict__ y, const float* __restrict__ x, int64_t n, CuPool g) {
  for (int64_t e = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; e < n; e += (int64_t)gridDim.x * blockDim.x) {
    const int64_t ox = e % g.Wo, t = e / g.Wo, oy = t % g.Ho, pl = t / g.Ho;
    const float* xp = x + pl * g.H * g.W;
    const CuSpan sy = cu_window(oy, g.k, g.s, g.p, g.H), sx = cu_window(ox, g.k, g.s, g.p, g.W);
    float sum = 0.0f;
    for (int64_t iy = sy.lo; iy < sy.hi; iy++)
      for (int64_t ix = sx.lo; ix < sx.hi; ix++) sum = __fadd_rn(sum, xp[iy * g.W + ix]);
    y[e] = __fdiv_rn(sum, (float)cu_divisor(g, sy, sx));
  }
}

// dx element e sums gy / divisor over the windows that contain it (ascending oy, then ox)
__global__ void avg_pool2d_bwd_kernel(float* __restrict__ dx, const float* __restrict__ gy, int64_t n, CuPool g) {
  for (int64_t e = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; e < n; e += (int64_t)gridDim.x * blockDim.x) {
    const int64_t ix = e % g.W, t = e / g.W, iy = t % g.H, pl = t / g.H;
    const float* gp = gy + pl * g.Ho * g.Wo;
    int64_t oy0, oy1, ox0, ox1;
    cu_covering(iy, g.k, g.s, g.p, g.Ho, oy0, oy1);
    cu_covering(ix, g.k, g.s, g.p, g.Wo, ox0, ox1);
    float acc = 0.0f;
    for (int64_t oy = oy0; oy <= oy1; oy++) {
      const CuSpan sy = cu_window(oy, g.k, g.s, g.p, g.H);
      for (int64_t ox = ox0; ox <= ox1; ox++) {
        const CuSpan sx = cu_window(ox, g.k, g.s, g.p, g.W);
        acc = __fadd_rn(acc, __fdiv_rn(gp[oy * g.Wo + ox], (float)cu_divisor(g, sy, sx)));
      }
    }
    dx[e] = acc;
  }
}

namespace {
// PyTorch's source index and weights of output position dst (align_corners=False), as on the CPU
struct CuLin {
  int64_t i0, i1;
  float l0, l1;
};
__device__ __forceinline__ CuLin cu_lin_index(float scale, int64_t dst, int64_t in, int64_t out) {
  CuLin r;
  if (in == out) {
    r.i0 = r.i1 = dst;
    r.l0 = 1.0f;
    r.l1 = 0.0f;
    return r;
  }
  float src = __fsub_rn(__fmul_rn(scale, __fadd_rn((float)dst, 0.5f)), 0.5f);
  if (src < 0.0f) src = 0.0f;
  r.i0 = (int64_t)src;
  if (r.i0 > in - 1) r.i0 = in - 1;
  float l1 = __fsub_rn(src, (float)r.i0);
  l1 = l1 < 0.0f ? 0.0f : (l1 > 1.0f ? 1.0f : l1);
  r.i1 = r.i0 + (r.i0 < in - 1 ? 1 : 0);
  r.l1 = l1;
  r.l0 = __fsub_rn(1.0f, l1);
  return r;
}
}  // namespace

__global__ void resize_bilinear_kernel(float* __restrict__ y, const float* __restrict__ x, int64_t n, int64_t H, int64_t W,
                                       int64_t Ho, int64_t Wo, float sh, float sw) {
  for (int64_t e = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; e < n; e += (int64_t)gridDim.x * blockDim.x) {
    const int64_t ox = e % Wo, t = e / Wo, oy = t % Ho, pl = t / Ho;
    const CuLin rh = cu_lin_index(sh, oy, H, Ho), rw = cu_lin_index(sw, ox, W, Wo);
    const float* r0 = x + (pl * H + rh.i0) * W;
    const float* r1 = x + (pl * H + rh.i1) * W;
    const float t0 = __fadd_rn(__fmul_rn(rw.l0, r0[rw.i0]), __fmul_rn(rw.l1, r0[rw.i1]));
    const float t1 = __fadd_rn(__fmul_rn(rw.l0, r1[rw.i0]), __fmul_rn(rw.l1, r1[rw.i1]));
    y[e] = __fadd_rn(__fmul_rn(rh.l0, t0), __fmul_rn(rh.l1, t1));
  }
}

// geometry of a pooling node: big = the [N, C, H, W] side, small = the [N, C, Ho, Wo] side
static CuPool cu_pool(const Tensor* big, const Tensor* small, const Tensor* node) {
  CuPool g;
  g.H = big->ne[2];
  g.W = big->ne[3];
  g.Ho = small->ne[2];
  g.Wo = small->ne[3];
  g.k = node->ip[0];
  g.s = node->ip[1];
  g.p = node->ip[2];
  g.count_pad = node->ip[3];
  return g;
}

static void max_pool2d_cuda(Tensor* y, const ExecCtx& c) {
  CudaState* st = cuda_state(c);
  const int64_t n = y->numel();
  if (n == 0) return;
  max_pool2d_kernel<<<cu_blocks(n), CU_THREADS, 0, st->stream>>>((float*)y->data, (const float*)y->src[0]->data, n,
                                                                  cu_pool(y->src[0], y, y));
  CUDA_LAUNCH_CHECK();
}
static void max_pool2d_bwd_cuda(Tensor* dx, const ExecCtx& c) {
  CudaState* st = cuda_state(c);
  const int64_t n = dx->numel();
  if (n == 0) return;
  max_pool2d_bwd_kernel<<<cu_blocks(n), CU_THREADS, 0, st->stream>>>(
      (float*)dx->data, (const float*)dx->src[0]->data, (const float*)dx->src[1]->data, n, cu_pool(dx, dx->src[1], dx));
  CUDA_LAUNCH_CHECK();
}
static void avg_pool2d_cuda(Tensor* y, const ExecCtx& c) {
  CudaState* st = cuda_state(c);
  const int64_t n = y->numel();
  if (n == 0) return;
  avg_pool2d_kernel<<<cu_blocks(n), CU_THREADS, 0, st->stream>>>((float*)y->data, (const float*)y->src[0]->data, n,
                                                                  cu_pool(y->src[0], y, y));
  CUDA_LAUNCH_CHECK();
}
static void avg_pool2d_bwd_cuda(Tensor* dx, const ExecCtx& c) {
  CudaState* st = cuda_state(c);
  const int64_t n = dx->numel();
  if (n == 0) return;
  avg_pool2d_bwd_kernel<<<cu_blocks(n), CU_THREADS, 0, st->stream>>>((float*)dx->data, (const float*)dx->src[0]->data, n,
                                                                      cu_pool(dx, dx->src[0], dx));
  CUDA_LAUNCH_CHECK();
}
static void resize_bilinear_cuda(Tensor* y, const ExecCtx& c) {
  CudaState* st = cuda_state(c);
  const int64_t n = y->numel();
  if (n == 0) return;
  const Tensor* x = y->src[0];
  const int64_t H = x->ne[2], W = x->ne[3], Ho = y->ne[2], Wo = y->ne[3];
  const float sh = (float)H / (float)Ho, sw = (float)W / (float)Wo;  // on the host, as the CPU kernel
  resize_bilinear_kernel<<<cu_blocks(n), CU_THREADS, 0, st->stream>>>((float*)y->data, (const float*)x->data, n, H, W, Ho,
                                                                       Wo, sh, sw);
  CUDA_LAUNCH_CHECK();
}

void register_pool_cuda() {
  OpDef d;
  d.kernel[BK_CUDA] = max_pool2d_cuda; op_register(OP_MAX_POOL2D, d);
  d.kernel[BK_CUDA] = max_pool2d_bwd_cuda; op_register(OP_MAX_POOL2D_BWD, d);
  d.kernel[BK_CUDA] = avg_pool2d_cuda; op_register(OP_AVG_POOL2D, d);
  d.kernel[BK_CUDA] = avg_pool2d_bwd_cuda; op_register(OP_AVG_POOL2D_BWD, d);
  d.kernel[BK_CUDA] = resize_bilinear_cuda; op_register(OP_RESIZE_BILINEAR, d);
}

}  // namespace nsvq
