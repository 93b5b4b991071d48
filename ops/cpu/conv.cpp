// ops/cpu/conv.cpp — CPU kernels of conv2d: im2col in bounded pixel chunks (never a patch matrix for
// the whole batch) feeding our SGEMM; 1x1 stride-1 convolutions use the input directly.
//   forward:      Y_n[:, chunk]  = W [O, K] * col [K, chunk]            (+ bias)
//   input grad:   dcol [K, chunk] = W^T * dY_n[:, chunk], scattered back (col2im)
//   weight grad:  dW = sum_n dY_n * col_n^T, over a fixed number of partial sums
// K = C*kh*kw, rows of col ordered (c, i, j) like the weight's O x C x kh x kw layout.
// Images are spread over threads (each runs a single-threaded SGEMM) when there are enough of them,
// else each SGEMM uses every thread. Every sum runs in an order fixed by the shapes alone.
// On AVX-512 CPUs the forward runs the direct / Winograd kernels of ops/cpu/conv_direct_avx512.cpp instead,
// the input gradient of a stride-1 conv runs them too (flipped weights), that of a stride-2 conv runs the
// direct kernel on its phase-stacked form (conv_bwd_data_s2_as_fwd, then an interleave), and the weight
// gradient of a stride-1 or 2 conv runs ops/cpu/conv_wgrad_avx512.cpp (fewer than 8 input channels:
// im2col + SGEMM throughout). Elsewhere (AVX2, NEON, portable) im2col + the SGEMM of that level.
#include <omp.h>
#include <cstring>
#include "engine/cpu/gemm.h"
#include "ops/cpu/cpu_kernels.h"
#include "ops/conv_geom.h"
#include "ops/cpu/conv_direct.h"
#include "ops/ops_internal.h"

