// models/discriminator.cpp — the PatchGAN NLayerDiscriminator (taming names, BatchNorm, LeakyReLU 0.2).
#include "models/discriminator.h"
#include "engine/dist.h"
#include <algorithm>

namespace nsvq {

DiscriminatorConfig discriminator_preset(const std::string& name) {
  DiscriminatorConfig c;
  if (name == "fmnist" || name == "cifar10") {
    c.in_channels = name == "fmnist" ? 1 : 3;
    c.n_layers = 2;
    c.ndf = 32;
  } else if (name == "imagenet128") {
    c.in_channels = 3;
    c.n_layers = 3;
    c.ndf = 64;
  } else {
    fail("discriminator: unknown preset '%s' (valid: fmnist, cifar10, imagenet128)", name.c_str());
  }
  return c;
}

int64_t NLayerDiscriminator::output_size(int64_t input, int n_layers) {
  int64_t s = input;
  for (int i = 0; i < n_layers; i++) s = (s + 2 - 4) / 2 + 1;  // conv4x4 s2 p1
  return s - 2;                                                 // two conv4x4 s1 p1
}

NLayerDiscriminator::NLayerDiscriminator(Store& st, const DiscriminatorConfig& cfg, uint64_t seed,
                                         const std::string& prefix)
    : cfg_(cfg) {
  if (cfg.in_channels < 1 || cfg.ndf < 1 || cfg.n_layers < 1)
    fail("discriminator: bad config (in_channels %d, ndf %d, n_layers %d)", cfg.in_channels, cfg.ndf, cfg.n_layers);
  ParamSet main = ParamSet(st, seed, GROUP_DISCRIMINATOR, prefix).scope("main");
  const Init w_init = Init::normal(0.0f, 0.02f);
  auto bn = [&](int idx, int64_t c) {
    ParamSet p = main.scope(std::to_string(idx));
    BatchNorm2d b;
    b.w = p.param("weight", {c}, Init::normal(1.0f, 0.02f));
    b.b = p.param("bias", {c}, Init::zeros());
    b.running_mean = p.buffer("running_mean", {c}, Init::zeros());
    b.running_var = p.buffer("running_var", {c}, Init::ones());
    b.num_batches_tracked = p.buffer_i32("num_batches_tracked", Shape{});
    return b;
  };
  convs_.emplace_back(main, "0", cfg.in_channels, cfg.ndf, 4, 2, 1, true, w_init);
  int64_t nf_prev = cfg.ndf, nf = cfg.ndf;
  for (int n = 1; n <= cfg.n_layers; n++) {
    nf = (int64_t)cfg.ndf * std::min(1 << std::min(n, 3), 8);
    int stride = n < cfg.n_layers ? 2 : 1;
    convs_.emplace_back(main, std::to_string(3 * n - 1), nf_prev, nf, 4, stride, 1, false, w_init);
    bns_.push_back(bn(3 * n, nf));
    nf_prev = nf;
  }
  convs_.emplace_back(main, std::to_string(3 * cfg.n_layers + 2), nf, 1, 4, 1, 1, true, w_init);
}

Tensor* NLayerDiscriminator::forward(Graph& g, Tensor* x, bool training) const {
  if (x->ndim != 4 || x->ne[1] != cfg_.in_channels || output_size(std::min(x->ne[2], x->ne[3]), cfg_.n_layers) < 1)
    fail("discriminator: input %s must be [B, %d, H, W] with H, W >= %d", x->shape().str().c_str(), cfg_.in_channels,
         (3 << cfg_.n_layers));
  Tensor* h = leaky_relu(g, convs_[0].forward(g, x), cfg_.leaky_slope);
  for (size_t i = 0; i < bns_.size(); i++) {
    const BatchNorm2d& b = bns_[i];
    h = convs_[i + 1].forward(g, h);
    if (sync_bn && training && dist().size() > 1) {  // the global batch's statistics; this rank's rows back
      const int64_t n = h->ne[0];
      h = batch_norm(g, allgather(g, h), b.w, b.b, b.running_mean, b.running_var, true, cfg_.bn_momentum, cfg_.bn_eps);
      h = slice(g, h, 0, dist().rank() * n, (dist().rank() + 1) * n);
    } else {
      h = batch_norm(g, h, b.w, b.b, b.running_mean, b.running_var, training, cfg_.bn_momentum, cfg_.bn_eps);
    }
    h = leaky_relu(g, h, cfg_.leaky_slope);
  }
  return convs_.back().forward(g, h);
}

void NLayerDiscriminator::count_batch(Store& st) const {
  for (const BatchNorm2d& b : bns_) {
    int32_t v = 0;
    st.download(b.num_batches_tracked, &v, sizeof v);
    v++;
    st.upload(b.num_batches_tracked, &v, sizeof v);
  }
}

}  // namespace nsvq
