// ops/cuda/reduce.cu — CUDA kernels of reduce (x viewed as [A, L, B] -> y[a, b] = R_l x[a, l, b])
// and argmax/argmin along L. No atomics anywhere: every output is produced by one thread group
// whose summation order is fixed by the shapes alone, so results are bitwise reproducible.
//
// B == 1 (reduced axes innermost, rows of L contiguous):
//   L <= RCH: one group per row (a warp for short rows, a 256-thread block for long ones); each
//   thread folds x[t], x[t+G], ... in order, then a fixed shuffle tree combines the lanes.
//   L >  RCH: two passes through ExecCtx::scratch (the CPU's reduce_scratch gives A*ceil(L/8192)
//   floats): pass 1 reduces each 8192-element chunk to a partial, pass 2 reduces each row's
//   partials with the same row kernel (sum of squares: partials are plain-summed).
// B > 1 (and B == 1 with L <= 16): one block per tile of TX (<= 32) consecutive outputs; thread
//   (tx, ty) folds l = ty, ty+TY, ... of output tx (sums in double, as the CPU does for B > 1),
//   then a fixed tree over ty.
//   No scratch exists for this layout (reduce_scratch gives 0), so L is never split across blocks:
//   few outputs with a very long L run on few SMs (correct, but slower than a split would be).
#include <cmath>
#include "engine/cuda/cuda_common.cuh"
#include "ops/elementwise_math.h"  // kind_dispatch
#include "ops/ops_internal.h"