namespace nsvq {

bool conv_direct_available() { return cpu_has_avx512(); }

bool conv_wgrad_eligible(const ConvGeom& g) {
  return conv_direct_available() && (g.sh == 1 || g.sh == 2) && (g.sw == 1 || g.sw == 2) && !g.direct && g.C >= 8;
}

int64_t& conv_wgrad_budget() {
  static int64_t floats = (int64_t)2 << 20;  // 8 MiB of packed images
  return floats;
}

namespace {

// col[k, pp] for output pixels [p0, p0 + np) of one image x [C, H, W]; rows ld apart (0: np)
void im2col(const ConvGeom& g, const float* x, int64_t p0, int64_t np, float* col, int64_t ld = 0) {
  if (ld == 0) ld = np;
  for (int64_t c = 0; c < g.C; c++)
    for (int64_t i = 0; i < g.kh; i++)
      for (int64_t j = 0; j < g.kw; j++) {
        float* row = col + ((c * g.kh + i) * g.kw + j) * ld;
        const float* xc = x + c * g.H * g.W;
        int64_t p = p0, pp = 0;
        while (pp < np) {
          int64_t oy = p / g.Wo, ox = p % g.Wo;
          int64_t run = std::min(g.Wo - ox, np - pp);  // pixels left on this output row
          int64_t iy = oy * g.sh - g.pt + i;
          float* dst = row + pp;
          if (iy < 0 || iy >= g.H) {
            std::memset(dst, 0, run * sizeof(float));
          } else {
            const float* src = xc + iy * g.W;
            int64_t ix0 = ox * g.sw - g.pl + j;
            if (g.sw == 1) {
              int64_t a = std::max<int64_t>(0, -ix0), b = std::min<int64_t>(run, g.W - ix0);  // valid [a, b)
              if (b < a) b = a;
              for (int64_t t = 0; t < a && t < run; t++) dst[t] = 0.0f;
              if (b > a) std::memcpy(dst + a, src + ix0 + a, (b - a) * sizeof(float));
              for (int64_t t = std::max(a, b); t < run; t++) dst[t] = 0.0f;
            } else {
              for (int64_t t = 0; t < run; t++) {
                int64_t ix = ix0 + t * g.sw;
                dst[t] = (ix >= 0 && ix < g.W) ? src[ix] : 0.0f;
              }
            }
          }
          pp += run;
          p += run;
        }
      }
}

NSVQ_CLONES void add_run(float* __restrict d, const float* __restrict s, int64_t n) {
  for (int64_t i = 0; i < n; i++) d[i] += s[i];
}

// x [C, H, W] += col2im(col) for output pixels [p0, p0 + np); rows of col ld apart (0: np)
void col2im_add(const ConvGeom& g, const float* col, int64_t p0, int64_t np, float* x, int64_t ld = 0) {
  if (ld == 0) ld = np;
  for (int64_t c = 0; c < g.C; c++)
    for (int64_t i = 0; i < g.kh; i++)
      for (int64_t j = 0; j < g.kw; j++) {
        const float* row = col + ((c * g.kh + i) * g.kw + j) * ld;
        float* xc = x + c * g.H * g.W;
        int64_t p = p0, pp = 0;
        while (pp < np) {
          int64_t oy = p / g.Wo, ox = p % g.Wo;
          int64_t run = std::min(g.Wo - ox, np - pp);
          int64_t iy = oy * g.sh - g.pt + i;
          if (iy >= 0 && iy < g.H) {
            float* dst = xc + iy * g.W;
            int64_t ix0 = ox * g.sw - g.pl + j;
            if (g.sw == 1) {  // valid t in [a, b): a contiguous, vectorisable add
              int64_t a = std::max<int64_t>(0, -ix0), b = std::min<int64_t>(run, g.W - ix0);
              add_run(dst + ix0 + a, row + pp + a, b - a);
            } else {
              for (int64_t t = 0; t < run; t++) {
                int64_t ix = ix0 + t * g.sw;
                if (ix >= 0 && ix < g.W) dst[ix] += row[pp + t];
              }
            }
          }
          pp += run;
          p += run;
        }
      }
}

// Images whose output has few pixels (VGG16's deep layers at 32 px: 2x2 to 8x8) go G at a time through
// one matrix product of G*P columns (im2col / col2im per image, rows G*P apart), with every thread on it:
// a product per image of a few columns would repack (and, past 1 MiB, stream from memory) the O x K
// weights each time. Only for fewer than 32 pixels, or fewer than 256 with weights over 1 MiB: below that
// the per-image products spread over threads are as fast (measured on the fmnist train step). G is fixed
// by the shapes (col + output buffers of at most 4 MiB); each output element sums the same products in
// the same order as a per-image product (the SGEMM's order depends on K only): results are unchanged.
int64_t conv_group(const ConvGeom& g) {
  if (g.N < 2 || g.P >= 256 || (g.P >= 32 && g.O * g.K <= (1 << 18))) return 1;
  return std::max<int64_t>(1, std::min<int64_t>(g.N, ((int64_t)1 << 20) / (g.P * (g.K + g.O))));
}
size_t conv_group_bytes(const ConvGeom& g) {
  const int64_t G = conv_group(g);
  return G > 1 ? (size_t)(G * g.P * (g.K + g.O)) * sizeof(float) : 0;
}

// one col buffer per CPU thread
size_t conv_thread_cols(const ConvGeom& g) { return g.direct ? 0 : (size_t)cpu_threads() * g.K * g.chunk * sizeof(float); }
// forward and input gradient: the per-thread cols or the grouped buffers; CUDA (ops/cuda/conv.cu) one
// col + GEMM-side buffer of its plan
size_t conv_col_scratch(const ConvGeom& g, BackendKind b) {
  if (b != BK_CPU) return g.direct ? 0 : conv_cuda_plan(g).scratch_bytes();
  return std::max(conv_thread_cols(g), conv_group_bytes(g));
}
size_t conv_fwd_scratch(const Tensor* y, BackendKind b) {
  ConvGeom g = conv_geom_fwd(y);
  if (b == BK_CPU && conv_direct_available()) return conv_direct_scratch(g, cpu_threads());
  return conv_col_scratch(g, b);
}
// floats of the flipped weights ahead of the direct kernel's scratch (64-byte aligned)
size_t flipped_floats(const ConvGeom& g) { return (size_t)(g.O * g.K + 15) / 16 * 16; }
// stride 2 (conv_bwd_data_s2_as_fwd): the phase weights and their tap mask, the direct kernel's scratch and
// the 4C x Hq x Wq phase outputs of a group of images (conv_wgrad_budget() floats, at least one image)
int64_t s2_group(const ConvGeom& g, const ConvGeom& tg) {
  return std::max<int64_t>(1, std::min<int64_t>(g.N, conv_wgrad_budget() / (tg.O * tg.P)));
}
size_t s2_used_floats(const ConvGeom& tg) { return (size_t)(tg.O * tg.K + 63) / 64 * 16; }
size_t s2_direct_floats(const ConvGeom& tg) { return (conv_direct_scratch(tg, cpu_threads(), true) + 63) / 64 * 16; }
size_t s2_scratch_floats(const ConvGeom& g, ConvGeom tg) {
  tg.N = s2_group(g, tg);
  return flipped_floats(tg) + s2_used_floats(tg) + s2_direct_floats(tg) + (size_t)(tg.N * tg.O * tg.P);
}
size_t conv_bwd_data_scratch(const Tensor* t, BackendKind b) {
  ConvGeom g = conv_geom_bwd_data(t), tg = g;
  if (b == BK_CPU && conv_direct_available() && conv_bwd_data_as_fwd(g, &tg))
    return flipped_floats(g) * sizeof(float) + conv_direct_scratch(tg, cpu_threads());
  if (b == BK_CPU && conv_direct_available() && conv_bwd_data_s2_as_fwd(g, &tg))
    return s2_scratch_floats(g, tg) * sizeof(float);
  return conv_col_scratch(g, b);
}

// stride 2 on AVX-512: the phase weights wq [4C][O][Mh][Mw] (zero for taps a phase lacks, which the
// kernel skips), then per group of images one forward conv of dY and the interleave
void conv2d_bwd_data_s2(const ConvGeom& g, ConvGeom tg, const float* gy, const float* w, float* out, const ExecCtx& c) {
  tg.N = s2_group(g, tg);
  float* wq = (float*)c.scratch;
  uint8_t* used = (uint8_t*)(wq + flipped_floats(tg));
  float* direct = wq + flipped_floats(tg) + s2_used_floats(tg);
  float* q = direct + s2_direct_floats(tg);
  for (int64_t ph = 0; ph < 4; ph++)
    for (int64_t ci = 0; ci < g.C; ci++)
      for (int64_t o = 0; o < g.O; o++)
        for (int64_t m = 0; m < tg.kh; m++)
          for (int64_t n = 0; n < tg.kw; n++) {
            const int64_t i = ph / 2 + 2 * (tg.kh - 1 - m), j = ph % 2 + 2 * (tg.kw - 1 - n);
            const int64_t e = (((ph * g.C + ci) * g.O + o) * tg.kh + m) * tg.kw + n;
            used[e] = i < g.kh && j < g.kw;
            wq[e] = used[e] ? w[((o * g.C + ci) * g.kh + i) * g.kw + j] : 0.0f;
          }
  const int64_t img_in = g.O * g.P, img_out = g.C * g.H * g.W, G = tg.N;
  for (int64_t n0 = 0; n0 < g.N; n0 += G) {
    tg.N = std::min(G, g.N - n0);
    conv_direct_forward(tg, gy + n0 * img_in, wq, nullptr, q, direct, c.nthreads, used);
#pragma omp parallel for num_threads(tg.N >= c.nthreads ? c.nthreads : 1) schedule(static)
    for (int64_t n = 0; n < tg.N; n++) conv_s2_interleave(g, tg, q + n * tg.O * tg.P, out + (n0 + n) * img_out);
  }
}

// runs body(n, sgemm_threads, col_buffer) for every image, spreading images over threads when there are enough
template <class F>
void for_images(const ConvGeom& g, const ExecCtx& c, F body) {
  float* scratch = (float*)c.scratch;
  if (g.N >= c.nthreads) {
#pragma omp parallel for num_threads(c.nthreads) schedule(static)
    for (int64_t n = 0; n < g.N; n++) body(n, 1, scratch ? scratch + omp_get_thread_num() * g.K * g.chunk : nullptr);
  } else {
    for (int64_t n = 0; n < g.N; n++) body(n, c.nthreads, scratch);
  }
}

void conv2d_cpu(Tensor* y, const ExecCtx& c) {
  ConvGeom g = conv_geom_fwd(y);
  const float* x = tdata<float>(y->src[0]);
  const float* w = tdata<float>(y->src[1]);
  const float* bias = y->n_src > 2 ? tdata<float>(y->src[2]) : nullptr;
  float* out = tdata<float>(y);
  if (conv_direct_available()) {  // AVX-512: implicit GEMM straight from the (padded) input
    conv_direct_forward(g, x, w, bias, out, c.scratch, c.nthreads);
    return;
  }
  if (const int64_t G = conv_group(g); G > 1) {  // small outputs: G images per product
    float* col = (float*)c.scratch;
    float* prod = col + G * g.P * g.K;
    for (int64_t n0 = 0; n0 < g.N; n0 += G) {
      const int64_t nb = std::min(G, g.N - n0), ld = nb * g.P;
#pragma omp parallel for num_threads(c.nthreads) schedule(static)
      for (int64_t b = 0; b < nb; b++) im2col(g, x + (n0 + b) * g.C * g.H * g.W, 0, g.P, col + b * g.P, ld);
      sgemm(false, false, g.O, ld, g.K, 1.0f, w, g.K, col, ld, 0.0f, prod, ld, c.nthreads);
#pragma omp parallel for num_threads(c.nthreads) schedule(static)
      for (int64_t b = 0; b < nb; b++)
        for (int64_t o = 0; o < g.O; o++) {
          const float* src = prod + o * ld + b * g.P;
          float* row = out + ((n0 + b) * g.O + o) * g.P;
          if (bias)
            for (int64_t p = 0; p < g.P; p++) row[p] = src[p] + bias[o];
          else
            std::memcpy(row, src, g.P * sizeof(float));
        }
    }
    return;
  }
  for_images(g, c, [&](int64_t n, int nt, float* col) {
    const float* xn = x + n * g.C * g.H * g.W;
    float* yn = out + n * g.O * g.P;
    if (g.direct) {
      sgemm(false, false, g.O, g.P, g.K, 1.0f, w, g.K, xn, g.P, 0.0f, yn, g.P, nt);
    } else {
      for (int64_t p0 = 0; p0 < g.P; p0 += g.chunk) {
        int64_t np = std::min(g.chunk, g.P - p0);
        im2col(g, xn, p0, np, col);
        sgemm(false, false, g.O, np, g.K, 1.0f, w, g.K, col, np, 0.0f, yn + p0, g.P, nt);
      }
    }
    if (bias)
      for (int64_t o = 0; o < g.O; o++) {
        float b = bias[o];
        float* row = yn + o * g.P;
        for (int64_t p = 0; p < g.P; p++) row[p] += b;
      }
  });
}

void conv2d_bwd_data_cpu(Tensor* dx, const ExecCtx& c) {
  ConvGeom g = conv_geom_bwd_data(dx);
  const float* gy = tdata<float>(dx->src[0]);
  const float* w = tdata<float>(dx->src[1]);
  float* out = tdata<float>(dx);
  ConvGeom tg = g;
  if (conv_direct_available() && conv_bwd_data_as_fwd(g, &tg)) {  // AVX-512: the forward kernel on dY
    float* wf = (float*)c.scratch;
    for (int64_t o = 0; o < g.O; o++)
      for (int64_t ci = 0; ci < g.C; ci++)
        for (int64_t i = 0; i < g.kh; i++)
          for (int64_t j = 0; j < g.kw; j++)
            wf[((ci * g.O + o) * g.kh + (g.kh - 1 - i)) * g.kw + (g.kw - 1 - j)] = w[((o * g.C + ci) * g.kh + i) * g.kw + j];
    conv_direct_forward(tg, gy, wf, nullptr, out, wf + flipped_floats(g), c.nthreads);
    return;
  }
  if (conv_direct_available() && conv_bwd_data_s2_as_fwd(g, &tg)) {
    conv2d_bwd_data_s2(g, tg, gy, w, out, c);
    return;
  }
  if (const int64_t G = conv_group(g); G > 1) {  // small outputs: G images per product (see conv_group)
    float* dcol = (float*)c.scratch;
    float* gyg = dcol + G * g.P * g.K;
    for (int64_t n0 = 0; n0 < g.N; n0 += G) {
      const int64_t nb = std::min(G, g.N - n0), ld = nb * g.P;
#pragma omp parallel for num_threads(c.nthreads) schedule(static)
      for (int64_t b = 0; b < nb; b++)
        for (int64_t o = 0; o < g.O; o++)
          std::memcpy(gyg + o * ld + b * g.P, gy + ((n0 + b) * g.O + o) * g.P, g.P * sizeof(float));
      sgemm(true, false, g.K, ld, g.O, 1.0f, w, g.K, gyg, ld, 0.0f, dcol, ld, c.nthreads);
#pragma omp parallel for num_threads(c.nthreads) schedule(static)
      for (int64_t b = 0; b < nb; b++) {
        float* dxn = out + (n0 + b) * g.C * g.H * g.W;
        if (g.direct) {
          for (int64_t k = 0; k < g.K; k++) std::memcpy(dxn + k * g.P, dcol + k * ld + b * g.P, g.P * sizeof(float));
        } else {
          std::memset(dxn, 0, g.C * g.H * g.W * sizeof(float));
          col2im_add(g, dcol + b * g.P, 0, g.P, dxn, ld);
        }
      }
    }
    return;
  }
  for_images(g, c, [&](int64_t n, int nt, float* col) {
    const float* gyn = gy + n * g.O * g.P;
    float* dxn = out + n * g.C * g.H * g.W;
    if (g.direct) {
      sgemm(true, false, g.K, g.P, g.O, 1.0f, w, g.K, gyn, g.P, 0.0f, dxn, g.P, nt);
      return;
    }
    std::memset(dxn, 0, g.C * g.H * g.W * sizeof(float));
    for (int64_t p0 = 0; p0 < g.P; p0 += g.chunk) {
      int64_t np = std::min(g.chunk, g.P - p0);
      sgemm(true, false, g.K, np, g.O, 1.0f, w, g.K, gyn + p0, g.P, 0.0f, col, np, nt);
      col2im_add(g, col, p0, np, dxn);
    }
  });
}

// dW is accumulated in PARTS partial sums: image n goes to part n % PARTS, parts are summed in order.
const int64_t PARTS = 8;

size_t conv_bwd_weight_scratch(const Tensor* dw, BackendKind b) {
  ConvGeom g = conv_geom_bwd_weight(dw);
  if (b == BK_CPU && conv_wgrad_eligible(g)) return conv_wgrad_scratch(g);
  int64_t parts = std::min(PARTS, g.N);
  return (b == BK_CPU ? conv_thread_cols(g) : conv_col_scratch(g, b)) + (size_t)parts * g.O * g.K * sizeof(float);
}

void conv2d_bwd_weight_cpu(Tensor* dw, const ExecCtx& c) {
  ConvGeom g = conv_geom_bwd_weight(dw);
  const float* x = tdata<float>(dw->src[0]);
  const float* gy = tdata<float>(dw->src[1]);
  float* out = tdata<float>(dw);
  if (conv_wgrad_eligible(g)) {  // AVX-512, stride 1 or 2: packed shifted frames, no im2col
    conv_wgrad(g, x, gy, out, c.scratch, c.nthreads);
    return;
  }
  int64_t parts = std::min(PARTS, g.N);
  float* cols = (float*)c.scratch;
  float* part = cols + (g.direct ? 0 : c.nthreads * g.K * g.chunk);  // as conv_bwd_weight_scratch sized it
  int nt_outer = parts >= c.nthreads ? c.nthreads : 1;
  int nt_gemm = nt_outer == 1 ? c.nthreads : 1;
#pragma omp parallel for num_threads(nt_outer) schedule(static)
  for (int64_t t = 0; t < parts; t++) {
    float* acc = part + t * g.O * g.K;
    float* col = g.direct ? nullptr : cols + omp_get_thread_num() * g.K * g.chunk;
    bool first = true;
    for (int64_t n = t; n < g.N; n += parts) {
      const float* xn = x + n * g.C * g.H * g.W;
      const float* gyn = gy + n * g.O * g.P;
      if (g.direct) {
        sgemm(false, true, g.O, g.K, g.P, 1.0f, gyn, g.P, xn, g.P, first ? 0.0f : 1.0f, acc, g.K, nt_gemm);
        first = false;
        continue;
      }
      for (int64_t p0 = 0; p0 < g.P; p0 += g.chunk) {
        int64_t np = std::min(g.chunk, g.P - p0);
        im2col(g, xn, p0, np, col);
        sgemm(false, true, g.O, g.K, np, 1.0f, gyn + p0, g.P, col, np, first ? 0.0f : 1.0f, acc, g.K, nt_gemm);
        first = false;
      }
    }
  }
  int64_t n = g.O * g.K;
  int nt = n < 32768 ? 1 : c.nthreads;
#pragma omp parallel for num_threads(nt) schedule(static)
  for (int64_t i = 0; i < n; i++) {
    float s = part[i];
    for (int64_t t = 1; t < parts; t++) s += part[t * n + i];
    out[i] = s;
  }
}
}  // namespace

void register_conv_cpu() {
  OpDef f;
  f.kernel[BK_CPU] = conv2d_cpu;
  f.scratch = conv_fwd_scratch;
  op_register(OP_CONV2D, f);
  OpDef d;
  d.kernel[BK_CPU] = conv2d_bwd_data_cpu;
  d.scratch = conv_bwd_data_scratch;
  op_register(OP_CONV2D_BWD_DATA, d);
  OpDef w;
  w.kernel[BK_CPU] = conv2d_bwd_weight_cpu;
  w.scratch = conv_bwd_weight_scratch;
  op_register(OP_CONV2D_BWD_WEIGHT, w);
}

}  // namespace nsvq
