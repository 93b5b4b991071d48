// tools/cmd_export.cpp — `nsvq export-images`: writes images of a dataset split as PNG files (as the
// loader sees them: centre crops at the model size), to look at the data or to feed `nsvq tokenize`.
#include <cstdio>
#include <filesystem>
#include "engine/tensor.h"
#include "train/data.h"
#include "train/image_io.h"
#include "tools/args.h"
#include "tools/commands.h"

namespace nsvq {

int cmd_export_images(int argc, char** argv, int first) {
  Args a("export-images", "Writes dataset images as PNGs: DIR/00000.png, ...",
         {{"data", "", "fmnist", "fmnist | cifar10:DIR | folder:DIR"}, {"split", "", "test", "train | test"},
          {"start", "", "0", "first image"}, {"n", "", "16", "images"}, {"size", "", "32", "folder datasets: square size"},
          {"channels", "", "3", "folder datasets: 1 or 3"}, {"output", "o", "", "folder to write"}},
         argc, argv, first);
  if (a.str("output").empty()) fail("nsvq export-images: -o DIR is required");
  Dataset d = dataset_load(a.str("data"), a.str("split"), a.i64("size"), (int)a.i64("channels"));
  int64_t s0 = a.i64("start"), n = a.i64("n");
  if (s0 < 0 || n < 0 || s0 + n > d.size())
    fail("nsvq export-images: images %lld..%lld requested, %s %s has %lld", (long long)s0, (long long)(s0 + n - 1),
         a.str("data").c_str(), a.str("split").c_str(), (long long)d.size());
  std::filesystem::create_directories(a.str("output"));
  std::vector<float> x((size_t)(d.C * d.S * d.S));
  for (int64_t i = 0; i < n; i++) {
    dataset_sample(d, s0 + i, x.data(), false, 0);
    char name[32];
    snprintf(name, sizeof name, "/%05lld.png", (long long)i);
    image_write_png(a.str("output") + name, image_from_float(x.data(), d.C, d.S, d.S));
  }
  printf("export-images: %lld images -> %s\n", (long long)n, a.str("output").c_str());
  return 0;
}

}  // namespace nsvq
