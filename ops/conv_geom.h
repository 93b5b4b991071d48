// ops/conv_geom.h — conv2d geometry shared by the CPU and CUDA kernels (one chunk rule, so both
// backends sum in the same order): sizes from the node's tensors, K = C*kh*kw, P = Ho*Wo, the
// 1x1 stride-1 unpadded "direct" case, and the output-pixel chunk of the bounded im2col buffer.
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

}  // namespace nsvq
