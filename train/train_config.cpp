// train/train_config.cpp — presets, the knob table, resolution of automatic values, validation and
// the JSON form of TrainConfig (train/train_config.h).
#include "train/train_config.h"
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include "engine/tensor.h"
#include "models/json.h"

namespace nsvq {

TrainConfig train_preset(const std::string& name) {
  TrainConfig c;
  c.preset = name;
  if (name == "quickstart") {
    // Fashion-MNIST, a short NSVQ run for a first look (README's first command): under 5 minutes on 2 cores.
    c.model = "fmnist";
    c.data = "fmnist";
    c.codes = 512;
    c.steps = 500;
    c.batch = 32;
    c.replace_window = 100;
    c.drift_every = 50;
    c.log_every = 25;
    c.eval_n = 1000;
    c.ckpt_every = 250;
  } else if (name == "fmnist" || name == "cifar10") {
    // Tier 1 (method.md §5.4): S_total 6000, S1 3000, W 300, window 500, tau period 300, disc start 1800.
    c.model = name;
    c.data = name == "fmnist" ? "fmnist" : "";  // cifar10 needs --data cifar10:DIR
    c.steps = 6000;
    c.replace_window = 500;
    c.tau_period = 300;
  } else if (name == "imagenet128") {
    // Paper-scale architecture for GPU users (method.md §5.3 column 2); needs --data folder:DIR.
    c.model = "imagenet128";
    c.data = "";
    c.codes = 16384;
    c.steps = 8000;
    c.batch = 64;
    c.lr = 1e-4;
    c.gan_loss = "ns";
    c.disc_start = 0;
    c.replace_window = 1000;
    c.probe = 128;
    c.eval_n = 10000;
    c.eval_batch = 50;
  } else {
    fail("unknown preset '%s' (expected quickstart, fmnist, cifar10 or imagenet128)", name.c_str());
  }
  return c;
}

QuantizerConfig TrainConfig::quantizer_config(int64_t dim) const {
  QuantizerConfig q;
  q.kind = kind();
  q.codes = codes;
  q.dim = dim;
  q.beta = (float)beta;
  q.seed = (uint64_t)seed * 0x9E3779B97F4A7C15ull + 17;
  q.dense_loss = dense_loss;
  q.modified_ste = modified_ste;
  q.replace = replace;
  q.vq_new = vq_new;
  q.alpha = (float)alpha;
  q.lambda = (float)lambda;
  q.tau.relative = tau_mode == "relative";
  q.tau.tau_peak = (float)tau_peak;
  q.tau.rho = (float)tau_rho;
  q.tau.warmup = tau_warmup;
  q.tau.decay = (float)tau_decay;
  q.tau.period = tau_period;
  q.replace_window = replace_window;
  q.replace_threshold = (int)replace_threshold;
  q.reservoir = reservoir;
  q.ema_decay = (float)ema_decay;
  q.ema_dead = (float)ema_dead;
  return q;
}

// ------------------------------------------------------------------------------- the knob table

const std::vector<TrainField>& train_fields() {
  static const std::vector<TrainField> f = [] {
    ConfigFieldList<TrainConfig> L;
    L.s("preset", &TrainConfig::preset, "quickstart | fmnist | cifar10 | imagenet128 (sets the defaults below)");
    L.s("model", &TrainConfig::model, "autoencoder preset: fmnist | cifar10 | imagenet128");
    L.s("data", &TrainConfig::data, "fmnist | cifar10:DIR | folder:DIR");
    L.s("quantizer", &TrainConfig::quantizer, "nsvq | vq | vq-l2 | ema | simvq");
    L.i("codes", &TrainConfig::codes, "codebook size K");
    L.i("steps", &TrainConfig::steps, "training steps in total (with --resume: continue up to this many)");
    L.i("batch", &TrainConfig::batch, "images per step");
    L.f("lr", &TrainConfig::lr, "Adam learning rate (betas 0.5, 0.9; both optimizers)");
    L.f("encoder-lr-mult", &TrainConfig::encoder_lr_mult, "encoder + quant_conv learning-rate multiplier (drift stress test)");
    L.f("grad-clip", &TrainConfig::grad_clip, "clip each optimizer's global gradient norm to this (0: off)");
    L.i("seed", &TrainConfig::seed, "seed of initialisation, data order, augmentation and quantizer randomness");
    L.f("beta", &TrainConfig::beta, "commitment weight");
    L.f("alpha", &TrainConfig::alpha, "nsvq: dense-loss weight");
    L.f("lambda", &TrainConfig::lambda, "nsvq: non-winner kernel scale (weights min(1, lambda K s))");
    L.b("dense-loss", &TrainConfig::dense_loss, "nsvq: dense kernel embedding loss (off: vanilla codebook loss)");
    L.b("modified-ste", &TrainConfig::modified_ste, "nsvq: modified straight-through estimator");
    L.b("replace", &TrainConfig::replace, "nsvq: dead-code replacement from the reservoir");
    L.b("vq-new", &TrainConfig::vq_new, "nsvq: the VQ_new ablation (drift through the decoder gradient)");
    L.s("tau-mode", &TrainConfig::tau_mode, "nsvq: relative (tau_peak = rho * median nearest distance) | absolute");
    L.f("tau-peak", &TrainConfig::tau_peak, "nsvq: tau_peak when --tau-mode absolute");
    L.f("tau-rho", &TrainConfig::tau_rho, "nsvq: rho when --tau-mode relative");
    L.f("tau-decay", &TrainConfig::tau_decay, "nsvq: tau multiplier per period");
    L.i("tau-warmup", &TrainConfig::tau_warmup, "nsvq: steps at tau_peak before the decay starts");
    L.i("tau-period", &TrainConfig::tau_period, "nsvq: steps per tau decay (-1: stage1 / 10)");
    L.i("replace-window", &TrainConfig::replace_window, "nsvq: replacement window in steps (-1: min(1 epoch, 1000))");
    L.i("replace-threshold", &TrainConfig::replace_threshold, "nsvq: a code is dead with fewer assignments than this per window");
    L.i("reservoir", &TrainConfig::reservoir, "nsvq: reservoir of recent latents");
    L.f("ema-decay", &TrainConfig::ema_decay, "ema: codebook EMA decay");
    L.f("ema-dead", &TrainConfig::ema_dead, "ema: restart codes whose EMA count falls below this");
    L.i("stage1", &TrainConfig::stage1, "steps before the encoder freezes (-1: nsvq 50% of --steps, baselines never)");
    L.i("warmup", &TrainConfig::warmup, "frozen-encoder warm-up steps without adversarial loss (-1: nsvq 5%, baselines 0)");
    L.s("adv", &TrainConfig::adv, "adversarial weight: fixed (--lambda-adv) | adaptive (taming, x --disc-weight)");
    L.s("gan-loss", &TrainConfig::gan_loss, "generator adversarial loss: hinge | ns (non-saturating, SimVQ)");
    L.f("lambda-adv", &TrainConfig::lambda_adv, "fixed adversarial weight");
    L.f("disc-weight", &TrainConfig::disc_weight, "adaptive adversarial weight multiplier");
    L.i("disc-start", &TrainConfig::disc_start, "first step with the adversarial loss (-1: 30% of --steps)");
    L.f("weight-ema", &TrainConfig::weight_ema, "decay of an EMA of the generator weights used for evaluation (0: off)");
    L.s("lpips-weights", &TrainConfig::lpips_weights,
        "LPIPS-VGG16 weights (tools/convert-weights.py lpips): adds the perceptual loss; docs/metrics.md")
        .added_later();
    L.f("perceptual-weight", &TrainConfig::perceptual_weight,
        "weight of the LPIPS perceptual loss (-1: 1.0 with --lpips-weights, as taming; else 0)")
        .added_later();
    L.i("log-every", &TrainConfig::log_every, "steps between metrics.jsonl lines");
    L.i("drift-every", &TrainConfig::drift_every, "steps between encoder-drift probes (0: no probe)");
    L.i("probe", &TrainConfig::probe, "fixed test images of the drift probe");
    L.i("eval-n", &TrainConfig::eval_n, "test images of the final evaluation (0: skip)");
    L.i("eval-batch", &TrainConfig::eval_batch, "images per evaluation batch");
    L.i("ckpt-every", &TrainConfig::ckpt_every, "steps between checkpoints");
    L.b("zstd", &TrainConfig::zstd, "write checkpoint.safetensors.zst (zstd) instead of .safetensors");
    return L.v;
  }();
  return f;
}

// ------------------------------------------------------------------------------- resolution

void train_config_resolve(TrainConfig& c, int64_t bpe) {
  auto need = [](bool ok, const char* what) {
    if (!ok) fail("%s", what);
  };
  vqgan_preset(c.model);  // validates the name
  quant_kind_from_name(c.quantizer);
  need(!c.data.empty(), "this preset needs --data (cifar10:DIR or folder:DIR)");
  need(c.steps >= 1, "--steps must be >= 1");
  need(c.batch >= 1, "--batch must be >= 1");
  need(c.codes >= 2, "--codes must be >= 2");
  need(c.lr > 0 && c.encoder_lr_mult >= 0 && c.grad_clip >= 0, "--lr must be > 0, --encoder-lr-mult and --grad-clip >= 0");
  need(c.seed >= 0, "--seed must be >= 0");
  need(c.tau_mode == "relative" || c.tau_mode == "absolute", "--tau-mode must be relative or absolute");
  need(c.adv == "fixed" || c.adv == "adaptive", "--adv must be fixed or adaptive");
  need(c.gan_loss == "hinge" || c.gan_loss == "ns", "--gan-loss must be hinge or ns");
  need(c.weight_ema >= 0 && c.weight_ema < 1, "--weight-ema must be in [0, 1)");
  need(c.lambda_adv >= 0 && c.disc_weight >= 0, "--lambda-adv and --disc-weight must be >= 0");
  need(c.log_every >= 1 && c.ckpt_every >= 1 && c.eval_batch >= 1,
       "--log-every, --ckpt-every and --eval-batch must be >= 1");
  need(c.drift_every >= 0, "--drift-every must be >= 0 (0: no drift probe)");
  need(c.probe >= 1 && c.eval_n >= 0, "--probe must be >= 1 and --eval-n >= 0");
  if (c.perceptual_weight < 0) c.perceptual_weight = c.lpips_weights.empty() ? 0.0 : 1.0;
  need(c.perceptual_weight == 0 || !c.lpips_weights.empty(), "--perceptual-weight needs --lpips-weights FILE");
  if (c.stage1 < 0) c.stage1 = c.is_nsvq() ? c.steps / 2 : c.steps;
  if (c.warmup < 0) c.warmup = c.is_nsvq() ? c.steps / 20 : 0;
  if (c.disc_start < 0) c.disc_start = (c.steps * 3) / 10;
  if (c.tau_period < 0) c.tau_period = std::max<int64_t>(1, c.stage1 / 10);
  if (c.replace_window < 0) c.replace_window = std::max<int64_t>(1, std::min<int64_t>(bpe, 1000));
  need(c.stage1 >= 0 && c.warmup >= 0 && c.disc_start >= 0, "--stage1, --warmup and --disc-start must be >= 0");
  need(c.tau_period >= 1 && c.replace_window >= 1, "--tau-period and --replace-window must be >= 1");
}

// ------------------------------------------------------------------------------- JSON

std::string train_config_json(const TrainConfig& c) { return config_json(train_fields(), c); }

TrainConfig train_config_from_json(const std::string& text, const std::string& what) {
  return config_from_json(train_fields(), text, what);
}

}  // namespace nsvq
