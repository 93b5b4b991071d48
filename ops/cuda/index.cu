// ops/cuda/index.cu — CUDA kernels of get_rows and scatter_add_rows.
//
// Out-of-range indices are not clamped: the kernel skips them and reports the first bad position
// into an error slot (engine/cuda/cuda_common.cuh); the backend throws the CPU's message
// ("get_rows: index V at position P out of range [0, R)") at the next sync.
//
// scatter_add_rows is deterministic without atomics: out is zeroed, then warp (owner, column tile)
// owns the output rows r with r % W == owner for 32 columns. Every warp of a block scans the same
// tiles of indices (staged in shared memory) in index order and adds the rows it owns, so each
// output element receives its contributions in increasing i — exactly the CPU's order and rounding.
#include "engine/cuda/cuda_common.cuh"
#include "ops/ops_internal.h"

namespace nsvq {

// y[i, j] = table[idx[i], j]; T is the element's bit pattern (4- or 2-byte dtypes)
template <class T>
__global__ void get_rows_kernel(T* __restrict__ y, const T* __restrict__ tab, const int32_t* __restrict__ idx,
                                int64_t n, int64_t R, int64_t C, unsigned long long* err) {
  int64_t total = n * C;
  for (int64_t e = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; e < total; e += (int64_t)gridDim.x * blockDim.x) {
    int64_t i = e / C, j = e - i * C;
    int32_t r = idx[i];
    if (r < 0 || r >= R) {
      if (j == 0) cuda_report_bad_index(err, i, r);
      continue;
    }
    y[e] = tab[(int64_t)r * C + j];
  }
}

// indices only (C == 0: nothing to copy, but bad indices are still an error)
__global__ void check_indices_kernel(const int32_t* __restrict__ idx, int64_t n, int64_t R, unsigned long long* err) {
  for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x)
    if (idx[i] < 0 || idx[i] >= R) cuda_report_bad_index(err, i, idx[i]);
}

static void get_rows_cuda(Tensor* y, const ExecCtx& c) {
  CudaState* st = cuda_state(c);
  const Tensor* tab = y->src[0];
  int64_t R = tab->ne[0], C = tab->ne[1], n = y->src[1]->numel();
  if (n == 0) return;
  const int32_t* idx = (const int32_t*)y->src[1]->data;
  unsigned long long* err = cuda_err_slot(st, "get_rows", "index", "position", R);
  if (C == 0) {
    check_indices_kernel<<<cu_blocks(n), CU_THREADS, 0, st->stream>>>(idx, n, R, err);
  } else if (tab->elsize() == 4) {
    get_rows_kernel<uint32_t><<<cu_blocks(n * C), CU_THREADS, 0, st->stream>>>((uint32_t*)y->data,
                                                                                (const uint32_t*)tab->data, idx, n, R, C, err);
  } else if (tab->elsize() == 2) {
    get_rows_kernel<uint16_t><<<cu_blocks(n * C), CU_THREADS, 0, st->stream>>>((uint16_t*)y->data,
                                                                                (const uint16_t*)tab->data, idx, n, R, C, err);
  } else {
    fail("get_rows: unsupported element size of %s", tab->desc().c_str());
  }
  CUDA_LAUNCH_CHECK();
}

static const int SC_TILE = 2048;  // indices staged in shared memory per step
static const int SC_WARPS = CU_THREADS / 32;

