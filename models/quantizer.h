// models/quantizer.h — the quantizer interface and its five variants (method.md §2-§4):
//   vq     vanilla VQ: learnable codebook, L = L_cb + beta L_commit, standard straight-through
//   vq-l2  the same on l2-normalised latents and codes (cosine VQ)
//   ema    EMA codebook with Laplace smoothing and dead-code restart; L = beta L_commit
//   simvq  frozen random codebook C, learnable W, b: effective codebook C W^T + b, recomputed per step
//   nsvq   dense kernel loss (§3.1), modified STE (§3.2), reservoir replacement (§3.3); switches for
//          each, and the VQ_new ablation (§3.1.3)
//
// Shapes: z is [N, D] rows or an image latent [B, D, h, w] (flattened channel-last to N = B h w rows:
// b, y, x order); zq comes back in z's layout, indices as i32 [N] or [B, h, w].
//
// One step, training:
//   QuantOut o = q.build(g, z, true);     // once, while building the step graph
//   ... losses: add o.loss (codebook weight 1) ...; g.backward(...); adam.append_update(g); g.plan();
//   loop: q.begin_step(g, o, step); g.compute(); QuantStats s = q.read_stats(g, o);
// Every state update (counts, reservoir, replacement, EMA, tau calibration) is an op inside the graph,
// driven by the small control input that begin_step writes, so it runs on the graph's backend with no
// large transfers, and all randomness is Philox keyed by (seed, step): the same seed gives the same run.
// Build one training graph per quantizer (its state updates run whenever that graph computes);
// evaluation graphs (training = false) update nothing and may be built freely.
//
// State a checkpoint must carry (all Store tensors, prefix "quantize"; the host keeps nothing but the
// config and the step number):
//   quantize.embedding.weight        f32 [K, D]  codebook (ema: a buffer; simvq: the frozen C)
//   quantize.embedding_proj.weight   f32 [D, D]  simvq W
//   quantize.embedding_proj.bias     f32 [D]     simvq b
//   quantize.counts                  i32 [K]     assignments in the current window (nsvq zeroes it at
//                                                each window start; others: since reset_counts())
//   quantize.replaced                i32 [1]     nsvq: codes replaced at the last window start;
//                                                ema: codes restarted in the last step
//   quantize.reservoir               f32 [M, D]  nsvq: FIFO of recent latents
//   quantize.reservoir_state         i32 [2]     nsvq: write pointer, fill
//   quantize.tau_scale               f32 [1]     nsvq: tau_peak (calibrated at steps 0-1 in relative mode)
//   quantize.ema.cluster_size        f32 [K]     ema: n_k
//   quantize.ema.embed_sum           f32 [K, D]  ema: m_k
#pragma once
#include <string>
#include <vector>
#include "ops/vq.h"

