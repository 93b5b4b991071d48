// ops/cpu/conv_wgrad_avx512.cpp — the weight gradient of a stride-1 or stride-2 conv2d on AVX-512 CPUs without
// im2col.
//
// The zero-padded input is split into sh*sw phase planes, plane (a, b)[yq, xq] = xpad[yq*sh + a, xq*sw + b]
// (one plane for stride 1), each Hp = Ho + (kh - 1)/sh rows of Wp = Wo + (kw - 1)/sw pixels. Tap (i, j)
// of the kernel reads plane (i % sh, j % sw) at a fixed offset s = (i/sh)*Wp + j/sw from the output pixel
// q = oy*Wp + ox, so
//   dW[o, c, i, j] = sum_n sum_q dYp_n[o, q] * Xp_n[plane of (i, j)][c, q + s]
// where dYp is dY laid out in the same frame with zeros in the Wp - Wo extra columns. Each plane is packed
// once per image in panels of R channels (one row of R values per frame pixel); the panel of tap (i, j) is
// then the same panel s rows further on, so all taps of a plane share one packing and nothing like im2col
// is ever written (the planes together hold about the input once). dYp is packed once per image in slabs
// of KCW pixels of 16*NV outputs per row. The register tile is R channels x 16*NV outputs ((R, NV) =
// (16, 1), (8, 2), (8, 3) or (4, 4) by the output count), accumulating over a slab before it is added to
// dW^T[tap] [C x O].
// 3x3 stride-1 convs with 16 or more input channels take Winograd F(2x2, 3x3) instead: the forward is
// Y = A^T [(G g G^T) (.) (B^T d B)] A per 2x2 output tile, so dg = G^T [sum over tiles (A dY A^T) (.)
// (B^T d B)] G: 16 "taps" e = (r, s), each dU_e [C x O] += sum over tiles V_e (x) M_e with V = B^T d B of
// the tile's 4x4 input patch and M = A dY A^T of its 2x2 output gradients (V as rows of all channels per
// tile, read by the register tile with a row stride; M in slabs of KCW tiles like dYp): 16 GEMMs over
// tiles instead of 9 over pixels, 2.25x fewer multiply-adds.
// Threads split the (output panel, channel panel, tap) units; each unit accumulates image after image,
// slab after slab in that order, so the result does not depend on the thread count or on how many
// images are packed at once (a scratch budget, conv_wgrad_budget()).
#include "ops/cpu/conv_direct.h"

#include <omp.h>
#include <algorithm>
#include <cstring>
#include <immintrin.h>
#include "engine/cpu/transpose16.h"
#include "ops/cpu/simd512.h"

