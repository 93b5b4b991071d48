// models/lpips.h — LPIPS v0.1 with VGG16 (method.md §7.5), as the lpips package computes it: inputs in
// [-1, 1] scaled by (x - shift) / scale, VGG16 `features` through relu5_3 (taps relu1_2, relu2_2,
// relu3_3, relu4_3, relu5_3), each tap unit-normalised over channels at every position, squared
// difference, a non-negative 1x1 linear head per tap (no bias), spatial mean, summed over taps.
// Differentiable in both images (the perceptual loss of training); the weights stay fixed.
// Weights: torchvision's vgg16 and the lpips package's vgg.pth converted by tools/convert-weights.py
// lpips ("features.N.weight/bias" for the 13 convs, "lin0.weight" .. "lin4.weight" [1, C, 1, 1]).
#pragma once
#include <string>
#include <vector>
#include "engine/graph.h"
#include "models/pretrained.h"

namespace nsvq {

class LpipsVgg {
 public:
  static const char* format() { return "nsvq-lpips-vgg"; }
  static std::vector<WeightSpec> spec();  // the tensors of a converted file
  // Registers the weights in `st` ("lpips.features.N.weight", ..., "lpips.lin0.weight", ...).
  LpipsVgg(Store& st, const RawWeights& w);
  // a, b [B, C, H, W] in [-1, 1], C = 3 (or 1: the gray channel is repeated) -> distances [B]
  Tensor* distance(Graph& g, Tensor* a, Tensor* b) const;

 private:
  std::vector<Tensor*> taps(Graph& g, Tensor* x) const;  // relu1_2 .. relu5_3
  std::vector<Tensor*> cw_, cb_;  // the 13 convs
  std::vector<Tensor*> lin_;      // the 5 heads
  Tensor *shift_ = nullptr, *scale_ = nullptr;  // [1, 3, 1, 1]
};

}  // namespace nsvq
