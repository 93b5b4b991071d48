// ops/cpu/shape.cpp — CPU kernels of contiguous, concat and pad (strided copies into new storage).
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

void register_shape_cpu() {
  OpDef d;
  d.kernel[BK_CPU] = contiguous_cpu; op_register(OP_CONTIGUOUS, d);
  d.kernel[BK_CPU] = concat_cpu; op_register(OP_CONCAT, d);
  d.kernel[BK_CPU] = pad_cpu; op_register(OP_PAD, d);
}

}  // namespace nsvq