namespace nsvq {

static const int64_t RCH = 8192;  // chunk length of the two-pass path (the CPU's RCH)

template <int K> __device__ __forceinline__ float cu_red_init() {
  return K == RED_MAX ? -INFINITY : K == RED_MIN ? INFINITY : 0.0f;
}
template <int K, class T> __device__ __forceinline__ T cu_red_step(T acc, float v) {
  if constexpr (K == RED_MAX) return v > acc ? (T)v : acc;
  else if constexpr (K == RED_MIN) return v < acc ? (T)v : acc;
  else if constexpr (K == RED_SUMSQ) return acc + (T)v * (T)v;
  else return acc + (T)v;
}
template <int K> struct CuRedOp {
  template <class T> __device__ __forceinline__ T operator()(T a, T b) const {
    if constexpr (K == RED_MAX) return b > a ? b : a;
    else if constexpr (K == RED_MIN) return b < a ? b : a;
    else return a + b;
  }
};

// Work item w = (row a, chunk ch) of nch chunks per row: reduces x[a*L + ch*chunk, ... + len) and
// writes out[w] = result * post. G threads per item: 32 (a warp; 8 items per block) or 256.
template <int K, int G>
__global__ void reduce_rows_kernel(const float* __restrict__ x, float* __restrict__ out, int64_t items, int64_t L,
                                   int64_t chunk, int64_t nch, float post) {
  constexpr int PER_BLOCK = G == 32 ? CU_THREADS / 32 : 1;
  int t = G == 32 ? (threadIdx.x & 31) : threadIdx.x;
  int64_t first = (int64_t)blockIdx.x * PER_BLOCK + (G == 32 ? threadIdx.x / 32 : 0);
  for (int64_t w = first; w < items; w += (int64_t)gridDim.x * PER_BLOCK) {  // uniform per group
    int64_t a = w / nch, ch = w % nch;
    int64_t s = ch * chunk, len = L - s < chunk ? L - s : chunk;
    const float* p = x + a * L + s;
    float acc = cu_red_init<K>();
    for (int64_t i = t; i < len; i += G) acc = cu_red_step<K>(acc, p[i]);
    acc = group_allreduce<G>(acc, CuRedOp<K>());
    if (t == 0) out[w] = acc * post;
  }
}

template <int K>
static void launch_rows(CudaState* st, const float* x, float* out, int64_t A, int64_t L, int64_t chunk, int64_t nch,
                        float post) {
  int64_t items = A * nch;
  if (items == 0) return;
  if (chunk <= 512)
    reduce_rows_kernel<K, 32><<<cu_blocks(items, CU_THREADS / 32), CU_THREADS, 0, st->stream>>>(x, out, items, L, chunk, nch, post);
  else
    reduce_rows_kernel<K, CU_THREADS><<<cu_blocks(items, 1), CU_THREADS, 0, st->stream>>>(x, out, items, L, chunk, nch, post);
  CUDA_LAUNCH_CHECK();
}

// B > 1: tile of TX consecutive outputs o = a*B + b (TX = blockDim.x), TY = blockDim.y threads
// along L per output; partials in dynamic shared memory [TY][TX], combined by a fixed tree over ty.
template <int K, class Acc>
__global__ void reduce_cols_kernel(const float* __restrict__ x, float* __restrict__ out, int64_t A, int64_t L,
                                   int64_t B, float post) {
  extern __shared__ unsigned char cols_smem[];
  Acc* sh = (Acc*)cols_smem;
  int tx = threadIdx.x, ty = threadIdx.y, TX = blockDim.x, TY = blockDim.y;
  int64_t nout = A * B, tiles = (nout + TX - 1) / TX;
  for (int64_t tile = blockIdx.x; tile < tiles; tile += gridDim.x) {  // uniform per block
    int64_t o = tile * TX + tx;
    Acc acc = (Acc)cu_red_init<K>();
    if (o < nout) {
      int64_t a = o / B, b = o % B;
      const float* p = x + a * L * B + b;
      for (int64_t l = ty; l < L; l += TY) acc = cu_red_step<K>(acc, p[l * B]);
    }
    sh[ty * TX + tx] = acc;
    __syncthreads();
    for (int s = TY / 2; s > 0; s >>= 1) {  // TY is a power of two
      if (ty < s) sh[ty * TX + tx] = CuRedOp<K>()(sh[ty * TX + tx], sh[(ty + s) * TX + tx]);
      __syncthreads();
    }
    if (ty == 0 && o < nout) out[o] = (float)sh[tx] * post;
    __syncthreads();
  }
}

static int64_t pow2_ceil(int64_t v, int64_t cap) {
  int64_t p = 1;
  while (p < cap && p < v) p *= 2;
  return p;
}

// Block shape of the column kernels: TX outputs (a power of two up to 32) by TY threads along L;
// few outputs get a bigger block so that a long L still has many threads.
static dim3 cols_block(int64_t nout, int64_t L, int sm_count) {
  int64_t tx = pow2_ceil(nout, 32);
  int64_t tiles = (nout + tx - 1) / tx;
  int64_t threads = tiles < 2 * (int64_t)sm_count ? 1024 : 256;
  int64_t ty = pow2_ceil(L, threads / tx);
  return dim3((unsigned)tx, (unsigned)ty);
}

static void reduce_cuda(Tensor* y, const ExecCtx& c) {
  CudaState* st = cuda_state(c);
  int64_t A = y->ip[1], L = y->ip[2], B = y->ip[3];
  const float* x = (const float*)y->src[0]->data;
  float* out = (float*)y->data;
  if (A * B == 0) return;
  bool found = false;
  kind_dispatch<RED_COUNT>(y->ip[0], [&](auto k) {
    constexpr int K0 = decltype(k)::value;
    constexpr int K = K0 == RED_MEAN ? RED_SUM : K0;
    constexpr int KC = (K == RED_SUMSQ) ? RED_SUM : K;  // how partials combine
    const float post = K0 == RED_MEAN ? 1.0f / (float)L : 1.0f;
    found = true;
    if (B == 1 && L > 16) {
      int64_t nch = (L + RCH - 1) / RCH;
      if (nch <= 1) {
        launch_rows<K>(st, x, out, A, L, L > 0 ? L : 1, 1, post);
        return;
      }
      // two passes; the chunk grows if the scratch (sized by the CPU's rule) were ever smaller
      int64_t chunk = RCH;
      int64_t cap = (int64_t)(c.scratch_bytes / sizeof(float));
      if (!c.scratch || cap < A) fail("reduce: %s needs kernel scratch on cuda", y->desc().c_str());
      while (A * ((L + chunk - 1) / chunk) > cap) chunk *= 2;
      nch = (L + chunk - 1) / chunk;
      float* part = (float*)c.scratch;
      launch_rows<K>(st, x, part, A, L, chunk, nch, 1.0f);
      launch_rows<KC>(st, part, out, A, nch, nch, 1, post);
      return;
    }
    // B > 1, or short rows (B == 1, L <= 16: one thread column per row instead of a mostly idle warp)
    dim3 block = cols_block(A * B, L, st->sm_count);
    unsigned int nb = cu_blocks((A * B + block.x - 1) / block.x, 1);
    size_t smem = (size_t)block.x * block.y;
    if constexpr (K == RED_MAX || K == RED_MIN)
      reduce_cols_kernel<K, float><<<nb, block, smem * sizeof(float), st->stream>>>(x, out, A, L, B, post);
    else
      reduce_cols_kernel<K, double><<<nb, block, smem * sizeof(double), st->stream>>>(x, out, A, L, B, post);
    CUDA_LAUNCH_CHECK();
  });
  if (!found) fail("reduce: unknown kind %d", y->ip[0]);
}

// ---------------------------------------------------------------- argmax / argmin

// Same tiling as reduce_cols_kernel (B == 1 is one output per row, so A == 1 puts the whole block
// on the one row). CPU semantics: best = x[0]; l wins when x[l] > best (strict: first index on
// ties); NaN never wins, and a NaN at l = 0 makes the answer 0. Candidates combine by value, then
// by lower index, which gives exactly that answer whatever the split of L over threads.
template <bool IS_MIN>
__global__ void arg_reduce_kernel(const float* __restrict__ x, int32_t* __restrict__ out, int64_t A, int64_t L,
                                  int64_t B) {
  extern __shared__ unsigned char arg_smem[];
  int tx = threadIdx.x, ty = threadIdx.y, TX = blockDim.x, TY = blockDim.y;
  float* sv = (float*)arg_smem;
  int32_t* si = (int32_t*)(sv + TX * TY);
  int64_t nout = A * B, tiles = (nout + TX - 1) / TX;
  for (int64_t tile = blockIdx.x; tile < tiles; tile += gridDim.x) {
    int64_t o = tile * TX + tx;
    float best = 0.0f;
    int32_t bi = -1;  // -1: no candidate yet
    const float* p = x;
    if (o < nout) {
      int64_t a = o / B, b = o % B;
      p = x + a * L * B + b;
      for (int64_t l = ty; l < L; l += TY) {
        float v = p[l * B];
        if (v != v) continue;  // NaN
        if (bi < 0 || (IS_MIN ? v < best : v > best)) {
          best = v;
          bi = (int32_t)l;
        }
      }
    }
    int me = ty * TX + tx;
    sv[me] = best;
    si[me] = bi;
    __syncthreads();
    for (int s = TY / 2; s > 0; s >>= 1) {
      if (ty < s) {
        int other = (ty + s) * TX + tx;
        float v1 = sv[me], v2 = sv[other];
        int32_t i1 = si[me], i2 = si[other];
        bool take = i2 >= 0 && (i1 < 0 || (IS_MIN ? v2 < v1 : v2 > v1) || (v2 == v1 && i2 < i1));
        if (take) {
          sv[me] = v2;
          si[me] = i2;
        }
      }
      __syncthreads();
    }
    if (ty == 0 && o < nout) {
      float x0 = p[0];
      out[o] = (x0 != x0 || si[tx] < 0) ? 0 : si[tx];
    }
    __syncthreads();
  }
}

static void arg_reduce_cuda(Tensor* y, const ExecCtx& c) {
  CudaState* st = cuda_state(c);
  int64_t A = y->ip[1], L = y->ip[2], B = y->ip[3];
  if (A * B == 0) return;
  if (L < 1) fail("%s: empty axis", y->ip[0] ? "argmin" : "argmax");
  const float* x = (const float*)y->src[0]->data;
  int32_t* out = (int32_t*)y->data;
  dim3 block = cols_block(A * B, L, st->sm_count);
  unsigned int nb = cu_blocks((A * B + block.x - 1) / block.x, 1);
  size_t smem = (size_t)block.x * block.y * (sizeof(float) + sizeof(int32_t));
  if (y->ip[0]) arg_reduce_kernel<true><<<nb, block, smem, st->stream>>>(x, out, A, L, B);
  else arg_reduce_kernel<false><<<nb, block, smem, st->stream>>>(x, out, A, L, B);
  CUDA_LAUNCH_CHECK();
}

void register_reduce_cuda() {
  OpDef d;
  d.kernel[BK_CUDA] = reduce_cuda;
  op_register(OP_REDUCE, d);
  OpDef a;
  a.kernel[BK_CUDA] = arg_reduce_cuda;
  op_register(OP_ARG_REDUCE, a);
}

}  // namespace nsvq
