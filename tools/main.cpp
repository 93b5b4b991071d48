// tools/main.cpp — the nsvq command: dispatches to subcommands; every error is one line on stderr
// and a non-zero exit.
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include "engine/dist.h"
#include "engine/simd.h"
#include "engine/tensor.h"
#include "tools/commands.h"
#include "train/image_io.h"

static const char* USAGE =
    "usage: nsvq <command> [options]   (nsvq <command> --help for its options)\n"
    "commands:\n"
    "  train         train a VQGAN tokenizer: --preset quickstart|fmnist|cifar10|imagenet128 --quantizer nsvq|vq|...\n"
    "  eval          evaluate a tokenizer: -m CKPT [--data ...] [--n N] [--fid-weights W] [--lpips-weights W] [--json]\n"
    "  tokenize      images to code indices: -m CKPT IMAGES... -o TOKENS.nsvqt\n"
    "  decode        code indices to PNGs: -m CKPT TOKENS.nsvqt -o DIR\n"
    "  reconstruct   one image through the tokenizer: -m CKPT IN.png -o OUT.png\n"
    "  export        inference weights of a checkpoint: -m CKPT -o MODEL.safetensors [--part all|encoder|decoder]\n"
    "  export-images dataset images as PNGs: --data SPEC --split test --n N -o DIR\n"
    "  pack          pack datasets into shards for --data shards:DIR: --data SPEC [--data SPEC2 ...] --split train -o DIR\n"
    "  info          version, build, SIMD level, threads, CUDA devices; info -m CKPT: a checkpoint's config and metrics\n"
    "  bench         benchmarks: bench gemm --m M --n N --k K | bench ops  [--json] [--device cpu|cuda]\n"
    "  fmnist-mlp    train an MLP classifier on Fashion-MNIST with the engine and report test accuracy\n"
    "  toy-drift     2-D drift experiment: --quantizer vq|vq-l2|ema|simvq|nsvq --drift translate|shrink|expand\n"
    "  fd-net        train the fd_proxy feature network (a proxy for rFID): fd-net train --data fmnist --out F\n"
    "  report        compare finished training runs: report RUN_DIR... -o OUT (markdown table, plots, grids)\n"
    "  ldm-train     train a class-conditional DiT on a tokenizer's latents: ldm-train -m TOKENIZER --data fmnist\n"
    "  sample        sample a PNG grid from a latent-diffusion checkpoint: sample -m LDM [--class C] [--cfg W] -o F\n"
    "  eval-gen      generation fd_proxy (with and without guidance): eval-gen -m LDM --fd-net F --n N\n"
    "  fid           FID of two image sets (pytorch-fid's InceptionV3): fid --fid-weights W DIR_A DIR_B\n"
    "  lpips         LPIPS-VGG16 of image pairs: lpips --lpips-weights W A B (two files or two folders)\n"
    "  --version     print the version\n"
    "global options (with any command):\n"
    "  --max-pixels N  refuse image files over N pixels before decoding them (default 64000000)\n";

int main(int argc, char** argv) {
  std::string cmd = argc > 1 ? argv[1] : "";
  try {
    // global options, taken out before the command parses its own
    int out = 1;
    for (int i = 1; i < argc; i++) {
      if (std::strcmp(argv[i], "--max-pixels") == 0) {
        if (i + 1 >= argc) nsvq::fail("option --max-pixels needs a value");
        char* end = nullptr;
        long long v = std::strtoll(argv[i + 1], &end, 10);
        if (!*argv[i + 1] || *end || v < 1) nsvq::fail("--max-pixels expects a positive integer, got '%s'", argv[i + 1]);
        nsvq::image_max_pixels() = v;
        i++;
        continue;
      }
      argv[out++] = argv[i];
    }
    argc = out;
    argv[argc] = nullptr;
    if (argc < 2) {
      fprintf(stderr, "%s", USAGE);
      return 2;
    }
    cmd = argv[1];
    if (cmd == "--version" || cmd == "version") {
      printf("nsvq %s (%s; cpu: %s %s)\n", NSVQ_VERSION, NSVQ_BUILD_TYPE, nsvq::cpu_arch_name(), nsvq::cpu_simd_level());
      return 0;
    }
    if (cmd == "--help" || cmd == "-h" || cmd == "help") {
      printf("%s", USAGE);
      return 0;
    }
    if (cmd == "info") return nsvq::cmd_info(argc, argv, 2);
    if (cmd == "fmnist-mlp") return nsvq::cmd_fmnist_mlp(argc, argv, 2);
    if (cmd == "train" || (cmd == "bench" && argc > 2 && std::strcmp(argv[2], "allreduce") == 0)) {
      nsvq::dist_init();  // several ranks under mpirun / srun: connect them (data-parallel training)
      int rc = cmd == "train" ? nsvq::cmd_train(argc, argv, 2) : nsvq::cmd_bench(argc, argv, 2);
      nsvq::dist_finalize();
      return rc;
    }
    if (cmd == "bench") return nsvq::cmd_bench(argc, argv, 2);
    if (cmd == "eval") return nsvq::cmd_eval(argc, argv, 2);
    if (cmd == "tokenize") return nsvq::cmd_tokenize(argc, argv, 2);
    if (cmd == "decode") return nsvq::cmd_decode(argc, argv, 2);
    if (cmd == "reconstruct") return nsvq::cmd_reconstruct(argc, argv, 2);
    if (cmd == "export-images") return nsvq::cmd_export_images(argc, argv, 2);
    if (cmd == "export") return nsvq::cmd_export(argc, argv, 2);
    if (cmd == "pack") return nsvq::cmd_pack(argc, argv, 2);
    if (cmd == "toy-drift") return nsvq::cmd_toy_drift(argc, argv, 2);
    if (cmd == "fd-net") return nsvq::cmd_fdnet(argc, argv, 2);
    if (cmd == "report") return nsvq::cmd_report(argc, argv, 2);
    if (cmd == "ldm-train") return nsvq::cmd_ldm_train(argc, argv, 2);
    if (cmd == "sample") return nsvq::cmd_sample(argc, argv, 2);
    if (cmd == "eval-gen") return nsvq::cmd_eval_gen(argc, argv, 2);
    if (cmd == "fid") return nsvq::cmd_fid(argc, argv, 2);
    if (cmd == "lpips") return nsvq::cmd_lpips(argc, argv, 2);
    fprintf(stderr, "nsvq: unknown command '%s' (see nsvq --help)\n", cmd.c_str());
    return 2;
  } catch (const std::exception& e) {
    if (nsvq::dist().size() > 1) {  // its peers may wait in a collective: end the whole job
      fprintf(stderr, "nsvq %s: error (rank %d of %d): %s\n", cmd.c_str(), nsvq::dist().rank(), nsvq::dist().size(), e.what());
      fflush(stderr);
      nsvq::dist_abort(1);
    }
    fprintf(stderr, "nsvq %s: error: %s\n", cmd.c_str(), e.what());
    return 1;
  }
}
