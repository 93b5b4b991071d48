// AVX-512 SGEMM micro-kernel and macro-kernel (plus packing instantiated with AVX-512 codegen).
// This is the only file compiled with -mavx512f -mavx512vl -mavx512bw -mavx512dq -mfma; gemm.cpp calls
// into it only after checking the CPU supports those extensions.
//
// Register tile: MR rows x NR columns of C held in MR * NR/16 zmm accumulators. One k step loads NR/16
// vectors of the packed B row, broadcasts MR values of the packed A column, and issues MR * NR/16 FMAs
// (acc[r][v] += a[k, r] * b[k, 16v..16v+15]). Edge tiles use the same code instantiated for fewer rows
// or vectors, with a lane mask on the last vector, so every C element sees the exact same FMA sequence
// whatever tile it lands in (results do not depend on the thread partition).
//
// Tile 8 x 48: 24 accumulators (+3 B vectors + 1 broadcast of 32 zmm registers), 24 FMAs per 11 loads,
// enough independent chains to cover the FMA latency on both FMA pipes. MR = 8 divides the small M of
// conv-like GEMMs (32..256) exactly, so no padded rows are computed there. Measured in isolation (data
// in L2) the kernel runs at ~97% of the FMA peak of a Zen 5 core.
// Packing is done here too (with AVX-512 transposes for the strided cases): for small M, packing B
// costs as much as a third of the multiply time, so it has to run near memory bandwidth.
#include <immintrin.h>

#include <array>
#include <utility>

#include "engine/cpu/transpose16.h"
#include "gemm_internal.h"

