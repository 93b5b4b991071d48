// train/data.cpp — Fashion-MNIST, CIFAR-10 binary and image-folder datasets, sample extraction and
// the prefetching, deterministic batch loader.
#include "train/data.h"
#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <numeric>
#include "engine/rng.h"
#include "engine/tensor.h"
#include "train/fmnist.h"
#include "train/image_io.h"

namespace nsvq {

namespace fs = std::filesystem;

namespace {
void add_image(Dataset& d, const uint8_t* px, int64_t h, int64_t w, int32_t label) {
  d.off.push_back((int64_t)d.px.size());
  d.h.push_back(h);
  d.w.push_back(w);
  d.px.insert(d.px.end(), px, px + d.C * h * w);
  d.labels.push_back(label);
}

Dataset load_fmnist(const std::string& dir, const std::string& split) {
  FmnistSplit s = fmnist_load(dir, split == "train" ? "train" : "t10k");
  Dataset d;
  d.name = "fmnist";
  d.C = 1;
  d.S = 32;
  d.num_classes = 10;
  int64_t R = s.images.rows, Cc = s.images.cols;
  if (R > 32 || Cc > 32) fail("%s: images of %lldx%lld do not fit 32x32", dir.c_str(), (long long)R, (long long)Cc);
  std::vector<uint8_t> img(32 * 32);
  int64_t py = (32 - R) / 2, px = (32 - Cc) / 2;
  for (int64_t i = 0; i < s.images.n; i++) {
    std::fill(img.begin(), img.end(), 0);  // background value of Fashion-MNIST
    const uint8_t* src = s.images.pixels.data() + i * R * Cc;
    for (int64_t y = 0; y < R; y++) std::copy(src + y * Cc, src + (y + 1) * Cc, img.data() + (y + py) * 32 + px);
    add_image(d, img.data(), 32, 32, s.labels[i]);
  }
  return d;
}

Dataset load_cifar10(const std::string& dir, const std::string& split) {
  std::vector<std::string> files;
  if (split == "train")
    for (int i = 1; i <= 5; i++) files.push_back(dir + "/data_batch_" + std::to_string(i) + ".bin");
  else
    files.push_back(dir + "/test_batch.bin");
  Dataset d;
  d.name = "cifar10";
  d.C = 3;
  d.S = 32;
  d.num_classes = 10;
  const int64_t REC = 1 + 3 * 32 * 32;
  std::vector<uint8_t> buf;
  for (const std::string& f : files) {
    std::ifstream in(f, std::ios::binary);
    if (!in) {
      if (fs::exists(f + ".xz")) fail("%s: missing; found %s.xz — decompress it first (xz -dk %s.xz)", f.c_str(), f.c_str(), f.c_str());
      fail("%s: cannot open", f.c_str());
    }
    buf.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
    if (buf.empty() || buf.size() % REC)
      fail("%s: %zu bytes is not a whole number of CIFAR-10 records (%lld bytes each)", f.c_str(), buf.size(), (long long)REC);
    for (size_t r = 0; r < buf.size() / REC; r++) {
      const uint8_t* rec = buf.data() + r * REC;
      if (rec[0] > 9) fail("%s: record %zu has label %d (expected 0..9)", f.c_str(), r, rec[0]);
      add_image(d, rec + 1, 32, 32, rec[0]);
    }
  }
  return d;
}

bool is_image_name(const fs::path& p) {
  std::string e = p.extension().string();
  std::transform(e.begin(), e.end(), e.begin(), ::tolower);
  return e == ".png" || e == ".jpg" || e == ".jpeg" || e == ".bmp" || e == ".tga" || e == ".gif";
}

Dataset load_folder(const std::string& root, const std::string& split, int64_t size, int channels) {
  fs::path dir = root;
  if (!fs::is_directory(dir)) fail("%s: not a folder", root.c_str());
  if (fs::is_directory(dir / split)) dir /= split;
  std::vector<fs::path> paths;
  for (const std::string& f : list_image_files(dir.string())) paths.push_back(f);
  if (paths.empty()) fail("%s: no image files (png, jpg, jpeg, bmp, tga, gif) found", dir.string().c_str());
  // classes: the first-level subfolders, when every image sits in one
  std::map<std::string, int32_t> classes;
  bool labelled = true;
  for (const fs::path& p : paths) {
    fs::path rel = fs::relative(p, dir);
    if (rel.has_parent_path()) classes.emplace(rel.begin()->string(), 0);
    else labelled = false;
  }
  int32_t k = 0;
  for (auto& c : classes) c.second = k++;
  Dataset d;
  d.name = "folder";
  d.C = channels;
  d.S = size;
  d.num_classes = labelled ? (int)classes.size() : 0;
  for (const fs::path& p : paths) {
    try {
      Image im = image_read(p.string(), channels);
      int64_t h = im.H, w = im.W;
      if (h <= w) w = std::max<int64_t>(size, (w * size + h / 2) / h), h = size;
      else h = std::max<int64_t>(size, (h * size + w / 2) / w), w = size;
      Image r = image_resize(im, h, w);
      int32_t label = labelled ? classes[fs::relative(p, dir).begin()->string()] : -1;
      add_image(d, r.px.data(), h, w, label);
    } catch (const Error& e) {
      fprintf(stderr, "warning: skipping %s\n", e.what());
      d.skipped.push_back(p.string());
    }
  }
  if (d.size() == 0) fail("%s: none of the %zu image files could be read", dir.string().c_str(), paths.size());
  if (!d.skipped.empty()) fprintf(stderr, "warning: %zu unreadable image files skipped in %s\n", d.skipped.size(), dir.string().c_str());
  return d;
}
}  // namespace

std::vector<std::string> list_image_files(const std::string& dir) {
  std::vector<fs::path> paths;
  for (const auto& e : fs::recursive_directory_iterator(dir, fs::directory_options::skip_permission_denied))
    if (e.is_regular_file() && is_image_name(e.path())) paths.push_back(e.path());
  std::sort(paths.begin(), paths.end());
  std::vector<std::string> out;
  for (const fs::path& p : paths) out.push_back(p.string());
  return out;
}

void dataset_truncate(Dataset& d, int64_t n) {
  if (n <= 0 || n >= d.size()) return;
  d.h.resize((size_t)n);
  d.w.resize((size_t)n);
  d.labels.resize((size_t)n);
  const size_t end = (size_t)(d.off[(size_t)n - 1] + d.C * d.h[(size_t)n - 1] * d.w[(size_t)n - 1]);
  d.off.resize((size_t)n);
  d.px.resize(end);
  d.px.shrink_to_fit();
}

Dataset dataset_load(const std::string& spec, const std::string& split, int64_t size, int channels) {
  if (split != "train" && split != "test") fail("dataset: split must be train or test, got '%s'", split.c_str());
  std::string kind = spec, arg;
  size_t colon = spec.find(':');
  if (colon != std::string::npos) {
    kind = spec.substr(0, colon);
    arg = spec.substr(colon + 1);
  }
  if (kind == "fmnist") return load_fmnist(arg.empty() ? FMNIST_DEFAULT_DIR : arg, split);
  if (kind == "cifar10") {
    if (arg.empty()) fail("--data cifar10 needs a folder: cifar10:DIR");
    return load_cifar10(arg, split);
  }
  if (kind == "folder") {
    if (arg.empty()) fail("--data folder needs a folder: folder:DIR");
    if (size < 8) fail("dataset: image size %lld too small", (long long)size);
    return load_folder(arg, split, size, channels);
  }
  fail("unknown dataset '%s' (expected fmnist, cifar10:DIR or folder:DIR)", spec.c_str());
}

void dataset_sample(const Dataset& d, int64_t i, float* x, bool augment, uint64_t pick) {
  int64_t h = d.h[i], w = d.w[i], S = d.S;
  int64_t y0 = (h - S) / 2, x0 = (w - S) / 2;
  bool flip = false;
  if (augment) {
    y0 = (int64_t)(pick % (uint64_t)(h - S + 1));
    x0 = (int64_t)((pick >> 21) % (uint64_t)(w - S + 1));
    flip = (pick >> 42) & 1;
  }
  const uint8_t* src = d.px.data() + d.off[i];
  for (int64_t c = 0; c < d.C; c++)
    for (int64_t y = 0; y < S; y++) {
      const uint8_t* row = src + (c * h + y + y0) * w + x0;
      float* dst = x + (c * S + y) * S;
      for (int64_t xx = 0; xx < S; xx++) dst[xx] = row[flip ? S - 1 - xx : xx] * (2.0f / 255.0f) - 1.0f;
    }
}

// ------------------------------------------------------------------------------------ loader

BatchLoader::BatchLoader(const Dataset& d, int64_t batch, uint64_t seed, bool shuffle, bool augment)
    : d_(d), B_(batch), seed_(seed), shuffle_(shuffle), augment_(augment) {
  if (batch < 1 || batch > d.size())
    fail("batch size %lld does not fit a dataset of %lld images", (long long)batch, (long long)d.size());
  xbuf_.resize((size_t)(B_ * d.C * d.S * d.S));
  ybuf_.resize((size_t)B_);
  th_ = std::thread([this] { worker(); });
  start_prefetch(pos_);
}

BatchLoader::~BatchLoader() {
  {
    std::lock_guard<std::mutex> l(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  th_.join();
}

void BatchLoader::order_for(int64_t epoch, std::vector<int32_t>& ord) const {
  ord.resize((size_t)d_.size());
  std::iota(ord.begin(), ord.end(), 0);
  if (!shuffle_) return;
  Rng r(seed_, 0x10000u + (uint32_t)epoch);
  for (int64_t i = (int64_t)ord.size() - 1; i > 0; i--) std::swap(ord[i], ord[r.below((uint32_t)i + 1)]);
}

void BatchLoader::fill(Pos p, float* x, int32_t* y) {
  if (ord_epoch_ != p.epoch) {  // only the worker thread gets here
    order_for(p.epoch, ord_);
    ord_epoch_ = p.epoch;
  }
  const std::vector<int32_t>& ord = ord_;
  int64_t per = d_.C * d_.S * d_.S;
  for (int64_t b = 0; b < B_; b++) {
    int64_t pos = p.index + b, i = ord[pos];
    Philox4 h = philox4x32((uint32_t)pos, (uint32_t)p.epoch, 0x6461u, 0, (uint32_t)seed_, (uint32_t)(seed_ >> 32));
    dataset_sample(d_, i, x + b * per, augment_, (uint64_t)h.v[0] | (uint64_t)h.v[1] << 32);
    y[b] = d_.labels[i];
  }
}

void BatchLoader::worker() {
  std::unique_lock<std::mutex> l(mu_);
  for (;;) {
    cv_.wait(l, [this] { return stop_ || want_; });
    if (stop_) return;
    Pos p = want_pos_;
    want_ = false;
    l.unlock();
    std::string err;
    try {
      fill(p, xbuf_.data(), ybuf_.data());
    } catch (const std::exception& e) {
      err = e.what();
    }
    l.lock();
    error_ = err;
    ready_ = true;
    cv_.notify_all();
  }
}

void BatchLoader::start_prefetch(Pos p) {
  std::lock_guard<std::mutex> l(mu_);
  want_pos_ = p;
  want_ = true;
  ready_ = false;
  cv_.notify_all();
}

void BatchLoader::next(float* x, int32_t* labels) {
  {
    std::unique_lock<std::mutex> l(mu_);
    cv_.wait(l, [this] { return ready_; });
    if (!error_.empty()) fail("data loader: %s", error_.c_str());
    std::copy(xbuf_.begin(), xbuf_.end(), x);
    std::copy(ybuf_.begin(), ybuf_.end(), labels);
  }
  pos_.index += B_;
  if (pos_.index + B_ > d_.size()) pos_ = {pos_.epoch + 1, 0};
  start_prefetch(pos_);
}

void BatchLoader::seek(Pos p) {
  if (p.epoch < 0 || p.index < 0 || p.index + B_ > d_.size())
    fail("data loader: cannot resume at epoch %lld index %lld with batch %lld of %lld images", (long long)p.epoch,
         (long long)p.index, (long long)B_, (long long)d_.size());
  {  // wait for the batch in flight, then ask for the new one
    std::unique_lock<std::mutex> l(mu_);
    cv_.wait(l, [this] { return ready_; });
  }
  pos_ = p;
  start_prefetch(pos_);
}

}  // namespace nsvq
