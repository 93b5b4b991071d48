// Public interface of the CPU single-precision GEMM: C = alpha * op(A) * op(B) + beta * C (row-major),
// a double-accumulating reference for tests, and the runtime SIMD-level dispatch controls.
#pragma once

#include <cstdint>

namespace nsvq {

// C[M,N] = alpha * op(A) * op(B) + beta * C. Row-major. op(A) is M x K: A is M x K with leading dim lda
// (A[i*lda + k]) when !trans_a, or K x M (A[k*lda + i]) when trans_a. Likewise op(B) is K x N: B[k*ldb+n]
// when !trans_b, B[n*ldb+k] when trans_b. beta == 0 means C is not read (may hold NaN).
// nthreads: OpenMP threads to use (<=0: omp_get_max_threads()). Safe to call from inside a serial region only.
// The result is bitwise independent of nthreads (K is never split across threads).
void sgemm(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha,
           const float* A, int64_t lda, const float* B, int64_t ldb, float beta, float* C, int64_t ldc,
           int nthreads);

// Reference triple loop in double accumulation, for tests.
void sgemm_ref(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha,
               const float* A, int64_t lda, const float* B, int64_t ldb, float beta, float* C, int64_t ldc);

// The SIMD level the dispatcher chose: "avx512", "avx2", "neon" or "scalar".
const char* gemm_simd_level();

// Override the dispatcher for tests/benchmarks: "avx512" | "avx2" | "neon" | "scalar" | nullptr (= auto);
// "avx2" and "neon" name the same middle level (whichever this architecture has).
// A level the CPU lacks is never used: the request is clamped to the best supported level below it.
void gemm_force_simd_level(const char* level);

}  // namespace nsvq
