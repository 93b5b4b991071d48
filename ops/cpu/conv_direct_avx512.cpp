// ops/cpu/conv_direct_avx512.cpp — AVX-512 forward conv2d without an im2col matrix: a direct implicit GEMM
// for every shape, and Winograd F(2x2, 3x3) for 3x3 stride-1 convs with C >= 8 and O >= 32.
//
// Direct: the input of one image is copied once into a zero-padded, stride-phase-split buffer: for
// stride (sh, sw) it holds sh*sw phase planes per channel, plane (a, b)[yq, xq] = xpad[yq*sh + a,
// xq*sw + b], each Wq columns wide. Output pixel (oy, ox) is given the linear index t = oy*Wq + ox;
// tap (c, i, j) of every output then reads the buffer at t + off[c, i, j] with
//   off = c*CS + ((i % sh)*sw + j % sw)*PS + (i / sh)*Wq + j / sw,
// so 16 consecutive t are one unaligned vector load for every tap: the "B matrix" of the GEMM is
// read straight from the buffer. Columns ox >= Wo of each row (Wq - Wo of them) are computed and
// thrown away; stores are masked per output row. A row's right padding aliases the next row's left
// padding (Wq = W + 1 for 3x3 pad 1); 3x3 stride-2 convs of even width use "tight" planes with no pad
// column at all (Wq = Wo) and mask the one tap column that would read it. 1x1 stride-1 unpadded convs
// read x directly.
//
// Register tile: 8 output channels x 48 pixels (24 zmm accumulators); the weights are packed once per
// call into 8-row panels [K][8]. Each output element is one FMA chain over the taps in a fixed order,
// then + bias, whatever the tile or thread: results do not depend on the thread count. Large images
// are processed in bands of output rows so the buffer stays about L2-sized.
//
// Winograd (second half of the file): see the comment there.
#include "ops/cpu/conv_direct.h"
#include <immintrin.h>
#include "ops/cpu/cpu_kernels.h"
#include "ops/cpu/simd512.h"
#include <omp.h>
#include <cstdint>
#include <cstring>


