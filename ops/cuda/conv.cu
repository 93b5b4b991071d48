// ops/cuda/conv.cu — CUDA kernels of conv2d (layout and semantics in ops/conv.cpp, ops/cpu/conv.cpp):
// im2col + cuBLAS SGEMM (FP32 math mode, row-major through the operand swap of ops/cuda/matmul.cu)
// over passes of many output columns at once. The batch's N*P output pixels are columns; a pass
// covers whole images in groups (or, when one image is too big for the budget, a pixel chunk of one
// image): conv_cuda_plan in ops/conv_geom.h, a column budget of 64 MiB, so the patch matrix never
// covers the whole batch of a big model, while small models run a handful of large GEMMs per conv
// instead of one small GEMM per image (launch-bound). Per pass, the "wide" layout:
//   forward:     col [K, cols] = im2col(x);  Yw [O, cols] = W [O, K] * col;  y[n, o, p] = Yw + bias
//   input grad:  dYw [O, cols] = dy gathered;  dcol [K, cols] = W^T * dYw;  then a col2im GATHER: one
//                thread per input element sums, in (i, j) order, the dcol entries that read it (no
//                atomics); pixel chunks of one image add onto earlier chunks in order
//   weight grad: dW (+)= dYw [O, cols] * col^T, passes in order (cuBLAS beta = 1)
// 1x1 stride-1 unpadded convolutions use the input directly (strided-batched GEMMs over the images;
// the weight gradient in the CPU's 8 partial sums, image n -> part n % 8, summed in part order).
// K = C*kh*kw, col rows ordered (c, i, j) like the weight. Pass sizes depend on the shapes alone and
// cuBLAS GEMMs of fixed shapes on one stream are run-to-run deterministic: results are bitwise
// repeatable.
#include <algorithm>
#include <climits>
#include "engine/cuda/cuda_common.cuh"
#include "ops/conv_geom.h"
#include "ops/ops_internal.h"

