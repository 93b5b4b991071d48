// ops/cpu/matmul.cpp — CPU kernels of matmul (through our packed SGEMM, engine/cpu/gemm.h) and
// softmax / log-softmax over contiguous rows.
#include <cmath>
#include "engine/cpu/gemm.h"
#include "ops/cpu/cpu_kernels.h"
#include "ops/elementwise_math.h"
#include "ops/ops_internal.h"

namespace nsvq {

static void matmul_cpu(Tensor* y, const ExecCtx& c) {
  bool ta = y->ip[0], tb = y->ip[1];
  int64_t M = y->ip[2], N = y->ip[3], K = y->ip[4], nb = y->ip[5];
  bool a_batched = y->ip[6], b_batched = y->ip[7];
  const float* A = tdata<float>(y->src[0]);
  const float* B = tdata<float>(y->src[1]);
  float* C = tdata<float>(y);
  int64_t lda = ta ? M : K, ldb = tb ? K : N;
  if (a_batched && !b_batched && !ta) {  // one tall GEMM: [nb*M, K] x [K, N]
    sgemm(false, tb, nb * M, N, K, 1.0f, A, lda, B, ldb, 0.0f, C, N, c.nthreads);
    return;
  }
  for (int64_t i = 0; i < nb; i++)
    sgemm(ta, tb, M, N, K, 1.0f, A + (a_batched ? i * M * K : 0), lda, B + (b_batched ? i * K * N : 0), ldb, 0.0f,
          C + i * M * N, N, c.nthreads);
}

// max, then exp(x - max) with a 16-lane sum (fixed order), then normalise or take the log
NSVQ_CLONES void softmax_row(float* __restrict y, const float* __restrict x, int64_t n, int is_log) {
  float mx = lane_max(x, n);
  for (int64_t i = 0; i < n; i++) y[i] = nsvq_expf(x[i] - mx);
  float s = lane_sum(y, n);
  if (is_log) {
    float ls = logf(s) + mx;
    for (int64_t i = 0; i < n; i++) y[i] = x[i] - ls;
  } else {
    float inv = 1.0f / s;
    for (int64_t i = 0; i < n; i++) y[i] *= inv;
  }
}

static void softmax_cpu(Tensor* y, const ExecCtx& c) {
  int64_t n = y->ne[y->ndim - 1], rows = n ? y->numel() / n : 0;
  const float* x = tdata<float>(y->src[0]);
  float* o = tdata<float>(y);
  int nt = rows * n < 16384 ? 1 : c.nthreads;
#pragma omp parallel for num_threads(nt) schedule(static)
  for (int64_t r = 0; r < rows; r++) softmax_row(o + r * n, x + r * n, n, y->ip[0]);
}

void register_matmul_cpu() {
  OpDef d;
  d.kernel[BK_CPU] = matmul_cpu; op_register(OP_MATMUL, d);
  d.kernel[BK_CPU] = softmax_cpu; op_register(OP_SOFTMAX, d);
}

}  // namespace nsvq
