// ops/cpu/conv_wgrad.cpp — the weight gradient of a stride-1 or stride-2 conv2d on AVX-512 CPUs without
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
  int nv, R;                   // register tile: R channels x 16*nv outputs
  int64_t Wp, Hp, Q, Qx;       // frame width and height, output frame pixels, packed input rows per plane
  int64_t planes;              // sh * sw phase planes
  int64_t cpan, opan, taps;    // channel panels (R), output panels (16*nv), kh*kw
  int64_t a_floats, b_floats;  // packed floats per image (multiples of 16: 64-byte aligned)
  int64_t group, t_floats;     // images packed at once; dW^T floats
};

WgPlan make_wgplan(const ConvGeom& g) {
  WgPlan p;
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

// c [rows x 16*NV] (row stride ldc, lane masks m) = sum over kc pixels of a[k, :R] (x) b[k, :16*NV]
// (+ c when accumulate); a rows are R floats apart, b rows 16*NV
template <int R, int NV>
NSVQ_AVX512 void wg_tile(int64_t kc, const float* __restrict a, const float* __restrict b, float* c, int64_t ldc,
                         int rows, const __mmask16* m, bool accumulate) {
  __m512 acc[R][NV];
  fma_tile<R, NV>(acc, kc, a, R, b, 16 * NV);
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

using wg_tile_fn = void (*)(int64_t, const float*, const float*, float*, int64_t, int, const __mmask16*, bool);
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

// lanes j of a 16-pixel run starting at frame column x0 whose source column x0 + j - lead is in [0, n)
inline __mmask16 run_mask(int64_t x0, int64_t npix, int64_t lead, int64_t n) {
  const int64_t lo = std::max<int64_t>(0, lead - x0), hi = std::min<int64_t>(npix, n + lead - x0);
  return hi > lo ? (__mmask16)(((1u << hi) - 1u) & ~((1u << lo) - 1u)) : (__mmask16)0;
}

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
              const __mmask16 lm = row_in ? run_mask(sx, npix, 0, g.W) : (__mmask16)0;
              for (int64_t i = 0; i < 16; i++)
                r[i] = i < nc && lm ? _mm512_maskz_loadu_ps(lm, x + ((c0 + i) * g.H + iy) * g.W + sx) : _mm512_setzero_ps();
            } else {  // source columns sx + 2j: lanes of [sx, sx + 32) in [0, W) and below sx + 2 npix
              const __mmask16 ml = row_in ? run_mask(sx, std::min<int64_t>(16, 2 * npix), 0, g.W) : (__mmask16)0;
              const __mmask16 mh = row_in ? run_mask(sx + 16, std::max<int64_t>(0, 2 * npix - 16), 0, g.W) : (__mmask16)0;
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
        const __mmask16 lm = run_mask(x0, npix, 0, g.Wo);
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
#pragma GCC diagnostic pop
}  // namespace

int64_t& conv_wgrad_budget() {
  static int64_t floats = (int64_t)2 << 20;  // 8 MiB of packed images
  return floats;
}

bool conv_wgrad_eligible(const ConvGeom& g) {
  return conv_direct_available() && (g.sh == 1 || g.sh == 2) && (g.sw == 1 || g.sw == 2) && !g.direct && g.C >= 8;
}

size_t conv_wgrad_scratch(const ConvGeom& g) {
  const WgPlan p = make_wgplan(g);
  return (size_t)(p.t_floats + p.group * (p.a_floats + p.b_floats) + 16) * sizeof(float);
}

void conv_wgrad(const ConvGeom& g, const float* x, const float* gy, float* dw, void* scratch, int nthreads) {
  const WgPlan p = make_wgplan(g);
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
        pack_input(g, p, x + (n0 + m) * g.C * g.H * g.W, pa);
        pack_grad(g, p, gy + (n0 + m) * g.O * g.P, pa + p.a_floats);
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
            const int64_t i = tap / g.kw, j = tap % g.kw, plane = (i % g.sh) * g.sw + j % g.sw;
            const int64_t s = (i / g.sh) * p.Wp + j / g.sw;
            __mmask16 mk[4];
            for (int v = 0; v < p.nv; v++) {
              const int64_t left = std::max<int64_t>(0, std::min<int64_t>(16, g.O - op * w - 16 * v));
              mk[v] = (__mmask16)((1u << left) - 1u);
            }
            tile(kcs, pa + (plane * p.cpan + cp) * p.R * p.Qx + (q0 + s) * p.R, pb + q0 * p.opan * w + op * kcs * w,
                 t + (tap * g.C + cp * p.R) * g.O + op * w, g.O, (int)std::min<int64_t>(p.R, g.C - cp * p.R), mk, acc);
          }
        }
      }
    }
  }
  const int64_t K = g.C * p.taps;
  for (int64_t o = 0; o < g.O; o++)
    for (int64_t c = 0; c < g.C; c++)
      for (int64_t tap = 0; tap < p.taps; tap++) dw[o * K + c * p.taps + tap] = t[(tap * g.C + c) * g.O + o];
}

}  // namespace nsvq
