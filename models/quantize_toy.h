// models/quantize_toy.h — the 2-D drift experiment of method.md §3.6: a mixture of 8 Gaussians
// (sigma 0.1) on the unit circle that translates, shrinks or expands while a quantizer with K codes
// (no encoder: the samples are the latents) trains on 256 samples per step with Adam. Utilization is
// the fraction of codes nearest to at least one of 8,192 samples drawn from the distribution of the
// step being evaluated (the final one at the end); quantization error is mean_i d_i,k*(i) / D there.
#pragma once
#include <functional>
#include <string>
#include <vector>
#include "models/quantizer.h"

namespace nsvq {

enum class ToyDrift { translate, shrink, expand };
ToyDrift toy_drift_from_name(const std::string& name);  // fails naming the valid names
const char* toy_drift_name(ToyDrift d);

struct ToyDriftConfig {
  QuantKind kind = QuantKind::nsvq;
  ToyDrift drift = ToyDrift::translate;
  int64_t steps = 5000;      // T
  int64_t codes = 64;        // K
  int64_t batch = 256;       // samples per step
  int64_t eval_samples = 8192;
  int64_t log_every = 500;   // 0: only the end
  float lr = 1e-2f;          // Adam
  float ema_decay = 0.98f;   // ema variant (see toy_drift_quantizer)
  bool dense_loss = true, replace = true, vq_new = false;  // nsvq switches (ablations)
  uint64_t seed = 0;
  std::string device = "cpu";
};

struct ToyDriftPoint {
  int64_t step = 0;
  float utilization = 0;  // fraction of codes in use on eval_samples of the current distribution
  float quant_error = 0;  // mean min distance / D on those samples
  float perplexity = 0;   // of the code usage on those samples
  int32_t replaced = -1;  // nsvq: at the last window start; ema: restarts in the last step
  float tau = 0;          // nsvq
};

struct ToyDriftResult {
  std::vector<ToyDriftPoint> trace;  // every log_every steps, then the end
  ToyDriftPoint final_point;
  double seconds = 0;
};

// The quantizer settings the experiment uses for `c` (exposed so docs and tests can show them).
QuantizerConfig toy_drift_quantizer(const ToyDriftConfig& c);
// Runs the experiment; on_point (optional) sees each trace point as it is measured.
ToyDriftResult toy_drift_run(const ToyDriftConfig& c, const std::function<void(const ToyDriftPoint&)>& on_point = {});

}  // namespace nsvq
