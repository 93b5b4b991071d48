// train/fdnet.h — the Fréchet-distance proxy network ("fd-net", method.md §5.5): a small CNN
// classifier trained in-project on a labelled dataset; its penultimate layer (global-average-pooled
// features) replaces Inception-v3 pool3 when computing a Fréchet distance between real images and
// their reconstructions.
//
// fd_proxy is a PROXY: it is only comparable between runs that use the same fd-net file, and never
// comparable to published rFID numbers (which use the pytorch-fid Inception-v3 weights, §7.3).
//
// Shapes: images [B, C, S, S] in [-1, 1] (S: the size the net was trained at, divisible by 8),
// features [B, feature_dim], logits [B, num_classes].
// Network (convs 1-3 without bias): conv3x3 s1 C->w, GN+SiLU, conv3x3 s2 w->2w, GN+SiLU, conv3x3 s2 2w->4w, GN+SiLU,
// conv3x3 s2 4w->F, ReLU, mean over H, W -> features [B, F]; linear F -> num_classes.
// File: safetensors with string metadata format=nsvq-fdnet, version, in_channels, num_classes,
// feature_dim, width, groups, image_size, dataset, test_accuracy.
#pragma once
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>
#include "models/module.h"
#include "train/data.h"
#include "train/metrics.h"

namespace nsvq {

struct FdNetConfig {
  int in_channels = 1;
  int num_classes = 10;
  int feature_dim = 128;  // F: width of the last conv = the FD feature dimension
  int width = 32;         // w: channels of the first conv (then 2w, 4w)
  int groups = 8;         // GroupNorm groups (must divide w)
  int image_size = 32;    // S the net is trained and evaluated at
};

// Throws Error when a field is out of range.
void fdnet_config_check(const FdNetConfig& c);

class FdNet {
 public:
  // Registers the parameters in `st` ("conv1.weight", "norm1.weight", "norm1.bias", ..., "conv4.bias",
  // "fc.weight", "fc.bias"), initialised from `seed`.
  FdNet(Store& st, const FdNetConfig& cfg, uint64_t seed);
  // x [B, C, S, S] -> features [B, feature_dim]; fails (one line) when C != in_channels.
  Tensor* features(Graph& g, Tensor* x) const;
  // feats [B, feature_dim] -> logits [B, num_classes]
  Tensor* logits(Graph& g, Tensor* feats) const;
  const FdNetConfig& config() const { return cfg_; }
  std::vector<Tensor*> tensors() const;  // every parameter, in registration order

 private:
  FdNetConfig cfg_;
  Conv2d c1_, c2_, c3_, c4_;
  NormAffine n1_, n2_, n3_;
  Linear fc_;
};

// What a saved file says besides its weights.
struct FdNetInfo {
  FdNetConfig cfg;
  std::string dataset;         // "fmnist", "cifar10", "folder"
  double test_accuracy = -1;   // -1: not measured
};

// Writes the net's tensors and `info` as safetensors metadata, atomically.
void fdnet_save(const std::string& path, const Store& st, const FdNet& net, const FdNetInfo& info);
// Reads only the metadata of a saved fd-net and validates it; fails with one line naming the file.
FdNetInfo fdnet_read_info(const std::string& path);

// A loaded net with its own Store.
struct FdNetModel {
  FdNetInfo info;
  std::unique_ptr<Store> store;
  std::unique_ptr<FdNet> net;
};
// Loads a saved fd-net onto `be` (strict: every tensor must be present with the right shape).
FdNetModel fdnet_load(const std::string& path, Backend* be);

// Feature extractor for evaluation: host images in, host features out. Keeps one no-grad eval
// graph per batch size it has seen (at most max_batch per graph), so repeated calls reuse them.
class FdFeatures {
 public:
  FdFeatures(const std::string& path, Backend* be, int64_t max_batch = 256);
  ~FdFeatures();
  // x: host [n, C, S, S] in [-1, 1] -> host [n, feature_dim]. Any n >= 0; C and S must match the net.
  // classes (optional): the net's predicted class of each image (argmax of its logits, lowest on ties).
  std::vector<float> extract(const float* x, int64_t n, int64_t C, int64_t S, std::vector<int32_t>* classes = nullptr);
  // Adds the features of n images to `stats` (dimension feature_dim).
  void accumulate(FeatureStats& stats, const float* x, int64_t n, int64_t C, int64_t S);
  const FdNetInfo& info() const { return model_.info; }
  int64_t feature_dim() const { return model_.info.cfg.feature_dim; }
  const std::string& path() const { return path_; }

 private:
  struct EvalGraph;
  std::string path_;
  Backend* be_;
  int64_t max_batch_;
  FdNetModel model_;
  std::map<int64_t, std::unique_ptr<EvalGraph>> graphs_;
};

// ---- training (used by `nsvq fd-net train`)
struct FdTrainConfig {
  int64_t epochs = 2, batch = 64;
  double lr = 2e-3, weight_decay = 1e-4;  // AdamW; cosine decay to 0 over all steps
  uint64_t seed = 0;
  bool augment = false;  // random flips (and crops for folder data)
  int width = 32, feature_dim = 128;
  int64_t max_steps = 0;  // > 0: stop after this many steps (tests)
  bool quiet = false;     // no progress lines
};
// Trains on `train`, measures accuracy on `test` after each epoch (one line per epoch on stdout),
// and returns the net (in its own Store) with its info. Fails when the data has no labels.
FdNetModel fdnet_train(const FdTrainConfig& tc, const Dataset& train, const Dataset& test, Backend* be);
// Top-1 accuracy of the net on a labelled dataset (centre crops, batches of up to 500).
double fdnet_accuracy(const FdNet& net, const Dataset& d, Backend* be);

// Fréchet distance between the fd-net features of two image sets (each host [n, C, S, S] in
// [-1, 1]; n >= 2). A proxy for rFID: not comparable to published numbers.
double fd_proxy(FdFeatures& fx, const float* real, const float* fake, int64_t n, int64_t C, int64_t S);
// The same from accumulated statistics (e.g. over a whole validation set, batch by batch).
double fd_proxy(const FeatureStats& real, const FeatureStats& fake);

}  // namespace nsvq
