// tools/commands.h — the nsvq subcommands (one function each, argv[first..] are its arguments).
#pragma once

namespace nsvq {
int cmd_info(int argc, char** argv, int first);
int cmd_bench(int argc, char** argv, int first);
int cmd_fmnist_mlp(int argc, char** argv, int first);
int cmd_toy_drift(int argc, char** argv, int first);
int bench_vq(int argc, char** argv, int first);
int bench_train_step(int argc, char** argv, int first);
int bench_model(int argc, char** argv, int first);
}  // namespace nsvq
