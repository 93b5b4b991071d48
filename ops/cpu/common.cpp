// ops/cpu/common.cpp — the strided iterator, strided copy and fill shared by CPU kernels.
#include <cstdlib>
#include <cstring>
#include "engine/simd.h"
#include "ops/cpu/cpu_kernels.h"

namespace nsvq {

NdIter nd_iter_make(const Tensor* const* ts, int nops) {
  NdIter it;
  it.nops = nops;
  const Tensor* t0 = ts[0];
  // drop size-1 dims, then merge dim d into d+1 when every operand is contiguous across them
  int nd = 0;
  for (int d = 0; d < t0->ndim; d++) {
    if (t0->ne[d] == 1) continue;
    it.ne[nd] = t0->ne[d];
    for (int k = 0; k < nops; k++) it.st[k][nd] = ts[k]->nb[d];
    nd++;
  }
  if (nd == 0) {
    it.ne[0] = 1;
    for (int k = 0; k < nops; k++) it.st[k][0] = 1;
    nd = 1;
  }
  int m = 0;
  for (int d = 1; d < nd; d++) {
    bool merge = true;
    for (int k = 0; k < nops; k++)
      if (it.st[k][m] != it.st[k][d] * it.ne[d]) merge = false;
    if (merge) {
      it.ne[m] *= it.ne[d];
      for (int k = 0; k < nops; k++) it.st[k][m] = it.st[k][d];
    } else {
      m++;
      it.ne[m] = it.ne[d];
      for (int k = 0; k < nops; k++) it.st[k][m] = it.st[k][d];
    }
  }
  it.ndim = m + 1;
  it.inner = it.ne[it.ndim - 1];
  it.rows = 1;
  for (int d = 0; d < it.ndim - 1; d++) it.rows *= it.ne[d];
  return it;
}

// dst[.., k, .., L] = src[...] where dst is contiguous along L and src along k: copied in 32x32
// tiles so both sides touch whole cache lines (the NCHW <-> NHWC and matrix transposes).
static bool copy_transposed(const NdIter& it, uint32_t* d, const uint32_t* s, int nthreads) {
  int L = it.ndim - 1, k = -1;
  if (it.st[0][L] != 1 || it.st[1][L] == 1 || it.ne[L] < 8) return false;
  for (int q = 0; q < L; q++)
    if (it.st[1][q] == 1 && it.ne[q] >= 8) k = q;
  if (k < 0) return false;
  int64_t outer = 1;
  for (int q = 0; q < L; q++)
    if (q != k) outer *= it.ne[q];
  const int64_t T = 32;
  int64_t tk = (it.ne[k] + T - 1) / T, tl = (it.ne[L] + T - 1) / T;
  int64_t dk = it.st[0][k], sl = it.st[1][L];
  int nt = outer * it.ne[k] * it.ne[L] < 32768 ? 1 : nthreads;
#pragma omp parallel for num_threads(nt) schedule(static)
  for (int64_t w = 0; w < outer * tk * tl; w++) {
    int64_t o = w / (tk * tl), t = w % (tk * tl);
    int64_t i0 = (t / tl) * T, j0 = (t % tl) * T;
    int64_t od = 0, os = 0, r = o;
    for (int q = L - 1; q >= 0; q--) {
      if (q == k) continue;
      int64_t c = r % it.ne[q];
      r /= it.ne[q];
      od += c * it.st[0][q];
      os += c * it.st[1][q];
    }
    int64_t i1 = std::min(i0 + T, it.ne[k]), j1 = std::min(j0 + T, it.ne[L]);
    for (int64_t i = i0; i < i1; i++)
      for (int64_t j = j0; j < j1; j++) d[od + i * dk + j] = s[os + i + j * sl];
  }
  return true;
}

void cpu_copy_strided(Tensor* dst, const Tensor* src, int nthreads) {
  const Tensor* ts[2] = {dst, src};
  NdIter it = nd_iter_make(ts, 2);
  uint32_t* d = (uint32_t*)dst->data;
  const uint32_t* s = (const uint32_t*)src->data;
  if (copy_transposed(it, d, s, nthreads)) return;
  int64_t sd = it.st[0][it.ndim - 1], ss = it.st[1][it.ndim - 1];
  nd_iter_for(it, nthreads, [&](const int64_t* off, int64_t n) {
    uint32_t* dp = d + off[0];
    const uint32_t* sp = s + off[1];
    if (sd == 1 && ss == 1) std::memcpy(dp, sp, n * 4);
    else
      for (int64_t i = 0; i < n; i++) dp[i * sd] = sp[i * ss];
  });
}

void cpu_fill32(void* dst, int64_t n, uint32_t bits, int nthreads) {
  uint32_t* d = (uint32_t*)dst;
  int nt = n < 65536 ? 1 : nthreads;
#pragma omp parallel for num_threads(nt) schedule(static)
  for (int64_t i = 0; i < n; i++) d[i] = bits;
}

}  // namespace nsvq
