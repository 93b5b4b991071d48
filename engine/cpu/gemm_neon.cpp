// NEON (AArch64 Advanced SIMD) SGEMM micro-kernel and macro-kernel, plus packing instantiated for this
// file. Built only for AArch64 (engine/cpu/gemm.cmake); gemm.cpp calls into it when the level allows.
//
// Register tile: 8 rows x 12 columns of C in 24 of the 32 q registers. One k step loads 3 vectors of the
// packed B row and the 8 values of the packed A column (2 vectors) and issues 24 FMAs by lane, leaving
// 3 registers spare. Edge tiles reuse the same code instantiated for fewer rows / vectors; the last
// vector's columns beyond C go through a small buffer, so every C element sees the same FMA sequence
// whatever tile it lands in (results do not depend on where the tile edges fall).
#include <arm_neon.h>

#include <array>
#include <utility>

#include "gemm_internal.h"

namespace nsvq {
namespace gemm_detail {
namespace {

constexpr int MR = 8;
constexpr int NR = 12;
constexpr int NVMAX = NR / 4;

using micro_fn = void (*)(int64_t kc, const float* a, const float* b, float* c, int64_t ldc, float alpha,
                          float beta, int last);

// acc += b * a[lane] for lane L of the A vector: the lane index must be a constant
template <int R>
inline float32x4_t fma_row(float32x4_t acc, float32x4_t b, float32x4_t a0, float32x4_t a1) {
    static_assert(R >= 0 && R < 8, "row of the 8-row tile");
    if constexpr (R < 4)
        return vfmaq_laneq_f32(acc, b, a0, R);
    else
        return vfmaq_laneq_f32(acc, b, a1, R - 4);
}

template <int R, int NV, int... Rs>
inline void step(float32x4_t (&acc)[R][NV], const float32x4_t (&bv)[NV], float32x4_t a0, float32x4_t a1,
                 std::integer_sequence<int, Rs...>) {
    (
        [&] {
#pragma GCC unroll 3
            for (int v = 0; v < NV; ++v) acc[Rs][v] = fma_row<Rs>(acc[Rs][v], bv[v], a0, a1);
        }(),
        ...);
}

template <int R, int NV>
void micro(int64_t kc, const float* __restrict a, const float* __restrict b, float* c, int64_t ldc,
           float alpha, float beta, int last_cols) {
    float32x4_t acc[R][NV];
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r)
#pragma GCC unroll 3
        for (int v = 0; v < NV; ++v) acc[r][v] = vdupq_n_f32(0.f);

#pragma GCC unroll 2
    for (int64_t k = 0; k < kc; ++k) {
        float32x4_t bv[NV];
#pragma GCC unroll 3
        for (int v = 0; v < NV; ++v) bv[v] = vld1q_f32(b + 4 * v);
        const float32x4_t a0 = vld1q_f32(a), a1 = vld1q_f32(a + 4);
        step(acc, bv, a0, a1, std::make_integer_sequence<int, R>{});
        a += MR;
        b += NR;
    }

    // out = fma(acc, alpha, beta * C); beta == 0 never reads C.
    const float32x4_t va = vdupq_n_f32(alpha);
    for (int r = 0; r < R; ++r) {
        float* cr = c + r * ldc;
        for (int v = 0; v < NV; ++v) {
            const bool part = v == NV - 1 && last_cols < 4;
            float tmp[4] = {0.f, 0.f, 0.f, 0.f};
            float* dst = part ? tmp : cr + 4 * v;
            if (part)
                for (int j = 0; j < last_cols; ++j) tmp[j] = cr[4 * v + j];
            float32x4_t out = vmulq_f32(acc[r][v], va);
            if (beta != 0.f) out = vfmaq_f32(vmulq_n_f32(vld1q_f32(dst), beta), acc[r][v], va);
            vst1q_f32(dst, out);
            if (part)
                for (int j = 0; j < last_cols; ++j) cr[4 * v + j] = tmp[j];
        }
    }
}

struct MicroAt {
    template <int R, int NV>
    static constexpr micro_fn get() { return &micro<R, NV>; }
};
constexpr auto micro_table = make_micro_table<micro_fn, MicroAt, MR, NVMAX>();

void macro(int64_t mc, int64_t nc, int64_t kc, float alpha, const float* pa, const float* pb, float beta,
           float* c, int64_t ldc, bool a_outer) {
    for_tiles<MR, NR>(mc, nc, a_outer, [&](int64_t p, int64_t q, int rows, int cols) {
        const int nv = (cols + 3) / 4;
        const int last = cols - (nv - 1) * 4;
        micro_table[rows - 1][nv - 1](kc, pa + p * MR * kc, pb + q * NR * kc, c + p * MR * ldc + q * NR, ldc,
                                      alpha, beta, last);
    });
}

}  // namespace

// Blocking, sized for the common ARMv8 cores (64 KiB L1D, >= 512 KiB L2): A micro-panel
// 8 x 256 x 4 B = 8 KiB in L1, packed B block 256 x 384 x 4 B = 384 KiB in L2.
const gemm_kernels* neon_kernels() {
    static const gemm_kernels k = {"neon", MR, NR, 256, 4096, 384, true,
                                   &pack_a_generic<MR>, &pack_b_generic<NR>, &macro};
    return &k;
}

}  // namespace gemm_detail
}  // namespace nsvq
