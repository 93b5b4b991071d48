// ops/cpu/vq.cpp — CPU kernels of the vq family (ops/vq.h).
//
// Blocking: rows come in blocks of NB = 256, codes in tiles of KB = 1024. A tile of dot products
// z_blk . E_tile^T (NB x KB floats = 1 MiB: the L2 of a Zen 5 core; 128-row tiles measured ~10 %
// slower at D = 128, mostly from packing each code tile twice as often) comes from our SGEMM called
// single-threaded on the block; a vectorised scan then turns it into distances
// d = max(0, |z|^2 + |e|^2 - 2 z.e) and folds them into the running per-row state. Nothing of size
// N x K ever exists; memory beyond the codebook is |e|^2 per code, |z|^2 per row, per-row lane
// state and one tile per thread.
//   search (vq_nearest, lse refresh): work items are (row block, code chunk) pairs; a row keeps 64
//     lanes of (min, argmin, sum of exp(-d/tau - m)) with m its running max of -d/tau, lanes are
//     combined once per chunk and chunks merged in chunk order. The number of chunks depends on N
//     and K only, never on the thread count, so results are bitwise independent of it.
//   dense stats (pass B of method.md §3.1.2): one thread owns a code tile and walks every row block
//     in order: dots -> weights w in place -> the GEMM [X | 1 | |z|^2]_blk^T W += into a per-tile
//     [Dx + 2, KB] accumulator (M and the column sums S, Q in one GEMM). Each sum is taken over
//     rows in row order: deterministic.
//   soft mix (VQ_new): one thread owns a row block and walks the code tiles: A_blk += W E_tile.
// Flush-to-zero / denormals-are-zero are set inside the kernels; exponents below VQ_EXP_FLOOR are
// weight 0 (and exp_neg never returns a subnormal).
// Argmin ties go to the lowest index: each lane keeps its first strict minimum, lanes combine by
// (value, index), chunks by strict less-than in index order. Identical codes get bitwise identical
// distances (the SGEMM gives every C element the same FMA sequence wherever it lies in a tile).
#include <omp.h>
#include <algorithm>
#include <cmath>
#include <cstring>
#include "engine/simd.h"
#if NSVQ_X86
#include <xmmintrin.h>
#endif
#include "engine/cpu/gemm.h"
#include "ops/cpu/cpu_kernels.h"
#include "ops/elementwise_math.h"
#include "ops/ops_internal.h"
#include "ops/vq.h"

