// tools/cmd_toy_drift.cpp — `nsvq toy-drift`: the 2-D drift experiment of method.md §3.6
// (models/quantize_toy.h). Prints utilization and quantization error over time and at the end,
// as text or one JSON object per line.
#include <cstdio>
#include "models/quantize_toy.h"
#include "tools/args.h"
#include "tools/commands.h"

namespace nsvq {

int cmd_toy_drift(int argc, char** argv, int first) {
  Args a("toy-drift",
         "Trains a quantizer on a drifting 2-D mixture of 8 Gaussians and reports codebook utilization\n"
         "(codes nearest to at least one of 8,192 samples of the current distribution) and quantization error.",
         {{"quantizer", "", "nsvq", "vq | vq-l2 | ema | simvq | nsvq"},
          {"drift", "", "translate", "translate | shrink | expand"},
          {"steps", "", "5000", "training steps T"},
          {"codes", "", "64", "codebook size K"},
          {"batch", "", "256", "samples per step"},
          {"lr", "", "0.01", "Adam learning rate"},
          {"ema-decay", "", "0.98", "EMA decay of the ema quantizer"},
          {"no-dense", "", "", "nsvq: vanilla codebook loss instead of the dense loss", true},
          {"no-replace", "", "", "nsvq: no dead-code replacement", true},
          {"vq-new", "", "", "nsvq: the VQ_new ablation (drift through the decoder gradient)", true},
          {"log-every", "", "500", "steps between trace points (0: only the end)"},
          {"seed", "", "0", "random seed"},
          {"device", "", "cpu", "cpu | cuda | cuda:N"},
          {"threads", "t", "0", "CPU threads (0: all cores)"},
          {"json", "", "", "one JSON object per trace point and one for the end", true}},
         argc, argv, first);
  cpu_set_threads((int)a.i64("threads"));
  ToyDriftConfig c;
  c.kind = quant_kind_from_name(a.str("quantizer"));
  c.drift = toy_drift_from_name(a.str("drift"));
  c.steps = a.i64("steps");
  c.codes = a.i64("codes");
  c.batch = a.i64("batch");
  c.lr = (float)a.f64("lr");
  c.ema_decay = (float)a.f64("ema-decay");
  c.dense_loss = !a.flag("no-dense");
  c.replace = !a.flag("no-replace");
  c.vq_new = a.flag("vq-new");
  c.log_every = a.i64("log-every");
  c.seed = (uint64_t)a.i64("seed");
  c.device = a.str("device");
  if (c.codes < 1) fail("--codes must be >= 1, got %lld", (long long)c.codes);
  if (c.steps < 1) fail("--steps must be >= 1, got %lld", (long long)c.steps);
  if (c.batch < 1) fail("--batch must be >= 1, got %lld", (long long)c.batch);
  if (c.log_every < 0) fail("--log-every must be >= 0");
  const bool json = a.flag("json");
  const char* qn = quant_kind_name(c.kind);
  const char* dn = toy_drift_name(c.drift);
  if (!json)
    printf("toy-drift: quantizer %s, drift %s, %lld codes, %lld steps of %lld samples, seed %llu\n", qn, dn,
           (long long)c.codes, (long long)c.steps, (long long)c.batch, (unsigned long long)c.seed);
  auto print = [&](const ToyDriftPoint& p, bool fin) {
    if (json)
      printf("{\"quantizer\": \"%s\", \"drift\": \"%s\", \"step\": %lld, \"final\": %s, \"utilization\": %.6f, "
             "\"quant_error\": %.8f, \"perplexity\": %.4f, \"replaced\": %d, \"tau\": %.6g}\n",
             qn, dn, (long long)p.step, fin ? "true" : "false", p.utilization, p.quant_error, p.perplexity, p.replaced,
             p.tau);
    else
      printf("step %6lld  utilization %.4f  quant_error %.6f  perplexity %8.3f%s%s\n", (long long)p.step,
             p.utilization, p.quant_error, p.perplexity,
             p.replaced >= 0 ? ("  replaced " + std::to_string(p.replaced)).c_str() : "",
             p.tau > 0 ? ("  tau " + std::to_string(p.tau)).c_str() : "");
    fflush(stdout);
  };
  ToyDriftResult r = toy_drift_run(c, [&](const ToyDriftPoint& p) {
    if (p.step < c.steps) print(p, false);
  });
  print(r.final_point, true);
  if (!json)
    printf("final: utilization %.4f (%d of %lld codes), quantization error %.6f, %.2f s\n", r.final_point.utilization,
           (int)(r.final_point.utilization * c.codes + 0.5f), (long long)c.codes, r.final_point.quant_error, r.seconds);
  return 0;
}

}  // namespace nsvq