namespace nsvq {

namespace {
constexpr int64_t KCW = 128;  // frame pixels per slab: a 128 x 64 slab of dYp (32 KiB) stays in L1

struct WgPlan {
  bool wino;                   // Winograd F(2x2, 3x3): Q = tiles, taps = 16, Tw tiles per row, V rows Cp apart
  int64_t Tw, Cp, xt_floats;   // Cp = cpan * R; xt: the channels-last padded input of pack_input_wino
  int nv, R;                   // register tile: R channels x 16*nv outputs
  int64_t Wp, Hp, Q, Qx;       // frame width and height, output frame pixels, packed input rows per plane
  int64_t planes;              // sh * sw phase planes
  int64_t cpan, opan, taps;    // channel panels (R), output panels (16*nv), kh*kw
  int64_t a_floats, b_floats;  // packed floats per image (multiples of 16: 64-byte aligned)
  int64_t group, t_floats;     // images packed at once; dW^T floats
};

WgPlan make_wgplan(const ConvGeom& g) {
  WgPlan p;
  p.wino = false;
  p.Tw = p.Cp = p.xt_floats = 0;
  p.nv = (int)std::min<int64_t>(4, (g.O + 15) / 16);
  p.R = p.nv == 1 ? 16 : p.nv == 4 ? 4 : 8;
  p.Wp = g.Wo + (g.kw - 1) / g.sw;
  p.Hp = g.Ho + (g.kh - 1) / g.sh;
  p.Q = g.Ho * p.Wp;
  p.Qx = p.Hp * p.Wp + g.kw;  // the last tap reads up to Hp*Wp + (kw - 1)/sw - 1
  p.planes = g.sh * g.sw;
  p.cpan = (g.C + p.R - 1) / p.R;
  p.opan = (g.O + 16 * p.nv - 1) / (16 * p.nv);
  p.taps = g.kh * g.kw;
  p.a_floats = (p.planes * p.cpan * p.R * p.Qx + 15) / 16 * 16;
  p.b_floats = p.opan * 16 * p.nv * p.Q;
  const int64_t per_image = p.a_floats + p.b_floats;
  p.group = std::max<int64_t>(1, std::min<int64_t>(g.N, conv_wgrad_budget() / per_image));
  p.t_floats = (p.taps * g.C * g.O + 15) / 16 * 16;
  return p;
}

WgPlan make_wgplan_wino(const ConvGeom& g) {
  WgPlan p = make_wgplan(g);
  p.wino = true;
  p.Tw = (g.Wo + 1) / 2;
  p.Q = p.Qx = (g.Ho + 1) / 2 * p.Tw;
  p.planes = p.taps = 16;
  p.Cp = p.cpan * p.R;
  p.Hp = 2 * (p.Q / p.Tw) + 2;  // padded input rows and columns the tiles' 4x4 patches cover
  p.Wp = 2 * p.Tw + 2;
  p.xt_floats = (p.Hp * p.Wp + 1) * ((p.Cp + 15) / 16 * 16);
  p.a_floats = (16 * p.Q * p.Cp + p.xt_floats + 15) / 16 * 16;
  p.b_floats = 16 * p.opan * 16 * p.nv * p.Q;
  p.group = std::max<int64_t>(1, std::min<int64_t>(g.N, conv_wgrad_budget() / (p.a_floats + p.b_floats)));
  p.t_floats = (16 * g.C * g.O + 15) / 16 * 16;
  return p;
}

bool wino_wgrad(const ConvGeom& g) { return g.kh == 3 && g.kw == 3 && g.sh == 1 && g.sw == 1 && g.C >= 16; }
WgPlan plan_for(const ConvGeom& g) { return wino_wgrad(g) ? make_wgplan_wino(g) : make_wgplan(g); }

// c [rows x 16*NV] (row stride ldc, lane masks m) = sum over kc pixels of a[k, :R] (x) b[k, :16*NV]
// (+ c when accumulate); a rows are `as` floats apart, b rows 16*NV
template <int R, int NV>
NSVQ_AVX512 void wg_tile(int64_t kc, const float* __restrict a, int64_t as, const float* __restrict b, float* c, int64_t ldc,
                         int rows, const __mmask16* m, bool accumulate) {
  __m512 acc[R][NV];
  fma_tile<R, NV>(acc, kc, a, as, b, 16 * NV);
#pragma GCC unroll 16
  for (int r = 0; r < R; r++) {
    if (r >= rows) break;
#pragma GCC unroll 4
    for (int v = 0; v < NV; v++) {
      if (!m[v]) continue;
      float* cr = c + r * ldc + 16 * v;
      const __m512 old = accumulate ? _mm512_maskz_loadu_ps(m[v], cr) : _mm512_setzero_ps();
      store_lanes(cr, m[v], _mm512_add_ps(old, acc[r][v]));
    }
  }
}

using wg_tile_fn = void (*)(int64_t, const float*, int64_t, const float*, float*, int64_t, int, const __mmask16*, bool);
wg_tile_fn wg_tile_for(int nv) {
  switch (nv) {
    case 1: return &wg_tile<16, 1>;
    case 2: return &wg_tile<8, 2>;
    case 3: return &wg_tile<8, 3>;
    default: return &wg_tile<4, 4>;
  }
}

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"  // transpose16x16 (see engine/cpu/transpose16.h)

// lanes j < npix of a 16-pixel run starting at column x0 whose column x0 + j is in [0, n)
inline __mmask16 run_mask(int64_t x0, int64_t npix, int64_t n) { return lane_range(x0, 0, n) & lane_range(0, 0, npix); }

// Xp of one image [C, H, W] into planes x cpan panels of [Qx rows x R channels]: runs of 16 frame pixels
// of R channel rows (stride 2: the even or odd lanes of two 16-column loads) are transposed in registers
NSVQ_AVX512 void pack_input(const ConvGeom& g, const WgPlan& p, const float* x, float* pa) {
  const __mmask16 rmask = (__mmask16)((1u << p.R) - 1u);
  const __m512i even = _mm512_set_epi32(30, 28, 26, 24, 22, 20, 18, 16, 14, 12, 10, 8, 6, 4, 2, 0);
  for (int64_t a = 0; a < g.sh; a++)
    for (int64_t b = 0; b < g.sw; b++)
      for (int64_t cp = 0; cp < p.cpan; cp++) {
        float* dst = pa + ((a * g.sw + b) * p.cpan + cp) * p.R * p.Qx;
        const int64_t c0 = cp * p.R, nc = std::min<int64_t>(p.R, g.C - c0);
        for (int64_t y = 0; y < p.Hp; y++) {
          const int64_t iy = y * g.sh + a - g.pt;
          const bool row_in = iy >= 0 && iy < g.H;
          for (int64_t x0 = 0; x0 < p.Wp; x0 += 16) {
            const int64_t npix = std::min<int64_t>(16, p.Wp - x0);
            const int64_t sx = x0 * g.sw + b - g.pl;  // source column of lane 0
            __m512 r[16];
            if (g.sw == 1) {
              const __mmask16 lm = row_in ? run_mask(sx, npix, g.W) : (__mmask16)0;
              for (int64_t i = 0; i < 16; i++)
                r[i] = i < nc && lm ? _mm512_maskz_loadu_ps(lm, x + ((c0 + i) * g.H + iy) * g.W + sx) : _mm512_setzero_ps();
            } else {  // source columns sx + 2j: lanes of [sx, sx + 32) in [0, W) and below sx + 2 npix
              const __mmask16 ml = row_in ? run_mask(sx, std::min<int64_t>(16, 2 * npix), g.W) : (__mmask16)0;
              const __mmask16 mh = row_in ? run_mask(sx + 16, std::max<int64_t>(0, 2 * npix - 16), g.W) : (__mmask16)0;
              for (int64_t i = 0; i < 16; i++) {
                if (i >= nc || !(ml | mh)) {
                  r[i] = _mm512_setzero_ps();
                  continue;
                }
                const float* src = x + ((c0 + i) * g.H + iy) * g.W + sx;
                r[i] = _mm512_permutex2var_ps(_mm512_maskz_loadu_ps(ml, src), even, _mm512_maskz_loadu_ps(mh, src + 16));
              }
            }
            transpose16x16(r);
            float* d = dst + (y * p.Wp + x0) * p.R;
            for (int64_t j = 0; j < npix; j++) _mm512_mask_storeu_ps(d + j * p.R, rmask, r[j]);
          }
        }
        std::memset(dst + p.Hp * p.Wp * p.R, 0, (size_t)((p.Qx - p.Hp * p.Wp) * p.R) * sizeof(float));
      }
}

// dYp of one image [O, Ho, Wo] into slabs of KCW frame pixels, each holding opan panels [kcs x 16*nv]:
// runs of 16 frame pixels of 16 outputs are transposed in registers (zeros past O and past Wo)
NSVQ_AVX512 void pack_grad(const ConvGeom& g, const WgPlan& p, const float* gy, float* pb) {
  const int64_t w = 16 * p.nv;
  for (int64_t o0 = 0; o0 < p.opan * w; o0 += 16) {
    const int64_t no = std::min<int64_t>(16, g.O - o0), op = o0 / w, lane0 = o0 % w;
    for (int64_t oy = 0; oy < g.Ho; oy++)
      for (int64_t x0 = 0; x0 < p.Wp; x0 += 16) {
        const int64_t npix = std::min<int64_t>(16, p.Wp - x0);
        const __mmask16 lm = run_mask(x0, npix, g.Wo);
        __m512 r[16];
        for (int64_t i = 0; i < 16; i++)
          r[i] = i < no && lm ? _mm512_maskz_loadu_ps(lm, gy + (o0 + i) * g.P + oy * g.Wo + x0) : _mm512_setzero_ps();
        transpose16x16(r);
        for (int64_t j = 0; j < npix; j++) {
          const int64_t q = oy * p.Wp + x0 + j, q0 = q / KCW * KCW, kcs = std::min(KCW, p.Q - q0);
          _mm512_store_ps(pb + q0 * p.opan * w + op * kcs * w + (q - q0) * w + lane0, r[j]);
        }
      }
  }
}
// V = B^T d B of one image [C, H, W] into 16 planes [tiles][Cp]: the zero-padded input is first transposed
// to channels-last rows of Cq = Cp rounded up to 16 floats (16 x 16 blocks in registers, at the end of the
// packed area), then every tile's 16 patch values of 16 channels are plain vector loads, and V_e of those
// channels one store
NSVQ_AVX512 void pack_input_wino(const ConvGeom& g, const WgPlan& p, const float* x, float* pa) {
  const int64_t Cq = (p.Cp + 15) / 16 * 16, Th = p.Q / p.Tw, per_e = p.Q * p.Cp;
  float* xt = pa + 16 * per_e;  // [Hp][Wp][Cq]: padded row y, column x hold input (y - pt, x - pl)
  for (int64_t c0 = 0; c0 < Cq; c0 += 16) {
    const int64_t nc = std::max<int64_t>(0, std::min<int64_t>(16, g.C - c0));
    for (int64_t y = 0; y < p.Hp; y++) {
      const int64_t iy = y - g.pt;
      const bool row_in = iy >= 0 && iy < g.H && nc > 0;
      for (int64_t x0 = 0; x0 < p.Wp; x0 += 16) {
        const int64_t npix = std::min<int64_t>(16, p.Wp - x0);
        const __mmask16 lm = row_in ? run_mask(x0 - g.pl, npix, g.W) : (__mmask16)0;
        __m512 r[16];
        for (int64_t i = 0; i < 16; i++)
          r[i] = i < nc && lm ? _mm512_maskz_loadu_ps(lm, x + ((c0 + i) * g.H + iy) * g.W + x0 - g.pl) : _mm512_setzero_ps();
        transpose16x16(r);
        for (int64_t j = 0; j < npix; j++) _mm512_store_ps(xt + (y * p.Wp + x0 + j) * Cq + c0, r[j]);
      }
    }
  }
  for (int64_t ty = 0; ty < Th; ty++)
    for (int64_t tx = 0; tx < p.Tw; tx++) {
      const float* patch = xt + (2 * ty * p.Wp + 2 * tx) * Cq;
      float* dst = pa + (ty * p.Tw + tx) * p.Cp;
      for (int64_t c0 = 0; c0 < p.Cp; c0 += 16) {
        const __mmask16 sm = (__mmask16)(p.Cp - c0 >= 16 ? 0xFFFFu : (1u << (p.Cp - c0)) - 1u);
        __m512 t[4][4];  // B^T d over the rows, per patch column
        for (int q = 0; q < 4; q++) {
          const __m512 d0 = _mm512_load_ps(patch + q * Cq + c0), d1 = _mm512_load_ps(patch + (p.Wp + q) * Cq + c0),
                       d2 = _mm512_load_ps(patch + (2 * p.Wp + q) * Cq + c0),
                       d3 = _mm512_load_ps(patch + (3 * p.Wp + q) * Cq + c0);
          t[0][q] = _mm512_sub_ps(d0, d2);
          t[1][q] = _mm512_add_ps(d1, d2);
          t[2][q] = _mm512_sub_ps(d2, d1);
          t[3][q] = _mm512_sub_ps(d1, d3);
        }
        for (int r = 0; r < 4; r++) {  // then B over the columns
          float* o = dst + r * 4 * per_e + c0;
          store_lanes(o, sm, _mm512_sub_ps(t[r][0], t[r][2]));
          store_lanes(o + per_e, sm, _mm512_add_ps(t[r][1], t[r][2]));
          store_lanes(o + 2 * per_e, sm, _mm512_sub_ps(t[r][2], t[r][1]));
          store_lanes(o + 3 * per_e, sm, _mm512_sub_ps(t[r][1], t[r][3]));
        }
      }
    }
}

// M = A dY A^T of one image [O, Ho, Wo] (2x2 tiles, zeros past Ho / Wo) into 16 x (slabs of KCW tiles of opan
// panels [kcs x 16*nv]): runs of 16 pixels of two output rows for 16 outputs, transposed in registers
NSVQ_AVX512 void pack_grad_wino(const ConvGeom& g, const WgPlan& p, const float* gy, float* pb) {
  const int64_t w = 16 * p.nv, Th = p.Q / p.Tw, per_e = p.opan * w * p.Q;
  for (int64_t o0 = 0; o0 < p.opan * w; o0 += 16) {
    const int64_t no = std::min<int64_t>(16, g.O - o0), op = o0 / w, lane0 = o0 % w;
    for (int64_t ty = 0; ty < Th; ty++)
      for (int64_t x0 = 0; x0 < 2 * p.Tw; x0 += 16) {  // 8 tiles
        const int64_t nt = std::min<int64_t>(8, p.Tw - x0 / 2);
        const __mmask16 lm = run_mask(x0, 16, g.Wo);
        __m512 y0[16], y1[16];
        for (int64_t i = 0; i < 16; i++) {
          const float* src = gy + (o0 + i) * g.P + 2 * ty * g.Wo + x0;
          const bool ok = i < no && lm;
          y0[i] = ok ? _mm512_maskz_loadu_ps(lm, src) : _mm512_setzero_ps();
          y1[i] = ok && 2 * ty + 1 < g.Ho ? _mm512_maskz_loadu_ps(lm, src + g.Wo) : _mm512_setzero_ps();
        }
        transpose16x16(y0);  // y0[j]: the 16 outputs at pixel x0 + j of row 2ty
        transpose16x16(y1);
        for (int64_t j = 0; j < nt; j++) {
          // A dY over the rows (P[r][col]), then P A^T over the columns: M[r][s]
          const __m512 a = y0[2 * j], b = y0[2 * j + 1], c = y1[2 * j], d = y1[2 * j + 1];
          const __m512 pr[4][2] = {{a, b},
                                   {_mm512_add_ps(a, c), _mm512_add_ps(b, d)},
                                   {_mm512_sub_ps(a, c), _mm512_sub_ps(b, d)},
                                   {_mm512_sub_ps(_mm512_setzero_ps(), c), _mm512_sub_ps(_mm512_setzero_ps(), d)}};
          const int64_t q = ty * p.Tw + x0 / 2 + j, q0 = q / KCW * KCW, kcs = std::min(KCW, p.Q - q0);
          float* dst = pb + q0 * p.opan * w + op * kcs * w + (q - q0) * w + lane0;
          for (int r = 0; r < 4; r++) {
            _mm512_store_ps(dst + (r * 4 + 0) * per_e, pr[r][0]);
            _mm512_store_ps(dst + (r * 4 + 1) * per_e, _mm512_add_ps(pr[r][0], pr[r][1]));
            _mm512_store_ps(dst + (r * 4 + 2) * per_e, _mm512_sub_ps(pr[r][0], pr[r][1]));
            _mm512_store_ps(dst + (r * 4 + 3) * per_e, _mm512_sub_ps(_mm512_setzero_ps(), pr[r][1]));
          }
        }
      }
  }
}
#pragma GCC diagnostic pop
}  // namespace

size_t conv_wgrad_scratch(const ConvGeom& g) {
  const WgPlan p = plan_for(g);
  return (size_t)(p.t_floats + p.group * (p.a_floats + p.b_floats) + 16) * sizeof(float);
}

void conv_wgrad(const ConvGeom& g, const float* x, const float* gy, float* dw, void* scratch, int nthreads) {
  const WgPlan p = plan_for(g);
  const wg_tile_fn tile = wg_tile_for(p.nv);
  const int64_t w = 16 * p.nv;
  float* t = (float*)(((uintptr_t)scratch + 63) & ~(uintptr_t)63);  // dW^T [taps][C][O]
  float* packed = t + p.t_floats;
  const int64_t units = p.opan * p.cpan * p.taps, per_image = p.a_floats + p.b_floats;
  const int nt = (int)std::max<int64_t>(1, std::min<int64_t>(nthreads, units));
  for (int64_t n0 = 0; n0 < g.N; n0 += p.group) {
    const int64_t gn = std::min(p.group, g.N - n0);
#pragma omp parallel num_threads(nt)
    {
#pragma omp for schedule(static)
      for (int64_t m = 0; m < gn; m++) {
        float* pa = packed + m * per_image;
        if (p.wino) {
          pack_input_wino(g, p, x + (n0 + m) * g.C * g.H * g.W, pa);
          pack_grad_wino(g, p, gy + (n0 + m) * g.O * g.P, pa + p.a_floats);
        } else {
          pack_input(g, p, x + (n0 + m) * g.C * g.H * g.W, pa);
          pack_grad(g, p, gy + (n0 + m) * g.O * g.P, pa + p.a_floats);
        }
      }
      const int th = omp_get_thread_num(), T = omp_get_num_threads();
      const int64_t u0 = units * th / T, u1 = units * (th + 1) / T;
      for (int64_t m = 0; m < gn; m++) {
        const float* pa = packed + m * per_image;
        const float* pb = pa + p.a_floats;
        for (int64_t q0 = 0; q0 < p.Q; q0 += KCW) {
          const int64_t kcs = std::min(KCW, p.Q - q0);
          const bool acc = n0 + m > 0 || q0 > 0;
          for (int64_t u = u0; u < u1; u++) {  // u = (output panel, channel panel, tap)
            const int64_t op = u / (p.cpan * p.taps), cp = u / p.taps % p.cpan, tap = u % p.taps;
            const int64_t i = tap / g.kw, j = tap % g.kw;
            // Winograd: tap e reads its own V and M planes; else the input plane of (i, j), s rows on
            const int64_t plane = (i % g.sh) * g.sw + j % g.sw, s = (i / g.sh) * p.Wp + j / g.sw;
            const float* b = pb + (p.wino ? tap * p.opan * w * p.Q : 0);
            __mmask16 mk[4];
            for (int v = 0; v < p.nv; v++) {
              const int64_t left = std::max<int64_t>(0, std::min<int64_t>(16, g.O - op * w - 16 * v));
              mk[v] = (__mmask16)((1u << left) - 1u);
            }
            const float* a = p.wino ? pa + (tap * p.Q + q0) * p.Cp + cp * p.R
                                    : pa + (plane * p.cpan + cp) * p.R * p.Qx + (q0 + s) * p.R;
            tile(kcs, a, p.wino ? p.Cp : p.R, b + q0 * p.opan * w + op * kcs * w,
                 t + (tap * g.C + cp * p.R) * g.O + op * w, g.O, (int)std::min<int64_t>(p.R, g.C - cp * p.R), mk, acc);
          }
        }
      }
    }
  }
  if (p.wino) {  // dg = G^T dU G, G = [1 0 0; 1/2 1/2 1/2; 1/2 -1/2 1/2; 0 0 1]
    const int64_t es = g.C * g.O;
    for (int64_t c = 0; c < g.C; c++)
      for (int64_t o = 0; o < g.O; o++) {
        const float* u = t + c * g.O + o;
        float h[3][4];  // G^T dU
        for (int q = 0; q < 4; q++) {
          const float u0 = u[q * es], u1 = u[(4 + q) * es], u2 = u[(8 + q) * es], u3 = u[(12 + q) * es];
          h[0][q] = u0 + 0.5f * (u1 + u2);
          h[1][q] = 0.5f * (u1 - u2);
          h[2][q] = 0.5f * (u1 + u2) + u3;
        }
        float* d = dw + (o * g.C + c) * 9;
        for (int i = 0; i < 3; i++) {
          d[i * 3 + 0] = h[i][0] + 0.5f * (h[i][1] + h[i][2]);
          d[i * 3 + 1] = 0.5f * (h[i][1] - h[i][2]);
          d[i * 3 + 2] = 0.5f * (h[i][1] + h[i][2]) + h[i][3];
        }
      }
    return;
  }
  const int64_t K = g.C * p.taps;
  for (int64_t o = 0; o < g.O; o++)
    for (int64_t c = 0; c < g.C; c++)
      for (int64_t tap = 0; tap < p.taps; tap++) dw[o * K + c * p.taps + tap] = t[(tap * g.C + c) * g.O + o];
}

}  // namespace nsvq
