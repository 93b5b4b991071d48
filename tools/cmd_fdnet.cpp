// tools/cmd_fdnet.cpp — `nsvq fd-net train|info`: trains the Fréchet-distance proxy network
// (train/fdnet.h, method.md §5.5) on a labelled dataset and saves it as safetensors; `info` prints a
// saved net's metadata. Its features give fd_proxy, a proxy not comparable to published rFID.
#include <cstdio>
#include <filesystem>
#include <string>
#include "tools/args.h"
#include "tools/commands.h"
#include "train/data.h"
#include "train/fdnet.h"

namespace nsvq {

namespace {
const char* FDNET_USAGE =
    "usage: nsvq fd-net train --data fmnist|cifar10:DIR|folder:DIR [--out FILE] [options]\n"
    "       nsvq fd-net info FILE\n"
    "  train   trains the fd_proxy feature network on a labelled dataset (nsvq fd-net train --help)\n"
    "  info    prints the metadata of a saved fd-net\n";

int fdnet_train_cmd(int argc, char** argv, int first) {
  Args a("fd-net train",
         "Trains the fd-net (a small CNN classifier whose pooled penultimate features give fd_proxy, a Frechet-distance\n"
         "proxy that is NOT comparable to published rFID) on a labelled dataset and saves it as safetensors.",
         {{"data", "", "fmnist", "fmnist | fmnist:DIR | cifar10:DIR | folder:DIR (one subfolder per class)"},
          {"size", "", "32", "image size for folder data (fmnist and cifar10 are 32)"},
          {"channels", "", "3", "channels for folder data (1 or 3)"},
          {"out", "o", "", "output file (default fdnet-<dataset>.safetensors in the current folder)"},
          {"epochs", "", "2", "training epochs"},
          {"n-train", "", "0", "use the first N training images (0: all)"},
          {"batch", "", "64", "batch size"},
          {"lr", "", "0.002", "AdamW peak learning rate (cosine decay to 0)"},
          {"weight-decay", "", "0.0001", "AdamW decoupled weight decay"},
          {"width", "", "32", "channels of the first conv (then 2x, 4x)"},
          {"feature-dim", "", "128", "feature dimension (channels of the last conv)"},
          {"augment", "", "", "random horizontal flips (and crops for folder data) while training", true},
          {"seed", "", "0", "random seed"},
          {"device", "", "cpu", "cpu | cuda | cuda:N"},
          {"threads", "t", "0", "CPU threads (0: all cores)"}},
         argc, argv, first);
  if (!a.positional().empty()) fail("nsvq fd-net train: unexpected argument '%s'", a.positional()[0].c_str());
  cpu_set_threads((int)a.i64("threads"));
  FdTrainConfig tc;
  tc.epochs = a.i64("epochs");
  tc.batch = a.i64("batch");
  tc.lr = a.f64("lr");
  tc.weight_decay = a.f64("weight-decay");
  tc.width = (int)a.i64("width");
  tc.feature_dim = (int)a.i64("feature-dim");
  tc.augment = a.flag("augment");
  tc.seed = (uint64_t)a.i64("seed");
  if (!(tc.lr > 0)) fail("nsvq fd-net train: --lr must be positive");
  if (a.i64("n-train") < 0) fail("nsvq fd-net train: --n-train must be >= 0");
  Backend* be = backend_by_name(a.str("device"));

  std::string spec = a.str("data");
  int64_t size = a.i64("size");
  int channels = (int)a.i64("channels");
  if (channels != 1 && channels != 3) fail("nsvq fd-net train: --channels must be 1 or 3");
  Dataset train = dataset_load(spec, "train", size, channels);
  if (train.num_classes < 2)
    fail("fd-net needs a labelled dataset: %s has no class labels (folder data needs one subfolder per class)",
         spec.c_str());
  dataset_truncate(train, a.i64("n-train"));
  Dataset test = dataset_load(spec, "test", size, channels);
  std::string out = a.given("out") ? a.str("out") : "fdnet-" + train.name + ".safetensors";
  std::filesystem::path parent = std::filesystem::path(out).parent_path();
  if (!parent.empty() && !std::filesystem::is_directory(parent))
    fail("nsvq fd-net train: output folder %s does not exist", parent.string().c_str());

  FdNetModel m = fdnet_train(tc, train, test, be);
  fdnet_save(out, *m.store, *m.net, m.info);
  printf("final test accuracy %.4f; saved %s (fd_proxy features, %d-d; not comparable to published rFID)\n",
         m.info.test_accuracy, out.c_str(), m.info.cfg.feature_dim);
  return 0;
}

int fdnet_info_cmd(int argc, char** argv, int first) {
  Args a("fd-net info", "Prints the metadata of a saved fd-net file.", {}, argc, argv, first);
  if (a.positional().size() != 1) fail("usage: nsvq fd-net info FILE");
  const std::string& path = a.positional()[0];
  FdNetInfo i = fdnet_read_info(path);
  printf("%s: fd-net trained on %s, %d channels at %dx%d, %d classes, width %d, %d-d features, test accuracy %.4f\n",
         path.c_str(), i.dataset.c_str(), i.cfg.in_channels, i.cfg.image_size, i.cfg.image_size, i.cfg.num_classes,
         i.cfg.width, i.cfg.feature_dim, i.test_accuracy);
  return 0;
}
}  // namespace

int cmd_fdnet(int argc, char** argv, int first) {
  std::string sub = first < argc ? argv[first] : "";
  if (sub == "train") return fdnet_train_cmd(argc, argv, first + 1);
  if (sub == "info") return fdnet_info_cmd(argc, argv, first + 1);
  if (sub == "--help" || sub == "-h" || sub == "help") {
    printf("%s", FDNET_USAGE);
    return 0;
  }
  if (sub.empty()) fail("missing subcommand: nsvq fd-net train|info (see nsvq fd-net --help)");
  fail("unknown subcommand '%s': nsvq fd-net train|info (see nsvq fd-net --help)", sub.c_str());
}

}  // namespace nsvq
