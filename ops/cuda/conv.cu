// ops/cuda/conv.cu — CUDA kernels of conv2d (layout and semantics in ops/conv.cpp, ops/cpu/conv.cpp):
// im2col in bounded pixel chunks into ExecCtx::scratch + cuBLAS SGEMM (FP32 math mode, row-major
// through the operand swap of ops/cuda/matmul.cu); 1x1 stride-1 unpadded convolutions use the input
// directly (one strided-batched GEMM over the images).
//   forward:     Y_n[:, chunk]   = W [O, K] * col [K, chunk], then + bias (separate pass, as the CPU)
//   input grad:  dcol [K, chunk] = W^T * dY_n[:, chunk], then a col2im GATHER: one thread per input
//                element sums, in (i, j) order, the dcol entries of every kernel offset / output pixel
//                of the chunk that read it (no atomics); later chunks add onto earlier ones in order
//   weight grad: dW = sum over images, then chunks, in order, by cuBLAS beta = 1 accumulation;
//                direct path: the CPU's 8 partial sums (image n -> part n % 8, one batched GEMM per
//                group of 8 images) summed in part order by one thread per element
// K = C*kh*kw, col rows ordered (c, i, j) like the weight. The chunk (output pixels per im2col) is
// the CPU's single-thread chunk, so col needs K*chunk floats: at most what the CPU's scratch query
// returns (cpu_threads() * K*chunk), and chosen from the shapes alone. Every sum therefore runs in an
// order fixed by the shapes, and cuBLAS GEMMs of fixed shapes on one stream are run-to-run
// deterministic: results are bitwise repeatable.
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

// col[k, pp] (k = (c, i, j), pp in [0, np)) for output pixels [p0, p0 + np) of one image x [C, H, W]
template <class I>
__global__ void im2col_kernel(float* __restrict__ col, const float* __restrict__ x, ConvK g, I p0, I np, I total) {
  I H = (I)g.H, W = (I)g.W, kh = (I)g.kh, kw = (I)g.kw, Wo = (I)g.Wo;
  for (I e = (I)blockIdx.x * blockDim.x + threadIdx.x; e < total; e += (I)gridDim.x * blockDim.x) {
    I pp = e % np, k = e / np;
    I j = k % kw, t = k / kw;
    I i = t % kh, c = t / kh;
    I p = p0 + pp;
    I oy = p / Wo, ox = p - oy * Wo;
    I iy = oy * (I)g.sh - (I)g.pt + i, ix = ox * (I)g.sw - (I)g.pl + j;
    col[e] = (iy >= 0 && iy < H && ix >= 0 && ix < W) ? x[(c * H + iy) * W + ix] : 0.0f;
  }
}

