// Tests of the CPU SGEMM (engine/cpu/gemm.h): every SIMD level the machine has, all transpose combos,
// ragged sizes, padded leading dimensions, alpha/beta variants (beta == 0 must ignore NaN in C), several
// K slabs, thread-count determinism (bitwise) and calls from several application threads.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "engine/simd.h"

#include "../engine/cpu/gemm.h"

namespace {

// Restores automatic SIMD dispatch when a test leaves, even on failure.
struct level_guard {
    ~level_guard() { nsvq::gemm_force_simd_level(nullptr); }
};

// The SIMD levels this CPU can run (forcing an unsupported level clamps to a lower one).
std::vector<std::string> available_levels() {
    std::vector<std::string> out;
    for (const char* l : {"avx512", "avx2", "neon", "scalar"}) {
        nsvq::gemm_force_simd_level(l);
        if (std::string(nsvq::gemm_simd_level()) == l) out.push_back(l);
    }
    nsvq::gemm_force_simd_level(nullptr);
    return out;
}

struct gemm_case {
    bool ta = false, tb = false;
    int64_t m = 1, n = 1, k = 1;
    float alpha = 1.f, beta = 0.f;
    int64_t pad_a = 0, pad_b = 0, pad_c = 0;  // extra leading-dimension elements
    int threads = 1;
};

// Runs sgemm and sgemm_ref on the same inputs; checks every element of C against the reference with a
// tolerance relative to the magnitude of the terms (|alpha| sum |a b| + |beta c|), and that the padding
// columns of C (between n and ldc) were not touched. Returns the number of bad elements.
int64_t check_case(const gemm_case& g, std::mt19937& rng) {
    const int64_t rows_a = g.ta ? g.k : g.m, cols_a = g.ta ? g.m : g.k;
    const int64_t rows_b = g.tb ? g.n : g.k, cols_b = g.tb ? g.k : g.n;
    const int64_t lda = cols_a + g.pad_a, ldb = cols_b + g.pad_b, ldc = g.n + g.pad_c;
    std::uniform_real_distribution<float> dist(-1.f, 1.f);
    std::vector<float> a(size_t(rows_a * lda)), b(size_t(rows_b * ldb)), c(size_t(g.m * ldc));
    for (float& x : a) x = dist(rng);
    for (float& x : b) x = dist(rng);
    const float sentinel = 12345.f;
    for (int64_t i = 0; i < g.m; ++i)
        for (int64_t j = 0; j < ldc; ++j)
            c[size_t(i * ldc + j)] =
                j >= g.n ? sentinel : (g.beta == 0.f ? std::numeric_limits<float>::quiet_NaN() : dist(rng));
    std::vector<float> c_ref = c, c_out = c;

    nsvq::sgemm(g.ta, g.tb, g.m, g.n, g.k, g.alpha, a.data(), lda, b.data(), ldb, g.beta, c_out.data(), ldc,
                g.threads);
    nsvq::sgemm_ref(g.ta, g.tb, g.m, g.n, g.k, g.alpha, a.data(), lda, b.data(), ldb, g.beta, c_ref.data(), ldc);

    const double tol = 1e-4 * std::sqrt(double(std::max<int64_t>(g.k, 1)));
    int64_t bad = 0;
    for (int64_t i = 0; i < g.m; ++i) {
        for (int64_t j = 0; j < ldc; ++j) {
            const float got = c_out[size_t(i * ldc + j)];
            if (j >= g.n) {
                bad += got != sentinel;
                continue;
            }
            double scale = 0.0;
            for (int64_t p = 0; p < g.k; ++p) {
                const double av = g.ta ? a[size_t(p * lda + i)] : a[size_t(i * lda + p)];
                const double bv = g.tb ? b[size_t(j * ldb + p)] : b[size_t(p * ldb + j)];
                scale += std::fabs(av * bv);
            }
            scale = std::fabs(g.alpha) * scale + (g.beta == 0.f ? 0.0 : std::fabs(g.beta * c[size_t(i * ldc + j)]));
            const double want = c_ref[size_t(i * ldc + j)];
            if (!(std::fabs(double(got) - want) <= tol * scale + 1e-30)) ++bad;
        }
    }
    return bad;
}

std::string describe(const std::string& level, const gemm_case& g) {
    return level + " " + (g.ta ? "T" : "N") + (g.tb ? "T" : "N") + " M=" + std::to_string(g.m) +
           " N=" + std::to_string(g.n) + " K=" + std::to_string(g.k) + " alpha=" + std::to_string(g.alpha) +
           " beta=" + std::to_string(g.beta) + " pads=" + std::to_string(g.pad_a) + "," +
           std::to_string(g.pad_b) + "," + std::to_string(g.pad_c) + " threads=" + std::to_string(g.threads);
}

}  // namespace

