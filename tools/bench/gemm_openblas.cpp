// Side-by-side benchmark of nsvq::sgemm against OpenBLAS cblas_sgemm (reference only; OpenBLAS is not a
// dependency of the library). Interleaves repetitions of both, reports the median GFLOP/s of each and
// their ratio for a square 1024^3 GEMM and conv-like shapes (small M, wide N) at 1 and 2 threads.
// Run with OPENBLAS_CORETYPE=SkylakeX: Debian's OpenBLAS mis-detects Zen 4/5 and is ~5x slow otherwise.
// Usage: nsvq-bench-openblas [--trans] [--reps N] [--threads T]
//   --trans adds transposed rows; --threads runs only that thread count (default: 1 then 2).
#include <cblas.h>
#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <thread>
#include <vector>

#include "../../engine/cpu/gemm.h"

extern "C" void openblas_set_num_threads(int num_threads);

namespace {

struct shape {
    int64_t m, n, k;
    bool ta, tb;
};

double now_s() {
    return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

// Both libraries keep their worker threads spinning for a while after a call (OpenBLAS for ~2^28 TSC
// cycles, libgomp for GOMP_SPINCOUNT); on a 2-core machine a spinning pool of one library steals a core
// from the other. Let both pools go idle before every timed sample.
void settle() { std::this_thread::sleep_for(std::chrono::milliseconds(200)); }

double median(std::vector<double> v) {
    std::sort(v.begin(), v.end());
    const size_t n = v.size();
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

}  // namespace

int main(int argc, char** argv) {
    bool with_trans = false;
    int reps = 9;
    std::vector<int> thread_counts = {1, 2};
    for (int i = 1; i < argc; ++i) {
        if (!std::strcmp(argv[i], "--trans")) with_trans = true;
        if (!std::strcmp(argv[i], "--reps") && i + 1 < argc) reps = std::max(7, std::atoi(argv[++i]));
        if (!std::strcmp(argv[i], "--threads") && i + 1 < argc) thread_counts = {std::max(1, std::atoi(argv[++i]))};
    }
    const char* core = std::getenv("OPENBLAS_CORETYPE");
    if (!core || !*core)
        std::printf("WARNING: OPENBLAS_CORETYPE is not set; Debian's OpenBLAS mis-detects this CPU and runs\n"
                    "         several times slower. Re-run with OPENBLAS_CORETYPE=SkylakeX.\n");
    std::printf("nsvq simd level: %s, OPENBLAS_CORETYPE=%s, median of %d interleaved runs\n",
                nsvq::gemm_simd_level(), core ? core : "(unset)", reps);

    std::vector<shape> shapes = {{1024, 1024, 1024, false, false}, {32, 32768, 144, false, false},
                                 {64, 32768, 576, false, false},   {128, 8192, 1152, false, false},
                                 {256, 8192, 1152, false, false},  {64, 8192, 576, false, false},
                                 {128, 16384, 288, false, false}};
    if (with_trans) {
        shapes.push_back({1024, 1024, 1024, false, true});
        shapes.push_back({1024, 1024, 1024, true, false});
        shapes.push_back({1024, 1024, 1024, true, true});
        shapes.push_back({64, 8192, 576, false, true});
        shapes.push_back({64, 8192, 576, true, false});
    }

    std::printf("%-22s %3s %5s %12s %12s %7s %10s\n", "shape MxNxK", "op", "thr", "ours GF/s", "OpenBLAS", "ratio",
                "max|diff|");
    std::mt19937 rng(1234);
    std::uniform_real_distribution<float> dist(-1.f, 1.f);
    for (int threads : thread_counts) {
        for (const shape& s : shapes) {
            const int64_t lda = s.ta ? s.m : s.k, ldb = s.tb ? s.k : s.n, ldc = s.n;
            std::vector<float> a(size_t(s.m * s.k)), b(size_t(s.k * s.n)), c0(size_t(s.m * s.n)),
                c1(size_t(s.m * s.n));
            for (float& x : a) x = dist(rng);
            for (float& x : b) x = dist(rng);
            openblas_set_num_threads(threads);
            const double flop = 2.0 * double(s.m) * double(s.n) * double(s.k);
            // Batch calls so each timed sample lasts >= ~30 ms even for the small shapes.
            const int batch = std::max(1, int(30e-3 * 100e9 * threads / flop));
            auto run_ours = [&] {
                for (int i = 0; i < batch; ++i)
                    nsvq::sgemm(s.ta, s.tb, s.m, s.n, s.k, 1.f, a.data(), lda, b.data(), ldb, 0.f, c0.data(), ldc,
                                threads);
            };
            auto run_blas = [&] {
                for (int i = 0; i < batch; ++i)
                    cblas_sgemm(CblasRowMajor, s.ta ? CblasTrans : CblasNoTrans, s.tb ? CblasTrans : CblasNoTrans,
                                int(s.m), int(s.n), int(s.k), 1.f, a.data(), int(lda), b.data(), int(ldb), 0.f,
                                c1.data(), int(ldc));
            };
            run_ours();  // warm-up: page in buffers, grow packing buffers, start thread pools
            run_blas();
            run_ours();
            run_blas();
            std::vector<double> t_ours, t_blas;
            for (int r = 0; r < reps; ++r) {
                settle();
                double t0 = now_s();
                run_ours();
                t_ours.push_back((now_s() - t0) / batch);
                settle();
                t0 = now_s();
                run_blas();
                t_blas.push_back((now_s() - t0) / batch);
            }
            double max_diff = 0.0;
            for (size_t i = 0; i < c0.size(); ++i) max_diff = std::max(max_diff, double(std::fabs(c0[i] - c1[i])));
            const double g_ours = flop / median(t_ours) * 1e-9, g_blas = flop / median(t_blas) * 1e-9;
            char name[64];
            std::snprintf(name, sizeof name, "%lldx%lldx%lld", (long long)s.m, (long long)s.n, (long long)s.k);
            std::printf("%-22s %c%c %5d %12.1f %12.1f %7.3f %10.2e\n", name, s.ta ? 'T' : 'N', s.tb ? 'T' : 'N',
                        threads, g_ours, g_blas, g_ours / g_blas, max_diff);
            std::fflush(stdout);
        }
    }
    return 0;
}