namespace nsvq {

namespace {

// Geometry handed to the kernels (by value).
struct ConvK {
  int64_t C, H, W, kh, kw, Ho, Wo, sh, sw, pt, pl;
};

ConvK conv_k(const ConvGeom& g) { return {g.C, g.H, g.W, g.kh, g.kw, g.Ho, g.Wo, g.sh, g.sw, g.pt, g.pl}; }

// ---------------------------------------------------------------- kernels (I: int32_t or int64_t index maths)

// col [K, nc] (k = (c, i, j)) for the batch's output columns [q0, q0 + nc) (column n*P + p)
template <class I>
__global__ void im2col_kernel(float* __restrict__ col, const float* __restrict__ x, ConvK g, I q0, I nc, I total) {
  I H = (I)g.H, W = (I)g.W, kh = (I)g.kh, kw = (I)g.kw, Wo = (I)g.Wo, P = (I)(g.Ho * g.Wo), CHW = (I)(g.C * g.H * g.W);
  for (I e = (I)blockIdx.x * blockDim.x + threadIdx.x; e < total; e += (I)gridDim.x * blockDim.x) {
    I q = e % nc, k = e / nc;
    I j = k % kw, t = k / kw;
    I i = t % kh, c = t / kh;
    I gq = q0 + q, n = gq / P, p = gq - n * P;
    I oy = p / Wo, ox = p - oy * Wo;
    I iy = oy * (I)g.sh - (I)g.pt + i, ix = ox * (I)g.sw - (I)g.pl + j;
    col[e] = (iy >= 0 && iy < H && ix >= 0 && ix < W) ? x[n * CHW + (c * H + iy) * W + ix] : 0.0f;
  }
}

// Between the batch layout t [N, O, P] and the wide layout tw [O, nc] of columns [q0, q0 + nc):
// to_wide: tw = t; else t = tw + bias (bias may be null)
template <class I>
__global__ void wide_copy_kernel(float* __restrict__ t, float* __restrict__ tw, const float* __restrict__ bias, I O,
                                 I P, I q0, I nc, bool to_wide, I total) {
  for (I e = (I)blockIdx.x * blockDim.x + threadIdx.x; e < total; e += (I)gridDim.x * blockDim.x) {
    I q = e % nc, o = e / nc;
    I gq = q0 + q, n = gq / P, p = gq - n * P;
    I off = (n * O + o) * P + p;
    if (to_wide) tw[e] = t[off];
    else t[off] = tw[e] + (bias ? bias[o] : 0.0f);
  }
}

// dx [nimg, C, H, W] (rows [row0, row0 + nrows) of every channel): each element sums the dcol
// [K, ld] entries that im2col read from it — image l's pixels p0..p0+np-1 at columns l*P + p - p0 —
// kernel offsets (i, j) in ascending order (the CPU's col2im order). Rows >= fresh_row start from
// 0, earlier rows add onto dx (pixel chunks of one image).
template <class I>
__global__ void col2im_gather_kernel(float* __restrict__ dx, const float* __restrict__ dcol, ConvK g, I ld, I p0, I np,
                                     I row0, I nrows, I fresh_row, I total) {
  I C = (I)g.C, H = (I)g.H, W = (I)g.W, kh = (I)g.kh, kw = (I)g.kw, Ho = (I)g.Ho, Wo = (I)g.Wo, sh = (I)g.sh,
    sw = (I)g.sw, P = (I)(g.Ho * g.Wo);
  for (I e = (I)blockIdx.x * blockDim.x + threadIdx.x; e < total; e += (I)gridDim.x * blockDim.x) {
    I ix = e % W, t = e / W;
    I iy = row0 + t % nrows;
    t /= nrows;
    I c = t % C, l = t / C;
    I off = ((l * C + c) * H + iy) * W + ix;
    float acc = iy >= fresh_row ? 0.0f : dx[off];
    I ty = iy + (I)g.pt, tx = ix + (I)g.pl;  // >= 0
    const float* dc = dcol + c * kh * kw * ld + l * P;
    for (I i = ty % sh; i < kh && i <= ty; i += sh) {  // oy * sh + i == ty
      I oy = (ty - i) / sh;
      if (oy >= Ho) continue;
      for (I j = tx % sw; j < kw && j <= tx; j += sw) {
        I ox = (tx - j) / sw;
        if (ox >= Wo) continue;
        I p = oy * Wo + ox - p0;
        if (p < 0 || p >= np) continue;
        acc += dc[(i * kw + j) * ld + p];
      }
    }
    dx[off] = acc;
  }
}

// y [N, O, P] += bias[o]
template <class I>
__global__ void bias_add_kernel(float* __restrict__ y, const float* __restrict__ bias, I O, I P, I total) {
  for (I e = (I)blockIdx.x * blockDim.x + threadIdx.x; e < total; e += (I)gridDim.x * blockDim.x)
    y[e] += bias[(e / P) % O];
}

// out[e] = part[0][e] + part[1][e] + ... in part order
__global__ void sum_parts_kernel(float* __restrict__ out, const float* __restrict__ part, int64_t n, int64_t parts) {
  for (int64_t e = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; e < n; e += (int64_t)gridDim.x * blockDim.x) {
    float s = part[e];
    for (int64_t t = 1; t < parts; t++) s += part[t * n + e];
    out[e] = s;
  }
}

// ---------------------------------------------------------------- host helpers

// int32 index maths when every index a kernel forms (and its grid-stride step) stays below 2^31
bool fits32(int64_t n) { return n < ((int64_t)1 << 30); }

int as_int(int64_t v, const char* what) {
  if (v < 0 || v > INT_MAX) fail("conv2d (cuda): %s %lld exceeds the cuBLAS int range", what, (long long)v);
  return (int)v;
}

// Row-major C[M, N] (ldc) = op(A)[M, Kd] op(B)[Kd, N] + beta C, `batch` times with element strides
// sa, sb, sc. cuBLAS is column-major: it computes C^T = op(B)^T op(A)^T (see ops/cuda/matmul.cu).
void rm_gemm(CudaState* st, bool ta, bool tb, int64_t M, int64_t N, int64_t Kd, const float* A, int64_t lda, int64_t sa,
             const float* B, int64_t ldb, int64_t sb, float beta, float* C, int64_t ldc, int64_t sc, int64_t batch) {
  const float one = 1.0f;
  cublasOperation_t opb = tb ? CUBLAS_OP_T : CUBLAS_OP_N, opa = ta ? CUBLAS_OP_T : CUBLAS_OP_N;
  int m = as_int(N, "GEMM size"), n = as_int(M, "GEMM size"), k = as_int(Kd, "GEMM size");
  int la = as_int(lda, "leading dimension"), lb = as_int(ldb, "leading dimension"), lc = as_int(ldc, "leading dimension");
  if (batch == 1) {
    CUBLAS_CHECK(cublasSgemm(st->cublas, opb, opa, m, n, k, &one, B, lb, A, la, &beta, C, lc));
  } else {
    CUBLAS_CHECK(cublasSgemmStridedBatched(st->cublas, opb, opa, m, n, k, &one, B, lb, (long long)sb, A, la,
                                           (long long)sa, &beta, C, lc, (long long)sc, as_int(batch, "batch")));
  }
}

// The pass plan and its buffers: col [K, cols] at the start of the scratch, the wide [O, cols] after.
struct Passes {
  ConvCudaPlan plan;
  float *col, *wide;
  bool small;  // int32 index maths
};
Passes passes(const ExecCtx& c, const ConvGeom& g, const char* op) {
  Passes r;
  r.plan = conv_cuda_plan(g);
  if (!c.scratch || c.scratch_bytes < r.plan.scratch_bytes())
    fail("%s (cuda): scratch of %zu bytes, need %zu", op, c.scratch_bytes, r.plan.scratch_bytes());
  r.col = (float*)c.scratch;
  r.wide = r.col + (r.plan.col_floats - g.O * r.plan.cols);
  r.small = fits32(g.N * std::max(g.C * g.H * g.W, g.O * g.P)) && fits32(std::max(g.K, g.O) * r.plan.cols);
  return r;
}

// Calls pass(q0, nc) for the plan's passes in column order: image groups, or each image's chunks.
template <class F>
void for_passes(const ConvGeom& g, const ConvCudaPlan& p, F pass) {
  if (p.groups) {
    for (int64_t n0 = 0; n0 < g.N; n0 += p.nb) pass(n0 * g.P, std::min(p.nb, g.N - n0) * g.P);
  } else {
    for (int64_t n = 0; n < g.N; n++)
      for (int64_t p0 = 0; p0 < g.P; p0 += p.cols) pass(n * g.P + p0, std::min(p.cols, g.P - p0));
  }
}

void launch_im2col(CudaState* st, const ConvGeom& g, const Passes& ps, const float* x, int64_t q0, int64_t nc) {
  int64_t total = g.K * nc;
  if (ps.small)
    im2col_kernel<int32_t><<<cu_blocks(total), CU_THREADS, 0, st->stream>>>(ps.col, x, conv_k(g), (int32_t)q0,
                                                                             (int32_t)nc, (int32_t)total);
  else
    im2col_kernel<int64_t><<<cu_blocks(total), CU_THREADS, 0, st->stream>>>(ps.col, x, conv_k(g), q0, nc, total);
  CUDA_LAUNCH_CHECK();
}

// to_wide: wide [O, nc] = t's columns [q0, q0 + nc); else t's columns = wide + bias
void launch_wide_copy(CudaState* st, const ConvGeom& g, const Passes& ps, float* t, const float* bias, int64_t q0,
                      int64_t nc, bool to_wide) {
  int64_t total = g.O * nc;
  if (ps.small)
    wide_copy_kernel<int32_t><<<cu_blocks(total), CU_THREADS, 0, st->stream>>>(
        t, ps.wide, bias, (int32_t)g.O, (int32_t)g.P, (int32_t)q0, (int32_t)nc, to_wide, (int32_t)total);
  else
    wide_copy_kernel<int64_t><<<cu_blocks(total), CU_THREADS, 0, st->stream>>>(t, ps.wide, bias, g.O, g.P, q0, nc,
                                                                                to_wide, total);
  CUDA_LAUNCH_CHECK();
}

// ---------------------------------------------------------------- forward

void conv2d_cuda(Tensor* y, const ExecCtx& c) {
  CudaState* st = cuda_state(c);
  ConvGeom g = conv_geom_fwd(y);
  if (y->numel() == 0) return;
  const float* x = (const float*)y->src[0]->data;
  const float* w = (const float*)y->src[1]->data;
  const float* bias = y->n_src > 2 ? (const float*)y->src[2]->data : nullptr;
  float* out = (float*)y->data;
  if (g.K == 0) {  // no input channels: an empty sum
    CUDA_CHECK(cudaMemsetAsync(out, 0, (size_t)y->numel() * sizeof(float), st->stream));
  } else if (g.direct) {  // Y_n [O, P] = W [O, K] * X_n [K, P] for every image
    rm_gemm(st, false, false, g.O, g.P, g.K, w, g.K, 0, x, g.P, g.K * g.P, 0.0f, out, g.P, g.O * g.P, g.N);
  } else {
    Passes ps = passes(c, g, "conv2d");
    for_passes(g, ps.plan, [&](int64_t q0, int64_t nc) {
      launch_im2col(st, g, ps, x, q0, nc);
      rm_gemm(st, false, false, g.O, nc, g.K, w, g.K, 0, ps.col, nc, 0, 0.0f, ps.wide, nc, 0, 1);
      launch_wide_copy(st, g, ps, out, bias, q0, nc, false);
    });
    return;  // bias added by the copy
  }
  if (bias) {
    int64_t total = y->numel();
    if (fits32(total))
      bias_add_kernel<int32_t><<<cu_blocks(total), CU_THREADS, 0, st->stream>>>(out, bias, (int32_t)g.O, (int32_t)g.P,
                                                                                (int32_t)total);
    else
      bias_add_kernel<int64_t><<<cu_blocks(total), CU_THREADS, 0, st->stream>>>(out, bias, g.O, g.P, total);
    CUDA_LAUNCH_CHECK();
  }
}

// ---------------------------------------------------------------- input gradient

void launch_col2im(CudaState* st, const ConvGeom& g, const Passes& ps, float* dx, int64_t nimg, int64_t ld, int64_t p0,
                   int64_t np, int64_t row0, int64_t nrows, int64_t fresh_row) {
  int64_t total = nimg * g.C * nrows * g.W;
  if (ps.small)
    col2im_gather_kernel<int32_t><<<cu_blocks(total), CU_THREADS, 0, st->stream>>>(
        dx, ps.col, conv_k(g), (int32_t)ld, (int32_t)p0, (int32_t)np, (int32_t)row0, (int32_t)nrows,
        (int32_t)fresh_row, (int32_t)total);
  else
    col2im_gather_kernel<int64_t><<<cu_blocks(total), CU_THREADS, 0, st->stream>>>(dx, ps.col, conv_k(g), ld, p0, np,
                                                                                    row0, nrows, fresh_row, total);
  CUDA_LAUNCH_CHECK();
}

void conv2d_bwd_data_cuda(Tensor* dx, const ExecCtx& c) {
  CudaState* st = cuda_state(c);
  ConvGeom g = conv_geom_bwd_data(dx);
  if (dx->numel() == 0) return;
  float* gy = (float*)dx->src[0]->data;
  const float* w = (const float*)dx->src[1]->data;
  float* out = (float*)dx->data;
  if (g.O == 0) {  // no output channels: an empty sum
    CUDA_CHECK(cudaMemsetAsync(out, 0, (size_t)dx->numel() * sizeof(float), st->stream));
    return;
  }
  if (g.direct) {  // dX_n [K, P] = W^T [K, O] * dY_n [O, P] for every image
    rm_gemm(st, true, false, g.K, g.P, g.O, w, g.K, 0, gy, g.P, g.O * g.P, 0.0f, out, g.P, g.K * g.P, g.N);
    return;
  }
  Passes ps = passes(c, g, "conv2d_bwd_data");
  int64_t done = 0;  // chunks of one image: rows [0, done) of its dx hold the sums of its chunks so far
  for_passes(g, ps.plan, [&](int64_t q0, int64_t nc) {
    launch_wide_copy(st, g, ps, gy, nullptr, q0, nc, true);
    rm_gemm(st, true, false, g.K, nc, g.O, w, g.K, 0, ps.wide, nc, 0, 0.0f, ps.col, nc, 0, 1);
    int64_t n = q0 / g.P, p0 = q0 - n * g.P;
    float* dxn = out + n * g.C * g.H * g.W;
    if (ps.plan.groups) {  // whole images: every element of them, fresh
      launch_col2im(st, g, ps, dxn, nc / g.P, nc, 0, g.P, 0, g.H, 0);
      return;
    }
    if (p0 == 0) done = 0;
    // input rows this chunk's output rows read: [oy0*sh - pt, oy1*sh - pt + kh - 1], clipped
    int64_t oy0 = p0 / g.Wo, oy1 = (p0 + nc - 1) / g.Wo;
    int64_t lo = std::max<int64_t>(0, oy0 * g.sh - g.pt), hi = std::min<int64_t>(g.H, oy1 * g.sh - g.pt + g.kh);
    bool last = p0 + nc >= g.P;
    int64_t a = std::min(lo, done), b = last ? g.H : std::max(hi, done);  // every row is visited, unvisited rows fresh
    if (b > a) launch_col2im(st, g, ps, dxn, 1, nc, p0, nc, a, b - a, done);
    done = std::max(done, b);
  });
}

// ---------------------------------------------------------------- weight gradient

const int64_t PARTS = 8;  // direct path: the CPU's partial sums

void conv2d_bwd_weight_cuda(Tensor* dw, const ExecCtx& c) {
  CudaState* st = cuda_state(c);
  ConvGeom g = conv_geom_bwd_weight(dw);
  if (dw->numel() == 0) return;
  const float* x = (const float*)dw->src[0]->data;
  float* gy = (float*)dw->src[1]->data;
  float* out = (float*)dw->data;
  if (g.N == 0) {  // no images: an empty sum
    CUDA_CHECK(cudaMemsetAsync(out, 0, (size_t)dw->numel() * sizeof(float), st->stream));
    return;
  }
  if (g.direct) {  // dW += dY_n [O, P] * X_n^T [P, K]; image n into part n % parts
    int64_t parts = std::min(PARTS, g.N), n_el = g.O * g.K;
    float* part = out;
    if (parts > 1) {
      size_t need = (size_t)parts * n_el * sizeof(float);
      if (!c.scratch || c.scratch_bytes < need)
        fail("conv2d_bwd_weight (cuda): scratch of %zu bytes, need %zu", c.scratch_bytes, need);
      part = (float*)c.scratch;
    }
    for (int64_t n0 = 0; n0 < g.N; n0 += parts) {
      int64_t cnt = std::min(parts, g.N - n0);
      rm_gemm(st, false, true, g.O, g.K, g.P, gy + n0 * g.O * g.P, g.P, g.O * g.P, x + n0 * g.K * g.P, g.P, g.K * g.P,
              n0 == 0 ? 0.0f : 1.0f, part, g.K, n_el, cnt);
    }
    if (parts > 1) {
      sum_parts_kernel<<<cu_blocks(n_el), CU_THREADS, 0, st->stream>>>(out, part, n_el, parts);
      CUDA_LAUNCH_CHECK();
    }
    return;
  }
  // dW = sum over the passes, in column order: dW (+)= dYw [O, nc] * col^T [nc, K]
  Passes ps = passes(c, g, "conv2d_bwd_weight");
  bool first = true;
  for_passes(g, ps.plan, [&](int64_t q0, int64_t nc) {
    launch_wide_copy(st, g, ps, gy, nullptr, q0, nc, true);
    launch_im2col(st, g, ps, x, q0, nc);
    rm_gemm(st, false, true, g.O, g.K, nc, ps.wide, nc, 0, ps.col, nc, 0, first ? 0.0f : 1.0f, out, g.K, 0, 1);
    first = false;
  });
}

}  // namespace

void register_conv_cuda() {
  OpDef d;
  d.kernel[BK_CUDA] = conv2d_cuda; op_register(OP_CONV2D, d);
  d.kernel[BK_CUDA] = conv2d_bwd_data_cuda; op_register(OP_CONV2D_BWD_DATA, d);
  d.kernel[BK_CUDA] = conv2d_bwd_weight_cuda; op_register(OP_CONV2D_BWD_WEIGHT, d);
}

}  // namespace nsvq
