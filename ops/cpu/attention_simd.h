// ops/cpu/attention_simd.h — what the CPU attention kernels (ops/cpu/attention.cpp) share with their
// instruction-set forward paths: the problem's dimensions and, on x86-64, the AVX-512 forward of
// ops/cpu/attention_avx512.cpp (taken when cpu_has_avx512() and dv <= 64). Elsewhere the portable
// blocked kernel of attention.cpp runs (vectorised by the compiler: NEON on AArch64).
#pragma once
#include <cstddef>
#include "engine/simd.h"
#include "engine/tensor.h"
#include "ops/ops_internal.h"

namespace nsvq {

namespace attention_detail {
struct Dims {
  int64_t BH, L, S, d, dv;
  float scale;
  explicit Dims(const Tensor* t) {
    const Tensor *q = t->src[0], *v = t->src[2];
    BH = q->ne[0] * q->ne[1];
    L = q->ne[2];
    S = t->src[1]->ne[2];
    d = q->ne[3];
    dv = v->ne[3];
    scale = t->fp[0];
  }
};
}  // namespace attention_detail

#if NSVQ_X86
size_t attention_fast_scratch_avx512(const attention_detail::Dims& D);  // per thread, bytes
void attention_fast_avx512(Tensor* o, const ExecCtx& c, const attention_detail::Dims& D);
#endif

}  // namespace nsvq
