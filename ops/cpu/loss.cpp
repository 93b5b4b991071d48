// ops/cpu/loss.cpp — CPU kernels of the L1/MSE losses and their gradient, and of cross-entropy
// and its gradient. Sums run over fixed chunks combined in order (thread-count independent).
#include <cmath>
#include "ops/cpu/cpu_kernels.h"
#include "ops/elementwise_math.h"
#include "ops/ops_internal.h"

namespace nsvq {

static const int64_t LCH = 4096;

static size_t loss_scratch(const Tensor* y, BackendKind) {
  return (size_t)((y->src[0]->numel() + LCH - 1) / LCH + 1) * sizeof(double);
}

static void loss_cpu(Tensor* y, const ExecCtx& c) {
  const float *a = tdata<float>(y->src[0]), *b = tdata<float>(y->src[1]);
  int64_t n = y->src[0]->numel(), nch = (n + LCH - 1) / LCH;
  double* part = (double*)c.scratch;
  bool l1 = y->ip[0] == LOSS_L1;
  int nt = n < 32768 ? 1 : c.nthreads;
#pragma omp parallel for num_threads(nt) schedule(static)
  for (int64_t ch = 0; ch < nch; ch++) {
    int64_t s = ch * LCH, e = std::min(n, s + LCH);
    float acc = 0.0f;
    for (int64_t i = s; i < e; i++) {
      float d = a[i] - b[i];
      acc += l1 ? fabsf(d) : d * d;
    }
    part[ch] = acc;
  }
  double tot = 0.0;
  for (int64_t ch = 0; ch < nch; ch++) tot += part[ch];
  tdata<float>(y)[0] = n ? (float)(tot / (double)n) : 0.0f;
}

static void loss_bwd_cpu(Tensor* y, const ExecCtx& c) {
  const float *a = tdata<float>(y->src[0]), *b = tdata<float>(y->src[1]);
  int64_t n = y->numel();
  float gs = tdata<float>(y->src[2])[0] / (float)n;
  float* o = tdata<float>(y);
  bool l1 = y->ip[0] == LOSS_L1;
  int nt = n < 32768 ? 1 : c.nthreads;
#pragma omp parallel for num_threads(nt) schedule(static)
  for (int64_t i = 0; i < n; i++) {
    float d = a[i] - b[i];
    o[i] = l1 ? gs * (float)((d > 0.0f) - (d < 0.0f)) : gs * 2.0f * d;
  }
}

// log(sum(exp(x))) of one row, computed stably around the row max
NSVQ_CLONES float row_logsumexp(const float* __restrict x, int64_t n) {
  float mx = lane_max(x, n);
  float acc[16] = {};
  int64_t i = 0;
  for (; i + 16 <= n; i += 16)
    for (int j = 0; j < 16; j++) acc[j] += nsvq_expf(x[i + j] - mx);
  for (; i < n; i++) acc[0] += nsvq_expf(x[i] - mx);
  float s = 0.0f;
  for (int j = 0; j < 16; j++) s += acc[j];
  return logf(s) + mx;
}

// y = scale * softmax(x) given lse = logsumexp(x)
NSVQ_CLONES void softmax_scaled(float* __restrict y, const float* __restrict x, int64_t n, float lse, float scale) {
  for (int64_t i = 0; i < n; i++) y[i] = scale * nsvq_expf(x[i] - lse);
}

static void check_labels(const int32_t* lab, int64_t N, int64_t C) {
  for (int64_t i = 0; i < N; i++)
    if (lab[i] < 0 || lab[i] >= C) fail("cross_entropy: label %d at row %lld out of range [0, %lld)", lab[i], (long long)i, (long long)C);
}

static size_t ce_scratch(const Tensor* y, BackendKind) { return (size_t)y->src[0]->ne[0] * sizeof(float); }

static void cross_entropy_cpu(Tensor* y, const ExecCtx& c) {
  const Tensor* lg = y->src[0];
  int64_t N = lg->ne[0], C = lg->ne[1];
  const float* x = tdata<float>(lg);
  const int32_t* lab = tdata<int32_t>(y->src[1]);
  check_labels(lab, N, C);
  float* rowloss = (float*)c.scratch;
  int nt = N * C < 16384 ? 1 : c.nthreads;
#pragma omp parallel for num_threads(nt) schedule(static)
  for (int64_t r = 0; r < N; r++) {
    rowloss[r] = row_logsumexp(x + r * C, C) - x[r * C + lab[r]];
  }
  double tot = 0.0;
  for (int64_t r = 0; r < N; r++) tot += rowloss[r];
  tdata<float>(y)[0] = N ? (float)(tot / (double)N) : 0.0f;
}

static void cross_entropy_bwd_cpu(Tensor* y, const ExecCtx& c) {
  int64_t N = y->ne[0], C = y->ne[1];
  const float* x = tdata<float>(y->src[0]);
  const int32_t* lab = tdata<int32_t>(y->src[1]);
  check_labels(lab, N, C);
  float gs = tdata<float>(y->src[2])[0] / (float)N;
  float* o = tdata<float>(y);
  int nt = N * C < 16384 ? 1 : c.nthreads;
#pragma omp parallel for num_threads(nt) schedule(static)
  for (int64_t r = 0; r < N; r++) {
    const float* row = x + r * C;
    float* orow = o + r * C;
    float lse = row_logsumexp(row, C);
    softmax_scaled(orow, row, C, lse, gs);
    orow[lab[r]] -= gs;
  }
}

void register_loss_cpu() {
  OpDef d;
  d.kernel[BK_CPU] = loss_cpu; d.scratch = loss_scratch; op_register(OP_LOSS, d);
  OpDef e;
  e.kernel[BK_CPU] = loss_bwd_cpu; op_register(OP_LOSS_BWD, e);
  OpDef f;
  f.kernel[BK_CPU] = cross_entropy_cpu; f.scratch = ce_scratch; op_register(OP_CROSS_ENTROPY, f);
  OpDef h;
  h.kernel[BK_CPU] = cross_entropy_bwd_cpu; op_register(OP_CROSS_ENTROPY_BWD, h);
}

}  // namespace nsvq
