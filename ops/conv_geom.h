// ops/conv_geom.h — conv2d geometry shared by the CPU and CUDA kernels (one chunk rule, so both
// backends sum in the same order): sizes from the node's tensors, K = C*kh*kw, P = Ho*Wo, the
// 1x1 stride-1 unpadded "direct" case, the output-pixel chunk of the CPU's bounded im2col buffer,
// and the CUDA kernels' pass plan (ops/cuda/conv.cu: whole images in groups, or pixel chunks of one
// image, sized by a column budget so the patch matrix never covers the whole batch of a big model).
#pragma once
#include <algorithm>
#include "engine/tensor.h"

namespace nsvq {

struct ConvGeom {
  int64_t N, C, H, W, O, kh, kw, Ho, Wo, K, P;  // P = Ho*Wo
  int64_t sh, sw, pt, pl;
  int64_t chunk;  // output pixels per im2col chunk (about 4 MiB of col at most)
  bool direct;    // 1x1, stride 1, no padding: col == x
  // x, w, y: the input, weight and output shapes (whichever node carries them)
  ConvGeom(const Tensor* node, const Shape& x, const Shape& w, const Shape& y) {
    N = x[0]; C = x[1]; H = x[2]; W = x[3];
    O = w[0]; kh = w[2]; kw = w[3];
    Ho = y[2]; Wo = y[3];
    K = C * kh * kw;
    P = Ho * Wo;
    sh = node->ip[0]; sw = node->ip[1]; pt = node->ip[2]; pl = node->ip[4];
    direct = kh == 1 && kw == 1 && sh == 1 && sw == 1 && pt == 0 && pl == 0 && node->ip[3] == 0 && node->ip[5] == 0;
    int64_t c = (1 << 20) / std::max<int64_t>(K, 1);
    chunk = std::max<int64_t>(64, std::min<int64_t>(P, c / 16 * 16));
  }
};

// conv2d: y = conv(x, w); conv2d_bwd_data: dx (srcs gy, w); conv2d_bwd_weight: dw (srcs x, gy)
inline ConvGeom conv_geom_fwd(const Tensor* y) { return ConvGeom(y, y->src[0]->shape(), y->src[1]->shape(), y->shape()); }
inline ConvGeom conv_geom_bwd_data(const Tensor* dx) {
  return ConvGeom(dx, dx->shape(), dx->src[1]->shape(), dx->src[0]->shape());
}
inline ConvGeom conv_geom_bwd_weight(const Tensor* dw) {
  return ConvGeom(dw, dw->src[0]->shape(), dw->shape(), dw->src[1]->shape());
}

// The input gradient of a stride-1 conv is a forward conv: dX = conv(dY, W') with W' [C, O, kh, kw]
// = W transposed and flipped (W'[c][o][i][j] = W[o][c][kh-1-i][kw-1-j]) and padding kh-1-pt, kw-1-pl.
// Fills t with that forward problem's geometry; false when it does not apply (a stride, the 1x1
// direct case, or a padding of kh or more on some side).
inline bool conv_bwd_data_as_fwd(const ConvGeom& g, ConvGeom* t) {
  const int64_t pb = g.Ho - g.H - g.pt + g.kh - 1, pr = g.Wo - g.W - g.pl + g.kw - 1;
  if (g.sh != 1 || g.sw != 1 || g.direct || g.pt > g.kh - 1 || g.pl > g.kw - 1 || pb < 0 || pb > g.kh - 1 || pr < 0 ||
      pr > g.kw - 1)
    return false;
  *t = g;
  t->C = g.O;
  t->H = g.Ho;
  t->W = g.Wo;
  t->O = g.C;
  t->Ho = g.H;
  t->Wo = g.W;
  t->K = t->C * g.kh * g.kw;
  t->P = t->Ho * t->Wo;
  t->pt = g.kh - 1 - g.pt;
  t->pl = g.kw - 1 - g.pl;
  int64_t c = (1 << 20) / std::max<int64_t>(t->K, 1);
  t->chunk = std::max<int64_t>(64, std::min<int64_t>(t->P, c / 16 * 16));
  return true;
}

// The input gradient of a stride-2 conv (kernel 3x3 or more) as one stride-1 forward conv over dY: in the
// padded frame input row Y = y + pt = 2u + a receives taps i = a + 2m from dY row u - m (likewise columns,
// X = x + pl = 2v + b, j = b + 2n), so the four phases (a, b) of dX are stride-1 convs of dY with
// Mh x Mw = ceil(kh/2) x ceil(kw/2) kernels. Stacked as 4C output channels (channel (a*2 + b)*C + c; the
// missing taps of a phase with fewer are zero weights) they are one forward problem on dY with padding
// Mh - 1, Mw - 1 and Hq x Wq = ceil((pt + H)/2) x ceil((pl + W)/2) outputs per phase, whose rows and
// columns are then interleaved into dX. Fills t for one image; false when it does not apply (also for
// C < 8, where the CPU kernel's register tiles of 8 phase outputs would be mostly empty).
inline bool conv_bwd_data_s2_as_fwd(const ConvGeom& g, ConvGeom* t) {
  if (g.sh != 2 || g.sw != 2 || g.kh < 3 || g.kw < 3 || g.C < 8) return false;
  const int64_t Mh = (g.kh + 1) / 2, Mw = (g.kw + 1) / 2, Hq = (g.pt + g.H + 1) / 2, Wq = (g.pl + g.W + 1) / 2;
  if (Hq < g.Ho || Hq - g.Ho > Mh - 1 || Wq < g.Wo || Wq - g.Wo > Mw - 1) return false;  // implied bottom / right pad
  *t = g;
  t->N = 1;
  t->C = g.O;
  t->H = g.Ho;
  t->W = g.Wo;
  t->O = 4 * g.C;
  t->kh = Mh;
  t->kw = Mw;
  t->Ho = Hq;
  t->Wo = Wq;
  t->K = t->C * Mh * Mw;
  t->P = Hq * Wq;
  t->sh = t->sw = 1;
  t->pt = Mh - 1;
  t->pl = Mw - 1;
  t->direct = false;
  return true;
}

// CUDA: floats of the col [K, cols] + GEMM-side [O, cols] buffers one im2col + GEMM pass may use
// (default 16 Mi floats = 64 MiB; tests lower it to reach every path on small shapes).
inline int64_t& conv_cuda_budget() {
  static int64_t floats = (int64_t)16 << 20;
  return floats;
}
// A pass covers `cols` consecutive columns of the batch's N*P output pixels: `nb` whole images
// (groups) when one image fits the budget, else a pixel chunk of one image (nb = 1, cols < P).
struct ConvCudaPlan {
  bool groups;
  int64_t nb, cols, col_floats;  // col_floats: K*cols rounded up to 64 floats (256-byte aligned)
  size_t scratch_bytes() const { return (size_t)col_floats * sizeof(float); }
};
inline ConvCudaPlan conv_cuda_plan(const ConvGeom& g) {
  ConvCudaPlan p;
  int64_t per_col = std::max<int64_t>(g.K + g.O, 1), budget = std::max<int64_t>(conv_cuda_budget(), 64 * per_col);
  p.groups = g.P * per_col <= budget;
  p.nb = p.groups ? std::max<int64_t>(1, std::min<int64_t>(g.N, budget / (g.P * per_col))) : 1;
  p.cols = p.groups ? p.nb * g.P : std::min<int64_t>(g.P, std::max<int64_t>(64, budget / per_col / 16 * 16));
  int64_t kc = (g.K * p.cols + 63) / 64 * 64;
  p.col_floats = kc + g.O * p.cols;
  return p;
}

}  // namespace nsvq
