// CPU SGEMM driver: runtime SIMD dispatch, cache blocking and packing (Goto/BLIS scheme), OpenMP
// partition of C across threads, the scalar fallback micro-kernel and the double-precision reference.
//
// Blocking: K is cut into kc-deep slabs (same cut for any thread count, so every C element accumulates
// its K terms in the same order: results are bitwise independent of nthreads). For each slab, an
// mc x kc block of op(A) and a kc x nc block of op(B) are packed into micro-panels (see
// gemm_internal.h) and the ISA macro-kernel runs the MR x NR register tiles over them.
// Two loop nests are available per kernel set:
//   a_outer (A block outermost): A block mc x kc is the big one (L3/L2), each kc x nc B block is sized
//     to stay in L2 and is streamed through the micro-kernel while an A micro-panel (MR x kc) sits in L1.
//   b_outer (classic BLIS): B block kc x nc is the big one, A block mc x kc sits in L2 and a B
//     micro-panel (kc x NR) stays in L1 while A micro-panels stream.
// Threads: C is cut into a tm x tn grid of contiguous tile ranges (tm * tn = threads), each thread runs
// the whole blocked algorithm on its part with its own thread_local packing buffers. With M small
// (conv-like shapes) the grid degenerates to a split over N.
#include "gemm.h"
#include "engine/simd.h"

#include <omp.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <new>

#include "gemm_internal.h"

