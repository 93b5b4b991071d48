// train/trainer.h — the VQGAN tokenizer trainer: NSVQ's stage controller (method.md §3.4) and the
// baselines, generator + discriminator steps (§5.2), checkpoints that resume bit for bit, the drift
// probe (§7.7), metrics.jsonl, the final evaluation and the run's pictures.
//
// Stages (nsvq; a baseline trains in stage 1 throughout unless --stage1 is given):
//   stage 1   [0, S1)        everything trains; dense loss, replacement, modified STE;
//                            adversarial loss from --disc-start
//   warm-up   [S1, S1 + W)   encoder and quant_conv frozen (computed forward only, no backward);
//                            adversarial off, discriminator not updated
//   stage 2   [S1 + W, end)  encoder still frozen; adversarial on (from --disc-start); replacement off
// Each phase (stage x adversarial on/off) has its own step graph, built when the phase begins.
//
// The run folder (--out): checkpoint.safetensors (+ checkpoint.prev.safetensors), metrics.jsonl,
// recon.png, codebook_usage.svg, utilization.svg, loss.svg, drift.svg, eval.json.
//
// Determinism: all randomness is keyed by (seed, step) or (seed, loader position), and the checkpoint
// holds every tensor of the Store (weights, Adam moments, quantizer state, BatchNorm statistics,
// weight EMA, drift-probe references) plus step, loader position and optimizer step counts in its
// metadata: stopping and resuming gives bitwise the run that never stopped.
#pragma once
#include <memory>
#include <string>
#include <utility>
#include <vector>
#include "engine/backend.h"
#include "train/train_config.h"

namespace nsvq {

enum class Stage { stage1 = 1, warmup = 2, stage2 = 3 };
const char* stage_name(Stage s);

struct TrainOptions {
  std::string out;           // the run folder
  bool resume = false;       // continue the run in `out` (its stored config) up to cfg.steps
  bool steps_given = false;  // with resume: cfg.steps overrides the stored total
  // with resume: the other config options given on the command line (option name, value); each must
  // equal the stored config's value (re-running the same command continues the run), else an error names them
  std::vector<std::pair<std::string, std::string>> resume_given;
  bool quiet = false;        // no progress output (tests)
  std::string fd_net;        // optional fd-net file for fd_proxy in the final evaluation
  int64_t stop_after = -1;   // >= 0: stop (with a checkpoint) after this many steps of this invocation
};

// Trains as configured; returns the process exit code (0 done, 130 interrupted by SIGINT/SIGTERM
// after saving a checkpoint). Errors throw nsvq::Error.
int train_run(TrainConfig cfg, const TrainOptions& opt, Backend* be);

// The stage of `step` under cfg.
Stage stage_of(const TrainConfig& cfg, int64_t step);

}  // namespace nsvq
