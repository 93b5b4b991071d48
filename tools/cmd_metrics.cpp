// tools/cmd_metrics.cpp — the standard metrics between image files, with user-supplied weights:
// `nsvq fid --fid-weights W A B` (pytorch-fid's FID of two image sets: folders or single files) and
// `nsvq lpips --lpips-weights W A B` (LPIPS-VGG16 of image pairs: two files, or two folders matched by
// file name). docs/metrics.md says where the weights come from.
#include <cstdio>
#include <filesystem>
#include <memory>
#include "engine/backend.h"
#include "models/json.h"
#include "models/safetensors.h"
#include "train/data.h"
#include "train/fid_lpips.h"
#include "train/image_io.h"
#include "tools/args.h"
#include "tools/commands.h"

namespace nsvq {

namespace fs = std::filesystem;

namespace {

const Opt OPT_DEVICE{"device", "", "cpu", "cpu | cuda | cuda:N"};
const Opt OPT_PRECISION NSVQ_PRECISION_OPTION;
const Opt OPT_THREADS{"threads", "t", "0", "CPU threads (0: all cores)"};

// A folder's image files (sorted), or the file itself.
std::vector<std::string> image_set(const std::string& p, const char* cmd) {
  if (fs::is_directory(p)) {
    std::vector<std::string> v = list_image_files(p);
    if (v.empty()) fail("nsvq %s: %s: no image files (png, jpg, jpeg, bmp, tga, gif)", cmd, p.c_str());
    return v;
  }
  if (!fs::exists(p)) fail("nsvq %s: %s: no such file or folder", cmd, p.c_str());
  return {p};
}

// Runs fn over runs of consecutive images of one size, at most `batch` per run: px [n, 3, H, W].
template <class F>
void for_batches(const std::vector<std::string>& files, int64_t batch, F fn) {
  std::vector<uint8_t> px;
  int64_t n = 0, H = 0, W = 0;
  auto flush = [&] {
    if (n) fn(px.data(), n, H, W);
    px.clear();
    n = 0;
  };
  for (const std::string& f : files) {
    Image im = image_read(f, 3);
    if (n && (im.H != H || im.W != W || n == batch)) flush();
    H = im.H;
    W = im.W;
    px.insert(px.end(), im.px.begin(), im.px.end());
    n++;
  }
  flush();
}

}  // namespace

int cmd_fid(int argc, char** argv, int first) {
  Args a("fid",
         "Frechet Inception Distance between two image sets (folders, searched recursively, or single files), as "
         "pytorch-fid computes it: usage nsvq fid --fid-weights W A B",
         {{"fid-weights", "", "", "InceptionV3-FID weights (tools/convert-weights.py inception; see docs/metrics.md)"},
          {"batch", "", "50", "images per batch"},
          {"save-features", "", "", "also write the pool3 features to this safetensors file (tensors a and b, [n, 2048])"},
          {"json", "", "", "print one JSON object", true}, OPT_DEVICE, OPT_PRECISION, OPT_THREADS},
         argc, argv, first);
  if (a.str("fid-weights").empty()) fail("nsvq fid: --fid-weights FILE is required (see docs/metrics.md)");
  if (a.positional().size() != 2) fail("nsvq fid: expected two image sets (folders or files), got %zu", a.positional().size());
  if (a.i64("batch") < 1) fail("nsvq fid: --batch must be >= 1");
  const std::vector<std::string> sa = image_set(a.positional()[0], "fid"), sb = image_set(a.positional()[1], "fid");
  cpu_set_threads((int)a.i64("threads"));
  FidFeatures fx(a.str("fid-weights"), backend_for(a.str("device"), a.str("precision")), a.i64("batch"));
  const bool keep = !a.str("save-features").empty();
  FeatureStats st_a(FidFeatures::dim()), st_b(FidFeatures::dim());
  std::vector<float> fa, fb;
  for (int s = 0; s < 2; s++)
    for_batches(s ? sb : sa, a.i64("batch"), [&](const uint8_t* px, int64_t n, int64_t H, int64_t W) {
      std::vector<float> f = fx.extract_u8(px, n, 3, H, W);
      (s ? st_b : st_a).add(f.data(), n);
      if (keep) (s ? fb : fa).insert((s ? fb : fa).end(), f.begin(), f.end());
    });
  if (keep)
    safetensors_write(a.str("save-features"),
                      {{"a", DType::f32, {(int64_t)sa.size(), FidFeatures::dim()}, fa.data()},
                       {"b", DType::f32, {(int64_t)sb.size(), FidFeatures::dim()}, fb.data()}},
                      {{"format", "nsvq-fid-features"}});
  const double fid = frechet_distance(st_a, st_b, "fid");
  if (a.flag("json"))
    printf("{\"fid\": %s, \"images_a\": %zu, \"images_b\": %zu}\n", json_number(fid).c_str(), sa.size(), sb.size());
  else
    printf("FID %.4f (%zu vs %zu images)\n", fid, sa.size(), sb.size());
  return 0;
}

int cmd_lpips(int argc, char** argv, int first) {
  Args a("lpips",
         "LPIPS (v0.1, VGG16) between image pairs: two files, or two folders whose images are paired by relative "
         "path: usage nsvq lpips --lpips-weights W A B",
         {{"lpips-weights", "", "", "LPIPS-VGG16 weights (tools/convert-weights.py lpips; see docs/metrics.md)"},
          {"batch", "", "32", "pairs per batch"}, {"json", "", "", "print one JSON object with every distance", true},
          OPT_DEVICE, OPT_PRECISION, OPT_THREADS},
         argc, argv, first);
  if (a.str("lpips-weights").empty()) fail("nsvq lpips: --lpips-weights FILE is required (see docs/metrics.md)");
  if (a.positional().size() != 2) fail("nsvq lpips: expected two images or two folders, got %zu", a.positional().size());
  if (a.i64("batch") < 1) fail("nsvq lpips: --batch must be >= 1");
  const std::string pa = a.positional()[0], pb = a.positional()[1];
  std::vector<std::string> fa = image_set(pa, "lpips"), fb;
  if (fs::is_directory(pa) != fs::is_directory(pb)) fail("nsvq lpips: give two files or two folders");
  if (fs::is_directory(pa)) {
    for (const std::string& f : fa) {
      const fs::path other = fs::path(pb) / fs::relative(f, pa);
      if (!fs::exists(other)) fail("nsvq lpips: %s has no counterpart %s", f.c_str(), other.string().c_str());
      fb.push_back(other.string());
    }
  } else {
    fb = image_set(pb, "lpips");
  }
  cpu_set_threads((int)a.i64("threads"));
  LpipsMetric lp(a.str("lpips-weights"), backend_for(a.str("device"), a.str("precision")), a.i64("batch"));
  std::vector<double> d;
  const int64_t batch = a.i64("batch");
  std::vector<uint8_t> xa, xb;
  for (size_t i = 0; i < fa.size();) {  // runs of pairs of one size
    xa.clear();
    xb.clear();
    int64_t n = 0, H = 0, W = 0;
    for (; i < fa.size() && n < batch; i++, n++) {
      Image ia = image_read(fa[i], 3), ib = image_read(fb[i], 3);
      if (ia.H != ib.H || ia.W != ib.W)
        fail("nsvq lpips: %s is %lldx%lld but %s is %lldx%lld", fa[i].c_str(), (long long)ia.W, (long long)ia.H,
             fb[i].c_str(), (long long)ib.W, (long long)ib.H);
      if (n && (ia.H != H || ia.W != W)) break;
      H = ia.H;
      W = ia.W;
      xa.insert(xa.end(), ia.px.begin(), ia.px.end());
      xb.insert(xb.end(), ib.px.begin(), ib.px.end());
    }
    std::vector<double> r = lp.distances_u8(xa.data(), xb.data(), n, 3, H, W);
    d.insert(d.end(), r.begin(), r.end());
  }
  double mean = 0;
  for (double v : d) mean += v / (double)d.size();
  if (a.flag("json")) {
    std::string s = "{\"pairs\": " + std::to_string(d.size()) + ", \"lpips\": " + json_number(mean) + ", \"distances\": [";
    for (size_t i = 0; i < d.size(); i++) s += (i ? ", " : "") + json_number(d[i]);
    printf("%s]}\n", s.c_str());
  } else {
    printf("LPIPS %.6f (mean of %zu pairs)\n", mean, d.size());
  }
  return 0;
}

}  // namespace nsvq
