// ops/cpu/conv_direct.h — the AVX-512 direct (implicit-GEMM) forward conv2d of ops/cpu/conv_direct.cpp,
// used by the CPU conv2d kernel (ops/cpu/conv.cpp) when the CPU has AVX-512; the im2col + SGEMM path
// stays the fallback and the backward kernels' path.
#pragma once
#include <cstddef>
#include "ops/conv_geom.h"

namespace nsvq {

bool conv_direct_available();  // the CPU has AVX-512F/VL/BW/DQ and FMA
// Scratch bytes for conv_direct_forward with `nthreads` threads.
size_t conv_direct_scratch(const ConvGeom& g, int nthreads);
// y [N, O, Ho, Wo] = conv(x [N, C, H, W], w [O, C, kh, kw]) (+ bias [O]), any stride and padding (pt/pl from
// g, bottom/right implied by Ho/Wo). Each output is one FMA chain over k = (c, i, j) in the weight's order,
// then + bias: bitwise the same for every thread count.
void conv_direct_forward(const ConvGeom& g, const float* x, const float* w, const float* bias, float* y, void* scratch,
                         int nthreads);

}  // namespace nsvq