namespace nsvq {

namespace {

constexpr int64_t NB = 256;           // rows per block
constexpr int64_t KB = 1024;          // codes per tile
constexpr int64_t TARGET_ITEMS = 32;  // (row block, code chunk) items the search aims for
constexpr int64_t LOSS_CHUNK = 1024;  // codes per partial sum of the dense loss

int64_t cdiv(int64_t a, int64_t b) { return (a + b - 1) / b; }
size_t up(int64_t n) { return (size_t)cdiv(n, 16) * 16; }  // floats, rounded to 64 bytes

// Flush-to-zero and denormals-are-zero for the current thread while in scope.
struct FlushDenormals {
#if NSVQ_X86
  unsigned csr;
  FlushDenormals() : csr(_mm_getcsr()) { _mm_setcsr(csr | 0x8040u); }  // FTZ | DAZ
  ~FlushDenormals() { _mm_setcsr(csr); }
#elif NSVQ_ARM64 && defined(__GNUC__) && !defined(__clang__)
  unsigned fpcr;
  FlushDenormals() : fpcr(__builtin_aarch64_get_fpcr()) { __builtin_aarch64_set_fpcr(fpcr | (1u << 24)); }  // FZ
  ~FlushDenormals() { __builtin_aarch64_set_fpcr(fpcr); }
#endif
};

// Threads for `work` multiply-adds: below ~2 M per thread the fork costs more than it saves.
int threads_for(double work, int64_t items, int nthreads) {
  int64_t n = std::min<int64_t>(nthreads, std::max<int64_t>(1, (int64_t)(work / 2e6)));
  return (int)std::max<int64_t>(1, std::min<int64_t>(n, items));
}

// ---------------------------------------------------------------- vectorised row loops

// |x|^2 in 8 fixed lanes (deterministic, vectorises)
NSVQ_CLONES float norm_sq(const float* __restrict x, int64_t D) {
  float acc[8] = {};
  int64_t i = 0;
  for (; i + 8 <= D; i += 8)
    for (int j = 0; j < 8; j++) acc[j] += x[i + j] * x[i + j];
  for (; i < D; i++) acc[0] += x[i] * x[i];
  float s = 0.0f;
  for (int j = 0; j < 8; j++) s += acc[j];
  return s;
}

void row_norms(const float* x, int64_t rows, int64_t D, float* out, int nt) {
  nt = rows * D < 65536 ? 1 : nt;
#pragma omp parallel for num_threads(nt) schedule(static)
  for (int64_t r = 0; r < rows; r++) out[r] = norm_sq(x + r * D, D);
}

inline float dist(float zn, float en, float t) { return std::max(zn + en - 2.0f * t, 0.0f); }

// 2^x for x <= 0: x clamped at -125 (so the result is never a subnormal), x = n + f with n an
// integer and |f| <= 1/2, 2^f by its degree-6 Taylor polynomial (relative error < 2e-7), 2^n put
// into the exponent bits. Every exponent in this file is <= 0 (-d/tau minus a row maximum or the
// row LSE), and the hot loops fold log2(e) into their constants, so this is all the exp they need:
// about 20 vector instructions per 16 values, the main cost of the dense loss at small D.
inline float exp2_neg(float x) {
  x = select_bits(x < -125.0f, -125.0f, x);
  const int32_t ni = (int32_t)(x - 0.5f);  // x <= 0: truncation is ceil, so ni = round(x) (halves down)
  const float f = x - (float)ni;
  float p = 1.5403530393381606e-4f;
  p = p * f + 1.3333558146428443e-3f;
  p = p * f + 9.6181291076284772e-3f;
  p = p * f + 5.5504108664821580e-2f;
  p = p * f + 2.4022650695910071e-1f;
  p = p * f + 6.9314718055994531e-1f;
  p = p * f + 1.0f;
  const uint32_t e = (uint32_t)(ni + 127) << 23;
  float sc;
  std::memcpy(&sc, &e, 4);
  return p * sc;
}
constexpr float LOG2E = 1.44269504088896341f;
inline float exp_neg(float x) { return exp2_neg(x * LOG2E); }

// The search keeps, per row, LANES independent running values (four zmm registers on AVX-512): lane
// j sees the codes k with k % LANES == j of every tile in increasing order, so no loop-carried
// dependency chain limits the scans, and the lanes are combined once per row and code chunk, in a
// fixed order (deterministic, and the first minimum of each lane is its lowest index).
constexpr int LANES = 64;

struct Lanes {
  float bv[LANES];   // minimum distance seen by the lane
  int32_t bi[LANES]; // its (global) code index
  float acc[LANES];  // sum of exp(-d / tau - m) of the lane, m the row's running max of -d / tau
};

void lanes_init(Lanes* L) {
  for (int j = 0; j < LANES; j++) {
    L->bv[j] = INFINITY;
    L->bi[j] = 0;
    L->acc[j] = 0.0f;
  }
}

// Folds one tile row (codes k0..k0+n) into the lanes' minima; returns the row's running minimum.
NSVQ_CLONES float lanes_min(Lanes* __restrict L, const float* __restrict t, const float* __restrict en, float zn,
                          int64_t n, int32_t k0) {
  float bv[LANES];
  int32_t bi[LANES];
  for (int j = 0; j < LANES; j++) {
    bv[j] = L->bv[j];
    bi[j] = L->bi[j];
  }
  int64_t i = 0;
  for (; i + LANES <= n; i += LANES)
    for (int j = 0; j < LANES; j++) {
      float d = dist(zn, en[i + j], t[i + j]);
      int32_t lt = -(int32_t)(d < bv[j]);
      bv[j] = std::min(d, bv[j]);
      bi[j] = (bi[j] & ~lt) | ((k0 + (int32_t)(i + j)) & lt);
    }
  for (; i < n; i++) {  // the tail of the last tile, into the lanes its positions belong to
    const int j = (int)(i % LANES);
    float d = dist(zn, en[i], t[i]);
    if (d < bv[j]) {
      bv[j] = d;
      bi[j] = k0 + (int32_t)i;
    }
  }
  float red[LANES];
  for (int j = 0; j < LANES; j++) {
    L->bv[j] = bv[j];
    L->bi[j] = bi[j];
    red[j] = bv[j];
  }
  for (int w = LANES / 2; w > 0; w /= 2)  // tree minimum
    for (int j = 0; j < w; j++) red[j] = std::min(red[j], red[j + w]);
  return red[0];
}

// acc = acc * rescale + exp(-d / tau - m) per lane, for one tile row; c = log2(e) / tau, o = m log2(e)
NSVQ_CLONES void lanes_expsum(Lanes* __restrict L, const float* __restrict t, const float* __restrict en, float zn,
                            int64_t n, float c, float o, float rescale) {
  float acc[LANES];
  for (int j = 0; j < LANES; j++) acc[j] = L->acc[j] * rescale;
  int64_t i = 0;
  for (; i + LANES <= n; i += LANES)
    for (int j = 0; j < LANES; j++) acc[j] += exp2_neg(-dist(zn, en[i + j], t[i + j]) * c - o);
  for (; i < n; i++) acc[i % LANES] += exp2_neg(-dist(zn, en[i], t[i]) * c - o);
  for (int j = 0; j < LANES; j++) L->acc[j] = acc[j];
}

// In place: dots -> dense-loss weights min(1, lambda K e^x), x = -d/tau - LSE (0 below the floor), of
// one row whose winner is at local index ks (maybe outside the tile: then no winner here).
NSVQ_CLONES void row_weights(float* __restrict t, const float* __restrict en, float zn, int64_t n, float inv_tau,
                           float lse, float lam_k) {
  const float c = inv_tau * LOG2E, o = lse * LOG2E, floor2 = VQ_EXP_FLOOR * LOG2E;
  for (int64_t i = 0; i < n; i++) {
    const float x = -dist(zn, en[i], t[i]) * c - o;  // log2 of e^(-d/tau - lse)
    t[i] = select_bits(x < floor2, 0.0f, std::min(lam_k * exp2_neg(x), 1.0f));
  }
}

// One weight row with its winner (local index ks; maybe outside the tile) set to `win`.
void weight_row(float* t, const float* en, float zn, int64_t n, float inv_tau, float lse, float lam_k, int64_t ks,
                float win) {
  row_weights(t, en, zn, n, inv_tau, lse, lam_k);
  if (ks >= 0 && ks < n) t[ks] = win;
}

// ---------------------------------------------------------------- the blockwise search

struct RowState {
  float best;
  int32_t idx;
  float m;  // running max of -d / tau
  float s;  // sum of exp(-d / tau - m)
};
static_assert(sizeof(RowState) == 16, "RowState is 4 floats");

int64_t search_chunks(int64_t N, int64_t K) {
  return std::min(cdiv(K, KB), std::max<int64_t>(1, cdiv(TARGET_ITEMS, cdiv(N, NB))));
}
size_t search_shared(int64_t N, int64_t K) { return up(K) + up(N) + up(search_chunks(N, K) * N * 4); }
size_t tile_floats() { return up(NB * KB); }
size_t search_per_thread() { return tile_floats() + (size_t)NB * sizeof(Lanes) / sizeof(float) + up(NB); }

// Threads that fit the scratch: shared floats first, then `per` floats per thread.
int threads_fit(const ExecCtx& c, size_t shared, size_t per, const char* op) {
  size_t have = c.scratch_bytes / sizeof(float);
  if (have < shared + per) fail("%s: kernel scratch of %zu bytes is too small", op, c.scratch_bytes);
  return (int)std::min<size_t>((size_t)c.nthreads, (have - shared) / per);
}

// Min distance, index and (with_lse) the LSE pieces of every row of z against E. Returns the merged
// per-row states (inside the scratch).
const RowState* search_run(const float* z, const float* E, int64_t N, int64_t K, int64_t D, bool with_lse,
                           float inv_tau, const ExecCtx& c, const char* op) {
  float* sc = (float*)c.scratch;
  float* en = sc;
  float* zn = en + up(K);
  RowState* part = (RowState*)(zn + up(N));
  float* per = sc + search_shared(N, K);
  const int64_t n_rb = cdiv(N, NB), T = cdiv(K, KB), C = search_chunks(N, K), items = n_rb * C;
  int nt = std::min(threads_fit(c, search_shared(N, K), search_per_thread(), op),
                    threads_for((double)N * K * D, items, c.nthreads));
  row_norms(E, K, D, en, c.nthreads);
  row_norms(z, N, D, zn, c.nthreads);
  const float lc = inv_tau * LOG2E;
#pragma omp parallel num_threads(nt)
  {
    FlushDenormals ftz;
    float* tile = per + (size_t)omp_get_thread_num() * search_per_thread();
    Lanes* lanes = (Lanes*)(tile + tile_floats());
    float* m = (float*)(lanes + NB);
#pragma omp for schedule(dynamic, 1)
    for (int64_t it = 0; it < items; it++) {
      const int64_t rb = it / C, ch = it % C;
      const int64_t r0 = rb * NB, nb = std::min(NB, N - r0);
      const int64_t t0 = T * ch / C, t1 = T * (ch + 1) / C;
      for (int64_t i = 0; i < nb; i++) {
        lanes_init(lanes + i);
        m[i] = -INFINITY;
      }
      for (int64_t kt = t0; kt < t1; kt++) {
        const int64_t k0 = kt * KB, kb = std::min(KB, K - k0);
        sgemm(false, true, nb, kb, D, 1.0f, z + r0 * D, D, E + k0 * D, D, 0.0f, tile, kb, 1);
        for (int64_t i = 0; i < nb; i++) {
          const float* row = tile + i * kb;
          const float best = lanes_min(lanes + i, row, en + k0, zn[r0 + i], kb, (int32_t)k0);
          if (with_lse) {  // reference max: -best/tau, the running max of -d/tau (never below m)
            const float mn = -best * inv_tau;
            lanes_expsum(lanes + i, row, en + k0, zn[r0 + i], kb, lc, mn * LOG2E, exp_neg(m[i] - mn));
            m[i] = mn;
          }
        }
      }
      RowState* st = part + ch * N + r0;
      for (int64_t i = 0; i < nb; i++) {  // combine the lanes in a fixed order
        const Lanes& L = lanes[i];
        RowState r = {INFINITY, 0, m[i], 0.0f};
        for (int j = 0; j < LANES; j++) {
          if (L.bv[j] < r.best || (L.bv[j] == r.best && L.bi[j] < r.idx)) {
            r.best = L.bv[j];
            r.idx = L.bi[j];
          }
          r.s += L.acc[j];
        }
        st[i] = r;
      }
    }
    // merge the chunks of each row in chunk order
#pragma omp for schedule(static)
    for (int64_t i = 0; i < N; i++) {
      RowState r = part[i];
      for (int64_t ch = 1; ch < C; ch++) {
        const RowState& p = part[ch * N + i];
        if (p.best < r.best) {
          r.best = p.best;
          r.idx = p.idx;
        }
        if (with_lse) {
          float mn = std::max(r.m, p.m);
          r.s = r.s * exp_neg(r.m - mn) + p.s * exp_neg(p.m - mn);
          r.m = mn;
        }
      }
      part[i] = r;
    }
  }
  return part;
}

float inv_tau_of(const Tensor* tau) { return 1.0f / std::max(tdata<float>(tau)[0], VQ_TAU_MIN); }
int32_t ctl_flags(const Tensor* ctl) { return tdata<int32_t>(ctl)[VQ_CTL_FLAGS]; }

// ---------------------------------------------------------------- search kernels

void vq_nearest_cpu(Tensor* y, const ExecCtx& c) {
  const Tensor *z = y->src[0], *E = y->src[1];
  const bool with_lse = y->n_src > 2;
  const int64_t N = z->ne[0], K = E->ne[0], D = z->ne[1];
  float inv_tau = with_lse ? inv_tau_of(y->src[2]) : 0.0f;
  const RowState* r = search_run(tdata<float>(z), tdata<float>(E), N, K, D, with_lse, inv_tau, c, "vq_nearest");
  float* o = tdata<float>(y);
  for (int64_t i = 0; i < N; i++) {
    o[i * 3 + 0] = r[i].best;
    o[i * 3 + 1] = with_lse ? r[i].m + std::log(r[i].s) : 0.0f;
    o[i * 3 + 2] = (float)r[i].idx;
  }
}

void vq_lse_refresh_cpu(Tensor* y, const ExecCtx& c) {
  if (!(ctl_flags(y->src[4]) & VQ_FLAG_REFRESH)) return;
  const Tensor *z = y->src[1], *E = y->src[2];
  const int64_t N = z->ne[0], K = E->ne[0], D = z->ne[1];
  const RowState* r = search_run(tdata<float>(z), tdata<float>(E), N, K, D, true, inv_tau_of(y->src[3]), c, "vq_lse_refresh");
  float* o = tdata<float>(y);
  for (int64_t i = 0; i < N; i++) o[i * 3 + 1] = r[i].m + std::log(r[i].s);
}

void vq_tau_calibrate_cpu(Tensor* y, const ExecCtx& c) {
  if (!(ctl_flags(y->src[2]) & VQ_FLAG_CALIBRATE)) return;
  const Tensor* st = y->src[1];
  const int64_t N = st->ne[0];
  if (N == 0) return;
  const float* s = tdata<float>(st);
  float* d = (float*)c.scratch;
  for (int64_t i = 0; i < N; i++) d[i] = s[i * 3];
  const int64_t h = N / 2;
  std::nth_element(d, d + h, d + N);
  float med = d[h];
  if (N % 2 == 0) med = 0.5f * (med + *std::max_element(d, d + h));
  tdata<float>(y)[0] = std::max(y->fp[0] * med, VQ_TAU_MIN);
}

void vq_indices_cpu(Tensor* y, const ExecCtx& c) {
  const float* s = tdata<float>(y->src[0]);
  int32_t* o = tdata<int32_t>(y);
  for (int64_t i = 0; i < y->ne[0]; i++) o[i] = (int32_t)s[i * 3 + 2];
}

// ---------------------------------------------------------------- dense loss

// per thread: the weight tile, the [Dx + 2, KB] accumulator (M, S, Q) and the [NB, Dx + 2] block [X | 1 | |z|^2]
size_t stats_per_thread(int64_t Dx) { return tile_floats() + up((Dx + 2) * KB) + up(NB * (Dx + 2)); }

void vq_dense_stats_cpu(Tensor* y, const ExecCtx& c) {
  const Tensor *zt = y->src[0], *Et = y->src[1], *Xt = y->src[4];
  const int64_t N = zt->ne[0], K = Et->ne[0], D = zt->ne[1], Dx = Xt->ne[1];
  const float *z = tdata<float>(zt), *E = tdata<float>(Et), *X = tdata<float>(Xt), *srch = tdata<float>(y->src[2]);
  const float inv_tau = inv_tau_of(y->src[3]), lam_k = y->fp[0] * (float)K, win = y->fp[1];
  float* out = tdata<float>(y);
  float* en = (float*)c.scratch;
  float* zn = en + up(K);
  float* per = zn + up(N);
  const int64_t T = cdiv(K, KB), n_rb = cdiv(N, NB);
  const size_t pt = stats_per_thread(Dx);
  int nt = std::min(threads_fit(c, up(K) + up(N), pt, "vq_dense_stats"), threads_for(2.0 * N * K * (D + Dx), T, c.nthreads));
  row_norms(E, K, D, en, c.nthreads);
  row_norms(z, N, D, zn, c.nthreads);
#pragma omp parallel num_threads(nt)
  {
    FlushDenormals ftz;
    float* tile = per + (size_t)omp_get_thread_num() * pt;
    float* macc = tile + tile_floats();
    float* xa = macc + up((Dx + 2) * KB);
    const int64_t Da = Dx + 2;
#pragma omp for schedule(dynamic, 1)
    for (int64_t kt = 0; kt < T; kt++) {
      const int64_t k0 = kt * KB, kb = std::min(KB, K - k0);
      std::memset(macc, 0, sizeof(float) * (size_t)(Da * kb));
      for (int64_t rb = 0; rb < n_rb; rb++) {
        const int64_t r0 = rb * NB, nb = std::min(NB, N - r0);
        sgemm(false, true, nb, kb, D, 1.0f, z + r0 * D, D, E + k0 * D, D, 0.0f, tile, kb, 1);
        for (int64_t i = 0; i < nb; i++) {
          const float* s = srch + (r0 + i) * 3;
          weight_row(tile + i * kb, en + k0, zn[r0 + i], kb, inv_tau, s[1], lam_k, (int64_t)s[2] - k0, win);
          std::memcpy(xa + i * Da, X + (r0 + i) * Dx, sizeof(float) * (size_t)Dx);
          xa[i * Da + Dx] = 1.0f;
          xa[i * Da + Dx + 1] = zn[r0 + i];
        }
        // macc[Dx + 2, kb] += [X | 1 | |z|^2]_blk^T W_blk: M, and the column sums S = sum w, Q = sum w |z|^2
        sgemm(true, false, Da, kb, nb, 1.0f, xa, Da, tile, kb, 1.0f, macc, kb, 1);
      }
      for (int64_t k = 0; k < kb; k++) {
        float* o = out + (k0 + k) * Da;
        for (int64_t d = 0; d < Da; d++) o[d] = macc[d * kb + k];
      }
    }
  }
}

void vq_soft_mix_cpu(Tensor* y, const ExecCtx& c) {
  const Tensor *zt = y->src[0], *Et = y->src[1];
  const int64_t N = zt->ne[0], K = Et->ne[0], D = zt->ne[1];
  const float *z = tdata<float>(zt), *Ew = tdata<float>(Et), *srch = tdata<float>(y->src[2]), *E = tdata<float>(y->src[4]);
  const float inv_tau = inv_tau_of(y->src[3]), lam_k = y->fp[0] * (float)K;
  float* out = tdata<float>(y);
  float* en = (float*)c.scratch;
  float* zn = en + up(K);
  float* tiles = zn + up(N);
  const int64_t T = cdiv(K, KB), n_rb = cdiv(N, NB);
  int nt = std::min(threads_fit(c, up(K) + up(N), tile_floats(), "vq_soft_mix"), threads_for(4.0 * N * K * D, n_rb, c.nthreads));
  row_norms(Ew, K, D, en, c.nthreads);
  row_norms(z, N, D, zn, c.nthreads);
#pragma omp parallel num_threads(nt)
  {
    FlushDenormals ftz;
    float* tile = tiles + (size_t)omp_get_thread_num() * tile_floats();
#pragma omp for schedule(dynamic, 1)
    for (int64_t rb = 0; rb < n_rb; rb++) {
      const int64_t r0 = rb * NB, nb = std::min(NB, N - r0);
      for (int64_t kt = 0; kt < T; kt++) {
        const int64_t k0 = kt * KB, kb = std::min(KB, K - k0);
        sgemm(false, true, nb, kb, D, 1.0f, z + r0 * D, D, Ew + k0 * D, D, 0.0f, tile, kb, 1);
        for (int64_t i = 0; i < nb; i++) {
          const float* s = srch + (r0 + i) * 3;
          weight_row(tile + i * kb, en + k0, zn[r0 + i], kb, inv_tau, s[1], lam_k, (int64_t)s[2] - k0, 0.0f);
        }
        sgemm(false, false, nb, D, kb, 1.0f, tile, kb, E + k0 * D, D, kt == 0 ? 0.0f : 1.0f, out + r0 * D, D, 1);
      }
    }
  }
}

// L = 1/(N D) sum_k (Q_k - 2 e_k.M_k + S_k |e_k|^2), in double over fixed chunks of codes
void vq_dense_loss_cpu(Tensor* y, const ExecCtx& c) {
  const Tensor *st = y->src[0], *Et = y->src[1];
  const int64_t K = Et->ne[0], D = Et->ne[1], N = y->ip[0];
  const float *s = tdata<float>(st), *E = tdata<float>(Et);
  double* part = (double*)c.scratch;
  const int64_t nch = cdiv(K, LOSS_CHUNK);
  int nt = K * D < 65536 ? 1 : c.nthreads;
#pragma omp parallel for num_threads(nt) schedule(static)
  for (int64_t ch = 0; ch < nch; ch++) {
    double acc = 0.0;
    for (int64_t k = ch * LOSS_CHUNK; k < std::min(K, (ch + 1) * LOSS_CHUNK); k++) {
      const float* e = E + k * D;
      const float* r = s + k * (D + 2);
      double em = 0.0, ee = 0.0;
      for (int64_t d = 0; d < D; d++) {
        em += (double)e[d] * r[d];
        ee += (double)e[d] * e[d];
      }
      acc += (double)r[D + 1] - 2.0 * em + (double)r[D] * ee;
    }
    part[ch] = acc;
  }
  double total = 0.0;
  for (int64_t ch = 0; ch < nch; ch++) total += part[ch];
  tdata<float>(y)[0] = (float)(total / ((double)N * (double)D));
}

// dL/dE = gy 2/(N D) (S_k e_k - M_k)
void vq_dense_loss_bwd_cpu(Tensor* y, const ExecCtx& c) {
  const Tensor* Et = y->src[1];
  const int64_t K = Et->ne[0], D = Et->ne[1], N = y->ip[0];
  const float *s = tdata<float>(y->src[0]), *E = tdata<float>(Et);
  const float f = tdata<float>(y->src[2])[0] * (float)(2.0 / ((double)N * (double)D));
  float* o = tdata<float>(y);
  int nt = K * D < 65536 ? 1 : c.nthreads;
#pragma omp parallel for num_threads(nt) schedule(static)
  for (int64_t k = 0; k < K; k++) {
    const float* r = s + k * (D + 2);
    for (int64_t d = 0; d < D; d++) o[k * D + d] = f * (r[D] * E[k * D + d] - r[d]);
  }
}

// ---------------------------------------------------------------- statistics and state

void check_index(const char* op, int32_t v, int64_t pos, int64_t limit) {
  if (v < 0 || v >= limit) fail("%s: index %d at position %lld out of range [0, %lld)", op, v, (long long)pos, (long long)limit);
}

void vq_histogram_cpu(Tensor* y, const ExecCtx& c) {
  const Tensor* it = y->src[0];
  const int32_t* idx = tdata<int32_t>(it);
  int32_t* h = tdata<int32_t>(y);
  const int64_t K = y->ne[0], n = it->numel();
  std::memset(h, 0, sizeof(int32_t) * (size_t)K);
  for (int64_t i = 0; i < n; i++) {
    check_index("vq_histogram", idx[i], i, K);
    h[idx[i]]++;
  }
}

void vq_code_stats_cpu(Tensor* y, const ExecCtx& c) {
  const Tensor* ht = y->src[0];
  const int32_t* h = tdata<int32_t>(ht);
  const int64_t K = ht->numel();
  double total = 0.0, used = 0.0, ent = 0.0;
  for (int64_t k = 0; k < K; k++) {
    total += h[k];
    used += h[k] > 0;
  }
  for (int64_t k = 0; k < K; k++)
    if (h[k] > 0) {
      double p = h[k] / total;
      ent -= p * std::log(p);
    }
  float* o = tdata<float>(y);
  o[0] = (float)std::exp(ent);
  o[1] = (float)used;
}

void vq_counts_add_cpu(Tensor* y, const ExecCtx& c) {
  int32_t* cnt = tdata<int32_t>(y);
  const int32_t* h = tdata<int32_t>(y->src[1]);
  for (int64_t k = 0; k < y->numel(); k++) cnt[k] += h[k];
}

void vq_reservoir_push_cpu(Tensor* y, const ExecCtx& c) {
  float* R = tdata<float>(y);
  int32_t* rs = tdata<int32_t>(y->src[1]);
  const Tensor *zt = y->src[2], *pt = y->src[3];
  const float* z = tdata<float>(zt);
  const int32_t* pi = tdata<int32_t>(pt);
  const int64_t M = y->ne[0], D = y->ne[1], N = zt->ne[0], n = pt->numel();
  for (int64_t j = 0; j < n; j++) check_index("vq_reservoir_push", pi[j], j, N);
  const int64_t ptr = rs[0];
  for (int64_t j = 0; j < n; j++) std::memcpy(R + ((ptr + j) % M) * D, z + (int64_t)pi[j] * D, sizeof(float) * (size_t)D);
  rs[0] = (int32_t)((ptr + n) % M);
  rs[1] = (int32_t)std::min<int64_t>(M, rs[1] + n);
}

void vq_replace_cpu(Tensor* y, const ExecCtx& c) {
  const int32_t* ctl = tdata<int32_t>(y->src[4]);
  if (!(ctl[VQ_CTL_FLAGS] & VQ_FLAG_REPLACE)) return;
  float* E = tdata<float>(y);
  int32_t* cnt = tdata<int32_t>(y->src[1]);
  const float* R = tdata<float>(y->src[2]);
  const int64_t K = y->ne[0], D = y->ne[1];
  const uint32_t fill = (uint32_t)tdata<int32_t>(y->src[3])[1];
  const uint64_t seed = vq_ctl_seed(ctl), step = vq_ctl_step(ctl);
  const int32_t thr = y->ip[0];
  int32_t replaced = 0;
  for (int64_t k = 0; k < K; k++) {
    if (cnt[k] >= thr) continue;
    replaced++;
    if (fill > 0) {
      uint32_t u = vq_draw_below(seed, VQ_STREAM_REPLACE, step, (uint64_t)k, fill);
      std::memcpy(E + k * D, R + (int64_t)u * D, sizeof(float) * (size_t)D);
    } else {
      for (int64_t d = 0; d < D; d++)
        E[k * D + d] = (2.0f * philox_element(seed, VQ_STREAM_REPLACE_INIT, step, (uint64_t)(k * D + d), 0) - 1.0f) / (float)K;
    }
  }
  std::memset(cnt, 0, sizeof(int32_t) * (size_t)K);
  tdata<int32_t>(y->src[5])[0] = replaced;
}

void vq_ema_update_cpu(Tensor* y, const ExecCtx& c) {
  float* E = tdata<float>(y);
  float* n = tdata<float>(y->src[1]);
  float* m = tdata<float>(y->src[2]);
  const int32_t* h = tdata<int32_t>(y->src[3]);
  const float* sums = tdata<float>(y->src[4]);
  const Tensor* zt = y->src[5];
  const float* z = tdata<float>(zt);
  const int32_t* ctl = tdata<int32_t>(y->src[6]);
  const int64_t K = y->ne[0], D = y->ne[1], N = zt->ne[0];
  const float gam = y->fp[0], eps = y->fp[1], thr = y->fp[2];
  const uint64_t seed = vq_ctl_seed(ctl), step = vq_ctl_step(ctl);
  double total = 0.0;
  for (int64_t k = 0; k < K; k++) {
    n[k] = gam * n[k] + (1.0f - gam) * (float)h[k];
    total += n[k];
  }
  int32_t restarts = 0;
  for (int64_t k = 0; k < K; k++) {
    const float nk = (float)(((double)n[k] + eps) / (total + (double)K * eps) * total);
    float* e = E + k * D;
    float* mk = m + k * D;
    for (int64_t d = 0; d < D; d++) {
      mk[d] = gam * mk[d] + (1.0f - gam) * sums[k * D + d];
      e[d] = mk[d] / nk;
    }
    if (n[k] < thr && N > 0) {
      restarts++;
      const float* zr = z + (int64_t)vq_draw_below(seed, VQ_STREAM_EMA, step, (uint64_t)k, (uint32_t)N) * D;
      for (int64_t d = 0; d < D; d++) {
        e[d] = zr[d];
        mk[d] = zr[d] * thr;
      }
      n[k] = thr;
    }
  }
  tdata<int32_t>(y->src[7])[0] = restarts;
}

}  // namespace

// ---------------------------------------------------------------- scratch and registration

size_t vq_detail::cpu_scratch(const Tensor* y) {
  const int nt = std::max(1, cpu_threads());
  auto rows = [&](int i) { return y->src[i]->ne[0]; };
  size_t f = 0;
  switch (y->op) {
    case OP_VQ_NEAREST: f = search_shared(rows(0), rows(1)) + (size_t)nt * search_per_thread(); break;
    case OP_VQ_LSE_REFRESH: f = search_shared(rows(1), rows(2)) + (size_t)nt * search_per_thread(); break;
    case OP_VQ_TAU_CALIBRATE: f = up(rows(1)); break;
    case OP_VQ_DENSE_STATS: f = up(rows(1)) + up(rows(0)) + (size_t)nt * stats_per_thread(y->src[4]->ne[1]); break;
    case OP_VQ_SOFT_MIX: f = up(rows(1)) + up(rows(0)) + (size_t)nt * tile_floats(); break;
    case OP_VQ_DENSE_LOSS: f = up(2 * cdiv(rows(1), LOSS_CHUNK)); break;
    default: break;
  }
  return f * sizeof(float);
}

void register_vq_cpu() {
  struct Row {
    int id;
    KernelFn k;
  };
  const Row rows[] = {
      {OP_VQ_NEAREST, vq_nearest_cpu},
      {OP_VQ_INDICES, vq_indices_cpu},
      {OP_VQ_LSE_REFRESH, vq_lse_refresh_cpu},
      {OP_VQ_DENSE_STATS, vq_dense_stats_cpu},
      {OP_VQ_DENSE_LOSS, vq_dense_loss_cpu},
      {OP_VQ_DENSE_LOSS_BWD, vq_dense_loss_bwd_cpu},
      {OP_VQ_SOFT_MIX, vq_soft_mix_cpu},
      {OP_VQ_HISTOGRAM, vq_histogram_cpu},
      {OP_VQ_CODE_STATS, vq_code_stats_cpu},
      {OP_VQ_COUNTS_ADD, vq_counts_add_cpu},
      {OP_VQ_RESERVOIR_PUSH, vq_reservoir_push_cpu},
      {OP_VQ_REPLACE, vq_replace_cpu},
      {OP_VQ_TAU_CALIBRATE, vq_tau_calibrate_cpu},
      {OP_VQ_EMA_UPDATE, vq_ema_update_cpu},
  };
  for (const Row& r : rows) {
    OpDef d;
    d.kernel[BK_CPU] = r.k;
    op_register(r.id, d);
  }
}

}  // namespace nsvq
