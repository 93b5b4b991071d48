// tools/cmd_train.cpp — `nsvq train`: the tokenizer trainer's command line. Every knob of
// train/train_config.h is an option; a preset sets their defaults; --resume continues a run.
#include <cstdio>
#include <filesystem>
#include "engine/backend.h"
#include "engine/dist.h"
#include "train/trainer.h"
#include "tools/args.h"
#include "tools/commands.h"

namespace nsvq {

int cmd_train(int argc, char** argv, int first) {
  // the preset decides the defaults shown by --help and used for options not given
  std::string preset = "quickstart";
  for (int i = first; i + 1 < argc; i++)
    if (std::string(argv[i]) == "--preset") preset = argv[i + 1];
    else if (std::string(argv[i]).rfind("--preset=", 0) == 0) preset = std::string(argv[i]).substr(9);
  TrainConfig def = train_preset(preset);
  std::vector<Opt> opts;
  for (const TrainField& f : train_fields()) opts.push_back({f.name, "", f.get(def), f.help});
  opts.push_back({"out", "o", "", "run folder (default: a new runs/<preset>-<quantizer>[-N])"});
  opts.push_back({"resume", "", "", "continue the run in --out from its checkpoint (its stored config) up to --steps", true});
  opts.push_back({"fd-net", "", "", "fd-net file (nsvq fd-net train) for fd_proxy in the final evaluation"});
  opts.push_back({"stop-after", "", "-1", "stop with a checkpoint after this many steps of this invocation (-1: never)"});
  opts.push_back({"quiet", "q", "", "no progress output", true});
  opts.push_back({"device", "", "cpu", "cpu | cuda | cuda:N"});
  opts.push_back(NSVQ_PRECISION_OPTION);
  opts.push_back({"threads", "t", "0", "CPU threads (0: all cores; per rank under mpirun)"});
  opts.push_back({"dist-timeout", "", "600", "several ranks: seconds to wait for the others in one collective before stopping"});
  Args a("train", "Trains a VQGAN tokenizer with NSVQ or a baseline quantizer (method.md §3-§5).", opts, argc, argv,
         first);
  if (!a.positional().empty()) fail("nsvq train: unexpected argument '%s'", a.positional()[0].c_str());
  cpu_set_threads((int)a.i64("threads"));
  dist().timeout_s = a.f64("dist-timeout");
  if (!(dist().timeout_s > 0)) fail("--dist-timeout must be positive");
  TrainOptions o;
  o.resume = a.flag("resume");
  o.quiet = a.flag("quiet");
  o.fd_net = a.str("fd-net");
  o.stop_after = a.i64("stop-after");
  TrainConfig cfg = def;
  if (o.resume) {  // the stored config continues; options equal to it may be repeated (checked by the trainer)
    for (const TrainField& f : train_fields())
      if (a.given(f.name) && f.name != "steps") o.resume_given.push_back({f.name, a.str(f.name)});
    o.steps_given = a.given("steps");
    if (!a.given("out")) fail("nsvq train: --resume needs --out DIR (the run to continue)");
  }
  for (const TrainField& f : train_fields())
    if (a.given(f.name)) f.set(cfg, a.str(f.name));
  if (a.given("out")) {
    o.out = a.str("out");
  } else {  // a fresh folder: runs/<preset>-<quantizer>, then -2, -3, ... (never over an earlier run)
    std::string base = "runs/" + cfg.preset + "-" + cfg.quantizer;
    o.out = base;
    for (int k = 2; std::filesystem::exists(o.out); k++) o.out = base + "-" + std::to_string(k);
    if (dist().size() > 1) {  // rank 0's choice for every rank
      uint64_t n = o.out.size();
      dist().broadcast(&n, sizeof n);
      o.out.resize((size_t)n);
      dist().broadcast(o.out.data(), (size_t)n);
    }
  }
  std::string device = a.str("device");
  if (device == "cuda" && dist().size() > 1 && cuda_device_count() > 0)  // one GPU per rank of this machine
    device = "cuda:" + std::to_string(dist().local_rank() % cuda_device_count());
  return train_run(cfg, o, backend_for(device, a.str("precision")));
}

}  // namespace nsvq
