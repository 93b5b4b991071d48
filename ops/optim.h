// ops/optim.h — Adam/AdamW as an in-place update op, the global gradient norm and clipping, and
// the AdamW driver that owns the moment tensors, per-group hyperparameters and the step count.
#pragma once
#include <map>
#include <string>
#include <vector>
#include "ops/ops.h"

namespace nsvq {

struct AdamConfig {
  float lr = 1e-3f, beta1 = 0.9f, beta2 = 0.999f, eps = 1e-8f, weight_decay = 0.0f;
  bool decoupled = true;  // AdamW (decoupled decay) when true, Adam with L2 added to the gradient when false
};

// Layout of the per-group hyperparameter tensor (f32 [ADAM_HP_COUNT], written by the host per step).
enum AdamHp { HP_LR, HP_B1, HP_B2, HP_EPS, HP_WD, HP_BC1, HP_BC2, HP_DECOUPLED, ADAM_HP_COUNT };

// In place on p, m, v (all of p's shape): with g' = gscale * grad (+ wd * p when not decoupled),
// m = b1 m + (1-b1) g', v = b2 v + (1-b2) g'^2, p -= lr (m / bc1) / (sqrt(v / bc2) + eps) (+ lr wd p when
// decoupled). gscale may be nullptr (1); when it is not finite the update does nothing (a skipped step).
// Returns a node marked as a side effect (always executed).
Tensor* adamw_update(Graph& g, Tensor* p, Tensor* grad, Tensor* m, Tensor* v, Tensor* hp, Tensor* gscale);
// sqrt(sum over all grads of sum of squares): scalar
Tensor* global_grad_norm(Graph& g, const std::vector<Tensor*>& grads);
// min(1, max_norm / (norm + 1e-6)): scalar to multiply gradients with
Tensor* clip_coef(Graph& g, Tensor* norm, float max_norm);

class AdamW {
 public:
  // Creates zeroed moments "<prefix>.m.<param>" and "<prefix>.v.<param>" in `store`.
  AdamW(Store& store, const std::vector<Tensor*>& params, const AdamConfig& cfg, const std::string& prefix = "adam");
  void set_group_config(int group, const AdamConfig& cfg);
  void set_lr(int group, float lr);
  float lr(int group) const;
  float clip_norm = 0.0f;  // > 0: clip the global gradient norm to this
  // Data-parallel training: the gradients are averaged over the ranks of dist() (all-reduce in buckets,
  // the same bits on every rank) before the norm, the clipping and the update.
  bool average_over_ranks = false;
  // Multiplies the learning rate of these parameters (e.g. the encoder in the drift stress test).
  // Takes effect at the next append_update.
  void set_lr_mult(const std::vector<Tensor*>& params, float mult);

  // Appends the gradient norm (and clipping) and one update per parameter that has a gradient in g
  // (g.backward must have run). Returns the pre-clipping global gradient norm (an output). When that
  // norm is not finite (a NaN or Inf anywhere in the gradients) no parameter or moment changes: the
  // caller sees the norm, may call undo_step(), and the step is skipped.
  Tensor* append_update(Graph& g);
  // Before each compute(): advances the step count and writes every group's hyperparameters.
  void begin_step(Graph& g);
  void undo_step() { step_--; }  // after a skipped step: the bias correction does not advance
  int64_t step() const { return step_; }
  void set_step(int64_t s) { step_ = s; }
  const std::vector<Tensor*>& params() const { return params_; }

 private:
  const AdamConfig& config(int group) const;
  Store& store_;
  std::vector<Tensor*> params_, m_, v_;
  AdamConfig default_;
  std::map<int, AdamConfig> groups_;
  std::map<const Tensor*, float> lr_mult_;
  std::map<std::pair<int, float>, Tensor*> hp_;  // per (group, lr multiplier), in the graph of the last append_update
  int64_t step_ = 0;
};

}  // namespace nsvq
