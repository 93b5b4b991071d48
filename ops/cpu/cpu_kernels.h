// ops/cpu/cpu_kernels.h — helpers shared by the CPU kernels: typed data access and the strided
// N-d row iterator that every elementwise/copy kernel uses (dims that are contiguous for all
// operands are merged; the innermost run is handed to a loop that the compiler vectorises).
#pragma once
#include <omp.h>
#include <algorithm>
#include <cmath>
#include "engine/op_table.h"
#include "engine/simd.h"

// Hot loops are portable C++ the compiler vectorises. On x86-64 (GCC) they are compiled for AVX-512,
// AVX2 and baseline x86-64 and the loader picks one at run time; clang 14 cannot multiversion function
// templates, so its builds (the sanitizer and fuzz builds of CI) compile them once, for baseline
// x86-64. On AArch64 they are compiled once: NEON is baseline there, and the compiler uses it.
#if NSVQ_X86 && !defined(__clang__)
#define NSVQ_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define NSVQ_CLONES
#endif
#if NSVQ_X86
// Hand-written AVX-512 kernels (intrinsics): only called when cpu_has_avx512() says so.
#define NSVQ_AVX512 __attribute__((target("avx512f,avx512vl,avx512bw,avx512dq,fma")))
#endif

namespace nsvq {

template <class T> inline T* tdata(Tensor* t) { return (T*)t->data; }
template <class T> inline const T* tdata(const Tensor* t) { return (const T*)t->data; }

// Describes `nops` operands of identical shape `ne` (ndim dims) with their own element strides.
struct NdIter {
  int ndim = 0;
  int64_t ne[MAX_DIMS];
  int64_t st[4][MAX_DIMS];
  int nops = 0;
  int64_t inner = 1;  // length of the innermost run
  int64_t rows = 1;   // number of runs
};

// Builds the iterator from operand tensors (all of t[0]'s shape), merging contiguous dims.
NdIter nd_iter_make(const Tensor* const* ts, int nops);
// Element offsets of the start of run r for each operand.
inline void nd_iter_row(const NdIter& it, int64_t r, int64_t* off) {
  for (int k = 0; k < it.nops; k++) off[k] = 0;
  for (int d = it.ndim - 2; d >= 0; d--) {
    int64_t i = r % it.ne[d];
    r /= it.ne[d];
    for (int k = 0; k < it.nops; k++) off[k] += i * it.st[k][d];
  }
}

// Runs f(off[], start, len) over every run, splitting long runs into chunks so that a single
// contiguous tensor still uses every thread. Work split never depends on the thread count's
// effect on results: each element is computed by exactly one call.
template <class F>
void nd_iter_for(const NdIter& it, int nthreads, F f) {
  const int64_t CH = 16384;
  int64_t chunks = (it.inner + CH - 1) / CH;
  if (chunks < 1) chunks = 1;
  int64_t work = it.rows * chunks;
  int64_t total = it.rows * it.inner;
  int nt = total < 65536 ? 1 : nthreads;  // below ~50 us of work a second thread costs as much as it saves
#pragma omp parallel for num_threads(nt) schedule(static)
  for (int64_t w = 0; w < work; w++) {
    int64_t r = w / chunks, c = w % chunks;
    int64_t off[4];
    nd_iter_row(it, r, off);
    int64_t s = c * CH, len = std::min(CH, it.inner - s);
    if (len <= 0) continue;
    for (int k = 0; k < it.nops; k++) off[k] += s * it.st[k][it.ndim - 1];
    f(off, len);
  }
}

// Sum of x[0..n) over 16 independent lanes combined in a fixed order (vectorises; deterministic).
inline float lane_sum(const float* __restrict x, int64_t n) {
  float acc[16] = {};
  int64_t i = 0;
  for (; i + 16 <= n; i += 16)
    for (int j = 0; j < 16; j++) acc[j] += x[i + j];
  for (; i < n; i++) acc[0] += x[i];
  float r = 0.0f;
  for (int j = 0; j < 16; j++) r += acc[j];
  return r;
}

// Max of x[0..n) (n >= 1) over 16 lanes; NaN-free inputs assumed (a NaN lane may be skipped).
inline float lane_max(const float* __restrict x, int64_t n) {
  float acc[16];
  for (int j = 0; j < 16; j++) acc[j] = -INFINITY;
  int64_t i = 0;
  for (; i + 16 <= n; i += 16)
    for (int j = 0; j < 16; j++) acc[j] = x[i + j] > acc[j] ? x[i + j] : acc[j];
  for (; i < n; i++) acc[0] = x[i] > acc[0] ? x[i] : acc[0];
  float r = acc[0];
  for (int j = 1; j < 16; j++) r = acc[j] > r ? acc[j] : r;
  return r;
}

// Copies src (any strides) into dst (any strides) of the same shape; 4-byte elements.
void cpu_copy_strided(Tensor* dst, const Tensor* src, int nthreads);
// Fills a contiguous 4-byte buffer with a 32-bit pattern.
void cpu_fill32(void* dst, int64_t n, uint32_t bits, int nthreads);

}  // namespace nsvq
