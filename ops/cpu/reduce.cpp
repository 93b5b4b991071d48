// ops/cpu/reduce.cpp — CPU kernels of reduce ([A, L, B] -> [A, B]) and argmax/argmin.
// Results never depend on the thread count: B == 1 rows are cut into fixed 8192-element chunks
// whose partials (16 float lanes each) are combined in order; B > 1 accumulates each column in
// double, one column block per work item.
#include <cfloat>
#include <cmath>
#include "ops/cpu/cpu_kernels.h"
#include "ops/elementwise_math.h"
#include "ops/ops_internal.h"

namespace nsvq {

static const int64_t RCH = 8192;

template <int K> inline float red_init() { return K == RED_MAX ? -INFINITY : K == RED_MIN ? INFINITY : 0.0f; }
template <int K> inline float red_step(float acc, float v) {
  if constexpr (K == RED_MAX) return v > acc ? v : acc;
  else if constexpr (K == RED_MIN) return v < acc ? v : acc;
  else if constexpr (K == RED_SUMSQ) return acc + v * v;
  else return acc + v;
}
template <int K> inline float red_combine(float a, float b) {
  if constexpr (K == RED_MAX) return b > a ? b : a;
  else if constexpr (K == RED_MIN) return b < a ? b : a;
  else return a + b;
}

// reduce x[0..n) with 16 independent lanes (vectorises), lanes combined in a fixed order
template <int K>
NSVQ_CLONES float red_chunk(const float* __restrict x, int64_t n) {
  float acc[16];
  for (int j = 0; j < 16; j++) acc[j] = red_init<K>();
  int64_t i = 0;
  for (; i + 16 <= n; i += 16)
    for (int j = 0; j < 16; j++) acc[j] = red_step<K>(acc[j], x[i + j]);
  for (; i < n; i++) acc[0] = red_step<K>(acc[0], x[i]);
  float r = acc[0];
  for (int j = 1; j < 16; j++) r = red_combine<K>(r, acc[j]);
  return r;
}

static size_t reduce_scratch(const Tensor* y, BackendKind) {
  int64_t A = y->ip[1], L = y->ip[2], B = y->ip[3];
  if (B != 1) return 0;
  return (size_t)A * ((L + RCH - 1) / RCH) * sizeof(float);
}

static void reduce_cpu(Tensor* y, const ExecCtx& c) {
  int64_t A = y->ip[1], L = y->ip[2], B = y->ip[3];
  const float* x = tdata<float>(y->src[0]);
  float* out = tdata<float>(y);
  kind_dispatch<RED_COUNT>(y->ip[0], [&](auto k) {
    constexpr int K0 = decltype(k)::value;
    constexpr int K = K0 == RED_MEAN ? RED_SUM : K0;
    const float post = K0 == RED_MEAN ? 1.0f / (float)L : 1.0f;
    if (B == 1) {
      int64_t nch = (L + RCH - 1) / RCH;
      if (nch <= 1) {
        int nt = A * L < 32768 ? 1 : c.nthreads;
#pragma omp parallel for num_threads(nt) schedule(static)
        for (int64_t a = 0; a < A; a++) out[a] = red_chunk<K>(x + a * L, L) * post;
        return;
      }
      float* part = (float*)c.scratch;
#pragma omp parallel for num_threads(c.nthreads) schedule(static)
      for (int64_t w = 0; w < A * nch; w++) {
        int64_t a = w / nch, ch = w % nch;
        int64_t s = ch * RCH;
        part[w] = red_chunk<K>(x + a * L + s, std::min(RCH, L - s));
      }
      for (int64_t a = 0; a < A; a++) {
        float r = part[a * nch];
        for (int64_t ch = 1; ch < nch; ch++) r = red_combine<K>(r, part[a * nch + ch]);
        out[a] = r * post;
      }
      return;
    }
    const int64_t BC = 256;
    int64_t nbc = (B + BC - 1) / BC;
    int nt = A * L * B < 32768 ? 1 : c.nthreads;
#pragma omp parallel for num_threads(nt) schedule(static)
    for (int64_t w = 0; w < A * nbc; w++) {
      int64_t a = w / nbc, b0 = (w % nbc) * BC, nb = std::min(BC, B - b0);
      double acc[BC];
      for (int64_t j = 0; j < nb; j++) acc[j] = red_init<K>();
      for (int64_t l = 0; l < L; l++) {
        const float* row = x + (a * L + l) * B + b0;
        for (int64_t j = 0; j < nb; j++) {
          if constexpr (K == RED_MAX) acc[j] = row[j] > acc[j] ? row[j] : acc[j];
          else if constexpr (K == RED_MIN) acc[j] = row[j] < acc[j] ? row[j] : acc[j];
          else if constexpr (K == RED_SUMSQ) acc[j] += (double)row[j] * row[j];
          else acc[j] += row[j];
        }
      }
      for (int64_t j = 0; j < nb; j++) out[a * B + b0 + j] = (float)acc[j] * post;
    }
  });
}

static void arg_reduce_cpu(Tensor* y, const ExecCtx& c) {
  int64_t A = y->ip[1], L = y->ip[2], B = y->ip[3];
  bool is_min = y->ip[0] != 0;
  const float* x = tdata<float>(y->src[0]);
  int32_t* out = tdata<int32_t>(y);
  int nt = A * L * B < 32768 ? 1 : c.nthreads;
#pragma omp parallel for num_threads(nt) schedule(static)
  for (int64_t o = 0; o < A * B; o++) {
    int64_t a = o / B, b = o % B;
    const float* p = x + a * L * B + b;
    float best = p[0];
    int32_t bi = 0;
    for (int64_t l = 1; l < L; l++) {
      float v = p[l * B];
      if (is_min ? v < best : v > best) {  // strict: ties keep the lowest index
        best = v;
        bi = (int32_t)l;
      }
    }
    out[o] = bi;
  }
}

void register_reduce_cpu() {
  OpDef d;
  d.kernel[BK_CPU] = reduce_cpu;
  d.scratch = reduce_scratch;
  op_register(OP_REDUCE, d);
  OpDef a;
  a.kernel[BK_CPU] = arg_reduce_cpu;
  op_register(OP_ARG_REDUCE, a);
}

}  // namespace nsvq
