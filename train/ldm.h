// train/ldm.h — latent diffusion on a frozen tokenizer's quantised latents (method.md §6): the DDPM
// noise schedule and the DDIM (eta = 0) update, the latent cache (the training set encoded once,
// stored as code indices + the effective codebook, zstd-compressed, keyed by the tokenizer file's
// hash), the class-conditional DiT trainer (epsilon prediction, AdamW, weight EMA, label dropout
// for classifier-free guidance; checkpoints, resume, metrics and Ctrl-C as the tokenizer trainer),
// and sampling: DDIM with guidance, nearest-code snapping, decoding through the tokenizer.
//
// A latent-diffusion checkpoint is self-contained: the DiT (weights, Adam moments, EMA copy under
// "ema.") and the tokenizer's inference weights under "first_stage_model." with its config in the
// metadata, so `nsvq sample` needs nothing else.
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>
#include "models/dit.h"
#include "ops/optim.h"
#include "train/config_fields.h"
#include "train/tokenizer.h"

namespace nsvq {

// ---- the noise process
struct DdpmSchedule {
  int64_t T = 0;
  std::vector<double> beta, alpha_bar;  // alpha_bar[t] = prod_{s <= t} (1 - beta[s])
};
// LDM's "linear" schedule: beta_t = (linspace(sqrt(b0), sqrt(b1), T))^2.
DdpmSchedule ddpm_linear(int64_t T, double b0 = 0.0015, double b1 = 0.0195);
// The S sampling timesteps, ascending: floor(i T / S), i = 0..S-1 (DDIM's uniform spacing).
std::vector<int64_t> ddim_timesteps(int64_t T, int64_t S);
// One DDIM step (eta = 0) from x_t with predicted noise eps: x0 = (x - sqrt(1-ab) eps) / sqrt(ab),
// returns sqrt(ab_prev) x0 + sqrt(1-ab_prev) eps (ab_prev = 1 at the last step). In place on x.
void ddim_step(float* x, const float* eps, int64_t n, double ab, double ab_prev);

// ---- the training step graph: x_t, t, y, eps in; MSE(DiT(x_t, t, y), eps), backward, AdamW update
// (the pre-clipping gradient norm an output); planned. Used by ldm-train and `nsvq bench dit-step`.
struct DitStep {
  Tensor *xt = nullptr, *t = nullptr, *y = nullptr, *eps = nullptr, *loss = nullptr, *gnorm = nullptr;
};
DitStep dit_train_step(Graph& g, const Dit& dit, AdamW& adam, int64_t batch);

// ---- configuration
struct LdmConfig {
  std::string data = "fmnist";  // training images (fmnist | cifar10:DIR | folder:DIR)
  int64_t n_train = 0;          // use the first n training images (0: all)
  std::string dit = "tier1";
  int64_t steps = 10000, batch = 64;
  double lr = 1e-3, weight_decay = 0.0, ema = 0.999, class_dropout = 0.1;  // lr: see docs/ldm.md
  int64_t T = 1000;
  double beta_start = 0.0015, beta_end = 0.0195;
  int64_t seed = 0, log_every = 50, ckpt_every = 2500, scale_n = 10000;
};
// Every knob with its option name, help and JSON key (train/config_fields.h): ldm-train's options and
// defaults, and the config stored in checkpoints, come from this one table.
using LdmField = ConfigField<LdmConfig>;
const std::vector<LdmField>& ldm_fields();
std::string ldm_config_json(const LdmConfig& c);
LdmConfig ldm_config_from_json(const std::string& text, const std::string& what);

// The DiT's optimizer: AdamW with the config's lr and weight decay, betas (0.9, 0.999).
AdamConfig ldm_adam_config(const LdmConfig& c);

// The host side of one training batch, reused from step to step.
struct LdmBatch {
  std::vector<float> xt, eps, y0;
  std::vector<int32_t> t, y;
};
// Fills batch `step` and sets it as the inputs of the step graph s: for each of its B items, next(y0)
// writes the clean latent y0 [D, S, S] (zq / scale) and returns its class; the timestep t ~ U{0..T-1},
// the null class (num_classes) with probability class_dropout and the noise eps come from (seed, step);
// x_t = sqrt(ab_t) y0 + sqrt(1 - ab_t) eps.
void ldm_fill_batch(Graph& g, const DitStep& s, const LdmConfig& cfg, const DdpmSchedule& sch, int num_classes,
                    int64_t step, const std::function<int32_t(float* y0)>& next, LdmBatch& buf);

// DDIM (eta = 0) with classifier-free guidance on a DiT's latents: eps = eps_u + w (eps_c - eps_u), the
// conditional and null-class halves in one batch (w = 1: conditional only), up to 128 samples per
// forward. All starting noise is drawn first from the seed, so a sample does not depend on the batch
// it is computed in. Keeps the forward graph of the last batch size.
class DitSampler {
 public:
  DitSampler(const Dit& dit, Backend* be, const DdpmSchedule& sch);
  ~DitSampler();
  // Latents y [n, D, S, S] (the DiT's units, zq / scale) of the given classes, DDIM with `steps` steps.
  std::vector<float> sample(const std::vector<int32_t>& labels, int64_t steps, double cfg, uint64_t seed);

 private:
  const Dit& dit_;
  Backend* be_;
  DdpmSchedule sch_;
  int64_t B_ = 0;
  std::unique_ptr<Graph> g_;
  Tensor *x_ = nullptr, *t_ = nullptr, *y_ = nullptr, *eps_ = nullptr;
};

struct LdmTrainOptions {
  std::string out;            // run folder
  std::string tokenizer;      // tokenizer checkpoint (new runs; a resumed run uses its own copy)
  bool resume = false;
  bool quiet = false;
  int64_t stop_after = -1;    // stop (with a checkpoint) after this many steps of this invocation
  int64_t preview = 8;        // samples per class in samples.png at the end (0: none)
};
// Trains (or resumes) a latent-diffusion run; returns the exit status (130 when interrupted).
int ldm_train(LdmConfig cfg, const LdmTrainOptions& opt, bool steps_given, Backend* be);

// ---- a trained model for sampling
class LdmModel {
 public:
  // Loads a latent-diffusion checkpoint (the EMA weights unless raw); fails with one line naming it.
  LdmModel(const std::string& path, Backend* be, bool raw_weights = false);
  ~LdmModel();
  const LdmConfig& config() const { return cfg_; }
  const DitConfig& dit_config() const { return dc_; }
  TokenizerModel& tokenizer() { return *tok_.model; }
  double scale() const { return scale_; }
  int64_t step() const { return step_; }
  // n samples of the given classes (labels[i] in [0, num_classes)), DDIM with `steps` steps and
  // guidance weight cfg (1: conditional only), starting noise from seed. Returns the decoded images
  // [n, C, R, R] in [-1, 1]; tokens (if non-null) gets the snapped code indices [n, h, w].
  std::vector<float> sample(const std::vector<int32_t>& labels, int64_t steps, double cfg, uint64_t seed,
                            std::vector<int32_t>* tokens = nullptr);

 private:
  LdmConfig cfg_;
  DitConfig dc_;
  double scale_ = 1.0;
  int64_t step_ = 0;
  LoadedTokenizer tok_;
  std::unique_ptr<Store> st_;
  std::unique_ptr<Dit> dit_;
  std::unique_ptr<DitSampler> sampler_;
};

}  // namespace nsvq
