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
          {"quiet", "q", "", "do not print the markdown", true}},
         argc, argv, first);
  const std::vector<std::string>& dirs = a.positional();
  if (dirs.empty()) fail("report: give at least one run folder (nsvq train -o DIR)");
  std::vector<RunSummary> runs;
  for (const std::string& d : dirs) runs.push_back(read_run(d));
  std::string md = write_report(runs, a.str("out"));
  if (!a.flag("quiet")) printf("%s", md.c_str());
  fprintf(stderr, "report: %zu runs -> %s/report.md\n", runs.size(), a.str("out").c_str());
  return 0;
}

}  // namespace nsvq