namespace nsvq {
namespace gemm_detail {
namespace {

// ---------------------------------------------------------------- scalar fallback (baseline ISA)
constexpr int SC_MR = 4;
constexpr int SC_NR = 16;

// C[rows x cols] = alpha * sum_k a[k, :] (x) b[k, :] + beta * C, full SC_MR x SC_NR tile computed.
void scalar_micro(int64_t kc, const float* a, const float* b, float* c, int64_t ldc, float alpha, float beta,
                  int rows, int cols) {
    float acc[SC_MR][SC_NR] = {};
    for (int64_t k = 0; k < kc; ++k) {
        for (int r = 0; r < SC_MR; ++r) {
            const float av = a[r];
            for (int j = 0; j < SC_NR; ++j) acc[r][j] += av * b[j];
        }
        a += SC_MR;
        b += SC_NR;
    }
    for (int r = 0; r < rows; ++r) {
        float* cr = c + r * ldc;
        if (beta == 0.f) {
            for (int j = 0; j < cols; ++j) cr[j] = alpha * acc[r][j];
        } else {
            for (int j = 0; j < cols; ++j) cr[j] = alpha * acc[r][j] + beta * cr[j];
        }
    }
}

void scalar_macro(int64_t mc, int64_t nc, int64_t kc, float alpha, const float* pa, const float* pb,
                  float beta, float* c, int64_t ldc, bool a_outer) {
    for_tiles<SC_MR, SC_NR>(mc, nc, a_outer, [&](int64_t p, int64_t q, int rows, int cols) {
        scalar_micro(kc, pa + p * SC_MR * kc, pb + q * SC_NR * kc, c + p * SC_MR * ldc + q * SC_NR, ldc, alpha,
                     beta, rows, cols);
    });
}

const gemm_kernels scalar_set = {"scalar", SC_MR, SC_NR, 256, 128, 2048, false,
                                 &pack_a_generic<SC_MR>, &pack_b_generic<SC_NR>, &scalar_macro};

// ---------------------------------------------------------------- dispatch
// Levels: 2 = AVX-512, 1 = AVX2 on x86-64 or NEON on AArch64, 0 = the portable kernel above.
enum simd_level { level_scalar = 0, level_mid = 1, level_avx512 = 2 };

int cpu_level() {  // engine/simd.cpp probes the CPU and applies the NSVQ_SIMD cap
    static const int level = cpu_has_avx512() ? level_avx512
                             : (cpu_has_avx2() || (NSVQ_ARM64 && simd_env_cap() >= 1)) ? level_mid
                                                                                        : level_scalar;
    return level;
}

std::atomic<int> forced_level{-1};

int active_level() {
    const int f = forced_level.load(std::memory_order_relaxed);
    return f < 0 ? cpu_level() : std::min(f, cpu_level());
}

const gemm_kernels* kernels_for(int level) {
#if NSVQ_X86
    if (level == level_avx512) return avx512_kernels();
    if (level == level_mid) return avx2_kernels();
#elif NSVQ_ARM64
    if (level >= level_mid) return neon_kernels();
#endif
    return &scalar_set;
}

// ---------------------------------------------------------------- packing buffers
// Grow-only, 64-byte aligned, one pair per thread: no allocation in steady state, and safe when the
// application calls sgemm from several of its own threads (each has its own buffers).
struct pack_buffer {
    float* data = nullptr;
    size_t capacity = 0;  // floats
    float* get(size_t n) {
        if (n > capacity) {
            std::free(data);
            const size_t bytes = (n * sizeof(float) + 63) / 64 * 64;
            data = static_cast<float*>(std::aligned_alloc(64, bytes));
            if (!data) {
                capacity = 0;
                throw std::bad_alloc();
            }
            capacity = bytes / sizeof(float);
        }
        return data;
    }
    ~pack_buffer() { std::free(data); }
};
thread_local pack_buffer tl_pack_a, tl_pack_b;

// ---------------------------------------------------------------- blocked algorithm on a C sub-range
struct problem {
    bool trans_a, trans_b;
    int64_t M, N, K;
    float alpha;
    const float* A;
    int64_t lda;
    const float* B;
    int64_t ldb;
    float beta;
    float* C;
    int64_t ldc;
};

// K slab depth: the fewest slabs of at most kc_max, evened out (K = 576, kc_max = 384 -> 2 x 288),
// so the last slab is not a thin, inefficient sliver. Depends on K only (determinism).
int64_t slab_depth(int64_t K, int64_t kc_max) {
    const int64_t slabs = (K + kc_max - 1) / kc_max;
    return (K + slabs - 1) / slabs;
}

int64_t round_up(int64_t x, int64_t m) { return (x + m - 1) / m * m; }

void run_range(const gemm_kernels& ks, const problem& p, int64_t m0, int64_t m1, int64_t n0, int64_t n1) {
    if (m0 >= m1 || n0 >= n1) return;
    const int64_t kc_step = slab_depth(p.K, ks.kc);
    const int64_t mc_step = std::min(ks.mc, round_up(m1 - m0, ks.mr));
    const int64_t nc_step = std::min(ks.nc, round_up(n1 - n0, ks.nr));
    float* pa = tl_pack_a.get(size_t(round_up(mc_step, ks.mr) * kc_step));
    float* pb = tl_pack_b.get(size_t(round_up(nc_step, ks.nr) * kc_step));

    auto a_at = [&](int64_t i, int64_t k) { return p.trans_a ? p.A + k * p.lda + i : p.A + i * p.lda + k; };
    auto b_at = [&](int64_t k, int64_t j) { return p.trans_b ? p.B + j * p.ldb + k : p.B + k * p.ldb + j; };

    if (ks.a_outer) {
        for (int64_t ic = m0; ic < m1; ic += mc_step) {
            const int64_t mc = std::min(mc_step, m1 - ic);
            for (int64_t pc = 0; pc < p.K; pc += kc_step) {
                const int64_t kc = std::min(kc_step, p.K - pc);
                const float beta = pc == 0 ? p.beta : 1.f;
                ks.pack_a(p.trans_a, mc, kc, a_at(ic, pc), p.lda, pa);
                for (int64_t jc = n0; jc < n1; jc += nc_step) {
                    const int64_t nc = std::min(nc_step, n1 - jc);
                    ks.pack_b(p.trans_b, kc, nc, b_at(pc, jc), p.ldb, pb);
                    ks.macro(mc, nc, kc, p.alpha, pa, pb, beta, p.C + ic * p.ldc + jc, p.ldc, true);
                }
            }
        }
    } else {
        for (int64_t jc = n0; jc < n1; jc += nc_step) {
            const int64_t nc = std::min(nc_step, n1 - jc);
            for (int64_t pc = 0; pc < p.K; pc += kc_step) {
                const int64_t kc = std::min(kc_step, p.K - pc);
                const float beta = pc == 0 ? p.beta : 1.f;
                ks.pack_b(p.trans_b, kc, nc, b_at(pc, jc), p.ldb, pb);
                for (int64_t ic = m0; ic < m1; ic += mc_step) {
                    const int64_t mc = std::min(mc_step, m1 - ic);
                    ks.pack_a(p.trans_a, mc, kc, a_at(ic, pc), p.lda, pa);
                    ks.macro(mc, nc, kc, p.alpha, pa, pb, beta, p.C + ic * p.ldc + jc, p.ldc, false);
                }
            }
        }
    }
}

// Thread grid tm x tn (tm * tn = nt) over the tiles of C. Cost model per thread: its share of the
// multiply-adds plus its packing (each thread packs its own rows of A and columns of B, K deep).
void choose_grid(int64_t M, int64_t N, int nt, int mr, int nr, int& tm, int& tn) {
    const int64_t mt = (M + mr - 1) / mr, nt_tiles = (N + nr - 1) / nr;
    double best = std::numeric_limits<double>::max();
    tm = 1;
    tn = nt;
    for (int a = 1; a <= nt; ++a) {
        if (nt % a) continue;
        const int b = nt / a;
        const double rows = double((mt + a - 1) / a) * mr, cols = double((nt_tiles + b - 1) / b) * nr;
        const double cost = rows * cols + 32.0 * (rows + cols);
        if (cost < best) {
            best = cost;
            tm = a;
            tn = b;
        }
    }
}

void run_thread(const gemm_kernels& ks, const problem& p, int tid, int nth) {
    int tm, tn;
    choose_grid(p.M, p.N, nth, ks.mr, ks.nr, tm, tn);
    const int64_t mt = (p.M + ks.mr - 1) / ks.mr, ntl = (p.N + ks.nr - 1) / ks.nr;
    const int i = tid / tn, j = tid % tn;
    const int64_t m0 = std::min(p.M, mt * i / tm * ks.mr), m1 = std::min(p.M, mt * (i + 1) / tm * ks.mr);
    const int64_t n0 = std::min(p.N, ntl * j / tn * ks.nr), n1 = std::min(p.N, ntl * (j + 1) / tn * ks.nr);
    run_range(ks, p, m0, m1, n0, n1);
}

// Optional blocking override (benchmark tuning only; 0 keeps the kernel's default).
struct blocking_override {
    int64_t kc = 0, mc = 0, nc = 0;
    int a_outer = -1;
} g_override;

}  // namespace

void gemm_set_blocking(int64_t kc, int64_t mc, int64_t nc, int a_outer) {
    g_override.kc = kc;
    g_override.mc = mc;
    g_override.nc = nc;
    g_override.a_outer = a_outer;
}

}  // namespace gemm_detail

using namespace gemm_detail;

void sgemm(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha, const float* A, int64_t lda,
           const float* B, int64_t ldb, float beta, float* C, int64_t ldc, int nthreads) {
    if (M <= 0 || N <= 0) return;
    if (K <= 0 || alpha == 0.f) {
        // Only the beta * C part remains (beta == 0 writes zeros without reading C).
        for (int64_t i = 0; i < M; ++i) {
            float* cr = C + i * ldc;
            if (beta == 0.f)
                std::memset(cr, 0, size_t(N) * sizeof(float));
            else if (beta != 1.f)
                for (int64_t j = 0; j < N; ++j) cr[j] *= beta;
        }
        return;
    }

    gemm_kernels ks = *kernels_for(active_level());
    if (g_override.kc > 0) ks.kc = g_override.kc;
    if (g_override.mc > 0) ks.mc = std::max<int64_t>(ks.mr, g_override.mc / ks.mr * ks.mr);
    if (g_override.nc > 0) ks.nc = std::max<int64_t>(ks.nr, g_override.nc / ks.nr * ks.nr);
    if (g_override.a_outer >= 0) ks.a_outer = g_override.a_outer != 0;

    const problem p = {trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc};

    int nt = nthreads > 0 ? nthreads : omp_get_max_threads();
    // Below ~4 MFLOP per thread the fork/join costs more than it saves.
    const double flops = 2.0 * double(M) * double(N) * double(K);
    nt = int(std::max<double>(1.0, std::min<double>(nt, flops / 4e6)));
    if (nt <= 1) {
        run_range(ks, p, 0, M, 0, N);
        return;
    }
#pragma omp parallel num_threads(nt)
    run_thread(ks, p, omp_get_thread_num(), omp_get_num_threads());
}

void sgemm_ref(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha, const float* A,
               int64_t lda, const float* B, int64_t ldb, float beta, float* C, int64_t ldc) {
    for (int64_t i = 0; i < M; ++i) {
        for (int64_t j = 0; j < N; ++j) {
            double sum = 0.0;
            for (int64_t k = 0; k < K; ++k) {
                const double a = trans_a ? A[k * lda + i] : A[i * lda + k];
                const double b = trans_b ? B[j * ldb + k] : B[k * ldb + j];
                sum += a * b;
            }
            float& c = C[i * ldc + j];
            c = float(double(alpha) * sum + (beta == 0.f ? 0.0 : double(beta) * double(c)));
        }
    }
}

const char* gemm_simd_level() { return kernels_for(active_level())->name; }

void gemm_force_simd_level(const char* level) {
    int f = -1;
    if (level) {
        if (std::strcmp(level, "avx512") == 0)
            f = level_avx512;
        else if (std::strcmp(level, "avx2") == 0 || std::strcmp(level, "neon") == 0)
            f = level_mid;
        else if (std::strcmp(level, "scalar") == 0)
            f = level_scalar;
    }
    forced_level.store(f, std::memory_order_relaxed);
}

}  // namespace nsvq
