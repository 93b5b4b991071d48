// models/discriminator.h — the PatchGAN NLayerDiscriminator of taming-transformers (method.md §5.1)
// under taming's names "loss.discriminator.main.<N>.*", N the index in its nn.Sequential:
//
//   main.0  conv4x4 s2 p1 (in -> ndf, bias)          main.1  LeakyReLU(0.2)
//   for n = 1 .. n_layers-1 (nf = ndf * min(2^n, 8)):
//   main.k  conv4x4 s2 p1 (no bias)  main.k+1 BatchNorm2d  main.k+2 LeakyReLU(0.2)   (k = 3n - 1)
//   then nf = ndf * min(2^n_layers, 8): conv4x4 s1 p1 (no bias), BatchNorm2d, LeakyReLU(0.2)
//   main.3*n_layers+2  conv4x4 s1 p1 (nf -> 1, bias)  -> patch logits [B, 1, h', w']
//
// Init (taming weights_init): conv weights N(0, 0.02), conv biases PyTorch's default
// U(+-1/sqrt(fan_in)), BatchNorm weight N(1, 0.02), bias 0. BatchNorm buffers: running_mean 0,
// running_var 1 (f32 [C]) and num_batches_tracked (i32 scalar; PyTorch int64), all TF_PERSIST.
// Parameters are in group GROUP_DISCRIMINATOR.
//
// Sizes: 32x32 with n_layers 2 -> 6x6 logits; 128x128 with n_layers 3 -> 14x14.
#pragma once
#include <string>
#include <vector>
#include "models/module.h"

namespace nsvq {

struct DiscriminatorConfig {
  int in_channels = 3;
  int ndf = 64;
  int n_layers = 3;
  float bn_momentum = 0.1f, bn_eps = 1e-5f;  // PyTorch BatchNorm2d defaults
  float leaky_slope = 0.2f;
};

// The discriminator of a preset ("fmnist": 1 channel, n_layers 2, ndf 32; "cifar10": 3 channels,
// n_layers 2, ndf 32; "imagenet128": 3 channels, n_layers 3, ndf 64).
DiscriminatorConfig discriminator_preset(const std::string& name);

struct BatchNorm2d {
  Tensor* w = nullptr;
  Tensor* b = nullptr;
  Tensor* running_mean = nullptr;
  Tensor* running_var = nullptr;
  Tensor* num_batches_tracked = nullptr;
};

class NLayerDiscriminator {
 public:
  // Registers under "loss.discriminator.main.*" in group GROUP_DISCRIMINATOR.
  NLayerDiscriminator(Store& st, const DiscriminatorConfig& cfg, uint64_t seed,
                      const std::string& prefix = "loss.discriminator");
  // x [B, in, H, W] -> logits [B, 1, h', w']. training: BatchNorm uses batch statistics and updates
  // the running statistics in place (a side-effect node each compute()); otherwise the running ones.
  Tensor* forward(Graph& g, Tensor* x, bool training) const;
  // num_batches_tracked += 1 for every BatchNorm, on the host (PyTorch's counter; nsvq's BatchNorm
  // uses a fixed momentum, so the counter is only kept for checkpoint compatibility).
  void count_batch(Store& st) const;
  // Data-parallel training (several ranks of dist()): synchronised BatchNorm — each BatchNorm runs
  // on the whole global batch's activations (all-gathered in rank order), so the statistics, the
  // running statistics and the gradients are exactly those of one process with the global batch.
  bool sync_bn = false;
  const DiscriminatorConfig& config() const { return cfg_; }
  static int64_t output_size(int64_t input, int n_layers);  // patch logits per side

 private:
  DiscriminatorConfig cfg_;
  std::vector<Conv2d> convs_;     // n_layers + 2
  std::vector<BatchNorm2d> bns_;  // n_layers (after convs_[1 .. n_layers])
};

}  // namespace nsvq
