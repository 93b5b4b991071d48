// tools/commands.h — the nsvq subcommands (one function each, argv[first..] are its arguments).
#pragma once
#include <string>

namespace nsvq {
int cmd_info(int argc, char** argv, int first);
int cmd_bench(int argc, char** argv, int first);
int cmd_fmnist_mlp(int argc, char** argv, int first);
int cmd_toy_drift(int argc, char** argv, int first);
int cmd_fdnet(int argc, char** argv, int first);
int cmd_train(int argc, char** argv, int first);
int cmd_eval(int argc, char** argv, int first);
int cmd_tokenize(int argc, char** argv, int first);
int cmd_decode(int argc, char** argv, int first);
int cmd_reconstruct(int argc, char** argv, int first);
int cmd_export_images(int argc, char** argv, int first);
int cmd_export(int argc, char** argv, int first);
int cmd_report(int argc, char** argv, int first);
int cmd_ldm_train(int argc, char** argv, int first);
int cmd_sample(int argc, char** argv, int first);
int cmd_eval_gen(int argc, char** argv, int first);
int cmd_fid(int argc, char** argv, int first);
int cmd_lpips(int argc, char** argv, int first);
int cmd_pack(int argc, char** argv, int first);
int info_checkpoint(const std::string& path);
int bench_vq(int argc, char** argv, int first);
int bench_train_step(int argc, char** argv, int first);
int bench_dit_step(int argc, char** argv, int first);
int bench_model(int argc, char** argv, int first);
int bench_tokenize(int argc, char** argv, int first);
int bench_metrics(int argc, char** argv, int first);
int bench_data(int argc, char** argv, int first);
int bench_allreduce(int argc, char** argv, int first);
}  // namespace nsvq
