// AVX-512 SGEMM micro-kernel and macro-kernel (plus packing instantiated with AVX-512 codegen).
// This is the only file compiled with -mavx512f -mavx512vl -mavx512bw -mavx512dq -mfma; gemm.cpp calls
// into it only after checking the CPU supports those extensions.
//
// Register tile: MR rows x NR columns of C held in MR * NR/16 zmm accumulators. One k step loads NR/16
// vectors of the packed B row, broadcasts MR values of the packed A column, and issues MR * NR/16 FMAs
// (acc[r][v] += a[k, r] * b[k, 16v..16v+15]). Edge tiles use the same code instantiated for fewer rows
// or vectors, with a lane mask on the last vector, so every C element sees the exact same FMA sequence
// whatever tile it lands in (results do not depend on the thread partition).
#include <immintrin.h>

#include <array>
#include <utility>

#include "gemm_internal.h"

#ifndef NSVQ_AVX512_MR
#define NSVQ_AVX512_MR 8
#endif
#ifndef NSVQ_AVX512_NR
#define NSVQ_AVX512_NR 48
#endif

namespace nsvq {
namespace gemm_detail {
namespace {

constexpr int MR = NSVQ_AVX512_MR;
constexpr int NR = NSVQ_AVX512_NR;
constexpr int NVMAX = NR / 16;
static_assert(NR % 16 == 0, "NR must be a multiple of the zmm width");

using micro_fn = void (*)(int64_t kc, const float* a, const float* b, float* c, int64_t ldc, float alpha,
                          float beta, __mmask16 last_mask);

// C[R x 16*NV] (last vector masked) = alpha * sum_k a[k, :R] (x) b[k, :16*NV] + beta * C.
template <int R, int NV>
void micro(int64_t kc, const float* __restrict a, const float* __restrict b, float* c, int64_t ldc,
           float alpha, float beta, __mmask16 last_mask) {
    __m512 acc[R][NV];
#pragma GCC unroll 16
    for (int r = 0; r < R; ++r)
#pragma GCC unroll 4
        for (int v = 0; v < NV; ++v) acc[r][v] = _mm512_setzero_ps();

#pragma GCC unroll 2
    for (int64_t k = 0; k < kc; ++k) {
        __m512 bv[NV];
#pragma GCC unroll 4
        for (int v = 0; v < NV; ++v) bv[v] = _mm512_load_ps(b + 16 * v);
#pragma GCC unroll 16
        for (int r = 0; r < R; ++r) {
            const __m512 av = _mm512_set1_ps(a[r]);
#pragma GCC unroll 4
            for (int v = 0; v < NV; ++v) acc[r][v] = _mm512_fmadd_ps(av, bv[v], acc[r][v]);
        }
        a += MR;
        b += NR;
    }

    // C update: out = alpha * acc + beta * C, as fma(acc, alpha, beta * C); beta == 0 never reads C.
    const __m512 va = _mm512_set1_ps(alpha);
    if (beta == 0.f) {
#pragma GCC unroll 16
        for (int r = 0; r < R; ++r) {
            float* cr = c + r * ldc;
#pragma GCC unroll 4
            for (int v = 0; v < NV; ++v) {
                const __m512 out = _mm512_mul_ps(acc[r][v], va);
                if (v == NV - 1)
                    _mm512_mask_storeu_ps(cr + 16 * v, last_mask, out);
                else
                    _mm512_storeu_ps(cr + 16 * v, out);
            }
        }
    } else {
        const __m512 vb = _mm512_set1_ps(beta);
#pragma GCC unroll 16
        for (int r = 0; r < R; ++r) {
            float* cr = c + r * ldc;
#pragma GCC unroll 4
            for (int v = 0; v < NV; ++v) {
                if (v == NV - 1) {
                    const __m512 old = _mm512_maskz_loadu_ps(last_mask, cr + 16 * v);
                    const __m512 out = _mm512_fmadd_ps(acc[r][v], va, _mm512_mul_ps(old, vb));
                    _mm512_mask_storeu_ps(cr + 16 * v, last_mask, out);
                } else {
                    const __m512 old = _mm512_loadu_ps(cr + 16 * v);
                    _mm512_storeu_ps(cr + 16 * v, _mm512_fmadd_ps(acc[r][v], va, _mm512_mul_ps(old, vb)));
                }
            }
        }
    }
}

// table[R-1][NV-1] = micro<R, NV>, so edge tiles pick their exact shape at run time.
template <int R, int... V>
constexpr std::array<micro_fn, NVMAX> make_row(std::integer_sequence<int, V...>) {
    return {{&micro<R, V + 1>...}};
}
template <int... Rs>
constexpr std::array<std::array<micro_fn, NVMAX>, MR> make_table(std::integer_sequence<int, Rs...>) {
    return {{make_row<Rs + 1>(std::make_integer_sequence<int, NVMAX>{})...}};
}
constexpr auto micro_table = make_table(std::make_integer_sequence<int, MR>{});


void macro(int64_t mc, int64_t nc, int64_t kc, float alpha, const float* pa, const float* pb, float beta,
           float* c, int64_t ldc, bool a_outer) {
    const int64_t mp = (mc + MR - 1) / MR, np = (nc + NR - 1) / NR;
    auto tile = [&](int64_t p, int64_t q) {
        const int rows = mc - p * MR < MR ? int(mc - p * MR) : MR;
        const int cols = nc - q * NR < NR ? int(nc - q * NR) : NR;
        const int nv = (cols + 15) / 16;
        const int last = cols - (nv - 1) * 16;
        const __mmask16 mask = __mmask16((1u << last) - 1u);
        float* ct = c + p * MR * ldc + q * NR;
        micro_table[rows - 1][nv - 1](kc, pa + p * MR * kc, pb + q * NR * kc, ct, ldc, alpha, beta, mask);
    };
    if (a_outer) {
        for (int64_t p = 0; p < mp; ++p)
            for (int64_t q = 0; q < np; ++q) tile(p, q);
    } else {
        for (int64_t q = 0; q < np; ++q)
            for (int64_t p = 0; p < mp; ++p) tile(p, q);
    }
}

}  // namespace

const gemm_kernels* avx512_kernels() {
    static const gemm_kernels k = {"avx512", MR, NR, 384, 4096, 384, true,
                                   &pack_a_generic<MR>, &pack_b_generic<NR>, &macro};
    return &k;
}

}  // namespace gemm_detail
}  // namespace nsvq
