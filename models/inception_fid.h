// models/inception_fid.h — InceptionV3 exactly as pytorch-fid runs it for FID (method.md §7.3): the
// torchvision network with pytorch-fid's FIDInceptionA / C / E_1 / E_2 blocks (average pools that do
// not count the padding; max pooling in the last block), input [B, 3, H, W] in [0, 1] resized to
// 299x299 bilinearly (align_corners = False) and mapped to [-1, 1], output the 2,048-d pool3
// features. Weights: pytorch-fid's pt_inception-2015-12-05 converted by tools/convert-weights.py
// inception (torchvision names, without fc.*); each BasicConv2d's BatchNorm (eval, eps 1e-3) is
// folded into its convolution at load time, so the graph is conv + bias + ReLU throughout.
#pragma once
#include <map>
#include <string>
#include <vector>
#include "engine/graph.h"
#include "models/pretrained.h"

namespace nsvq {

class InceptionFid {
 public:
  static constexpr int64_t FEATURES = 2048;
  static constexpr int64_t INPUT = 299;
  static const char* format() { return "nsvq-inception-fid"; }
  // The tensors of a converted file (upstream names and shapes), in network order.
  static std::vector<WeightSpec> spec();
  // Registers the folded weights in `st` ("inception.<module>.weight" / ".bias").
  InceptionFid(Store& st, const RawWeights& w);
  // x [B, 3, H, W] in [0, 1] -> pool3 features [B, 2048]
  Tensor* features(Graph& g, Tensor* x) const;

 private:
  struct Conv {
    Tensor* w = nullptr;
    Tensor* b = nullptr;
    int stride = 1, ph = 0, pw = 0;
  };
  Tensor* conv(Graph& g, const std::string& name, Tensor* x) const;  // conv + bias + ReLU
  Tensor* block_a(Graph& g, const std::string& n, Tensor* x) const;
  Tensor* block_b(Graph& g, const std::string& n, Tensor* x) const;
  Tensor* block_c(Graph& g, const std::string& n, Tensor* x) const;
  Tensor* block_d(Graph& g, const std::string& n, Tensor* x) const;
  Tensor* block_e(Graph& g, const std::string& n, Tensor* x, bool max_pool) const;
  std::map<std::string, Conv> convs_;
};

}  // namespace nsvq
