// AVX2+FMA SGEMM micro-kernel and macro-kernel (plus packing instantiated with AVX2 codegen).
// This is the only file compiled with -mavx2 -mfma; gemm.cpp calls into it only after checking the CPU.
//
// Register tile: 6 rows x 16 columns of C in 12 ymm accumulators. One k step loads 2 vectors of the
// packed B row, broadcasts 6 values of the packed A column and issues 12 FMAs. Edge tiles reuse the same
// code instantiated for fewer rows / vectors with a lane mask on the last vector, so every C element sees
// the same FMA sequence whatever tile it lands in.
#include <immintrin.h>

#include <array>
#include <utility>

#include "gemm_internal.h"

namespace nsvq {
namespace gemm_detail {
namespace {

constexpr int MR = 6;
constexpr int NR = 16;
constexpr int NVMAX = NR / 8;

using micro_fn = void (*)(int64_t kc, const float* a, const float* b, float* c, int64_t ldc, float alpha,
                          float beta, int last);

template <int R, int NV>
void micro(int64_t kc, const float* __restrict a, const float* __restrict b, float* c, int64_t ldc,
           float alpha, float beta, int last_cols) {
    // Lane mask of the last vector: lanes < last_cols are inside C.
    const __m256i last_mask =
        _mm256_cmpgt_epi32(_mm256_set1_epi32(last_cols), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
    __m256 acc[R][NV];
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r)
#pragma GCC unroll 2
        for (int v = 0; v < NV; ++v) acc[r][v] = _mm256_setzero_ps();

#pragma GCC unroll 4
    for (int64_t k = 0; k < kc; ++k) {
        __m256 bv[NV];
#pragma GCC unroll 2
        for (int v = 0; v < NV; ++v) bv[v] = _mm256_load_ps(b + 8 * v);
#pragma GCC unroll 8
        for (int r = 0; r < R; ++r) {
            const __m256 av = _mm256_broadcast_ss(a + r);
#pragma GCC unroll 2
            for (int v = 0; v < NV; ++v) acc[r][v] = _mm256_fmadd_ps(av, bv[v], acc[r][v]);
        }
        a += MR;
        b += NR;
    }

    // out = fma(acc, alpha, beta * C); beta == 0 never reads C.
    const __m256 va = _mm256_set1_ps(alpha);
    const __m256 vb = _mm256_set1_ps(beta);
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r) {
        float* cr = c + r * ldc;
#pragma GCC unroll 2
        for (int v = 0; v < NV; ++v) {
            const bool last = v == NV - 1;
            __m256 out = _mm256_mul_ps(acc[r][v], va);
            if (beta != 0.f) {
                const __m256 old = last ? _mm256_maskload_ps(cr + 8 * v, last_mask) : _mm256_loadu_ps(cr + 8 * v);
                out = _mm256_fmadd_ps(acc[r][v], va, _mm256_mul_ps(old, vb));
            }
            if (last)
                _mm256_maskstore_ps(cr + 8 * v, last_mask, out);
            else
                _mm256_storeu_ps(cr + 8 * v, out);
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
        const int nv = (cols + 7) / 8;
        const int last = cols - (nv - 1) * 8;
        micro_table[rows - 1][nv - 1](kc, pa + p * MR * kc, pb + q * NR * kc, c + p * MR * ldc + q * NR, ldc,
                                      alpha, beta, last);
    });
}

}  // namespace

// Blocking: A micro-panel 6 x 256 x 4 B = 6 KiB in L1, packed B block 256 x 480 x 4 B = 480 KiB in L2.
const gemm_kernels* avx2_kernels() {
    static const gemm_kernels k = {"avx2", MR, NR, 256, 4096, 480, true,
                                   &pack_a_generic<MR>, &pack_b_generic<NR>, &macro};
    return &k;
}

}  // namespace gemm_detail
}  // namespace nsvq