namespace nsvq {
namespace gemm_detail {
namespace {

constexpr int MR = 8;
constexpr int NR = 48;
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

struct MicroAt {
    template <int R, int NV>
    static constexpr micro_fn get() { return &micro<R, NV>; }
};
constexpr auto micro_table = make_micro_table<micro_fn, MicroAt, MR, NVMAX>();

void macro(int64_t mc, int64_t nc, int64_t kc, float alpha, const float* pa, const float* pb, float beta,
           float* c, int64_t ldc, bool a_outer) {
    for_tiles<MR, NR>(mc, nc, a_outer, [&](int64_t p, int64_t q, int rows, int cols) {
        const int nv = (cols + 15) / 16;
        const int last = cols - (nv - 1) * 16;
        const __mmask16 mask = __mmask16((1u << last) - 1u);
        float* ct = c + p * MR * ldc + q * NR;
        micro_table[rows - 1][nv - 1](kc, pa + p * MR * kc, pb + q * NR * kc, ct, ldc, alpha, beta, mask);
    });
}

// GCC 12 reports the _mm512_undefined_ps() inside the shuffle intrinsics as maybe-uninitialized
// (GCC bug 105593); the warning is spurious, silence it for the transpose code only.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"

// op(B) = B^T: column j of op(B) is row j of b (contiguous in k). Each 16 (k) x 16 (j) tile of the panel
// is loaded as 16 rows of b, transposed in registers and stored as 16 packed k rows. Ragged k / j edges
// use masked loads (zeros), so the panel padding is written in the same pass.
void pack_b_trans(int64_t kc, int64_t nc, const float* b, int64_t ldb, float* dst) {
    for (int64_t j0 = 0; j0 < nc; j0 += NR) {
        float* panel = dst + (j0 / NR) * NR * kc;
        for (int g = 0; g < NR / 16; ++g) {
            const int64_t jg = j0 + 16 * g;
            const int rows = nc - jg >= 16 ? 16 : (nc - jg > 0 ? int(nc - jg) : 0);
            for (int64_t k0 = 0; k0 < kc; k0 += 16) {
                const int kr = kc - k0 >= 16 ? 16 : int(kc - k0);
                const __mmask16 kmask = __mmask16((1u << kr) - 1u);
                __m512 r[16];
                for (int i = 0; i < 16; ++i) {
                    const float* src = b + (jg + i) * ldb + k0;
                    if (i >= rows)
                        r[i] = _mm512_setzero_ps();
                    else if (kr == 16)
                        r[i] = _mm512_loadu_ps(src);
                    else
                        r[i] = _mm512_maskz_loadu_ps(kmask, src);
                }
                transpose16x16(r);
                for (int x = 0; x < kr; ++x) _mm512_store_ps(panel + (k0 + x) * NR + 16 * g, r[x]);
            }
        }
    }
}

// op(A) = A (row-major, k contiguous): the MR = 8 rows of a panel for 32 consecutive k are loaded as 16
// vectors (rows 0..7 at k0.., then rows 0..7 at k0+16..) and transposed, so output x holds the 8 rows at
// k0+x in its low half and at k0+16+x in its high half. op(A) = A^T: each k already has 8 contiguous rows.
void pack_a_avx512(bool trans_a, int64_t mc, int64_t kc, const float* a, int64_t lda, float* dst) {
    static_assert(MR == 8, "the AVX-512 A packing is written for 8-row panels");
    if (trans_a) {
        // Each k row of a holds consecutive rows of op(A): copy 8-wide pieces to the panels. Panels are
        // done 8 at a time (256 bytes of each k row): dealing a whole row to all panels at once would
        // write to mc/8 places 4 KiB-multiples apart and thrash the L1 sets.
        for (int64_t g0 = 0; g0 < mc; g0 += 8 * MR) {
            const int64_t g1 = g0 + 8 * MR < mc ? g0 + 8 * MR : mc;
            for (int64_t k = 0; k < kc; ++k) {
                const float* src = a + k * lda;
                if (k + PF_ROWS < kc) {
                    const char* ahead = reinterpret_cast<const char*>(src + PF_ROWS * lda + g0);
                    for (int64_t off = 0; off < (g1 - g0) * int64_t(sizeof(float)) + 64; off += 64)
                        _mm_prefetch(ahead + off, _MM_HINT_T0);
                }
                for (int64_t i0 = g0; i0 < g1; i0 += MR) {
                    const int rows = g1 - i0 < MR ? int(g1 - i0) : MR;
                    const __m256 v = rows == MR ? _mm256_loadu_ps(src + i0)
                                                : _mm256_maskz_loadu_ps(__mmask8((1u << rows) - 1u), src + i0);
                    _mm256_store_ps(dst + i0 * kc + k * MR, v);
                }
            }
        }
        return;
    }
    for (int64_t i0 = 0; i0 < mc; i0 += MR) {
        const int rows = mc - i0 < MR ? int(mc - i0) : MR;
        for (int64_t k0 = 0; k0 < kc; k0 += 32) {
            const int k_lo = kc - k0 >= 16 ? 16 : int(kc - k0);
            const int k_hi = kc - k0 - 16 >= 16 ? 16 : (kc - k0 > 16 ? int(kc - k0 - 16) : 0);
            const __mmask16 m_lo = __mmask16((1u << k_lo) - 1u), m_hi = __mmask16((1u << k_hi) - 1u);
            __m512 r[16];
            for (int i = 0; i < 8; ++i) {
                const float* src = a + (i0 + i) * lda + k0;
                r[i] = i < rows ? _mm512_maskz_loadu_ps(m_lo, src) : _mm512_setzero_ps();
                r[8 + i] = i < rows && k_hi ? _mm512_maskz_loadu_ps(m_hi, src + 16) : _mm512_setzero_ps();
            }
            transpose16x16(r);
            for (int x = 0; x < k_lo; ++x) _mm256_store_ps(dst + (k0 + x) * MR, _mm512_castps512_ps256(r[x]));
            for (int x = 0; x < k_hi; ++x)
                _mm256_store_ps(dst + (k0 + 16 + x) * MR, _mm512_extractf32x8_ps(r[x], 1));
        }
        dst += MR * kc;
    }
}

#pragma GCC diagnostic pop

void pack_b(bool trans_b, int64_t kc, int64_t nc, const float* b, int64_t ldb, float* dst) {
    if (trans_b)
        pack_b_trans(kc, nc, b, ldb, dst);
    else
        pack_b_generic<NR>(false, kc, nc, b, ldb, dst);
}

}  // namespace

// Blocking (A block outermost, see gemm.cpp): kc = 384 keeps the A micro-panel (8 x 384 x 4 B = 12 KiB)
// in L1 (32 KiB on Zen 4, 48 KiB on Zen 5) while B micro-panels stream from L2; nc = 384 makes the packed
// B block 384 x 384 x 4 B = 576 KiB, resident in the 1 MiB L2 with room for C lines; mc = 4096 rows of
// packed A (6 MiB at most) live in L3 and cover every conv-like M in one block.
const gemm_kernels* avx512_kernels() {
    static const gemm_kernels k = {"avx512", MR, NR, 384, 4096, 384, true,
                                   &pack_a_avx512, &pack_b, &macro};
    return &k;
}

}  // namespace gemm_detail
}  // namespace nsvq
