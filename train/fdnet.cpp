// train/fdnet.cpp — the fd-net (method.md §5.5): network, save/load with validated metadata,
// training loop, accuracy, the batched feature extractor and fd_proxy. Shapes: see train/fdnet.h.
#include "train/fdnet.h"
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <numeric>
#include "models/safetensors.h"
#include "ops/optim.h"

namespace nsvq {

static const char* FDNET_FORMAT = "nsvq-fdnet";
static const int FDNET_VERSION = 1;

void fdnet_config_check(const FdNetConfig& c) {
  if (c.in_channels < 1 || c.in_channels > 4) fail("fd-net: in_channels %d out of range 1..4", c.in_channels);
  if (c.num_classes < 2) fail("fd-net: num_classes %d must be >= 2", c.num_classes);
  if (c.feature_dim < 2 || c.feature_dim > 4096) fail("fd-net: feature_dim %d out of range 2..4096", c.feature_dim);
  if (c.width < 1 || c.width > 1024) fail("fd-net: width %d out of range 1..1024", c.width);
  if (c.groups < 1 || c.width % c.groups) fail("fd-net: groups %d must divide width %d", c.groups, c.width);
  if (c.image_size < 8 || c.image_size % 8) fail("fd-net: image_size %d must be a multiple of 8", c.image_size);
}

// ------------------------------------------------------------------------------------ network

FdNet::FdNet(Store& st, const FdNetConfig& cfg, uint64_t seed) : cfg_(cfg) {
  fdnet_config_check(cfg);
  ParamSet ps(st, seed);
  int64_t w = cfg.width;
  // no conv bias before a GroupNorm: the norm's own bias takes its place
  c1_ = Conv2d(ps, "conv1", cfg.in_channels, w, 3, 1, 1, false);
  n1_ = NormAffine(ps, "norm1", w);
  c2_ = Conv2d(ps, "conv2", w, 2 * w, 3, 2, 1, false);
  n2_ = NormAffine(ps, "norm2", 2 * w);
  c3_ = Conv2d(ps, "conv3", 2 * w, 4 * w, 3, 2, 1, false);
  n3_ = NormAffine(ps, "norm3", 4 * w);
  c4_ = Conv2d(ps, "conv4", 4 * w, cfg.feature_dim, 3, 2, 1);
  fc_ = Linear(ps, "fc", cfg.feature_dim, cfg.num_classes);
}

std::vector<Tensor*> FdNet::tensors() const {
  return {c1_.w, n1_.w, n1_.b, c2_.w, n2_.w, n2_.b, c3_.w, n3_.w, n3_.b, c4_.w, c4_.b, fc_.w, fc_.b};
}

Tensor* FdNet::features(Graph& g, Tensor* x) const {
  if (x->ndim != 4 || x->ne[2] != x->ne[3])
    fail("fd-net: input must be [B, C, S, S] images, got %s", Shape(std::vector<int64_t>(x->ne, x->ne + x->ndim)).str().c_str());
  if (x->ne[1] != cfg_.in_channels)
    fail("fd-net: input has %lld channels but the network expects %d (it was trained on %d-channel images)",
         (long long)x->ne[1], cfg_.in_channels, cfg_.in_channels);
  if (x->ne[2] != cfg_.image_size)
    fail("fd-net: input is %lldx%lld but the network was trained at %dx%d", (long long)x->ne[2], (long long)x->ne[3],
         cfg_.image_size, cfg_.image_size);
  const int G = cfg_.groups;
  const float eps = 1e-5f;
  // GroupNorm with the SiLU fused in (one pass); ReLU before the pooled features
  Tensor* h = group_norm(g, c1_.forward(g, x), n1_.w, n1_.b, G, eps, true);      // [B, w, S, S]
  h = group_norm(g, c2_.forward(g, h), n2_.w, n2_.b, G, eps, true);               // [B, 2w, S/2, S/2]
  h = group_norm(g, c3_.forward(g, h), n3_.w, n3_.b, G, eps, true);               // [B, 4w, S/4, S/4]
  h = relu(g, c4_.forward(g, h));                                                 // [B, F, S/8, S/8]
  return mean(g, h, {2, 3});                                                      // [B, F]
}

Tensor* FdNet::logits(Graph& g, Tensor* feats) const { return fc_.forward(g, feats); }

// ------------------------------------------------------------------------------------ files

void fdnet_save(const std::string& path, const Store& st, const FdNet& net, const FdNetInfo& info) {
  const FdNetConfig& c = net.config();
  char acc[32];
  snprintf(acc, sizeof acc, "%.6f", info.test_accuracy);
  std::map<std::string, std::string> meta = {
      {"format", FDNET_FORMAT},
      {"version", std::to_string(FDNET_VERSION)},
      {"in_channels", std::to_string(c.in_channels)},
      {"num_classes", std::to_string(c.num_classes)},
      {"feature_dim", std::to_string(c.feature_dim)},
      {"width", std::to_string(c.width)},
      {"groups", std::to_string(c.groups)},
      {"image_size", std::to_string(c.image_size)},
      {"dataset", info.dataset},
      {"test_accuracy", acc},
      {"note", "fd_proxy features (penultimate layer); not comparable to Inception-v3 rFID"},
  };
  save_tensors(st, path, net.tensors(), meta, 3);
}

namespace {
int meta_int(const std::map<std::string, std::string>& m, const std::string& path, const char* key) {
  auto it = m.find(key);
  if (it == m.end()) fail("fd-net %s: metadata '%s' is missing", path.c_str(), key);
  const char* s = it->second.c_str();
  char* end = nullptr;
  long v = std::strtol(s, &end, 10);
  if (*s == 0 || *end != 0 || v < -1000000 || v > 1000000)
    fail("fd-net %s: metadata '%s' is not an integer: '%s'", path.c_str(), key, s);
  return (int)v;
}
}  // namespace

static FdNetInfo info_from_metadata(const std::map<std::string, std::string>& m, const std::string& path) {
  auto f = m.find("format");
  if (f == m.end() || f->second != FDNET_FORMAT)
    fail("fd-net %s: not an fd-net file (metadata 'format' is %s)", path.c_str(),
         f == m.end() ? "missing" : ("'" + f->second + "'").c_str());
  int ver = meta_int(m, path, "version");
  if (ver != FDNET_VERSION) fail("fd-net %s: version %d is not supported (expected %d)", path.c_str(), ver, FDNET_VERSION);
  FdNetInfo info;
  info.cfg.in_channels = meta_int(m, path, "in_channels");
  info.cfg.num_classes = meta_int(m, path, "num_classes");
  info.cfg.feature_dim = meta_int(m, path, "feature_dim");
  info.cfg.width = meta_int(m, path, "width");
  info.cfg.groups = meta_int(m, path, "groups");
  info.cfg.image_size = meta_int(m, path, "image_size");
  try {
    fdnet_config_check(info.cfg);
  } catch (const Error& e) {
    fail("%s (in %s)", e.what(), path.c_str());
  }
  auto d = m.find("dataset");
  info.dataset = d == m.end() ? "" : d->second;
  auto a = m.find("test_accuracy");
  info.test_accuracy = a == m.end() ? -1.0 : std::atof(a->second.c_str());
  return info;
}

FdNetInfo fdnet_read_info(const std::string& path) { return info_from_metadata(safetensors_read(path).metadata, path); }

FdNetModel fdnet_load(const std::string& path, Backend* be) {
  FdNetModel m;
  m.info = fdnet_read_info(path);
  m.store = std::make_unique<Store>(be);
  m.net = std::make_unique<FdNet>(*m.store, m.info.cfg, 0);
  load_tensors(*m.store, path, m.net->tensors(), /*strict=*/true);
  return m;
}

// ------------------------------------------------------------------------------------ training

double fdnet_accuracy(const FdNet& net, const Dataset& d, Backend* be) {
  if (d.size() == 0) fail("fd-net: empty evaluation set");
  const int64_t EB = std::min<int64_t>(500, d.size()), per = d.C * d.S * d.S;
  Graph g(be);
  Tensor* x = g.input(DType::f32, {EB, d.C, d.S, d.S}, "x");
  Tensor* pred = argmax(g, net.logits(g, net.features(g, x)), 1);
  g.mark_output(pred);
  std::vector<float> xb((size_t)(EB * per), 0.0f);
  int64_t correct = 0;
  for (int64_t s = 0; s < d.size(); s += EB) {
    int64_t nb = std::min(EB, d.size() - s);  // a last partial batch is zero-padded
    for (int64_t i = 0; i < nb; i++) dataset_sample(d, s + i, xb.data() + i * per, false, 0);
    g.set_f32(x, xb);
    g.compute();
    std::vector<int32_t> p = g.get_i32(pred);
    for (int64_t i = 0; i < nb; i++) correct += p[(size_t)i] == d.labels[(size_t)(s + i)];
  }
  return (double)correct / (double)d.size();
}

FdNetModel fdnet_train(const FdTrainConfig& tc, const Dataset& train, const Dataset& test, Backend* be) {
  if (train.num_classes < 2 || train.size() == 0 || train.labels.empty() || train.labels[0] < 0)
    fail("fd-net needs a labelled dataset with >= 2 classes: %s has %d (folder data needs one subfolder per class)",
         train.name.c_str(), train.num_classes);
  if (test.C != train.C || test.S != train.S || test.num_classes != train.num_classes)
    fail("fd-net: the test split (%lldx%lld, %d classes) does not match the train split (%lldx%lld, %d classes)",
         (long long)test.C, (long long)test.S, test.num_classes, (long long)train.C, (long long)train.S, train.num_classes);
  if (tc.epochs < 1 || tc.batch < 2) fail("fd-net: --epochs must be >= 1 and --batch >= 2");
  FdNetModel m;
  m.info.cfg.in_channels = (int)train.C;
  m.info.cfg.num_classes = train.num_classes;
  m.info.cfg.feature_dim = tc.feature_dim;
  m.info.cfg.width = tc.width;
  m.info.cfg.groups = std::min(8, tc.width);
  while (tc.width % m.info.cfg.groups) m.info.cfg.groups--;
  m.info.cfg.image_size = (int)train.S;
  m.info.dataset = train.name;
  m.store = std::make_unique<Store>(be);
  m.net = std::make_unique<FdNet>(*m.store, m.info.cfg, tc.seed);
  const FdNet& net = *m.net;

  AdamConfig ac;
  ac.lr = (float)tc.lr;
  ac.weight_decay = (float)tc.weight_decay;
  AdamW opt(*m.store, m.store->params(), ac);
  const int64_t B = tc.batch;
  Graph g(be);
  Tensor* x = g.input(DType::f32, {B, train.C, train.S, train.S}, "x");
  Tensor* y = g.input(DType::i32, {B}, "labels");
  Tensor* loss = cross_entropy(g, net.logits(g, net.features(g, x)), y);
  g.mark_loss(loss);
  g.backward(loss);
  opt.append_update(g);
  g.plan();

  BatchLoader loader(train, B, tc.seed, /*shuffle=*/true, tc.augment);
  const int64_t per_epoch = loader.batches_per_epoch();
  int64_t total = tc.epochs * per_epoch;
  if (tc.max_steps > 0) total = std::min(total, tc.max_steps);
  if (!tc.quiet)
    printf("fd-net: %s, %lld train / %lld test images %lldx%lldx%lld, %d classes, %lld params, batch %lld, %lld steps, "
         "device %s\n",
         train.name.c_str(), (long long)train.size(), (long long)test.size(), (long long)train.C, (long long)train.S,
         (long long)train.S, train.num_classes, (long long)count_params(*m.store), (long long)B, (long long)total,
         be->name().c_str());
  fflush(stdout);
  std::vector<float> xb((size_t)(B * train.C * train.S * train.S));
  std::vector<int32_t> yb((size_t)B);
  int64_t step = 0;
  auto t0 = std::chrono::steady_clock::now();
  for (int64_t ep = 0; ep < tc.epochs && step < total; ep++) {
    auto te = std::chrono::steady_clock::now();
    double loss_sum = 0.0;
    int64_t n = 0;
    for (int64_t s = 0; s < per_epoch && step < total; s++, step++) {
      // cosine decay from lr to 0 over all steps
      opt.set_lr(GROUP_GENERATOR, (float)(tc.lr * 0.5 * (1.0 + std::cos(M_PI * (double)step / (double)total))));
      loader.next(xb.data(), yb.data());
      g.set_f32(x, xb);
      g.set_i32(y, yb);
      opt.begin_step(g);
      g.compute();
      float l = g.get_scalar(loss);
      if (!std::isfinite(l)) fail("fd-net: training diverged: loss %f at epoch %lld step %lld", l, (long long)ep, (long long)s);
      loss_sum += l;
      n++;
    }
    double sec = std::chrono::duration<double>(std::chrono::steady_clock::now() - te).count();
    m.info.test_accuracy = fdnet_accuracy(net, test, be);
    if (tc.quiet) continue;
    printf("epoch %lld/%lld  loss %.4f  test accuracy %.4f  %.1f s  %.0f img/s\n", (long long)ep + 1,
           (long long)tc.epochs, loss_sum / (double)n, m.info.test_accuracy, sec, (double)(n * B) / sec);
    fflush(stdout);
  }
  double sec = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  if (!tc.quiet) printf("fd-net: trained in %.1f s\n", sec);
  return m;
}

// ------------------------------------------------------------------------------------ features

struct FdFeatures::EvalGraph {
  Graph g;
  Tensor* x = nullptr;
  Tensor* f = nullptr;
  Tensor* logits = nullptr;
  explicit EvalGraph(Backend* be) : g(be) {}
};

FdFeatures::FdFeatures(const std::string& path, Backend* be, int64_t max_batch)
    : path_(path), be_(be), max_batch_(max_batch), model_(fdnet_load(path, be)) {
  if (max_batch < 1) fail("fd-net: max_batch must be >= 1");
}

FdFeatures::~FdFeatures() = default;

std::vector<float> FdFeatures::extract(const float* x, int64_t n, int64_t C, int64_t S, std::vector<int32_t>* classes) {
  const FdNetConfig& c = model_.info.cfg;
  if (C != c.in_channels)
    fail("fd-net %s: images have %lld channels but the net was trained on %d-channel %s images", path_.c_str(),
         (long long)C, c.in_channels, model_.info.dataset.c_str());
  if (S != c.image_size)
    fail("fd-net %s: images are %lldx%lld but the net was trained at %dx%d", path_.c_str(), (long long)S, (long long)S,
         c.image_size, c.image_size);
  if (n < 0) fail("fd-net: negative image count");
  const int64_t F = c.feature_dim, per = C * S * S;
  std::vector<float> out((size_t)(n * F));
  for (int64_t s = 0; s < n; s += max_batch_) {
    int64_t nb = std::min(max_batch_, n - s);
    std::unique_ptr<EvalGraph>& eg = graphs_[nb];
    if (!eg) {
      eg = std::make_unique<EvalGraph>(be_);
      eg->x = eg->g.input(DType::f32, {nb, C, S, S}, "x");
      eg->f = model_.net->features(eg->g, eg->x);
      eg->logits = model_.net->logits(eg->g, eg->f);
      eg->g.mark_output(eg->f);
      eg->g.mark_output(eg->logits);
      eg->g.plan();
    }
    eg->g.set_f32(eg->x, x + s * per, (size_t)(nb * per));
    eg->g.compute();
    std::vector<float> f = eg->g.get_f32(eg->f);
    std::copy(f.begin(), f.end(), out.begin() + s * F);
    if (classes) {
      std::vector<float> l = eg->g.get_f32(eg->logits);
      const int64_t K = eg->logits->ne[1];
      for (int64_t i = 0; i < nb; i++) {
        const float* li = l.data() + i * K;
        classes->push_back((int32_t)(std::max_element(li, li + K) - li));
      }
    }
  }
  return out;
}

void FdFeatures::accumulate(FeatureStats& stats, const float* x, int64_t n, int64_t C, int64_t S) {
  if (stats.dim() != feature_dim())
    fail("fd-net: feature statistics of dimension %lld cannot take %lld-d fd-net features", (long long)stats.dim(),
         (long long)feature_dim());
  for (int64_t s = 0; s < n; s += max_batch_) {  // chunked so host memory stays bounded
    int64_t nb = std::min(max_batch_, n - s);
    std::vector<float> f = extract(x + s * C * S * S, nb, C, S);
    stats.add(f.data(), nb);
  }
}

double fd_proxy(const FeatureStats& real, const FeatureStats& fake) { return frechet_distance(real, fake, "fd_proxy"); }

double fd_proxy(FdFeatures& fx, const float* real, const float* fake, int64_t n, int64_t C, int64_t S) {
  FeatureStats r(fx.feature_dim()), f(fx.feature_dim());
  fx.accumulate(r, real, n, C, S);
  fx.accumulate(f, fake, n, C, S);
  return fd_proxy(r, f);
}

}  // namespace nsvq
