// Private header of the CPU SGEMM: the per-ISA kernel table shared by gemm.cpp (blocking, threading,
// dispatch) and the ISA-specific files gemm_avx512.cpp / gemm_avx2.cpp / gemm_neon.cpp, plus portable packing templates.
//
// Packed layouts (both zero-padded to full register tiles, so micro-kernels never see ragged panels):
//   A block (mc x kc): ceil(mc/MR) micro-panels, panel p holds rows p*MR.. as pa[p*MR*kc + k*MR + r].
//   B block (kc x nc): ceil(nc/NR) micro-panels, panel q holds cols q*NR.. as pb[q*NR*kc + k*NR + j].
// A micro-kernel then walks k once, doing an MR x NR rank-1 update per step from MR + NR floats.
#pragma once

#include <array>
#include <cstdint>
#include <cstring>
#include <utility>

namespace nsvq {
namespace gemm_detail {

// Packs op(A)[i0.., k0..] (already offset by the caller) into MR-row micro-panels.
using pack_a_fn = void (*)(bool trans_a, int64_t mc, int64_t kc, const float* a, int64_t lda, float* dst);
// Packs op(B)[k0.., j0..] (already offset by the caller) into NR-column micro-panels.
using pack_b_fn = void (*)(bool trans_b, int64_t kc, int64_t nc, const float* b, int64_t ldb, float* dst);
// C[mc, nc] = alpha * packedA * packedB + beta * C over one (mc, nc, kc) block; beta == 0: C not read.
// a_outer: loop over A micro-panels outside (A panel stays in L1, B panels stream from L2) or inside.
using macro_fn = void (*)(int64_t mc, int64_t nc, int64_t kc, float alpha, const float* pa, const float* pb,
                          float beta, float* c, int64_t ldc, bool a_outer);

struct gemm_kernels {
    const char* name;
    int mr, nr;              // register tile of the micro-kernel
    int64_t kc, mc, nc;      // cache blocking: K depth, rows of A per block, columns of B per block
    bool a_outer;            // loop nest: true = A block outermost (B block is the L2 one)
    pack_a_fn pack_a;
    pack_b_fn pack_b;
    macro_fn macro;
};

// Defined in the ISA files (built only for their architecture: engine/cpu/gemm.cmake); only called
// after the CPU was checked for the ISA.
const gemm_kernels* avx512_kernels();  // gemm_avx512.cpp, x86-64
const gemm_kernels* avx2_kernels();    // gemm_avx2.cpp, x86-64
const gemm_kernels* neon_kernels();    // gemm_neon.cpp, AArch64

// Benchmark/tuning hook: override the blocking of the active kernel set (0 or -1 = keep default).
// Not thread-safe; call between sgemm calls only.
void gemm_set_blocking(int64_t kc, int64_t mc, int64_t nc, int a_outer);

// Portable packing, instantiated per translation unit (anonymous namespace: each ISA file gets its own
// copy compiled with its own flags, so no AVX-512 copy can be picked by the linker for the scalar path).
namespace {

template <int MR>
void pack_a_generic(bool trans_a, int64_t mc, int64_t kc, const float* a, int64_t lda, float* dst) {
    for (int64_t i0 = 0; i0 < mc; i0 += MR) {
        const int rows = mc - i0 < MR ? int(mc - i0) : MR;
        if (trans_a) {
            // op(A)[i, k] = a[k*lda + i]: each k gives MR contiguous values.
            for (int64_t k = 0; k < kc; ++k) {
                const float* src = a + k * lda + i0;
                float* d = dst + k * MR;
                for (int r = 0; r < rows; ++r) d[r] = src[r];
                for (int r = rows; r < MR; ++r) d[r] = 0.f;
            }
        } else {
            // op(A)[i, k] = a[i*lda + k]: read each row contiguously, scatter with stride MR.
            for (int r = 0; r < rows; ++r) {
                const float* src = a + (i0 + r) * lda;
                for (int64_t k = 0; k < kc; ++k) dst[k * MR + r] = src[k];
            }
            for (int r = rows; r < MR; ++r)
                for (int64_t k = 0; k < kc; ++k) dst[k * MR + r] = 0.f;
        }
        dst += MR * kc;
    }
}

// Packing B is memory-latency bound when each K row of the block sits on its own page (wide B): the
// hardware prefetcher does not cross pages, so the row PF_ROWS ahead is prefetched by hand.
constexpr int64_t PF_ROWS = 3;

template <int NR>
void pack_b_generic(bool trans_b, int64_t kc, int64_t nc, const float* b, int64_t ldb, float* dst) {
    const int64_t full = nc / NR;
    const int rem = int(nc - full * NR);
    if (!trans_b) {
        // op(B)[k, j] = b[k*ldb + j]: stream each row of B once, dealing NR-wide pieces to the panels.
        for (int64_t k = 0; k < kc; ++k) {
            const float* src = b + k * ldb;
            float* d = dst + k * NR;
            if (k + PF_ROWS < kc) {
                const char* ahead = reinterpret_cast<const char*>(src + PF_ROWS * ldb);
                for (int64_t off = 0; off < nc * int64_t(sizeof(float)) + 64; off += 64)
                    __builtin_prefetch(ahead + off, 0, 3);
            }
            for (int64_t q = 0; q < full; ++q) std::memcpy(d + q * NR * kc, src + q * NR, NR * sizeof(float));
            if (rem) {
                float* dr = d + full * NR * kc;
                for (int j = 0; j < rem; ++j) dr[j] = src[full * NR + j];
                for (int j = rem; j < NR; ++j) dr[j] = 0.f;
            }
        }
    } else {
        // op(B)[k, j] = b[j*ldb + k]: each column j of op(B) is contiguous; scatter with stride NR.
        for (int64_t q = 0; q * NR < nc; ++q) {
            const int cols = nc - q * NR < NR ? int(nc - q * NR) : NR;
            float* d = dst + q * NR * kc;
            for (int j = 0; j < cols; ++j) {
                const float* src = b + (q * NR + j) * ldb;
                for (int64_t k = 0; k < kc; ++k) d[k * NR + j] = src[k];
            }
            for (int j = cols; j < NR; ++j)
                for (int64_t k = 0; k < kc; ++k) d[k * NR + j] = 0.f;
        }
    }
}

// The micro-kernel table of an ISA file: table[R-1][NV-1] = At::template get<R, NV>() (its micro-kernel of R
// rows and NV vectors), so edge tiles pick their exact shape at run time.
template <class Fn, class At, int R, int... V>
constexpr std::array<Fn, sizeof...(V)> micro_row(std::integer_sequence<int, V...>) {
    return {{At::template get<R, V + 1>()...}};
}
template <class Fn, class At, int NV, int... Rs>
constexpr std::array<std::array<Fn, NV>, sizeof...(Rs)> micro_rows(std::integer_sequence<int, Rs...>) {
    return {{micro_row<Fn, At, Rs + 1>(std::make_integer_sequence<int, NV>{})...}};
}
template <class Fn, class At, int MR, int NV>
constexpr auto make_micro_table() {
    return micro_rows<Fn, At, NV>(std::make_integer_sequence<int, MR>{});
}

// Runs tile(p, q, rows, cols) over the MR x NR register tiles of an mc x nc block (rows, cols: the tile's
// extent inside the block), A micro-panels in the outer loop (a_outer) or in the inner one.
template <int MR, int NR, class F>
inline void for_tiles(int64_t mc, int64_t nc, bool a_outer, F tile) {
    const int64_t mp = (mc + MR - 1) / MR, np = (nc + NR - 1) / NR;
    auto one = [&](int64_t p, int64_t q) {
        tile(p, q, mc - p * MR < MR ? int(mc - p * MR) : MR, nc - q * NR < NR ? int(nc - q * NR) : NR);
    };
    if (a_outer) {
        for (int64_t p = 0; p < mp; ++p)
            for (int64_t q = 0; q < np; ++q) one(p, q);
    } else {
        for (int64_t q = 0; q < np; ++q)
            for (int64_t p = 0; p < mp; ++p) one(p, q);
    }
}

}  // namespace
}  // namespace gemm_detail
}  // namespace nsvq