// Block b covers owners [ob*8, ob*8+8) (one per warp) and column tile ct; see the file comment.
__global__ void scatter_add_rows_kernel(float* __restrict__ out, const float* __restrict__ src,
                                        const int32_t* __restrict__ idx, int64_t n, int64_t R, int64_t C, int64_t W,
                                        int64_t ctiles, unsigned long long* err) {
  __shared__ int32_t sidx[SC_TILE];
  int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  int64_t oblocks = (W + SC_WARPS - 1) / SC_WARPS;
  for (int64_t b = blockIdx.x; b < oblocks * ctiles; b += gridDim.x) {  // uniform per block
    uint32_t owner = (uint32_t)((b % oblocks) * SC_WARPS + warp);
    int64_t col = (b / oblocks) * 32 + lane;
    bool col_ok = col < C;
    bool reporter = b == 0 && warp == 0;
    // running sum of the current output row in a register: loaded when the row changes, stored
    // when it changes again; the sequence of float additions is the same as adding in memory
    int64_t cur = -1;
    float acc = 0.0f;
    for (int64_t base = 0; base < n; base += SC_TILE) {
      int cnt = (int)(n - base < SC_TILE ? n - base : SC_TILE);
      __syncthreads();  // the previous tile is no longer read
      for (int k = threadIdx.x; k < cnt; k += blockDim.x) sidx[k] = idx[base + k];
      __syncthreads();
      for (int k0 = 0; k0 < cnt; k0 += 32) {
        int k = k0 + lane;
        bool in = k < cnt;
        int32_t r = in ? sidx[k] : 0;
        bool valid = in && r >= 0 && r < R;
        if (reporter && in && !valid) cuda_report_bad_index(err, base + k, r);
        unsigned int mine = __ballot_sync(0xffffffffu, valid && (uint32_t)r % (uint32_t)W == owner);
        while (mine) {  // lanes in increasing order = indices in increasing order
          int l = __ffs(mine) - 1;
          mine &= mine - 1;
          int64_t rr = __shfl_sync(0xffffffffu, r, l);
          if (rr != cur) {  // warp-uniform
            if (cur >= 0 && col_ok) out[cur * C + col] = acc;
            cur = rr;
            acc = col_ok ? out[rr * C + col] : 0.0f;
          }
          if (col_ok) acc += src[(base + k0 + l) * C + col];
        }
      }
    }
    if (cur >= 0 && col_ok) out[cur * C + col] = acc;
  }
}

static void scatter_add_rows_cuda(Tensor* y, const ExecCtx& c) {
  CudaState* st = cuda_state(c);
  int64_t R = y->ne[0], C = y->ne[1], n = y->src[1]->numel();
  const int32_t* idx = (const int32_t*)y->src[1]->data;
  float* out = (float*)y->data;
  if (R * C > 0) CUDA_CHECK(cudaMemsetAsync(out, 0, (size_t)(R * C) * sizeof(float), st->stream));
  if (n == 0) return;
  unsigned long long* err = cuda_err_slot(st, "scatter_add_rows", "index", "position", R);
  if (C == 0 || R == 0) {
    check_indices_kernel<<<cu_blocks(n), CU_THREADS, 0, st->stream>>>(idx, n, R, err);
    CUDA_LAUNCH_CHECK();
    return;
  }
  if (R > INT32_MAX) fail("scatter_add_rows: %lld rows is too many for cuda", (long long)R);
  // W owner classes per column tile: enough warps to fill the GPU (about 16 per SM), no more
  // owners than rows (rounded to whole blocks).
  int64_t ctiles = (C + 31) / 32;
  int64_t want = (int64_t)st->sm_count * 16;
  int64_t W = (want + ctiles - 1) / ctiles;
  if (W > R) W = R;
  if (W < 1) W = 1;
  int64_t blocks = ((W + SC_WARPS - 1) / SC_WARPS) * ctiles;
  scatter_add_rows_kernel<<<cu_blocks(blocks, 1), CU_THREADS, 0, st->stream>>>(out, (const float*)y->src[0]->data, idx,
                                                                                 n, R, C, W, ctiles, err);
  CUDA_LAUNCH_CHECK();
}

void register_index_cuda() {
  OpDef d;
  d.kernel[BK_CUDA] = get_rows_cuda; op_register(OP_GET_ROWS, d);
  d.kernel[BK_CUDA] = scatter_add_rows_cuda; op_register(OP_SCATTER_ADD_ROWS, d);
}

}  // namespace nsvq
