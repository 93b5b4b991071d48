// train/fid_lpips.h — the field's standard metrics on host images, with user-supplied weights:
// rFID / FID (pytorch-fid's InceptionV3 pool3 features and the Fréchet distance, method.md §7.3) and
// LPIPS-VGG16 (method.md §7.5). Images given as floats in [-1, 1] are first rounded to uint8 (as
// PSNR and SSIM are, and as a PNG would store them), then mapped as the upstream code maps a
// decoded image: u8 / 255 for Inception, u8 / 127.5 - 1 for LPIPS. Gray images are repeated to RGB
// (PIL's convert('RGB')). One eval graph per batch shape is kept and reused.
#pragma once
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <tuple>
#include <vector>
#include "engine/graph.h"
#include "models/pretrained.h"
#include "train/metrics.h"

namespace nsvq {

class InceptionFid;
class LpipsVgg;

class FidFeatures {
 public:
  // weights: a file of tools/convert-weights.py inception (errors name the --fid-weights option)
  FidFeatures(const std::string& weights, Backend* be, int64_t batch = 50);
  FidFeatures(const RawWeights& w, Backend* be, int64_t batch = 50);
  ~FidFeatures();
  // n uint8 images [n, C, H, W], C = 1 or 3 -> pool3 features [n, 2048]
  std::vector<float> extract_u8(const uint8_t* x, int64_t n, int64_t C, int64_t H, int64_t W);
  // n images [n, C, S, S] in [-1, 1] (clamped, rounded to uint8) -> their features added to stats
  void accumulate(FeatureStats& stats, const float* x, int64_t n, int64_t C, int64_t S);
  static int64_t dim();  // 2048

 private:
  struct Net;
  std::unique_ptr<Net> net_;
};

class LpipsMetric {
 public:
  // weights: a file of tools/convert-weights.py lpips (errors name the --lpips-weights option)
  LpipsMetric(const std::string& weights, Backend* be, int64_t batch = 32);
  LpipsMetric(const RawWeights& w, Backend* be, int64_t batch = 32);
  ~LpipsMetric();
  // n image pairs [n, C, H, W] (uint8, C = 1 or 3) -> n distances
  std::vector<double> distances_u8(const uint8_t* a, const uint8_t* b, int64_t n, int64_t C, int64_t H, int64_t W);
  // the same for images in [-1, 1] (clamped, rounded to uint8 first)
  std::vector<double> distances(const float* a, const float* b, int64_t n, int64_t C, int64_t H, int64_t W);

 private:
  struct Net;
  std::unique_ptr<Net> net_;
};

// Weights of the LPIPS network on the training backend, for the perceptual loss (nsvq train
// --lpips-weights): the caller records lpips().distance(g, a, b) into its own step graph.
struct LpipsLoss {
  std::unique_ptr<Store> store;
  std::unique_ptr<LpipsVgg> net;
  LpipsLoss(const std::string& weights, Backend* be);
  ~LpipsLoss();
};

}  // namespace nsvq
