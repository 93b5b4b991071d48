// ops/cpu/optim.cpp — CPU kernels of the Adam/AdamW update and of the Philox random fill.
#include <cmath>
#include "engine/rng.h"
#include "ops/cpu/cpu_kernels.h"
#include "ops/optim.h"
#include "ops/ops_internal.h"

namespace nsvq {

static void adamw_cpu(Tensor* y, const ExecCtx& c) {
  float* p = tdata<float>(y->src[0]);
  const float* gr = tdata<float>(y->src[1]);
  float* m = tdata<float>(y->src[2]);
  float* v = tdata<float>(y->src[3]);
  const float* hp = tdata<float>(y->src[4]);
  float gs = y->n_src > 5 ? tdata<float>(y->src[5])[0] : 1.0f;
  if (!std::isfinite(gs)) return;  // a non-finite gradient norm: the step is skipped (p, m, v unchanged)
  float lr = hp[HP_LR], b1 = hp[HP_B1], b2 = hp[HP_B2], eps = hp[HP_EPS], wd = hp[HP_WD];
  float bc1 = hp[HP_BC1], bc2 = hp[HP_BC2];
  bool decoupled = hp[HP_DECOUPLED] != 0.0f;
  int64_t n = y->numel();
  int nt = n < 32768 ? 1 : c.nthreads;
#pragma omp parallel for num_threads(nt) schedule(static)
  for (int64_t i = 0; i < n; i++) {
    float g = gs * gr[i];
    if (!decoupled) g += wd * p[i];
    m[i] = b1 * m[i] + (1.0f - b1) * g;
    v[i] = b2 * v[i] + (1.0f - b2) * g * g;
    float upd = (m[i] / bc1) / (sqrtf(v[i] / bc2) + eps);
    if (decoupled) upd += wd * p[i];
    p[i] -= lr * upd;
  }
}

static void random_cpu(Tensor* y, const ExecCtx& c) {
  const int32_t* ctr = tdata<int32_t>(y->src[0]);
  uint64_t seed = (uint32_t)ctr[0] | ((uint64_t)(uint32_t)ctr[1] << 32);
  uint64_t step = (uint32_t)ctr[2] | ((uint64_t)(uint32_t)ctr[3] << 32);
  float* o = tdata<float>(y);
  int64_t n = y->numel();
  int kind = y->ip[0];
  uint32_t stream = (uint32_t)y->ip[1];
  int64_t nblk = (n + 3) / 4;
  int nt = n < 16384 ? 1 : c.nthreads;
#pragma omp parallel for num_threads(nt) schedule(static)
  for (int64_t b = 0; b < nblk; b++) {
    float v[4];
    philox_block(seed, stream, step, (uint64_t)b, kind, v);
    for (int64_t w = 0; w < 4 && b * 4 + w < n; w++) o[b * 4 + w] = v[w];
  }
}

void register_optim_cpu() {
  OpDef d;
  d.kernel[BK_CPU] = adamw_cpu; op_register(OP_ADAMW, d);
  d.kernel[BK_CPU] = random_cpu; op_register(OP_RANDOM, d);
}

}  // namespace nsvq
