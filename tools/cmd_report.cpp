// tools/cmd_report.cpp — `nsvq report RUN_DIR... -o OUT`: the side-by-side comparison of finished
// training runs (train/report.h): OUT/report.md with one table per dataset and codebook size, the
// winner of each metric and its margin, comparison plots and reconstruction grids.
#include <cstdio>
#include "engine/tensor.h"
#include "tools/args.h"
#include "tools/commands.h"
#include "train/report.h"

namespace nsvq {

int cmd_report(int argc, char** argv, int first) {
  Args a("report RUN_DIR...", "Compares finished training runs: a markdown table per dataset and K, plots and grids.",
         {{"out", "o", "report", "output folder (report.md, *.svg, recon_*.png)"},
          {"by", "", "", "training options that split the rows, comma-separated (e.g. encoder-lr-mult; lambda; "
                         "dense-loss,replace): a sweep's runs side by side, plotted against a single numeric option"},
          {"quiet", "q", "", "do not print the markdown", true}},
         argc, argv, first);
  const std::vector<std::string>& dirs = a.positional();
  if (dirs.empty()) fail("report: give at least one run folder (nsvq train -o DIR)");
  std::vector<RunSummary> runs;
  for (const std::string& d : dirs) runs.push_back(read_run(d));
  std::vector<std::string> by;
  std::string b = a.str("by");
  for (size_t i = 0; !b.empty() && i <= b.size();) {
    size_t j = std::min(b.find(',', i), b.size());
    if (j == i) fail("report: --by '%s': an empty option name", b.c_str());
    by.push_back(b.substr(i, j - i));
    i = j + 1;
  }
  std::string md = write_report(runs, a.str("out"), by);
  if (!a.flag("quiet")) printf("%s", md.c_str());
  fprintf(stderr, "report: %zu runs -> %s/report.md\n", runs.size(), a.str("out").c_str());
  return 0;
}

}  // namespace nsvq