TEST_SUITE_BEGIN("gemm");

TEST_CASE("sgemm dispatcher reports a known level and honours forcing") {
    level_guard guard;
    const std::string autolevel = nsvq::gemm_simd_level();
    CHECK((autolevel == "avx512" || autolevel == "avx2" || autolevel == "neon" || autolevel == "scalar"));
    if (NSVQ_ARM64 && nsvq::simd_env_cap() >= 1) CHECK(autolevel == "neon");  // every AArch64 CPU has NEON
    if (!NSVQ_X86) CHECK(autolevel != "avx2");
    nsvq::gemm_force_simd_level("scalar");
    CHECK(std::string(nsvq::gemm_simd_level()) == "scalar");
    nsvq::gemm_force_simd_level(nullptr);
    CHECK(std::string(nsvq::gemm_simd_level()) == autolevel);
}

TEST_CASE("sgemm matches the reference on random ragged sizes, all levels and transposes") {
    level_guard guard;
    std::mt19937 rng(20240611);
    std::uniform_int_distribution<int64_t> size(1, 300), pad(0, 37);
    const float alphas[] = {1.f, -0.5f, 2.5f};
    const float betas[] = {0.f, 1.f, -1.5f};
    for (const std::string& level : available_levels()) {
        nsvq::gemm_force_simd_level(level.c_str());
        for (int combo = 0; combo < 4; ++combo) {
            for (int it = 0; it < 10; ++it) {
                gemm_case g;
                g.ta = combo & 1;
                g.tb = combo & 2;
                g.m = size(rng);
                g.n = size(rng);
                g.k = size(rng);
                g.alpha = alphas[it % 3];
                g.beta = betas[(it / 3) % 3];
                if (it % 2) {
                    g.pad_a = pad(rng);
                    g.pad_b = pad(rng);
                    g.pad_c = pad(rng);
                }
                g.threads = 1 + it % 2;
                INFO(describe(level, g));
                CHECK(check_case(g, rng) == 0);
            }
        }
    }
}

TEST_CASE("sgemm degenerate and edge shapes") {
    level_guard guard;
    std::mt19937 rng(7);
    const int64_t shapes[][3] = {{1, 1, 1},   {1, 1, 300}, {1, 300, 1},  {300, 1, 1},  {1, 257, 130},
                                 {257, 1, 130}, {5, 7, 1},  {33, 49, 1},  {17, 1000, 3}, {1000, 17, 3},
                                 {7, 97, 777}, {4100, 9, 5}, {9, 4100, 5}, {48, 48, 48}, {64, 96, 400}};
    for (const std::string& level : available_levels()) {
        nsvq::gemm_force_simd_level(level.c_str());
        for (const auto& s : shapes) {
            for (int combo = 0; combo < 4; ++combo) {
                for (int variant = 0; variant < 2; ++variant) {
                    gemm_case g;
                    g.ta = combo & 1;
                    g.tb = combo & 2;
                    g.m = s[0];
                    g.n = s[1];
                    g.k = s[2];
                    g.alpha = variant ? -0.75f : 1.f;
                    g.beta = variant ? 0.5f : 0.f;
                    g.pad_a = variant ? 1000 : 0;  // leading dims far larger than the widths
                    g.pad_b = variant ? 515 : 0;
                    g.pad_c = variant ? 129 : 0;
                    g.threads = 1 + variant;
                    INFO(describe(level, g));
                    CHECK(check_case(g, rng) == 0);
                }
            }
        }
    }
}