namespace nsvq {

enum class QuantKind { vq, vq_l2, ema, simvq, nsvq };
QuantKind quant_kind_from_name(const std::string& name);  // fails naming the valid names
const char* quant_kind_name(QuantKind k);

// tau(step) = scale * decay^floor((step - warmup) / period) after `warmup` steps at scale, floored at
// VQ_TAU_MIN (method.md §3.1.1). scale = tau_peak (absolute) or rho * median_i d_i,k*(i) (relative),
// measured on the batch of step 1: the first one quantized after the step-0 replacement (step 0 uses
// its own batch). Measuring right after the replacement, as method.md's tier table says, gives ~0
// whenever K > N/2: most latents then have an exact copy in the codebook.
struct TauSchedule {
  bool relative = true;
  float tau_peak = 1.0f;
  float rho = 10.0f;
  int64_t warmup = 0;
  float decay = 0.5f;
  int64_t period = 300;
  float factor(int64_t step) const;  // tau / scale at `step`
};

struct QuantizerConfig {
  QuantKind kind = QuantKind::vq;
  int64_t codes = 1024;  // K
  int64_t dim = 16;      // D
  float beta = 0.25f;    // commitment weight
  uint64_t seed = 0;
  int group = 0;  // parameter group of the learnable tensors
  // nsvq
  bool dense_loss = true, modified_ste = true, replace = true, vq_new = false;
  float alpha = 1.0f, lambda = 0.01f;
  TauSchedule tau;
  int64_t replace_window = 1000;  // steps; windows start at multiples of it (step 0 included)
  int replace_threshold = 1;      // dead: fewer assignments than this in the window
  int64_t reservoir = 16384;      // M_R
  // ema
  float ema_decay = 0.99f, ema_eps = 1e-5f, ema_dead = 1.0f;
  // simvq
  bool simvq_bias = true;
};

// What build() appends. Loss terms are scalars (nullptr when the variant has none); statistics are
// marked as graph outputs.
struct QuantOut {
  Tensor* zq = nullptr;          // z's layout; forward value q, straight-through gradient
  Tensor* indices = nullptr;     // i32 [N] or [B, h, w]
  Tensor* loss = nullptr;        // the variant's total VQ loss, weights applied (add it with weight 1)
  Tensor* codebook_loss = nullptr;  // L_cb
  Tensor* commit_loss = nullptr;    // L_commit (unweighted)
  Tensor* dense_loss = nullptr;     // nsvq L_dense (unweighted)
  Tensor* hist = nullptr;        // i32 [K] assignments of this batch
  Tensor* code_stats = nullptr;  // f32 [2]: perplexity, codes used by this batch
  Tensor* quant_error = nullptr; // scalar: mean_i d_i,k*(i) / D
  Tensor* search = nullptr;      // f32 [N, 3] (ops/vq.h)
  Tensor* tau = nullptr;         // nsvq: scalar tau used this step
  // per-step inputs (written by begin_step)
  Tensor* ctl = nullptr;         // i32 [VQ_CTL_COUNT]
  Tensor* tau_factor = nullptr;  // f32 [1]
  Tensor* push_idx = nullptr;    // i32 [min(N, M_R)]
  mutable bool push_identity = false;  // push_idx already holds 0..n-1 (all rows fit the reservoir)
  int64_t rows = 0;
  bool training = false;
};

struct QuantStats {
  float perplexity = 0;   // of this batch
  float used = 0;         // codes used by this batch
  float quant_error = 0;  // mean d / D of this batch
  float tau = 0;          // nsvq
  int32_t replaced = -1;  // nsvq: at the last window start; ema: restarts this step; -1: n/a
};

class Quantizer {
 public:
  // Creates (and initialises) the variant's tensors in `store` under `prefix`. inference: only the
  // codebook tensors (embedding, SimVQ's projection), no training state; build() then evaluates only.
  Quantizer(Store& store, const QuantizerConfig& cfg, const std::string& prefix = "quantize", bool inference = false);
  const QuantizerConfig& config() const { return cfg_; }
  // Runtime switches that need no new graph (e.g. the stage controller turning replacement off).
  void set_replace(bool on) { cfg_.replace_runtime = on; }
  void set_tau(const TauSchedule& t) { cfg_.tau = t; }

  QuantOut build(Graph& g, Tensor* z, bool training);
  // Before each compute() of a training graph: control flags, tau factor, reservoir rows.
  void begin_step(Graph& g, const QuantOut& o, int64_t step);
  QuantStats read_stats(const Graph& g, const QuantOut& o) const;

  // The quantized vectors of code indices, as the decoder sees them in evaluation (vq-l2: the
  // normalised codes; simvq: C W^T + b): idx i32 [B, h, w] -> [B, D, h, w], or [N] -> [N, D].
  Tensor* lookup(Graph& g, Tensor* idx) const;

  Tensor* embedding() const { return embedding_; }
  // The codebook the decoder sees, [K, D] on the host (simvq: C W^T + b).
  std::vector<float> codebook() const;
  std::vector<int32_t> window_counts() const;
  void reset_counts();
  // Every Store tensor of this quantizer (parameters and state), in a fixed order.
  std::vector<Tensor*> state() const;

 private:
  struct Cfg : QuantizerConfig {
    bool replace_runtime = true;
  };
  Tensor* add_state(const std::string& name, DType dt, const Shape& s, uint32_t flags);
  Tensor* rows_of(Graph& g, Tensor* z, QuantOut& o, Shape& img) const;

  Store& store_;
  Cfg cfg_;
  std::string prefix_;
  bool inference_ = false;
  std::vector<Tensor*> state_;
  Tensor* embedding_ = nullptr;
  Tensor *proj_w_ = nullptr, *proj_b_ = nullptr;
  Tensor *counts_ = nullptr, *replaced_ = nullptr;
  Tensor *reservoir_ = nullptr, *rstate_ = nullptr, *tau_scale_ = nullptr;
  Tensor *ema_n_ = nullptr, *ema_m_ = nullptr;
};

// SimVQ's effective codebook: C [K, D] (frozen), W [D, D], b [D] or nullptr -> C W^T + b [K, D].
Tensor* simvq_codebook(Graph& g, Tensor* C, Tensor* W, Tensor* b);

}  // namespace nsvq
