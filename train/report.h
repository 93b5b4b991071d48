// train/report.h — reading finished training runs (config from the checkpoint, eval.json,
// metrics.jsonl) and writing the side-by-side comparison of many runs (`nsvq report`): a markdown
// table per dataset and codebook size (means over seeds, with the spread), the winner per column,
// comparison plots (SVG) and reconstruction grids (PNG) — what docs/results.md is built from.
#pragma once
#include <string>
#include <vector>
#include "models/json.h"
#include "train/train_config.h"

namespace nsvq {

// metrics.jsonl as parsed lines (errors name the file and line)
std::vector<Json> read_metrics(const std::string& path);
// Appends one JSON line (fails naming the file).
void metrics_append(const std::string& path, const std::string& json_line);
// Keeps only the lines of steps <= step (a resumed run rewrites what followed; a line cut by a crash
// and everything after it are dropped). A missing file is left missing.
void metrics_truncate(const std::string& path, int64_t step);
// The (step, value) pairs of `key` (inside the `group` object when group is non-null) over lines.
std::vector<double> series_of(const std::vector<Json>& lines, const char* group, const char* key, std::vector<double>& x);

struct RunSummary {
  std::string dir, name;
  TrainConfig cfg;
  int64_t step = 0;  // checkpoint step
  bool evaluated = false;
  int64_t images = 0;
  double utilization = 0, perplexity = 0, quant_error = 0, psnr = 0, ssim = 0, fd_proxy = -1;
  double train_s = 0;  // sum of the logged step times (ms_per_step over each logging interval)
  double drift = NAN;  // median of the probe's latent drift over the intervals with an unfrozen encoder
  std::vector<Json> metrics;
};
// Reads one run folder; fails with a one-line error when it is not a finished or checkpointed run.
RunSummary read_run(const std::string& dir);

// Writes OUT/report.md, OUT/*.svg and OUT/recon_*.png for the runs; returns the markdown. Tables are
// per (data, model, K, steps); rows are quantizers, split further by the values of the `by` training
// options (e.g. encoder-lr-mult for the drift stress test), and a row's runs must differ only in the
// seed (and logging cadence) — anything else fails naming the option. With one numeric `by` option,
// utilization, PSNR and fd_proxy are also plotted against it, and per-step plots include the drift.
std::string write_report(const std::vector<RunSummary>& runs, const std::string& out_dir,
                         const std::vector<std::string>& by = {});

}  // namespace nsvq