TEST_CASE("sgemm with several K slabs and wide blocks") {
    level_guard guard;
    std::mt19937 rng(99);
    for (const std::string& level : available_levels()) {
        nsvq::gemm_force_simd_level(level.c_str());
        for (int combo = 0; combo < 4; ++combo) {
            gemm_case g;
            g.ta = combo & 1;
            g.tb = combo & 2;
            g.m = 70;
            g.n = 1037;  // several column blocks
            g.k = 1153;  // several K slabs: beta applied once, later slabs accumulate
            g.alpha = 0.5f;
            g.beta = combo % 2 ? 0.f : 2.f;
            g.pad_c = 3;
            g.threads = 2;
            INFO(describe(level, g));
            CHECK(check_case(g, rng) == 0);
        }
    }
}

TEST_CASE("sgemm alpha == 0 and K == 0 only scale C") {
    level_guard guard;
    const int64_t m = 5, n = 7;
    std::vector<float> a(m * 3, std::numeric_limits<float>::quiet_NaN()), b(3 * n, 1.f);
    std::vector<float> c(m * n, 2.f);
    nsvq::sgemm(false, false, m, n, 3, 0.f, a.data(), 3, b.data(), n, 0.5f, c.data(), n, 1);
    for (float v : c) CHECK(v == 1.f);
    nsvq::sgemm(false, false, m, n, 0, 1.f, a.data(), 3, b.data(), n, 3.f, c.data(), n, 2);
    for (float v : c) CHECK(v == 3.f);
    std::fill(c.begin(), c.end(), std::numeric_limits<float>::quiet_NaN());
    nsvq::sgemm(true, true, m, n, 0, 1.f, a.data(), m, b.data(), 3, 0.f, c.data(), n, 1);
    for (float v : c) CHECK(v == 0.f);
}

TEST_CASE("sgemm results are bitwise independent of the thread count") {
    level_guard guard;
    std::mt19937 rng(5);
    std::uniform_real_distribution<float> dist(-1.f, 1.f);
    const int64_t shapes[][3] = {{100, 1000, 700}, {1000, 100, 500}, {32, 5000, 300}, {257, 263, 1200}, {3, 50, 9}};
    for (const std::string& level : available_levels()) {
        nsvq::gemm_force_simd_level(level.c_str());
        for (const auto& s : shapes) {
            for (int combo = 0; combo < 4; ++combo) {
                const bool ta = combo & 1, tb = combo & 2;
                const int64_t m = s[0], n = s[1], k = s[2];
                std::vector<float> a(size_t(m * k)), b(size_t(k * n)), c0(size_t(m * n));
                for (float& x : a) x = dist(rng);
                for (float& x : b) x = dist(rng);
                for (float& x : c0) x = dist(rng);
                std::vector<float> c1 = c0, c2 = c0, c3 = c0;
                const int64_t lda = ta ? m : k, ldb = tb ? k : n;
                nsvq::sgemm(ta, tb, m, n, k, 1.25f, a.data(), lda, b.data(), ldb, 0.5f, c1.data(), n, 1);
                nsvq::sgemm(ta, tb, m, n, k, 1.25f, a.data(), lda, b.data(), ldb, 0.5f, c2.data(), n, 2);
                nsvq::sgemm(ta, tb, m, n, k, 1.25f, a.data(), lda, b.data(), ldb, 0.5f, c3.data(), n, 3);
                INFO(level << " combo " << combo << " " << m << "x" << n << "x" << k);
                CHECK(std::memcmp(c1.data(), c2.data(), c1.size() * sizeof(float)) == 0);
                CHECK(std::memcmp(c1.data(), c3.data(), c1.size() * sizeof(float)) == 0);
            }
        }
    }
}

TEST_CASE("sgemm can be called from several application threads") {
    // Each application thread gets its own (thread_local) packing buffers.
    std::vector<int64_t> bad(4, -1);
    std::vector<std::thread> pool;
    for (int t = 0; t < 4; ++t) {
        pool.emplace_back([t, &bad] {
            std::mt19937 rng(100 + t);
            int64_t total = 0;
            for (int it = 0; it < 3; ++it) {
                gemm_case g;
                g.ta = (t + it) & 1;
                g.tb = t & 2;
                g.m = 60 + 17 * t;
                g.n = 90 + 31 * it;
                g.k = 200 + 50 * t;
                g.beta = it == 1 ? 0.f : 1.f;
                total += check_case(g, rng);
            }
            bad[size_t(t)] = total;
        });
    }
    for (std::thread& th : pool) th.join();
    for (int64_t b : bad) CHECK(b == 0);
}

TEST_SUITE_END();
