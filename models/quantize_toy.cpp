// models/quantize_toy.cpp — the 2-D toy drift experiment (models/quantize_toy.h, method.md §3.6).
#include "models/quantize_toy.h"
#include <chrono>
#include <cmath>
#include "engine/rng.h"
#include "ops/optim.h"

namespace nsvq {

ToyDrift toy_drift_from_name(const std::string& n) {
  if (n == "translate") return ToyDrift::translate;
  if (n == "shrink") return ToyDrift::shrink;
  if (n == "expand") return ToyDrift::expand;
  fail("unknown drift '%s' (expected translate, shrink or expand)", n.c_str());
}

const char* toy_drift_name(ToyDrift d) {
  switch (d) {
    case ToyDrift::translate: return "translate";
    case ToyDrift::shrink: return "shrink";
    case ToyDrift::expand: return "expand";
  }
  return "?";
}

QuantizerConfig toy_drift_quantizer(const ToyDriftConfig& c) {
  QuantizerConfig q;
  q.kind = c.kind;
  q.codes = c.codes;
  q.dim = 2;
  q.seed = c.seed;
  // nsvq [choice for this scale]: a 100-step replacement window (the distribution moves 2 sigma in
  // it under translation), tau relative to the step-0 median distance, halved every T/10 steps.
  q.replace_window = 100;
  q.tau.relative = true;
  q.tau.rho = 10.0f;
  q.tau.decay = 0.5f;
  q.tau.period = std::max<int64_t>(1, c.steps / 10);
  // ema [choice for this scale]: the EMA codebook trails a translating cluster by v / (1 - decay);
  // 0.99 puts it 2 sigma behind (the test would measure that lag, not the restart rule), 0.98 1 sigma.
  q.ema_decay = c.ema_decay;
  q.dense_loss = c.dense_loss;
  q.replace = c.replace;
  q.vq_new = c.vq_new;
  return q;
}

namespace {

// 8 Gaussians (sigma 0.1) on the unit circle, moved by the drift at step t of T: translation by
// 2e-3 per step along x, or scaling by 1 - 0.9 t/T (shrink) or 1 + 2 t/T (expand).
void sample(ToyDrift d, int64_t t, int64_t T, int64_t n, Rng& r, float* out) {
  const double PI = 3.14159265358979323846;
  const double frac = (double)t / (double)T;
  double s = 1.0, cx = 0.0;
  if (d == ToyDrift::translate) cx = 2e-3 * (double)t;
  if (d == ToyDrift::shrink) s = 1.0 - 0.9 * frac;
  if (d == ToyDrift::expand) s = 1.0 + 2.0 * frac;
  for (int64_t i = 0; i < n; i++) {
    double a = 2.0 * PI * (double)r.below(8) / 8.0;
    double x = std::cos(a) + 0.1 * r.normal(), y = std::sin(a) + 0.1 * r.normal();
    out[2 * i] = (float)(s * x + cx);
    out[2 * i + 1] = (float)(s * y);
  }
}

}  // namespace

ToyDriftResult toy_drift_run(const ToyDriftConfig& c, const std::function<void(const ToyDriftPoint&)>& on_point) {
  if (c.steps < 1 || c.codes < 1 || c.batch < 1 || c.eval_samples < 1 || c.log_every < 0)
    fail("toy-drift: --steps, --codes, --batch and the evaluation size must be >= 1");
  if (!(c.lr > 0.0f)) fail("toy-drift: --lr must be > 0");
  Backend* be = backend_by_name(c.device);
  Store st(be);
  Quantizer q(st, toy_drift_quantizer(c));
  AdamConfig ac;
  ac.lr = c.lr;
  ac.weight_decay = 0.0f;
  AdamW opt(st, st.params(), ac);

  Graph tg(be);
  Tensor* z = tg.input(DType::f32, {c.batch, 2}, "z");
  QuantOut o = q.build(tg, z, true);
  tg.mark_loss(o.loss);
  tg.backward(o.loss);
  opt.append_update(tg);
  tg.plan();

  Graph eg(be);
  Tensor* ez = eg.input(DType::f32, {c.eval_samples, 2}, "z");
  QuantOut eo = q.build(eg, ez, false);
  eg.plan();

  Rng data(c.seed, 1);
  std::vector<float> batch((size_t)(c.batch * 2)), eval((size_t)(c.eval_samples * 2));
  ToyDriftResult res;
  ToyDriftPoint last_train;
  auto measure = [&](int64_t step) {
    Rng probe(c.seed ^ (0x9E3779B97F4A7C15ull * (uint64_t)(step + 1)), 2);  // same samples whatever log_every
    sample(c.drift, step, c.steps, c.eval_samples, probe, eval.data());
    eg.set_f32(ez, eval);
    eg.compute();
    QuantStats s = q.read_stats(eg, eo);
    ToyDriftPoint p = last_train;
    p.step = step;
    p.utilization = s.used / (float)c.codes;
    p.quant_error = s.quant_error;
    p.perplexity = s.perplexity;
    res.trace.push_back(p);
    if (on_point) on_point(p);
    return p;
  };
  auto t0 = std::chrono::steady_clock::now();
  for (int64_t t = 0; t < c.steps; t++) {
    if (c.log_every > 0 && t % c.log_every == 0) measure(t);
    sample(c.drift, t, c.steps, c.batch, data, batch.data());
    tg.set_f32(z, batch);
    q.begin_step(tg, o, t);
    opt.begin_step(tg);
    tg.compute();
    QuantStats s = q.read_stats(tg, o);
    if (!std::isfinite(s.quant_error)) fail("toy-drift: quantization error is not finite at step %lld", (long long)t);
    last_train.replaced = s.replaced;
    last_train.tau = s.tau;
  }
  res.final_point = measure(c.steps);
  res.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return res;
}

}  // namespace nsvq
