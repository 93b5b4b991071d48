// ops/cuda/shape.cu — CUDA kernels of contiguous, concat and pad: strided N-d copies (CuNd, dims
// merged as on the CPU; a plain cudaMemcpyAsync when both sides are contiguous; 32x32 shared-memory
// tiles for transposing copies), a 32/16-bit fill, and the nearest x2 upsampling and its 2x2 block-sum
// gradient (the same expression order as the CPU kernel: bitwise equal results).
// Every output element is written by exactly one thread: results are exact copies.
#include <cstring>
#include "engine/cuda/cuda_common.cuh"
#include "ops/ops_internal.h"

namespace nsvq {

// dst[off0(e)] = src[off1(e)] for e in [0, n); T is the element's bit pattern (uint32_t / uint16_t)
template <class T, class I>
__global__ void copy_strided_kernel(T* __restrict__ dst, const T* __restrict__ src, CuNd<2> it) {
  I n = (I)it.n;
  for (I e = (I)blockIdx.x * blockDim.x + threadIdx.x; e < n; e += (I)gridDim.x * blockDim.x) {
    I off[2];
    cu_nd_offsets<2, I>(it, e, off);
    dst[off[0]] = src[off[1]];
  }
}

// one merged dim: plain strided loop (covers "contiguous except for one stride")
template <class T>
__global__ void copy_1d_kernel(T* __restrict__ dst, const T* __restrict__ src, int64_t n, int64_t sd, int64_t ss) {
  for (int64_t e = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; e < n; e += (int64_t)gridDim.x * blockDim.x)
    dst[e * sd] = src[e * ss];
}

template <class T>
__global__ void fill_kernel(T* __restrict__ dst, int64_t n, T bits) {
  for (int64_t e = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; e < n; e += (int64_t)gridDim.x * blockDim.x)
    dst[e] = bits;
}

// Transposing copies (the NCHW <-> NHWC and matrix transposes): dst is contiguous along its last
// merged dim L and src along another dim k. Each block moves 32x32 tiles of (k, L) through shared
// memory so that both the reads (along k) and the writes (along L) are coalesced. The block's
// tile index w = (o, tile_k, tile_L), o running over the remaining dims.
template <class T>
__global__ void copy_transpose_kernel(T* __restrict__ dst, const T* __restrict__ src, CuNd<2> it, int k, int64_t outer) {
  __shared__ T tile[32][33];
  int L = it.ndim - 1;
  int64_t nk = it.ne[k], nl = it.ne[L];
  int64_t tk = (nk + 31) / 32, tl = (nl + 31) / 32;
  int64_t dk = it.st[0][k], sl = it.st[1][L];
  int tx = threadIdx.x, ty = threadIdx.y;  // block 32 x 8
  for (int64_t w = blockIdx.x; w < outer * tk * tl; w += gridDim.x) {  // uniform per block
    int64_t o = w / (tk * tl), t = w % (tk * tl);
    int64_t i0 = (t / tl) * 32, j0 = (t % tl) * 32;
    int64_t od = 0, os = 0, r = o;
    for (int q = L - 1; q >= 0; q--) {
      if (q == k) continue;
      int64_t c = r % it.ne[q];
      r /= it.ne[q];
      od += c * it.st[0][q];
      os += c * it.st[1][q];
    }
    __syncthreads();  // the previous tile has been written out
    for (int rr = ty; rr < 32; rr += 8) {  // read: i = i0 + tx runs along src's unit stride
      int64_t i = i0 + tx, j = j0 + rr;
      if (i < nk && j < nl) tile[rr][tx] = src[os + i + j * sl];
    }
    __syncthreads();
    for (int rr = ty; rr < 32; rr += 8) {  // write: j = j0 + tx runs along dst's unit stride
      int64_t i = i0 + rr, j = j0 + tx;
      if (i < nk && j < nl) dst[od + i * dk + j] = tile[tx][rr];
    }
  }
}

// The CPU's copy_transposed test: dst unit stride on L, src not, src unit stride on some k with
// extent >= 8 (the last such). Returns k or -1.
static int transpose_dim(const CuNd<2>& it) {
  int L = it.ndim - 1, k = -1;
  if (it.st[0][L] != 1 || it.st[1][L] == 1 || it.ne[L] < 8) return -1;
  for (int q = 0; q < L; q++)
    if (it.st[1][q] == 1 && it.ne[q] >= 8) k = q;
  return k;
}

template <class T>
static void copy_strided_t(CudaState* st, Tensor* dst, const Tensor* src) {
  const Tensor* ts[2] = {dst, src};
  CuNd<2> it = cu_nd_make<2>(ts);
  if (it.n == 0) return;
  T* d = (T*)dst->data;
  const T* s = (const T*)src->data;
  if (it.ndim == 1) {
    if (it.st[0][0] == 1 && it.st[1][0] == 1) {
      CUDA_CHECK(cudaMemcpyAsync(d, s, (size_t)it.n * sizeof(T), cudaMemcpyDeviceToDevice, st->stream));
      return;
    }
    copy_1d_kernel<T><<<cu_blocks(it.n), CU_THREADS, 0, st->stream>>>(d, s, it.n, it.st[0][0], it.st[1][0]);
  } else if (int k = transpose_dim(it); k >= 0) {
    int L = it.ndim - 1;
    int64_t outer = it.n / (it.ne[k] * it.ne[L]);
    int64_t tiles = outer * ((it.ne[k] + 31) / 32) * ((it.ne[L] + 31) / 32);
    copy_transpose_kernel<T><<<cu_blocks(tiles, 1), dim3(32, 8), 0, st->stream>>>(d, s, it, k, outer);
  } else if (cu_nd_fits32(it)) {
    copy_strided_kernel<T, int32_t><<<cu_blocks(it.n), CU_THREADS, 0, st->stream>>>(d, s, it);
  } else {
    copy_strided_kernel<T, int64_t><<<cu_blocks(it.n), CU_THREADS, 0, st->stream>>>(d, s, it);
  }
  CUDA_LAUNCH_CHECK();
}

// Copies src (any strides) into dst (any strides) of the same shape.
static void copy_strided(CudaState* st, Tensor* dst, const Tensor* src) {
  size_t es = dst->elsize();
  if (es != src->elsize()) fail("copy: %s and %s differ in element size", dst->desc().c_str(), src->desc().c_str());
  if (es == 4) copy_strided_t<uint32_t>(st, dst, src);
  else if (es == 2) copy_strided_t<uint16_t>(st, dst, src);
  else fail("copy: unsupported element size %zu of %s", es, dst->desc().c_str());
}

static void contiguous_cuda(Tensor* y, const ExecCtx& c) { copy_strided(cuda_state(c), y, y->src[0]); }

// A temporary view descriptor of region [lo, lo+n) of y along axis ax (as on the CPU).
static Tensor region(const Tensor* y, int ax, int64_t lo, int64_t n) {
  Tensor r = *y;
  r.ne[ax] = n;
  r.data = (char*)y->data + lo * y->nb[ax] * (int64_t)y->elsize();
  return r;
}

static void concat_cuda(Tensor* y, const ExecCtx& c) {
  CudaState* st = cuda_state(c);
  int ax = y->ip[0];
  int64_t off = 0;
  for (int i = 0; i < y->n_src; i++) {
    Tensor r = region(y, ax, off, y->src[i]->ne[ax]);
    copy_strided(st, &r, y->src[i]);
    off += y->src[i]->ne[ax];
  }
}

static void pad_cuda(Tensor* y, const ExecCtx& c) {
  CudaState* st = cuda_state(c);
  int64_t n = y->numel();
  if (n == 0) return;
  // fill with the pad value (i32 tensors: the value converted to an integer, as on the CPU)
  if (y->elsize() == 4) {
    uint32_t bits;
    if (y->dtype == DType::i32) bits = (uint32_t)(int32_t)y->fp[0];
    else std::memcpy(&bits, &y->fp[0], 4);
    fill_kernel<uint32_t><<<cu_blocks(n), CU_THREADS, 0, st->stream>>>((uint32_t*)y->data, n, bits);
  } else if (y->elsize() == 2) {
    // 16-bit float types: pad value 0 is all-zero bits; other values are not supported there
    if (y->fp[0] != 0.0f) fail("pad: non-zero pad value for %s is not supported on cuda", y->desc().c_str());
    fill_kernel<uint16_t><<<cu_blocks(n), CU_THREADS, 0, st->stream>>>((uint16_t*)y->data, n, (uint16_t)0);
  } else {
    fail("pad: unsupported element size of %s", y->desc().c_str());
  }
  CUDA_LAUNCH_CHECK();
  // then the source into the interior region
  Tensor r = *y;
  for (int d = 0; d < y->ndim; d++) {
    r.ne[d] = y->src[0]->ne[d];
    r.data = (char*)r.data + y->ip[d] * y->nb[d] * (int64_t)y->elsize();
  }
  copy_strided(st, &r, y->src[0]);
}

__global__ void upsample2x_kernel(float* __restrict__ y, const float* __restrict__ x, int64_t n, int64_t W) {
  // y element e = ((r * 2 + a) * 2W + xo) for input row r: reads x[r * W + xo / 2]
  for (int64_t e = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; e < n; e += (int64_t)gridDim.x * blockDim.x) {
    const int64_t xo = e % (2 * W), r = e / (4 * W);
    y[e] = x[r * W + xo / 2];
  }
}
__global__ void upsample2x_bwd_kernel(float* __restrict__ dx, const float* __restrict__ gy, int64_t n, int64_t W) {
  for (int64_t e = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; e < n; e += (int64_t)gridDim.x * blockDim.x) {
    const int64_t j = e % W, r = e / W;
    const float* r0 = gy + r * 4 * W + 2 * j;
    const float* r1 = r0 + 2 * W;
    dx[e] = __fadd_rn(__fadd_rn(r0[0], r0[1]), __fadd_rn(r1[0], r1[1]));
  }
}
static void upsample2x_cuda(Tensor* y, const ExecCtx& c) {
  CudaState* st = cuda_state(c);
  const int64_t n = y->numel();
  if (n == 0) return;
  upsample2x_kernel<<<cu_blocks(n), CU_THREADS, 0, st->stream>>>((float*)y->data, (const float*)y->src[0]->data, n,
                                                                  y->src[0]->ne[3]);
  CUDA_LAUNCH_CHECK();
}
static void upsample2x_bwd_cuda(Tensor* dx, const ExecCtx& c) {
  CudaState* st = cuda_state(c);
  const int64_t n = dx->numel();
  if (n == 0) return;
  upsample2x_bwd_kernel<<<cu_blocks(n), CU_THREADS, 0, st->stream>>>((float*)dx->data, (const float*)dx->src[0]->data, n,
                                                                      dx->ne[3]);
  CUDA_LAUNCH_CHECK();
}

void register_shape_cuda() {
  OpDef d;
  d.kernel[BK_CUDA] = contiguous_cuda; op_register(OP_CONTIGUOUS, d);
  d.kernel[BK_CUDA] = concat_cuda; op_register(OP_CONCAT, d);
  d.kernel[BK_CUDA] = pad_cuda; op_register(OP_PAD, d);
  d.kernel[BK_CUDA] = upsample2x_cuda; op_register(OP_UPSAMPLE2X, d);
  d.kernel[BK_CUDA] = upsample2x_bwd_cuda; op_register(OP_UPSAMPLE2X_BWD, d);
}

}  // namespace nsvq
