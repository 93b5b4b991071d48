// ops/cpu/shape.cpp — CPU kernels of contiguous, concat and pad (strided copies into new storage) and of
// the nearest x2 upsampling and its 2x2 block-sum gradient.
#include <cstring>
#include "ops/cpu/cpu_kernels.h"
#include "ops/ops_internal.h"

namespace nsvq {

static void contiguous_cpu(Tensor* y, const ExecCtx& c) { cpu_copy_strided(y, y->src[0], c.nthreads); }

// A temporary view descriptor of region [lo, lo+n) of y along axis ax.
static Tensor region(const Tensor* y, int ax, int64_t lo, int64_t n) {
  Tensor r = *y;
  r.ne[ax] = n;
  r.data = (char*)y->data + lo * y->nb[ax] * (int64_t)y->elsize();
  return r;
}

static void concat_cpu(Tensor* y, const ExecCtx& c) {
  int ax = y->ip[0];
  int64_t off = 0;
  for (int i = 0; i < y->n_src; i++) {
    Tensor r = region(y, ax, off, y->src[i]->ne[ax]);
    cpu_copy_strided(&r, y->src[i], c.nthreads);
    off += y->src[i]->ne[ax];
  }
}

static void pad_cpu(Tensor* y, const ExecCtx& c) {
  uint32_t bits;
  if (y->dtype == DType::i32) bits = (uint32_t)(int32_t)y->fp[0];
  else std::memcpy(&bits, &y->fp[0], 4);
  cpu_fill32(y->data, y->numel(), bits, c.nthreads);
  Tensor r = *y;
  for (int d = 0; d < y->ndim; d++) {
    r.ne[d] = y->src[0]->ne[d];
    r.data = (char*)r.data + y->ip[d] * y->nb[d] * (int64_t)y->elsize();
  }
  cpu_copy_strided(&r, y->src[0], c.nthreads);
}

// y [N, C, 2H, 2W]: each input row becomes two output rows of duplicated pixels
NSVQ_CLONES static void dup_row(float* __restrict d, const float* __restrict s, int64_t w) {
  for (int64_t j = 0; j < w; j++) {
    d[2 * j] = s[j];
    d[2 * j + 1] = s[j];
  }
}
static void upsample2x_cpu(Tensor* y, const ExecCtx& c) {
  const float* x = tdata<float>(y->src[0]);
  float* out = tdata<float>(y);
  const int64_t rows = y->src[0]->ne[0] * y->src[0]->ne[1] * y->src[0]->ne[2], W = y->src[0]->ne[3];
  const int nt = rows * W < 32768 ? 1 : c.nthreads;
#pragma omp parallel for num_threads(nt) schedule(static)
  for (int64_t r = 0; r < rows; r++) {
    float* d = out + r * 4 * W;
    dup_row(d, x + r * W, W);
    std::memcpy(d + 2 * W, d, 2 * W * sizeof(float));
  }
}

NSVQ_CLONES static void block_sum_row(float* __restrict d, const float* __restrict r0, const float* __restrict r1, int64_t w) {
  for (int64_t j = 0; j < w; j++) d[j] = (r0[2 * j] + r0[2 * j + 1]) + (r1[2 * j] + r1[2 * j + 1]);
}
static void upsample2x_bwd_cpu(Tensor* dx, const ExecCtx& c) {
  const float* gy = tdata<float>(dx->src[0]);
  float* out = tdata<float>(dx);
  const int64_t rows = dx->ne[0] * dx->ne[1] * dx->ne[2], W = dx->ne[3];
  const int nt = rows * W < 32768 ? 1 : c.nthreads;
#pragma omp parallel for num_threads(nt) schedule(static)
  for (int64_t r = 0; r < rows; r++) block_sum_row(out + r * W, gy + r * 4 * W, gy + r * 4 * W + 2 * W, W);
}

void register_shape_cpu() {
  OpDef d;
  d.kernel[BK_CPU] = contiguous_cpu; op_register(OP_CONTIGUOUS, d);
  d.kernel[BK_CPU] = concat_cpu; op_register(OP_CONCAT, d);
  d.kernel[BK_CPU] = pad_cpu; op_register(OP_PAD, d);
  d.kernel[BK_CPU] = upsample2x_cpu; op_register(OP_UPSAMPLE2X, d);
  d.kernel[BK_CPU] = upsample2x_bwd_cpu; op_register(OP_UPSAMPLE2X_BWD, d);
}

}  // namespace nsvq
