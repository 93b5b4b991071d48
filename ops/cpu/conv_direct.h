// ops/cpu/conv_direct.h — the AVX-512 direct (implicit-GEMM) forward conv2d of ops/cpu/conv_direct.cpp
// and the im2col-free stride-1 weight gradient of ops/cpu/conv_wgrad.cpp, used by the CPU conv2d kernels
// (ops/cpu/conv.cpp) when the CPU has AVX-512; the im2col + SGEMM path stays the fallback.
#pragma once
#include <cstddef>
#include "ops/conv_geom.h"

namespace nsvq {

bool conv_direct_available();  // the CPU has AVX-512F/VL/BW/DQ and FMA
// Scratch bytes for conv_direct_forward with `nthreads` threads (panel_taps: for a `used` mask).
size_t conv_direct_scratch(const ConvGeom& g, int nthreads, bool panel_taps = false);
// y [N, O, Ho, Wo] = conv(x [N, C, H, W], w [O, C, kh, kw]) (+ bias [O]), any stride and padding (pt/pl from
// g, bottom/right implied by Ho/Wo). Each output is one FMA chain over k = (c, i, j) in the weight's order,
// then + bias: bitwise the same for every thread count. used [O][K] (optional): the taps each output
// needs (the others have zero weights); a register tile of 8 outputs skips the taps none of them uses
// (not on the Winograd path, which takes the zeros along).
void conv_direct_forward(const ConvGeom& g, const float* x, const float* w, const float* bias, float* y, void* scratch,
                         int nthreads, const uint8_t* used = nullptr);

// Weight gradient dw [O, C, kh, kw] = sum_n dY_n (x) X_n of a stride-1 or stride-2 conv (not the 1x1 direct
// case), any kernel size and padding (eligible: AVX-512, such a shape and C >= 8: with fewer input channels
// the register tiles of 8 or 16 channels are mostly empty and im2col + SGEMM is faster, 3.4x for 1 -> 32).
// Bitwise the same for every thread count.
bool conv_wgrad_eligible(const ConvGeom& g);
size_t conv_wgrad_scratch(const ConvGeom& g);
void conv_wgrad(const ConvGeom& g, const float* x, const float* gy, float* dw, void* scratch, int nthreads);
// Floats of packed images one pass may hold (default 2 Mi = 8 MiB; tests lower it to force groups); also
// the phase outputs of the stride-2 input gradient (ops/cpu/conv.cpp).
int64_t& conv_wgrad_budget();

}  // namespace nsvq
