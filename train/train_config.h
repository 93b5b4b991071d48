// train/train_config.h — every knob of `nsvq train` in one struct, the presets that set their
// defaults (quickstart, fmnist, cifar10, imagenet128), and the table that maps each knob to its
// command-line option and to its key in the config JSON stored in checkpoints: one name everywhere.
#pragma once
#include <cstdint>
#include <map>
#include <string>
#include <vector>
#include "models/quantizer.h"
#include "models/vqgan.h"
#include "train/config_fields.h"

namespace nsvq {

struct TrainConfig {
  // run
  std::string preset = "quickstart";
  std::string model = "fmnist";  // the VQGAN / discriminator preset (models/vqgan.h)
  std::string data = "fmnist";
  std::string quantizer = "nsvq";
  int64_t codes = 1024, steps = 6000, batch = 32, seed = 0;
  double lr = 2e-4, encoder_lr_mult = 1.0, grad_clip = 0.0;
  // quantizer (method.md §3, §4)
  double beta = 0.25, alpha = 1.0, lambda = 0.01;
  bool dense_loss = true, modified_ste = true, replace = true, vq_new = false;
  std::string tau_mode = "relative";  // relative: tau_peak = rho * median d at the start; absolute: tau_peak
  double tau_peak = 1.0, tau_rho = 10.0, tau_decay = 0.5;
  int64_t tau_warmup = 0, tau_period = -1;  // -1: stage1 / 10
  int64_t replace_window = -1;              // -1: min(1 epoch, 1000 steps)
  int64_t replace_threshold = 1, reservoir = 16384;
  double ema_decay = 0.99, ema_dead = 1.0;
  // NSVQ stages (method.md §3.4); -1: the default fraction of --steps
  int64_t stage1 = -1, warmup = -1;
  // losses
  std::string adv = "fixed";       // fixed lambda_adv, or taming's adaptive weight
  std::string gan_loss = "hinge";  // generator loss: hinge (taming) | ns (SimVQ non-saturating)
  double lambda_adv = 0.1, disc_weight = 0.8;
  int64_t disc_start = -1;  // -1: 0.3 * steps
  double weight_ema = 0.0;  // > 0: keep an EMA of the generator weights, used for evaluation
  // perceptual loss (method.md §5.2): LPIPS-VGG16 weights (tools/convert-weights.py lpips) and its
  // weight w_p; -1: 1.0 (taming) when a file is given, else 0
  std::string lpips_weights;
  double perceptual_weight = -1;
  // logging, evaluation, checkpoints
  int64_t log_every = 50, drift_every = 250, probe = 256, eval_n = 10000, eval_batch = 100, ckpt_every = 1000;
  bool zstd = false;

  // derived
  QuantKind kind() const { return quant_kind_from_name(quantizer); }
  bool is_nsvq() const { return kind() == QuantKind::nsvq; }
  QuantizerConfig quantizer_config(int64_t dim) const;
  VqganConfig vqgan_config() const { return vqgan_preset(model); }
};

// Presets: "quickstart" | "fmnist" | "cifar10" | "imagenet128"; fails listing the valid names.
TrainConfig train_preset(const std::string& name);

// One knob: its option / JSON name, help text and type (train/config_fields.h).
using TrainField = ConfigField<TrainConfig>;
const std::vector<TrainField>& train_fields();

// Resolves the -1 ("auto") values against steps and the dataset size (batches per epoch) and
// validates everything; fails with one line naming the bad option.
void train_config_resolve(TrainConfig& c, int64_t batches_per_epoch);

// The config as one JSON object {"name": value, ...} (numbers as numbers, on/off as booleans), and
// back: every field must be present with the right type.
std::string train_config_json(const TrainConfig& c);
TrainConfig train_config_from_json(const std::string& json, const std::string& what);

}  // namespace nsvq
