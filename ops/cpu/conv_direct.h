// ops/cpu/conv_direct.h — the AVX-512 direct (implicit-GEMM) forward conv2d of
// ops/cpu/conv_direct_avx512.cpp and the im2col-free stride-1/2 weight gradient of
// ops/cpu/conv_wgrad_avx512.cpp, used by the CPU conv2d kernels (ops/cpu/conv.cpp) when the CPU has
// AVX-512; the im2col + SGEMM path stays the fallback, and the only path off x86-64, where those files
// are not built and the kernels below are unreachable stubs.
#pragma once
#include <cstddef>
#include <cstdint>
#include "engine/simd.h"
#include "ops/conv_geom.h"

namespace nsvq {

// (ops/cpu/conv.cpp) The CPU has AVX-512F/VL/BW/DQ and FMA: the kernels below may run.
bool conv_direct_available();
// (ops/cpu/conv.cpp) The weight gradient below takes this conv: AVX-512, a stride-1 or stride-2 conv (not
// the 1x1 direct case), C >= 8 (with fewer input channels the register tiles of 8 or 16 channels are
// mostly empty and im2col + SGEMM is faster, 3.4x for 1 -> 32).
bool conv_wgrad_eligible(const ConvGeom& g);
// (ops/cpu/conv.cpp) Floats of packed images one pass may hold (default 2 Mi = 8 MiB; tests lower it to
// force groups); also the phase outputs of the stride-2 input gradient.
int64_t& conv_wgrad_budget();

#if NSVQ_X86
// Scratch bytes for conv_direct_forward with `nthreads` threads (panel_taps: for a `used` mask).
size_t conv_direct_scratch(const ConvGeom& g, int nthreads, bool panel_taps = false);
// y [N, O, Ho, Wo] = conv(x [N, C, H, W], w [O, C, kh, kw]) (+ bias [O]), any stride and padding (pt/pl from
// g, bottom/right implied by Ho/Wo). Each output is one FMA chain over k = (c, i, j) in the weight's order,
// then + bias: bitwise the same for every thread count. used [O][K] (optional): the taps each output
// needs (the others have zero weights); a register tile of 8 outputs skips the taps none of them uses
// (not on the Winograd path, which takes the zeros along).
void conv_direct_forward(const ConvGeom& g, const float* x, const float* w, const float* bias, float* y, void* scratch,
                         int nthreads, const uint8_t* used = nullptr);
// Weight gradient dw [O, C, kh, kw] = sum_n dY_n (x) X_n of an eligible conv; bitwise the same for every
// thread count.
size_t conv_wgrad_scratch(const ConvGeom& g);
void conv_wgrad(const ConvGeom& g, const float* x, const float* gy, float* dw, void* scratch, int nthreads);
// dX of one image [C, H, W] from its phase outputs q [4C, Hq, Wq] (stride 2, conv_bwd_data_s2_as_fwd).
void conv_s2_interleave(const ConvGeom& g, const ConvGeom& tg, const float* q, float* dx);
#else
inline size_t conv_direct_scratch(const ConvGeom&, int, bool = false) { return 0; }
inline void conv_direct_forward(const ConvGeom&, const float*, const float*, const float*, float*, void*, int,
                                const uint8_t* = nullptr) {}
inline size_t conv_wgrad_scratch(const ConvGeom&) { return 0; }
inline void conv_wgrad(const ConvGeom&, const float*, const float*, float*, void*, int) {}
inline void conv_s2_interleave(const ConvGeom&, const ConvGeom&, const float*, float*) {}
#endif

}  // namespace nsvq