// dx [C, H, W] of one image, rows [row0, row0 + nrows) of every channel: each element sums the
// dcol [K, np] entries (pixels [p0, p0 + np)) that im2col read from it, kernel offsets (i, j) in
// ascending order (the CPU's col2im order). Rows >= fresh_row start from 0, earlier rows add onto dx.
template <class I>
__global__ void col2im_gather_kernel(float* __restrict__ dx, const float* __restrict__ dcol, ConvK g, I p0, I np,
                                     I row0, I nrows, I fresh_row, I total) {
  I H = (I)g.H, W = (I)g.W, kh = (I)g.kh, kw = (I)g.kw, Ho = (I)g.Ho, Wo = (I)g.Wo, sh = (I)g.sh, sw = (I)g.sw;
  for (I e = (I)blockIdx.x * blockDim.x + threadIdx.x; e < total; e += (I)gridDim.x * blockDim.x) {
    I ix = e % W, t = e / W;
    I iy = row0 + t % nrows, c = t / nrows;
    I off = (c * H + iy) * W + ix;
    float acc = iy >= fresh_row ? 0.0f : dx[off];
    I ty = iy + (I)g.pt, tx = ix + (I)g.pl;  // >= 0
    const float* dc = dcol + c * kh * kw * np;
    for (I i = ty % sh; i < kh && i <= ty; i += sh) {  // oy * sh + i == ty
      I oy = (ty - i) / sh;
      if (oy >= Ho) continue;
      for (I j = tx % sw; j < kw && j <= tx; j += sw) {
        I ox = (tx - j) / sw;
        if (ox >= Wo) continue;
        I p = oy * Wo + ox - p0;
        if (p < 0 || p >= np) continue;
        acc += dc[(i * kw + j) * np + p];
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

// The col buffer: K*chunk floats at the start of the scratch (the CPU's query returns cpu_threads()
// times that, or more for the weight gradient).
float* col_buffer(const ExecCtx& c, const ConvGeom& g, const char* op) {
  size_t need = (size_t)g.K * g.chunk * sizeof(float);
  if (!c.scratch || c.scratch_bytes < need)
    fail("%s (cuda): scratch of %zu bytes, need %zu", op, c.scratch_bytes, need);
  return (float*)c.scratch;
}

void launch_im2col(CudaState* st, const ConvGeom& g, const float* xn, int64_t p0, int64_t np, float* col) {
  int64_t total = g.K * np;
  unsigned blocks = cu_blocks(total);
  if (fits32(total) && fits32(g.C * g.H * g.W))
    im2col_kernel<int32_t><<<blocks, CU_THREADS, 0, st->stream>>>(col, xn, conv_k(g), (int32_t)p0, (int32_t)np,
                                                                    (int32_t)total);
  else
    im2col_kernel<int64_t><<<blocks, CU_THREADS, 0, st->stream>>>(col, xn, conv_k(g), p0, np, total);
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
    float* col = col_buffer(c, g, "conv2d");
    for (int64_t n = 0; n < g.N; n++) {
      const float* xn = x + n * g.C * g.H * g.W;
      float* yn = out + n * g.O * g.P;
      for (int64_t p0 = 0; p0 < g.P; p0 += g.chunk) {
        int64_t np = std::min(g.chunk, g.P - p0);
        launch_im2col(st, g, xn, p0, np, col);
        rm_gemm(st, false, false, g.O, np, g.K, w, g.K, 0, col, np, 0, 0.0f, yn + p0, g.P, 0, 1);
      }
    }
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

void conv2d_bwd_data_cuda(Tensor* dx, const ExecCtx& c) {
  CudaState* st = cuda_state(c);
  ConvGeom g = conv_geom_bwd_data(dx);
  if (dx->numel() == 0) return;
  const float* gy = (const float*)dx->src[0]->data;
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
  float* col = col_buffer(c, g, "conv2d_bwd_data");
  bool small = fits32(g.K * g.chunk) && fits32(g.C * g.H * g.W);
  for (int64_t n = 0; n < g.N; n++) {
    const float* gyn = gy + n * g.O * g.P;
    float* dxn = out + n * g.C * g.H * g.W;
    int64_t done = 0;  // rows [0, done) of dxn hold the sums of the chunks so far, later rows nothing yet
    for (int64_t p0 = 0; p0 < g.P; p0 += g.chunk) {
      int64_t np = std::min(g.chunk, g.P - p0);
      rm_gemm(st, true, false, g.K, np, g.O, w, g.K, 0, gyn + p0, g.P, 0, 0.0f, col, np, 0, 1);
      // input rows this chunk's output rows read: [oy0*sh - pt, oy1*sh - pt + kh - 1], clipped
      int64_t oy0 = p0 / g.Wo, oy1 = (p0 + np - 1) / g.Wo;
      int64_t lo = std::max<int64_t>(0, oy0 * g.sh - g.pt), hi = std::min<int64_t>(g.H, oy1 * g.sh - g.pt + g.kh);
      bool last = p0 + np >= g.P;
      int64_t a = std::min(lo, done), b = last ? g.H : std::max(hi, done);  // every row is visited, unvisited rows fresh
      if (b > a) {
        int64_t total = g.C * (b - a) * g.W;
        unsigned blocks = cu_blocks(total);
        if (small && fits32(total))
          col2im_gather_kernel<int32_t><<<blocks, CU_THREADS, 0, st->stream>>>(
              dxn, col, conv_k(g), (int32_t)p0, (int32_t)np, (int32_t)a, (int32_t)(b - a), (int32_t)done, (int32_t)total);
        else
          col2im_gather_kernel<int64_t><<<blocks, CU_THREADS, 0, st->stream>>>(dxn, col, conv_k(g), p0, np, a, b - a,
                                                                                done, total);
        CUDA_LAUNCH_CHECK();
      }
      done = std::max(done, b);
    }
  }
}

// ---------------------------------------------------------------- weight gradient

const int64_t PARTS = 8;  // direct path: the CPU's partial sums

void conv2d_bwd_weight_cuda(Tensor* dw, const ExecCtx& c) {
  CudaState* st = cuda_state(c);
  ConvGeom g = conv_geom_bwd_weight(dw);
  if (dw->numel() == 0) return;
  const float* x = (const float*)dw->src[0]->data;
  const float* gy = (const float*)dw->src[1]->data;
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
  // dW = sum over images, then pixel chunks, in order: dW (+)= dY_n[:, chunk] * col^T
  float* col = col_buffer(c, g, "conv2d_bwd_weight");
  bool first = true;
  for (int64_t n = 0; n < g.N; n++) {
    const float* xn = x + n * g.C * g.H * g.W;
    const float* gyn = gy + n * g.O * g.P;
    for (int64_t p0 = 0; p0 < g.P; p0 += g.chunk) {
      int64_t np = std::min(g.chunk, g.P - p0);
      launch_im2col(st, g, xn, p0, np, col);
      rm_gemm(st, false, true, g.O, g.K, np, gyn + p0, g.P, 0, col, np, 0, first ? 0.0f : 1.0f, out, g.K, 0, 1);
      first = false;
    }
  }
}

}  // namespace

void register_conv_cuda() {
  OpDef d;
  d.kernel[BK_CUDA] = conv2d_cuda; op_register(OP_CONV2D, d);
  d.kernel[BK_CUDA] = conv2d_bwd_data_cuda; op_register(OP_CONV2D_BWD_DATA, d);
  d.kernel[BK_CUDA] = conv2d_bwd_weight_cuda; op_register(OP_CONV2D_BWD_WEIGHT, d);
}

}  // namespace nsvq