namespace nsvq {

namespace {

constexpr int MR = 8;                // output channels per register tile
constexpr int NV_MAX = 3;            // 16-pixel vectors per register tile
constexpr int64_t TW = 16 * NV_MAX;  // pixels per tile
constexpr int MAXSEG = 18;           // row segments per vector (Wq = 1 gives 16)
constexpr int64_t SLACK = 64;        // floats after the buffer (junk lanes read a little past it)
constexpr int64_t BAND_BYTES = 1536 * 1024;
constexpr int64_t MAX_FILL_ROWS = 1024;  // buffer rows of one band: sh * (band + halo + 1) at most

inline int64_t imin(int64_t a, int64_t b) { return a < b ? a : b; }
inline int64_t imax(int64_t a, int64_t b) { return a > b ? a : b; }
inline int64_t cdiv(int64_t a, int64_t b) { return (a + b - 1) / b; }

// Threads for a conv of `flops` over N images: one below ~10 MFLOP (~50 us on one core). Waking an
// OpenMP thread costs 3-4 us with the default wait policy and ~20 us with OMP_WAIT_POLICY=passive on
// the shared development machines. With fewer images than threads, the threads share one image's
// buffer (and pull it across cores): one thread below ~60 MFLOP (batch-1 latency of the small presets).
int conv_threads(double flops, int64_t N, int nthreads) {
  if (nthreads <= 1 || flops < 1e7) return 1;
  if (N < nthreads && flops < 6e7) return 1;
  return nthreads;
}

struct Plan {
  bool copy;      // false: 1x1 stride-1 unpadded, read x itself
  int64_t Wq;     // row length of a phase plane (= W without copy)
  int64_t halo;   // extra phase rows a band needs below its last output row
  int64_t band;   // output rows per band
  int64_t PS, CS; // phase plane and channel stride in the buffer
  int64_t buf;    // floats per thread buffer (0 without copy)
  int64_t panels; // ceil(O / MR)
  bool tight = false;  // 3x3 stride 2, Wo = W / 2: planes of exactly Wo columns (fill_tight), taps reordered
  int64_t K1 = 0;      // tight: taps [0, K1) read every lane; taps [K1, K) (column j = mj) skip column mcol
  int64_t mj = -1, mcol = -1;
};

// Data columns [lo, hi) of phase plane b (padded column xq*sw + b inside [pl, pl + W)).
void phase_cols(const ConvGeom& g, int64_t b, int64_t& lo, int64_t& hi) {
  lo = g.pl > b ? cdiv(g.pl - b, g.sw) : 0;
  hi = cdiv(g.pl + g.W - b, g.sw);
  if (hi < lo) hi = lo;
}

Plan make_plan(const ConvGeom& g) {
  Plan p;
  p.panels = cdiv(g.O, MR);
  p.copy = !g.direct;
  if (!p.copy) {
    p.Wq = g.W;
    p.halo = 0;
    p.band = g.Ho;
    p.PS = p.CS = g.H * g.W;
    p.buf = 0;
    return p;
  }
  if (g.sh == 2 && g.sw == 2 && g.kh == 3 && g.kw == 3 && g.W % 2 == 0 && g.Wo == g.W / 2 && g.W <= 256 &&
      (g.pl == 0 || g.pl == 1)) {
    // Tight stride-2 planes (taming's Downsample, or pad 1): phase b of a row holds every other input
    // column, Wo of them, no pad column; the one tap column that would read one (j = 2 at ox = Wo - 1
    // for pl = 0, j = 0 at ox = 0 for pl = 1) is masked instead.
    p.tight = true;
    p.Wq = g.Wo;
    p.halo = 1;
    int64_t rows = BAND_BYTES / 4 / imax(1, g.C * 4 * p.Wq) - 2;
    rows = imin(rows, MAX_FILL_ROWS / 2 - 2);
    p.band = imax(1, imin(g.Ho, rows));
    p.PS = (p.band + 2) * p.Wq;
    p.CS = 4 * p.PS;
    p.buf = (g.C * p.CS + SLACK + 15) / 16 * 16;
    p.mj = g.pl == 0 ? 2 : 0;
    p.mcol = g.pl == 0 ? g.Wo - 1 : 0;
    p.K1 = g.C * 3 * 2;
    return p;
  }
  // Row length: the right padding a row reads may alias the next row's left padding (both zero), so
  // a 3x3 pad-1 conv needs W + 1 columns, not W + 2. Per phase b: data must end by Wq, and the
  // columns read past Wq (up to xmax) must land in the next row's zero columns [0, lo).
  p.Wq = g.Wo;
  for (int64_t b = 0; b < g.sw; b++) {
    int64_t lo, hi;
    phase_cols(g, b, lo, hi);
    int64_t jmax = -1;
    for (int64_t j = b; j < g.kw; j += g.sw) jmax = j / g.sw;
    if (jmax < 0) continue;  // no tap reads this phase
    int64_t xmax = g.Wo - 1 + jmax;
    p.Wq = imax(p.Wq, imax(hi, xmax - lo + 1));
  }
  p.halo = (g.kh - 1) / g.sh;
  int64_t row_floats = g.C * g.sh * g.sw * p.Wq;  // buffer floats per phase row
  int64_t rows = BAND_BYTES / 4 / imax(1, row_floats) - p.halo - 1;
  rows = imin(rows, MAX_FILL_ROWS / g.sh - p.halo - 1);  // the row list of fill_band
  p.band = imax(1, imin(g.Ho, rows));
  p.PS = (p.band + p.halo + 1) * p.Wq;  // + one zero row: the last row's overflow reads
  p.CS = g.sh * g.sw * p.PS;
  p.buf = (g.C * p.CS + SLACK + 15) / 16 * 16;
  return p;
}

struct Layout {
  float* pa;     // packed weights [panels][K][MR]
  int64_t* off;  // [K]
  float* bufs;   // [threads][buf]
  float* pa2;    // tight: the weights packed in natural tap order, before reordering
  int64_t* offp = nullptr, *kp = nullptr;  // panel taps: the offsets [panels][K] and count [panels] of each panel's taps
};

Layout layout(const ConvGeom& g, const Plan& p, void* scratch, bool panel_taps) {
  Layout l;
  l.pa = (float*)scratch;
  l.off = (int64_t*)(l.pa + p.panels * MR * g.K);
  uintptr_t b = (uintptr_t)(l.off + g.K);
  if (panel_taps) {
    l.offp = l.off + g.K;
    l.kp = l.offp + p.panels * g.K;
    b = (uintptr_t)(l.kp + p.panels);
  }
  l.pa2 = (float*)((b + 63) / 64 * 64);
  l.bufs = l.pa2 + (p.tight ? (p.panels * MR * g.K + 15) / 16 * 16 : 0);
  return l;
}

// 16 floats at p with the lanes outside m zeroed. A plain load + blend when all 16 lie inside [lo, hi):
// masked loads whose masked-off lanes reach past the row are slow on Zen.
NSVQ_AVX512 inline __m512 load_lanes(const float* p, __mmask16 m, const float* lo, const float* hi) {
  if (p >= lo && p + 16 <= hi) return _mm512_maskz_mov_ps(m, _mm512_loadu_ps(p));
  return _mm512_maskz_loadu_ps(m, p);
}

struct FillRows {
  int nvo;
  __mmask16 ms[8], ml[8], mh[8];  // store mask; load masks of the low / high source vector
  int64_t base[8];                // source column of lane 0 of the low vector
  int64_t rows[2 * MAX_FILL_ROWS]; // (destination offset, source offset or -1) per buffer row
  int64_t nrows = 0;
  void add(int64_t dst, int64_t src) { rows[2 * nrows] = dst, rows[2 * nrows + 1] = src, nrows++; }
};

// Rows of fill_band for channels [c0, c1): SW column phases (1 or 2), NVO output vectors per row
// (0: fr.nvo at run time).
template <int SW, int NVO>
NSVQ_AVX512 void fill_rows(const FillRows& fr, const float* x, int64_t img, int64_t cin, float* buf, int64_t CS,
                           int64_t PS, int64_t c0, int64_t c1) {
  const int nvo = NVO > 0 ? NVO : fr.nvo;
  const __m512i even = _mm512_set_epi32(30, 28, 26, 24, 22, 20, 18, 16, 14, 12, 10, 8, 6, 4, 2, 0);
  const __m512i odd = _mm512_set_epi32(31, 29, 27, 25, 23, 21, 19, 17, 15, 13, 11, 9, 7, 5, 3, 1);
  const __m512 zero = _mm512_setzero_ps();
  const float* x_end = x + img;
  const int64_t nr = fr.nrows;
  const int64_t* rows = fr.rows;
  for (int64_t c = c0; c < c1; c++) {
    const float* xc = x + c * cin;
    float* cb = buf + c * CS;
    {  // the input usually comes from L3 or memory: ask for the next channel now
      const char* nx = (const char*)(xc + cin);
      const int64_t bytes = imin(cin * 4, 4096);
      if (c + 1 < c1)
        for (int64_t o = 0; o < bytes; o += 64) _mm_prefetch(nx + o, _MM_HINT_T0);
    }
    for (int64_t i = 0; i < nr; i++) {
      float* dst = cb + rows[2 * i];
      const int64_t so = rows[2 * i + 1];
      if (so < 0) {
#pragma GCC unroll 4
        for (int v = 0; v < nvo; v++) {
          store_lanes(dst + 16 * v, fr.ms[v], zero);
          if (SW == 2) store_lanes(dst + PS + 16 * v, fr.ms[v], zero);
        }
        continue;
      }
      const float* src = xc + so;
#pragma GCC unroll 4
      for (int v = 0; v < nvo; v++) {
        const __m512 lo = load_lanes(src + fr.base[v], fr.ml[v], x, x_end);
        if (SW == 1) {
          store_lanes(dst + 16 * v, fr.ms[v], lo);
        } else {  // both column phases from one pair of loads: phase 1 starts one column later
          const __m512 hi = load_lanes(src + fr.base[v] + 16, fr.mh[v], x, x_end);
          store_lanes(dst + 16 * v, fr.ms[v], _mm512_permutex2var_ps(lo, even, hi));
          store_lanes(dst + PS + 16 * v, fr.ms[v], _mm512_permutex2var_ps(lo, odd, hi));
        }
      }
    }
  }
}

// copies the phase rows of output rows [oy0, oy0 + nrows) for channels [c0, c1) of image x [C, H, W]
NSVQ_AVX512 void fill_band(const ConvGeom& g, const Plan& p, const float* x, int64_t oy0, int64_t nrows, int64_t c0,
                           int64_t c1, float* buf) {
  const int64_t br = nrows + p.halo;
  const int64_t nvo = cdiv(p.Wq, 16);
  if (g.sw <= 2 && nvo <= 8) {
    // Vector rows: output vector v of phase b is a masked load (stride 1) or the even lanes of two
    // masked loads (stride 2) of the source row; masked-off lanes are the zero padding. The row list
    // (destination, source or zero) is the same for every channel.
    FillRows fr;
    fr.nvo = (int)nvo;
    for (int64_t v = 0; v < nvo; v++) {
      fr.ms[v] = lane_range(16 * v, 0, p.Wq);
      fr.base[v] = g.sw == 1 ? 16 * v - g.pl : 32 * v - g.pl;
      fr.ml[v] = lane_range(fr.base[v], 0, g.W);
      fr.mh[v] = lane_range(fr.base[v] + 16, 0, g.W);
    }
    for (int64_t a = 0; a < g.sh; a++)
      for (int64_t yq = 0; yq <= br; yq++) {  // row br: the overflow row, always zero
        int64_t iy = (oy0 + yq) * g.sh + a - g.pt;
        if (yq < br && iy >= 0 && iy < g.H) continue;
        fr.add(a * g.sw * p.PS + yq * p.Wq, -1);
      }
    const int64_t iy_lo = imax(0, oy0 * g.sh - g.pt), iy_hi = imin(g.H, (oy0 + br) * g.sh - g.pt);
    for (int64_t iy = iy_lo; iy < iy_hi; iy++) {  // data rows in source order (sequential reads)
      const int64_t r = iy + g.pt - oy0 * g.sh;
      fr.add((r % g.sh) * g.sw * p.PS + (r / g.sh) * p.Wq, iy * g.W);
    }
    const int64_t img = g.C * g.H * g.W, cin = g.H * g.W;
    if (g.sw == 1) {
      switch (nvo) {
        case 1: fill_rows<1, 1>(fr, x, img, cin, buf, p.CS, p.PS, c0, c1); break;
        case 2: fill_rows<1, 2>(fr, x, img, cin, buf, p.CS, p.PS, c0, c1); break;
        case 3: fill_rows<1, 3>(fr, x, img, cin, buf, p.CS, p.PS, c0, c1); break;
        default: fill_rows<1, 0>(fr, x, img, cin, buf, p.CS, p.PS, c0, c1); break;
      }
    } else {
      switch (nvo) {
        case 1: fill_rows<2, 1>(fr, x, img, cin, buf, p.CS, p.PS, c0, c1); break;
        case 2: fill_rows<2, 2>(fr, x, img, cin, buf, p.CS, p.PS, c0, c1); break;
        case 3: fill_rows<2, 3>(fr, x, img, cin, buf, p.CS, p.PS, c0, c1); break;
        default: fill_rows<2, 0>(fr, x, img, cin, buf, p.CS, p.PS, c0, c1); break;
      }
    }
    return;
  }
  for (int64_t c = c0; c < c1; c++) {
    const float* xc = x + c * g.H * g.W;
    for (int64_t a = 0; a < g.sh; a++)
      for (int64_t b = 0; b < g.sw; b++) {
        float* plane = buf + c * p.CS + (a * g.sw + b) * p.PS;
        int64_t l, h;
        phase_cols(g, b, l, h);
        for (int64_t yq = 0; yq < br; yq++) {
          float* dst = plane + yq * p.Wq;
          int64_t iy = (oy0 + yq) * g.sh + a - g.pt;
          if (iy < 0 || iy >= g.H || h <= l) {
            std::memset(dst, 0, p.Wq * sizeof(float));
            continue;
          }
          const float* src = xc + iy * g.W + (l * g.sw + b - g.pl);  // column lo of this phase
          if (l > 0) std::memset(dst, 0, l * sizeof(float));
          for (int64_t m = 0; m < h - l; m++) dst[l + m] = src[g.sw * m];
          if (p.Wq > h) std::memset(dst + h, 0, (p.Wq - h) * sizeof(float));
        }
        std::memset(plane + br * p.Wq, 0, p.Wq * sizeof(float));  // the overflow row
      }
  }
}

// Tight planes (stride-2 phases of an even-width input, no pad columns, Wq = W / 2): row yq of phase a
// is input row 2 (ty0 + yq) + a - pt; with pl = 1, plane (a, 0) holds the odd input columns and (a, 1)
// the even ones (plane (a, 0) then starts one column later than its padded phase); with pl = 0 the
// other way round. Readers mask the lanes whose column falls on the padding (Winograd: s = 0 at
// tx = 0 and s = 3 at tx = Wt - 1; direct stride 2: the taps of column mj). Rows yq = br are zero.
NSVQ_AVX512 void fill_tight(const ConvGeom& g, const Plan& p, const float* x, int64_t ty0, int64_t rows, int64_t c0,
                            int64_t c1, float* buf) {
  const int64_t br = rows + p.halo, Wq = p.Wq, nv = imin(cdiv(Wq, 16), 8), PS = p.PS, W = g.W, HW = g.H * g.W;
  const __m512i even = _mm512_set_epi32(30, 28, 26, 24, 22, 20, 18, 16, 14, 12, 10, 8, 6, 4, 2, 0);
  const __m512i odd = _mm512_set_epi32(31, 29, 27, 25, 23, 21, 19, 17, 15, 13, 11, 9, 7, 5, 3, 1);
  const __m512i i0 = g.pl == 1 ? odd : even, i1 = g.pl == 1 ? even : odd;  // x columns of phases 0 and 1
  const __m512 zero = _mm512_setzero_ps();
  __mmask16 ml[8], mh[8], ms[8];
  for (int64_t v = 0; v < nv; v++) {
    ml[v] = lane_range(32 * v, 0, W);
    mh[v] = lane_range(32 * v + 16, 0, W);
    ms[v] = lane_range(16 * v, 0, Wq);
  }
  // buffer rows (a, yq) -> source row or -1, the same for every channel
  int64_t src_of[2 * (MAX_FILL_ROWS / 2 + 1)];
  for (int64_t a = 0; a < 2; a++)
    for (int64_t yq = 0; yq <= br; yq++) {
      const int64_t iy = 2 * (ty0 + yq) + a - g.pt;
      src_of[a * (br + 1) + yq] = yq == br || iy < 0 || iy >= g.H ? -1 : iy * W;
    }
  for (int64_t c = c0; c < c1; c++) {
    const float* xc = x + c * HW;
    float* cb = buf + c * p.CS;
    if (c + 1 < c1) {  // the input usually comes from L3 or memory: ask for the next channel now
      const char* nx = (const char*)(xc + HW);
      for (int64_t o = 0; o < imin(HW * 4, 4096); o += 64) _mm_prefetch(nx + o, _MM_HINT_T0);
    }
    for (int64_t a = 0; a < 2; a++) {
      float* d0 = cb + a * 2 * PS;  // phase (a, 0); (a, 1) at + PS
      const int64_t* so = src_of + a * (br + 1);
      for (int64_t yq = 0; yq <= br; yq++, d0 += Wq) {
        if (so[yq] < 0) {
          for (int64_t v = 0; v < nv; v++) {
            store_lanes(d0 + 16 * v, ms[v], zero);
            store_lanes(d0 + PS + 16 * v, ms[v], zero);
          }
          continue;
        }
        const float* src = xc + so[yq];
        for (int64_t v = 0; v < nv; v++) {
          const __m512 lo = _mm512_maskz_loadu_ps(ml[v], src + 32 * v);
          const __m512 hi = _mm512_maskz_loadu_ps(mh[v], src + 32 * v + 16);
          store_lanes(d0 + 16 * v, ms[v], _mm512_permutex2var_ps(lo, i0, hi));
          store_lanes(d0 + PS + 16 * v, ms[v], _mm512_permutex2var_ps(lo, i1, hi));
        }
      }
    }
  }
}

struct Seg {
  __mmask16 m;
  int64_t off;  // element offset (from the output plane) of the vector's lane 0
};

// Register tile: MR output channels x NV vectors starting at buffer pointer xt; lmask covers the
// valid lanes of the last vector. Stores acc (+ bias) through the row segments of each vector.
// Taps [K1, K) load through tm[v] too (tight stride-2 planes: the lanes of the masked column read zero).
template <int NV>
NSVQ_AVX512 void tile_kernel(int64_t K, int64_t K1, const float* __restrict pa, const float* __restrict xt,
                             const int64_t* __restrict off, __mmask16 lmask, const __mmask16* tm,
                             const Seg (*segs)[MAXSEG], const int* ns, float* yo, int64_t P, int R, const float* bias) {
  __m512 acc[MR][NV];
#pragma GCC unroll 8
  for (int r = 0; r < MR; r++)
#pragma GCC unroll 3
    for (int v = 0; v < NV; v++) acc[r][v] = _mm512_setzero_ps();
#pragma GCC unroll 2
  for (int64_t k = 0; k < K1; k++) {
    const float* b = xt + off[k];
    __m512 bv[NV];
#pragma GCC unroll 3
    for (int v = 0; v < NV; v++)
      bv[v] = v == NV - 1 ? _mm512_maskz_loadu_ps(lmask, b + 16 * v) : _mm512_loadu_ps(b + 16 * v);
#pragma GCC unroll 8
    for (int r = 0; r < MR; r++) {
      const __m512 av = _mm512_set1_ps(pa[r]);
#pragma GCC unroll 3
      for (int v = 0; v < NV; v++) acc[r][v] = _mm512_fmadd_ps(av, bv[v], acc[r][v]);
    }
    pa += MR;
  }
  __mmask16 km[NV];
#pragma GCC unroll 3
  for (int v = 0; v < NV; v++) km[v] = v == NV - 1 ? (__mmask16)(lmask & tm[v]) : tm[v];
  for (int64_t k = K1; k < K; k++) {
    const float* b = xt + off[k];
    __m512 bv[NV];
#pragma GCC unroll 3
    for (int v = 0; v < NV; v++) bv[v] = _mm512_maskz_loadu_ps(km[v], b + 16 * v);
#pragma GCC unroll 8
    for (int r = 0; r < MR; r++) {
      const __m512 av = _mm512_set1_ps(pa[r]);
#pragma GCC unroll 3
      for (int v = 0; v < NV; v++) acc[r][v] = _mm512_fmadd_ps(av, bv[v], acc[r][v]);
    }
    pa += MR;
  }
#pragma GCC unroll 8
  for (int r = 0; r < MR; r++) {
    if (r >= R) break;
    float* yr = yo + r * P;
    const __m512 bb = _mm512_set1_ps(bias ? bias[r] : 0.0f);
#pragma GCC unroll 3
    for (int v = 0; v < NV; v++) {
      const __m512 val = bias ? _mm512_add_ps(acc[r][v], bb) : acc[r][v];
      for (int s = 0; s < ns[v]; s++) store_lanes(yr + segs[v][s].off, segs[v][s].m, val);
    }
  }
}

using tile_fn = void (*)(int64_t, int64_t, const float*, const float*, const int64_t*, __mmask16, const __mmask16*,
                         const Seg (*)[MAXSEG], const int*, float*, int64_t, int, const float*);
const tile_fn tile_kernels[NV_MAX] = {tile_kernel<1>, tile_kernel<2>, tile_kernel<3>};

// Register tiles over nvec 16-pixel vectors: 3 vectors each, except that a remainder of one vector
// is avoided (4 = 2 + 2: a 1-vector tile loads as much as it multiplies).
int64_t tile_count(int64_t nvec) { return nvec % 3 == 1 && nvec >= 4 ? (nvec - 4) / 3 + 2 : cdiv(nvec, 3); }
void tile_of(int64_t i, int64_t nvec, int64_t& t0, int& nv) {
  const int64_t n = tile_count(nvec);
  if (nvec % 3 == 1 && nvec >= 4 && i >= n - 2) {
    t0 = 16 * (3 * (n - 2) + 2 * (i - (n - 2)));
    nv = 2;
    return;
  }
  t0 = 48 * i;
  nv = (int)imin(3, nvec - 3 * i);
}

// Tiles [i0, i1) of the (tile, panel) items of one band: output rows [oy0, oy0 + nrows) of image yn
void run_items(const ConvGeom& g, const Plan& p, const Layout& l, const float* src, const float* bias, float* yn,
               int64_t oy0, int64_t nrows, int64_t i0, int64_t i1) {
  const int64_t T = nrows * p.Wq;
  Seg segs[NV_MAX][MAXSEG];
  int ns[NV_MAX];
  int64_t cur_tile = -1;
  int nv = 0;
  __mmask16 lmask = 0, tm[NV_MAX] = {0xFFFF, 0xFFFF, 0xFFFF};
  const int64_t K1 = p.tight ? p.K1 : g.K;
  for (int64_t it = i0; it < i1; it++) {
    const int64_t tile = it / p.panels, panel = it % p.panels;
    int64_t t0;
    int tnv;
    tile_of(tile, cdiv(T, 16), t0, tnv);
    if (tile != cur_tile) {  // row segments of this tile's vectors
      cur_tile = tile;
      nv = tnv;
      for (int v = 0; v < nv; v++) {
        const int64_t vs = t0 + 16 * v, ve = imin(vs + 16, T);
        if (v == nv - 1) lmask = (__mmask16)(ve - vs == 16 ? 0xFFFFu : (1u << (ve - vs)) - 1u);
        if (p.tight) {  // lanes of output column mcol: no input under the masked taps
          uint32_t m = 0xFFFF;
          for (int64_t t = vs; t < vs + 16; t++)
            if (t % p.Wq == p.mcol) m &= ~(1u << (t - vs));
          tm[v] = (__mmask16)m;
        }
        ns[v] = 0;
        for (int64_t t = vs; t < ve;) {
          const int64_t oy = t / p.Wq, rs = oy * p.Wq;
          const int64_t e = imin(ve, rs + g.Wo);
          if (e > t) {
            uint32_t bits = (e - vs == 16 ? 0xFFFFu : (1u << (e - vs)) - 1u) & ~((1u << (t - vs)) - 1u);
            segs[v][ns[v]++] = {(__mmask16)bits, (oy0 + oy) * g.Wo - rs + vs};
          }
          t = rs + p.Wq;
        }
      }
    }
    const int64_t o0 = panel * MR, kn = l.kp ? l.kp[panel] : g.K;
    tile_kernels[nv - 1](kn, l.kp ? kn : K1, l.pa + panel * MR * g.K, src + t0, l.kp ? l.offp + panel * g.K : l.off,
                         lmask, tm, segs, ns, yn + o0 * g.P, g.P,
                         (int)imin(MR, g.O - o0), bias ? bias + o0 : nullptr);
  }
}

int64_t band_items(const Plan& p, int64_t nrows) { return tile_count(cdiv(nrows * p.Wq, 16)) * p.panels; }

// one whole image on the calling thread
void run_image(const ConvGeom& g, const Plan& p, const Layout& l, const float* xn, const float* bias, float* yn,
               float* buf) {
  for (int64_t oy0 = 0; oy0 < g.Ho; oy0 += p.band) {
    const int64_t nrows = imin(p.band, g.Ho - oy0);
    const float* src = xn;
    if (p.copy) {
      if (p.tight)
        fill_tight(g, p, xn, oy0, nrows, 0, g.C, buf);
      else
        fill_band(g, p, xn, oy0, nrows, 0, g.C, buf);
      src = buf;
    }
    run_items(g, p, l, src, bias, yn, oy0, nrows, 0, band_items(p, nrows));
  }
}

// pa[panel][k][r] = w[panel*MR + r][k] (zero rows past O): 8 x 8 transposes
NSVQ_AVX512 void pack_weights(const ConvGeom& g, int64_t panels, const float* w, float* pa) {
  for (int64_t pn = 0; pn < panels; pn++) {
    float* dst = pa + pn * MR * g.K;
    for (int64_t k0 = 0; k0 < g.K; k0 += 8) {
      const int64_t nk = imin(8, g.K - k0);
      const __mmask8 km = (__mmask8)((1u << nk) - 1u);
      __m256 r[8];
      for (int i = 0; i < 8; i++) {
        const int64_t o = pn * MR + i;
        r[i] = o < g.O ? _mm256_maskz_loadu_ps(km, w + o * g.K + k0) : _mm256_setzero_ps();
      }
      __m256 t[8], u[8];
      for (int i = 0; i < 4; i++) {
        t[2 * i] = _mm256_unpacklo_ps(r[2 * i], r[2 * i + 1]);
        t[2 * i + 1] = _mm256_unpackhi_ps(r[2 * i], r[2 * i + 1]);
      }
      for (int h = 0; h < 2; h++) {  // rows 0-3 (h = 0) and 4-7 (h = 1)
        u[4 * h + 0] = _mm256_shuffle_ps(t[4 * h], t[4 * h + 2], 0x44);
        u[4 * h + 1] = _mm256_shuffle_ps(t[4 * h], t[4 * h + 2], 0xEE);
        u[4 * h + 2] = _mm256_shuffle_ps(t[4 * h + 1], t[4 * h + 3], 0x44);
        u[4 * h + 3] = _mm256_shuffle_ps(t[4 * h + 1], t[4 * h + 3], 0xEE);
      }
      for (int k = 0; k < nk; k++) {  // column k: lanes 0-3 from u[k % 4], 4-7 from u[4 + k % 4]
        const __m256 col = k < 4 ? _mm256_permute2f128_ps(u[k % 4], u[4 + k % 4], 0x20)  // an immediate each
                                 : _mm256_permute2f128_ps(u[k % 4], u[4 + k % 4], 0x31);
        _mm256_storeu_ps(dst + (k0 + k) * MR, col);
      }
    }
  }
}

void prepare(const ConvGeom& g, const Plan& p, const Layout& l, const float* w, const uint8_t* used) {
  if (p.tight) {  // taps with j != mj first, then the masked column; same (c, i) order in both
    pack_weights(g, p.panels, w, l.pa2);
    int64_t kn = 0;
    for (int pass = 0; pass < 2; pass++)
      for (int64_t c = 0; c < g.C; c++)
        for (int64_t i = 0; i < 3; i++)
          for (int64_t j = 0; j < 3; j++) {
            if ((j == p.mj) != (pass == 1)) continue;
            const int64_t ko = (c * 3 + i) * 3 + j;
            for (int64_t pn = 0; pn < p.panels; pn++)
              std::memcpy(l.pa + (pn * g.K + kn) * MR, l.pa2 + (pn * g.K + ko) * MR, MR * sizeof(float));
            // plane (i % 2, j % 2); phase-0 columns start one column later when pl = 1 (fill_tight)
            l.off[kn++] = c * p.CS + ((i % 2) * 2 + j % 2) * p.PS + (i / 2) * p.Wq + j / 2 -
                          (g.pl == 1 && j % 2 == 0 ? 1 : 0);
          }
    return;
  }
  pack_weights(g, p.panels, w, l.pa);
  for (int64_t c = 0; c < g.C; c++)
    for (int64_t i = 0; i < g.kh; i++)
      for (int64_t j = 0; j < g.kw; j++)
        l.off[(c * g.kh + i) * g.kw + j] =
            c * p.CS + ((i % g.sh) * g.sw + j % g.sw) * p.PS + (i / g.sh) * p.Wq + j / g.sw;
  if (!used) return;
  for (int64_t pn = 0; pn < p.panels; pn++) {  // keep the taps some row of the panel uses, in order
    int64_t kn = 0;
    for (int64_t k = 0; k < g.K; k++) {
      bool any = false;
      for (int64_t o = pn * MR; o < imin(g.O, pn * MR + MR); o++) any = any || used[o * g.K + k];
      if (!any) continue;
      std::memmove(l.pa + (pn * g.K + kn) * MR, l.pa + (pn * g.K + k) * MR, MR * sizeof(float));
      l.offp[pn * g.K + kn++] = l.off[k];
    }
    l.kp[pn] = kn;
  }
}

// ---------------------------------------------------------------- Winograd F(2x2, 3x3)
// 3x3 stride-1 convs: each 2x2 output tile is Y = A^T [U (.) V] A with U = G g G^T (per output and
// input channel, 4x4) and V = B^T d B (per tile and input channel, from the 4x4 input patch d): the
// multiply stage is 16 GEMMs [O, C] x [C, tiles] with 2.25x fewer multiply-adds than direct conv.
// The patches come from the same phase-split buffer as a 4x4 stride-2 conv (tile (ty, tx) reads
// plane (r % 2, s % 2) at t + (r / 2)*Wq + s / 2, t = ty*Wq + tx). Small images are grouped, so a
// block of 48 tiles may span several images. Order of every sum fixed: thread-count independent.
constexpr int64_t WTB = 48;                     // tiles per block (one register tile wide)
constexpr int64_t WGROUP_BYTES = 1024 * 1024;   // fill buffers of one image group
constexpr int WMAXSEG = 20;

// Worth it with enough output channels to share the input transform (even for one 8x8 image: the
// direct path packs the weights every call too).
bool wino_eligible(const ConvGeom& g) {
  return g.kh == 3 && g.kw == 3 && g.sh == 1 && g.sw == 1 && g.C >= 8 && g.O >= 32;
}

struct WPlan {
  ConvGeom vg;  // the 4x4 stride-2 "conv" whose output pixels are the tiles
  Plan p;
  bool tight;   // pad-1, even W and H: rows of exactly Wt tiles (see fill_tight)
  int64_t group;       // images per group (1 when an image needs several bands)
  int64_t vblk, mblk;  // floats of the V and M blocks
  int64_t per_thread;  // floats of scratch per thread
  int64_t upanel;      // floats of U per output panel: 16 * C * MR
};

WPlan make_wplan(const ConvGeom& g) {
  WPlan w{g, Plan{}, false, 1, 0, 0, 0, 0};
  w.vg.sh = w.vg.sw = 2;
  w.vg.kh = w.vg.kw = 4;
  w.vg.Ho = cdiv(g.Ho, 2);
  w.vg.Wo = cdiv(g.Wo, 2);
  w.vg.K = g.C * 16;
  w.vg.P = w.vg.Ho * w.vg.Wo;
  w.vg.direct = false;
  w.p = make_plan(w.vg);
  w.tight = g.pt == 1 && g.pl == 1 && g.Ho == g.H && g.Wo == g.W && g.H % 2 == 0 && g.W % 2 == 0 && g.W <= 256;
  if (w.tight) {  // the same planes without pad columns: Wq = Wt (see fill_tight)
    Plan& p = w.p;
    p.Wq = g.W / 2;
    p.halo = 1;
    int64_t rows = BAND_BYTES / 4 / imax(1, g.C * 4 * p.Wq) - 2;
    rows = imin(rows, MAX_FILL_ROWS / 2 - 2);
    p.band = imax(1, imin(w.vg.Ho, rows));
    p.PS = (p.band + 2) * p.Wq;
    p.CS = 4 * p.PS;
    p.buf = (g.C * p.CS + SLACK + 15) / 16 * 16;
  }
  w.p.panels = cdiv(g.O, MR);
  if (w.p.band >= w.vg.Ho) w.group = imax(1, imin(g.N, WGROUP_BYTES / 4 / w.p.buf));
  w.vblk = 16 * g.C * WTB;
  w.mblk = 16 * MR * WTB;
  w.per_thread = w.group * w.p.buf + w.vblk + w.mblk;
  w.upanel = 16 * g.C * MR;
  return w;
}

// U[panel][xi][c][r] = (G g G^T)[xi] of weight (o = panel*MR + r, c); zero rows past O. Vectorised
// over 16 lanes = (2 input channels) x (8 output channels), i.e. 16 consecutive floats of U.
NSVQ_AVX512 void wino_weights_panel(const ConvGeom& g, const WPlan& w, const float* wt, float* U, int64_t pn) {
  const __m512 half = _mm512_set1_ps(0.5f);
  float* up = U + pn * w.upanel;
  for (int64_t c = 0; c < g.C; c += 2) {
    alignas(64) float tmp[9 * 16];  // tmp[q][l]: tap q of lane l (gathers are slow on Zen)
    for (int l = 0; l < 16; l++) {
      const int64_t o = pn * MR + l % 8, ch = c + l / 8;
      const float* src = o < g.O && ch < g.C ? wt + (o * g.C + ch) * 9 : nullptr;
      for (int q = 0; q < 9; q++) tmp[q * 16 + l] = src ? src[q] : 0.0f;
    }
    __m512 k[9];
    for (int q = 0; q < 9; q++) k[q] = _mm512_load_ps(tmp + q * 16);
    __m512 t[4][3];
    for (int j = 0; j < 3; j++) {
      t[0][j] = k[j];
      t[1][j] = _mm512_mul_ps(half, _mm512_add_ps(_mm512_add_ps(k[j], k[3 + j]), k[6 + j]));
      t[2][j] = _mm512_mul_ps(half, _mm512_add_ps(_mm512_sub_ps(k[j], k[3 + j]), k[6 + j]));
      t[3][j] = k[6 + j];
    }
    const __mmask16 sm = c + 1 < g.C ? (__mmask16)0xFFFF : (__mmask16)0x00FF;
    for (int i = 0; i < 4; i++) {
      __m512 u[4];
      u[0] = t[i][0];
      u[1] = _mm512_mul_ps(half, _mm512_add_ps(_mm512_add_ps(t[i][0], t[i][1]), t[i][2]));
      u[2] = _mm512_mul_ps(half, _mm512_add_ps(_mm512_sub_ps(t[i][0], t[i][1]), t[i][2]));
      u[3] = t[i][2];
      for (int j = 0; j < 4; j++) store_lanes(up + ((i * 4 + j) * g.C + c) * MR, sm, u[j]);
    }
  }
}


// One band of one image inside a unit: its tiles are t in [t0, t0 + rows*Wq) of the unit.
struct Sub {
  const float* buf;  // phase buffer of the band
  float* y;          // output image
  int64_t ty0;       // first tile row of the band
  int64_t rows;      // tile rows
  int64_t t0;
};

struct InSeg {  // lanes m of a vector come from buffer position base + lane
  const float* base;
  __mmask16 m;
};
struct OutSeg {  // tile lanes of a vector in one tile row: pixel lanes m (32: dx interleaved) at y + off
  float* y;
  int64_t off;
  uint32_t m;
  bool dy1;  // the tile's second output row exists
};

// V of one 16-tile vector for every channel: column by column, B^T over the 4 patch rows, then B over
// the columns (20 live registers). NS segments (0: one segment covering all lanes, plain loads; -1: ns).
// m0 / m3: lanes whose s = 0 / s = 3 patch column exists (tight planes; else all).
template <int NS>
NSVQ_AVX512 void wino_input_vec(int64_t C, int64_t CS, const int64_t* off, const InSeg* seg, int ns, __mmask16 m0,
                                __mmask16 m3, float* vo) {
  const int64_t xs = C * WTB;
  for (int64_t c = 0; c < C; c++) {
    const int64_t cc = c * CS;
    __m512 t[16];
    for (int s = 0; s < 4; s++) {
      __m512 d[4];
      for (int r = 0; r < 4; r++) {
        const int64_t o = cc + off[r * 4 + s];
        const __mmask16 em = s == 0 ? m0 : s == 3 ? m3 : (__mmask16)0xFFFF;
        if (NS == 0) {
          d[r] = s == 0 || s == 3 ? _mm512_maskz_loadu_ps(em, seg[0].base + o) : _mm512_loadu_ps(seg[0].base + o);
        } else {
          d[r] = _mm512_maskz_loadu_ps(seg[0].m & em, seg[0].base + o);
#pragma GCC unroll 4
          for (int q = 1; q < (NS < 0 ? ns : NS); q++)
            d[r] = _mm512_mask_loadu_ps(d[r], seg[q].m & em, seg[q].base + o);
        }
      }
      t[0 * 4 + s] = _mm512_sub_ps(d[0], d[2]);
      t[1 * 4 + s] = _mm512_add_ps(d[1], d[2]);
      t[2 * 4 + s] = _mm512_sub_ps(d[2], d[1]);
      t[3 * 4 + s] = _mm512_sub_ps(d[1], d[3]);
    }
    float* o = vo + c * WTB;
    for (int i = 0; i < 4; i++) {
      float* oi = o + (i * 4) * xs;
      _mm512_store_ps(oi, _mm512_sub_ps(t[i * 4 + 0], t[i * 4 + 2]));
      _mm512_store_ps(oi + xs, _mm512_add_ps(t[i * 4 + 1], t[i * 4 + 2]));
      _mm512_store_ps(oi + 2 * xs, _mm512_sub_ps(t[i * 4 + 2], t[i * 4 + 1]));
      _mm512_store_ps(oi + 3 * xs, _mm512_sub_ps(t[i * 4 + 1], t[i * 4 + 3]));
    }
  }
}

// V[xi][c][WTB] for tiles [tb, tb + nb) of the unit
NSVQ_AVX512 void wino_input(const ConvGeom& g, const WPlan& w, const Sub* subs, int nsub, int64_t tb, int64_t nb,
                            float* V) {
  const Plan& p = w.p;
  int64_t off[16];
  for (int r = 0; r < 4; r++)
    for (int s = 0; s < 4; s++)  // tight planes: phase-0 columns start one tile later (fill_tight)
      off[r * 4 + s] = ((r % 2) * 2 + s % 2) * p.PS + (r / 2) * p.Wq + s / 2 - (w.tight && s % 2 == 0 ? 1 : 0);
  int si = 0;
  for (int64_t v = 0; v * 16 < nb; v++) {
    const int64_t vs = tb + 16 * v, ve = imin(vs + 16, tb + nb);
    InSeg seg[WMAXSEG];
    int ns = 0;
    while (si < nsub && subs[si].t0 + subs[si].rows * p.Wq <= vs) si++;
    for (int k = si; k < nsub && subs[k].t0 < ve && ns < WMAXSEG; k++) {
      const int64_t a = imax(vs, subs[k].t0), b = imin(ve, subs[k].t0 + subs[k].rows * p.Wq);
      if (b <= a) continue;
      seg[ns++] = {subs[k].buf + (a - subs[k].t0) - (a - vs), lane_range(0, a - vs, b - vs)};
    }
    uint32_t m0 = 0xFFFF, m3 = 0xFFFF;
    if (w.tight)  // lanes at the first / last tile of a row have no s = 0 / s = 3 column
      for (int k = si; k < nsub && subs[k].t0 < ve; k++)
        for (int64_t t = imax(vs, subs[k].t0); t < imin(ve, subs[k].t0 + subs[k].rows * p.Wq); t++) {
          const int64_t tx = (t - subs[k].t0) % p.Wq;
          if (tx == 0) m0 &= ~(1u << (t - vs));
          if (tx == p.Wq - 1) m3 &= ~(1u << (t - vs));
        }
    float* vo = V + 16 * v;
    switch (ns == 1 && seg[0].m == 0xFFFF ? 0 : ns) {
      case 0: wino_input_vec<0>(g.C, p.CS, off, seg, ns, (__mmask16)m0, (__mmask16)m3, vo); break;
      case 1: wino_input_vec<1>(g.C, p.CS, off, seg, ns, (__mmask16)m0, (__mmask16)m3, vo); break;
      case 2: wino_input_vec<2>(g.C, p.CS, off, seg, ns, (__mmask16)m0, (__mmask16)m3, vo); break;
      case 3: wino_input_vec<3>(g.C, p.CS, off, seg, ns, (__mmask16)m0, (__mmask16)m3, vo); break;
      default: wino_input_vec<-1>(g.C, p.CS, off, seg, ns, (__mmask16)m0, (__mmask16)m3, vo); break;  // any count
    }
  }
}

// M[r][WTB] (8 rows) = U panel [C][MR] x V [C][WTB], NV vectors of tiles
template <int NV>
NSVQ_AVX512 void wino_gemm(int64_t C, const float* __restrict pa, const float* __restrict vb, float* __restrict m) {
  __m512 acc[MR][NV];
  fma_tile<MR, NV>(acc, C, pa, MR, vb, WTB);
#pragma GCC unroll 8
  for (int r = 0; r < MR; r++)
#pragma GCC unroll 3
    for (int v = 0; v < NV; v++) _mm512_store_ps(m + r * WTB + 16 * v, acc[r][v]);
}
using wgemm_fn = void (*)(int64_t, const float*, const float*, float*);
const wgemm_fn wino_gemms[NV_MAX] = {wino_gemm<1>, wino_gemm<2>, wino_gemm<3>};

// Y = A^T M A (+ bias) for the R valid rows of panel o0, tile vectors [0, nv), stored through segs
NSVQ_AVX512 void wino_output(const ConvGeom& g, const float* M, int nv, const OutSeg (*segs)[WMAXSEG], const int* ns,
                             int64_t o0, int R, const float* bias) {
  const __m512i ilo = _mm512_set_epi32(23, 7, 22, 6, 21, 5, 20, 4, 19, 3, 18, 2, 17, 1, 16, 0);
  const __m512i ihi = _mm512_set_epi32(31, 15, 30, 14, 29, 13, 28, 12, 27, 11, 26, 10, 25, 9, 24, 8);
  const int64_t xs = MR * WTB;
  for (int v = 0; v < nv; v++)
    for (int r = 0; r < R; r++) {
      const float* mp = M + r * WTB + 16 * v;
      __m512 m[16];
      for (int k = 0; k < 16; k++) m[k] = _mm512_load_ps(mp + k * xs);
      __m512 t0[4], t1[4];  // A^T M
      for (int j = 0; j < 4; j++) {
        t0[j] = _mm512_add_ps(_mm512_add_ps(m[j], m[4 + j]), m[8 + j]);
        t1[j] = _mm512_sub_ps(_mm512_sub_ps(m[4 + j], m[8 + j]), m[12 + j]);
      }
      __m512 y00 = _mm512_add_ps(_mm512_add_ps(t0[0], t0[1]), t0[2]);
      __m512 y01 = _mm512_sub_ps(_mm512_sub_ps(t0[1], t0[2]), t0[3]);
      __m512 y10 = _mm512_add_ps(_mm512_add_ps(t1[0], t1[1]), t1[2]);
      __m512 y11 = _mm512_sub_ps(_mm512_sub_ps(t1[1], t1[2]), t1[3]);
      if (bias) {
        const __m512 b = _mm512_set1_ps(bias[o0 + r]);
        y00 = _mm512_add_ps(y00, b);
        y01 = _mm512_add_ps(y01, b);
        y10 = _mm512_add_ps(y10, b);
        y11 = _mm512_add_ps(y11, b);
      }
      const __m512 lo0 = _mm512_permutex2var_ps(y00, ilo, y01), hi0 = _mm512_permutex2var_ps(y00, ihi, y01);
      const __m512 lo1 = _mm512_permutex2var_ps(y10, ilo, y11), hi1 = _mm512_permutex2var_ps(y10, ihi, y11);
      const int64_t plane = (o0 + r) * g.P;
      for (int s = 0; s < ns[v]; s++) {
        const OutSeg& q = segs[v][s];
        float* p0 = q.y + plane + q.off;
        const __mmask16 ml = (__mmask16)(q.m & 0xFFFFu), mh = (__mmask16)(q.m >> 16);
        store_lanes(p0, ml, lo0);
        store_lanes(p0 + 16, mh, hi0);
        if (q.dy1) {
          store_lanes(p0 + g.Wo, ml, lo1);
          store_lanes(p0 + g.Wo + 16, mh, hi1);
        }
      }
    }
}

void wino_fill(const ConvGeom& g, const WPlan& w, const float* x, int64_t ty0, int64_t rows, int64_t c0, int64_t c1,
               float* buf) {
  if (w.tight)
    fill_tight(g, w.p, x, ty0, rows, c0, c1, buf);
  else
    fill_band(w.vg, w.p, x, ty0, rows, c0, c1, buf);
}

// blocks [b0, b1) of a unit (subs, ttot tiles): input transform, 16 GEMMs and output transform per panel
void wino_blocks(const ConvGeom& g, const WPlan& w, const float* U, const float* bias, const Sub* subs, int nsub,
                 int64_t ttot, int64_t b0, int64_t b1, float* V, float* M) {
  const Plan& p = w.p;
  for (int64_t blk = b0; blk < b1; blk++) {
    const int64_t tb = blk * WTB, nb = imin(WTB, ttot - tb);
    const int nv = (int)cdiv(nb, 16);
    wino_input(g, w, subs, nsub, tb, nb, V);
    // output segments of each vector: the valid tiles (tx < Wt) of each tile row it covers
    OutSeg segs[NV_MAX][WMAXSEG];
    int ns[NV_MAX];
    int si = 0;
    for (int v = 0; v < nv; v++) {
      const int64_t vs = tb + 16 * v, ve = imin(vs + 16, tb + nb);
      ns[v] = 0;
      for (int64_t t = vs; t < ve && ns[v] < WMAXSEG;) {
        while (si < nsub && subs[si].t0 + subs[si].rows * p.Wq <= t) si++;
        const Sub& sb = subs[si];
        const int64_t tl = t - sb.t0, ty = tl / p.Wq, tx = tl % p.Wq;
        const int64_t row_end = sb.t0 + (ty + 1) * p.Wq;
        const int64_t e = imin(ve, sb.t0 + ty * p.Wq + w.vg.Wo);  // valid tiles end
        if (tx < w.vg.Wo && e > t) {
          const int64_t a = t - vs, b = e - vs;  // tile lanes [a, b)
          uint64_t bits = ((1ull << (2 * b)) - 1) & ~((1ull << (2 * a)) - 1);
          if (g.Wo % 2 && sb.t0 + ty * p.Wq + w.vg.Wo <= ve) bits &= ~(1ull << (2 * (b - 1) + 1));  // last column
          const int64_t row = 2 * (sb.ty0 + ty);
          segs[v][ns[v]++] = {sb.y, row * g.Wo + 2 * tx - 2 * a, (uint32_t)bits, row + 1 < g.Ho};
        }
        t = row_end;
      }
    }
    for (int64_t pn = 0; pn < p.panels; pn++) {
      const float* up = U + pn * w.upanel;
      for (int xi = 0; xi < 16; xi++)
        wino_gemms[nv - 1](g.C, up + xi * g.C * MR, V + xi * g.C * WTB, M + xi * MR * WTB);
      wino_output(g, M, nv, segs, ns, pn * MR, (int)imin(MR, g.O - pn * MR), bias);
    }
  }
}

// images [n0, n1) on the calling thread
void wino_images(const ConvGeom& g, const WPlan& w, const float* U, const float* x, const float* bias, float* y,
                 int64_t n0, int64_t n1, float* tbuf) {
  const Plan& p = w.p;
  float* V = tbuf + w.group * p.buf;
  float* M = V + w.vblk;
  const int64_t img_in = g.C * g.H * g.W, img_out = g.O * g.P;
  Sub subs[64];
  for (int64_t na = n0; na < n1;) {
    if (w.group > 1 || p.band >= w.vg.Ho) {  // a group of whole images
      const int64_t nb = imin(imin(n1 - na, w.group), 64);
      int64_t t0 = 0;
      for (int64_t i = 0; i < nb; i++) {
        float* buf = tbuf + i * p.buf;
        wino_fill(g, w, x + (na + i) * img_in, 0, w.vg.Ho, 0, g.C, buf);
        subs[i] = {buf, y + (na + i) * img_out, 0, w.vg.Ho, t0};
        t0 += w.vg.Ho * p.Wq;
      }
      wino_blocks(g, w, U, bias, subs, (int)nb, t0, 0, cdiv(t0, WTB), V, M);
      na += nb;
    } else {  // one image, band by band
      for (int64_t ty0 = 0; ty0 < w.vg.Ho; ty0 += p.band) {
        const int64_t rows = imin(p.band, w.vg.Ho - ty0);
        wino_fill(g, w, x + na * img_in, ty0, rows, 0, g.C, tbuf);
        subs[0] = {tbuf, y + na * img_out, ty0, rows, 0};
        wino_blocks(g, w, U, bias, subs, 1, rows * p.Wq, 0, cdiv(rows * p.Wq, WTB), V, M);
      }
      na++;
    }
  }
}

void wino_forward(const ConvGeom& g, const float* x, const float* wt, const float* bias, float* y, void* scratch,
                  int nthreads) {
  const WPlan w = make_wplan(g);
  float* U = (float*)scratch;
  float* tb = (float*)(((uintptr_t)(U + w.p.panels * w.upanel) + 63) / 64 * 64);
  const double flops = 2.0 * (double)g.N * g.O * g.P * g.K;
  const int nt = conv_threads(flops, g.N, nthreads);
  const int64_t np = w.p.panels;
  // The weight transform shares the parallel region of the first work (a barrier instead of a second
  // fork: waking threads is the expensive part with OMP_WAIT_POLICY=passive).
  if (g.N >= nt) {
#pragma omp parallel num_threads(nt)
    {
      const int tid = omp_get_thread_num(), nth = omp_get_num_threads();
      for (int64_t pn = np * tid / nth; pn < np * (tid + 1) / nth; pn++) wino_weights_panel(g, w, wt, U, pn);
#pragma omp barrier
      wino_images(g, w, U, x, bias, y, g.N * tid / nth, g.N * (tid + 1) / nth, tb + tid * w.per_thread);
    }
    return;
  }
  // fewer images than threads: each band is shared (fill split by channel, blocks by thread)
  const Plan& p = w.p;
  for (int64_t n = 0; n < g.N; n++)
    for (int64_t ty0 = 0; ty0 < w.vg.Ho; ty0 += p.band) {
      const int64_t rows = imin(p.band, w.vg.Ho - ty0);
      const Sub sub = {tb, y + n * g.O * g.P, ty0, rows, 0};
      const int64_t nblk = cdiv(rows * p.Wq, WTB);
      const bool first = n == 0 && ty0 == 0;
#pragma omp parallel num_threads(nt)
      {
        const int tid = omp_get_thread_num(), nth = omp_get_num_threads();
        if (first)
          for (int64_t pn = np * tid / nth; pn < np * (tid + 1) / nth; pn++) wino_weights_panel(g, w, wt, U, pn);
        wino_fill(g, w, x + n * g.C * g.H * g.W, ty0, rows, g.C * tid / nth, g.C * (tid + 1) / nth, tb);
#pragma omp barrier
        float* V = tb + w.group * p.buf + tid * (w.vblk + w.mblk);
        wino_blocks(g, w, U, bias, &sub, 1, rows * p.Wq, nblk * tid / nth, nblk * (tid + 1) / nth, V, V + w.vblk);
      }
    }
}

}  // namespace

size_t conv_direct_scratch(const ConvGeom& g, int nthreads, bool panel_taps) {
  if (wino_eligible(g)) {
    const WPlan w = make_wplan(g);
    return (size_t)(w.p.panels * w.upanel + 16 + (nthreads < 1 ? 1 : nthreads) * w.per_thread) * sizeof(float);
  }
  Plan p = make_plan(g);
  size_t b = (size_t)(p.panels * MR * g.K) * sizeof(float) + (size_t)g.K * sizeof(int64_t) + 64;
  if (panel_taps) b += (size_t)(p.panels * (g.K + 1)) * sizeof(int64_t);
  if (p.tight) b += (size_t)((p.panels * MR * g.K + 15) / 16 * 16) * sizeof(float);
  return b + (size_t)(nthreads < 1 ? 1 : nthreads) * (size_t)p.buf * sizeof(float);
}

void conv_direct_forward(const ConvGeom& g, const float* x, const float* w, const float* bias, float* y, void* scratch,
                         int nthreads, const uint8_t* used) {
  if (wino_eligible(g)) {
    wino_forward(g, x, w, bias, y, scratch, nthreads);
    return;
  }
  const Plan p = make_plan(g);
  const Layout l = layout(g, p, scratch, used && !p.tight);
  prepare(g, p, l, w, p.tight ? nullptr : used);
  const double flops = 2.0 * (double)g.N * g.O * g.P * g.K;
  const int nt = conv_threads(flops, g.N, nthreads);
  const int64_t img_in = g.C * g.H * g.W, img_out = g.O * g.P;
  if (g.N >= nt) {
#pragma omp parallel for num_threads(nt) schedule(static)
    for (int64_t n = 0; n < g.N; n++)
      run_image(g, p, l, x + n * img_in, bias, y + n * img_out, l.bufs + omp_get_thread_num() * p.buf);
    return;
  }
  // fewer images than threads: every band is shared by all threads (copy split by channel, tiles by item)
  for (int64_t n = 0; n < g.N; n++)
    for (int64_t oy0 = 0; oy0 < g.Ho; oy0 += p.band) {
      const int64_t nrows = imin(p.band, g.Ho - oy0);
      const float* xn = x + n * img_in;
      float* yn = y + n * img_out;
      const int64_t items = band_items(p, nrows);
#pragma omp parallel num_threads(nt)
      {
        const int tid = omp_get_thread_num(), nth = omp_get_num_threads();
        if (p.copy) {
          if (p.tight)
            fill_tight(g, p, xn, oy0, nrows, g.C * tid / nth, g.C * (tid + 1) / nth, l.bufs);
          else
            fill_band(g, p, xn, oy0, nrows, g.C * tid / nth, g.C * (tid + 1) / nth, l.bufs);
#pragma omp barrier
        }
        run_items(g, p, l, p.copy ? l.bufs : xn, bias, yn, oy0, nrows, items * tid / nth, items * (tid + 1) / nth);
      }
    }
}

// dX of one image [C, H, W] from its phase outputs q [4C, Hq, Wq] (conv_bwd_data_s2_as_fwd): row y takes
// phases (a, 0) and (a, 1) of row u, interleaved 16 + 16 columns at a time
NSVQ_AVX512 void conv_s2_interleave(const ConvGeom& g, const ConvGeom& tg, const float* q, float* dx) {
  const __m512i ilo = _mm512_set_epi32(23, 7, 22, 6, 21, 5, 20, 4, 19, 3, 18, 2, 17, 1, 16, 0);
  const __m512i ihi = _mm512_set_epi32(31, 15, 30, 14, 29, 13, 28, 12, 27, 11, 26, 10, 25, 9, 24, 8);
  const int64_t Wq = tg.Wo;
  for (int64_t c = 0; c < g.C; c++)
    for (int64_t y = 0; y < g.H; y++) {
      const int64_t a = (y + g.pt) % 2, u = (y + g.pt) / 2;
      const float* e = q + ((a * 2 * g.C + c) * tg.Ho + u) * Wq;  // phase (a, 0); (a, 1) is C planes further
      const float* o = e + g.C * tg.P;
      float* d = dx + (c * g.H + y) * g.W;
      for (int64_t v0 = 0; v0 < Wq; v0 += 16) {
        const __mmask16 mv = lane_range(v0, 0, Wq);
        const __m512 ev = _mm512_maskz_loadu_ps(mv, e + v0), ov = _mm512_maskz_loadu_ps(mv, o + v0);
        const int64_t xs = 2 * v0 - g.pl;  // column of the first of the 32
        const __mmask16 ml = lane_range(xs, 0, g.W), mh = lane_range(xs + 16, 0, g.W);
        if (ml) store_lanes(d + xs, ml, _mm512_permutex2var_ps(ev, ilo, ov));
        if (mh) store_lanes(d + xs + 16, mh, _mm512_permutex2var_ps(ev, ihi, ov));
      }
    }
}

}  // namespace nsvq
