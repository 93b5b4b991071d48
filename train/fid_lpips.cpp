// train/fid_lpips.cpp — FID features and LPIPS distances on host images (see train/fid_lpips.h).
#include "train/fid_lpips.h"
#include "models/inception_fid.h"
#include "models/lpips.h"

namespace nsvq {

namespace {

// The float of each uint8 value as the upstream code computes it: torchvision's ToTensor (u8 / 255 in
// float) for pytorch-fid, lpips' im2tensor (u8 / 127.5 - 1 in double, then float) for LPIPS.
struct U8Map {
  float v[256];
  explicit U8Map(bool lpips) {
    for (int i = 0; i < 256; i++) v[i] = lpips ? (float)((double)i / 127.5 - 1.0) : (float)i / 255.0f;
  }
};
const U8Map FID_MAP(false), LPIPS_MAP(true);

// uint8 [n, C, H, W] -> float [n, 3, H, W] through the map (C = 1: the channel repeated)
void u8_to_rgb(const uint8_t* x, int64_t n, int64_t C, int64_t HW, const U8Map& m, float* out) {
  if (C != 1 && C != 3) fail("images with %lld channels: need 1 (gray) or 3 (RGB)", (long long)C);
  for (int64_t i = 0; i < n; i++)
    for (int64_t c = 0; c < 3; c++) {
      const uint8_t* s = x + (i * C + (C == 1 ? 0 : c)) * HW;
      float* d = out + (i * 3 + c) * HW;
      for (int64_t j = 0; j < HW; j++) d[j] = m.v[s[j]];
    }
}

std::vector<uint8_t> rounded(const float* x, int64_t n) {
  std::vector<uint8_t> u((size_t)n);
  for (int64_t i = 0; i < n; i++) u[(size_t)i] = to_uint8(x[i]);
  return u;
}

// A network with its weights and its eval graphs, one per batch shape (B, H, W) — a few at most (image
// folders of mixed sizes). run() records a graph with `record(g, inputs)` the first time a shape is seen;
// inputs are [B, 3, H, W], the output one tensor.
template <class Model, int INPUTS>
struct EvalNet {
  struct EvalGraph {
    std::unique_ptr<Graph> g;
    Tensor* in[INPUTS] = {};
    Tensor* out = nullptr;
  };
  Backend* be;
  int64_t batch;
  Store st;
  Model net;
  std::map<std::tuple<int64_t, int64_t, int64_t>, std::unique_ptr<EvalGraph>> graphs;
  EvalNet(const RawWeights& w, Backend* b, int64_t batch_, const char* what) : be(b), batch(batch_), st(b), net(st, w) {
    if (batch < 1) fail("%s: batch must be >= 1", what);
  }
  template <class R>
  std::vector<float> run(R record, const std::vector<float>* const (&xs)[INPUTS], int64_t B, int64_t H, int64_t W) {
    std::unique_ptr<EvalGraph>& eg = graphs[std::make_tuple(B, H, W)];
    if (!eg) {
      if (graphs.size() > 4) {  // keep this shape's (empty) slot, drop the others
        for (auto it = graphs.begin(); it != graphs.end();) it = it->second ? graphs.erase(it) : std::next(it);
      }
      eg = std::make_unique<EvalGraph>();
      eg->g = std::make_unique<Graph>(be);
      for (int i = 0; i < INPUTS; i++) eg->in[i] = eg->g->input(DType::f32, {B, 3, H, W}, "x" + std::to_string(i));
      eg->out = record(*eg->g, eg->in);
      eg->g->mark_output(eg->out);
      eg->g->plan();
    }
    for (int i = 0; i < INPUTS; i++) eg->g->set_f32(eg->in[i], *xs[i]);
    eg->g->compute();
    return eg->g->get_f32(eg->out);
  }
};

}  // namespace

// ------------------------------------------------------------------------------------------- FID

struct FidFeatures::Net : EvalNet<InceptionFid, 1> {
  using EvalNet::EvalNet;
};

FidFeatures::FidFeatures(const RawWeights& w, Backend* be, int64_t batch)
    : net_(std::make_unique<Net>(w, be, batch, "FID")) {}
FidFeatures::FidFeatures(const std::string& weights, Backend* be, int64_t batch)
    : FidFeatures(load_pretrained(weights, InceptionFid::format(), InceptionFid::spec(), "--fid-weights", "inception"), be,
                  batch) {}
FidFeatures::~FidFeatures() = default;
int64_t FidFeatures::dim() { return InceptionFid::FEATURES; }

std::vector<float> FidFeatures::extract_u8(const uint8_t* x, int64_t n, int64_t C, int64_t H, int64_t W) {
  if (n < 0 || H < 1 || W < 1) fail("FID: bad image batch (%lld images of %lldx%lld)", (long long)n, (long long)W, (long long)H);
  const int64_t F = dim();
  std::vector<float> out((size_t)(n * F)), xb;
  for (int64_t s = 0; s < n; s += net_->batch) {
    const int64_t B = std::min(net_->batch, n - s);
    xb.resize((size_t)(B * 3 * H * W));
    u8_to_rgb(x + s * C * H * W, B, C, H * W, FID_MAP, xb.data());
    std::vector<float> f = net_->run([&](Graph& g, Tensor* const* in) { return net_->net.features(g, in[0]); }, {&xb}, B,
                                     H, W);
    std::copy(f.begin(), f.end(), out.begin() + s * F);
  }
  return out;
}

void FidFeatures::accumulate(FeatureStats& stats, const float* x, int64_t n, int64_t C, int64_t S) {
  if (stats.dim() != dim()) fail("FID: feature statistics of dimension %lld, need %lld", (long long)stats.dim(), (long long)dim());
  const int64_t per = C * S * S;
  for (int64_t s = 0; s < n; s += net_->batch) {
    const int64_t B = std::min(net_->batch, n - s);
    std::vector<uint8_t> u = rounded(x + s * per, B * per);
    std::vector<float> f = extract_u8(u.data(), B, C, S, S);
    stats.add(f.data(), B);
  }
}

// ----------------------------------------------------------------------------------------- LPIPS

struct LpipsMetric::Net : EvalNet<LpipsVgg, 2> {
  using EvalNet::EvalNet;
};

LpipsMetric::LpipsMetric(const RawWeights& w, Backend* be, int64_t batch)
    : net_(std::make_unique<Net>(w, be, batch, "LPIPS")) {}
LpipsMetric::LpipsMetric(const std::string& weights, Backend* be, int64_t batch)
    : LpipsMetric(load_pretrained(weights, LpipsVgg::format(), LpipsVgg::spec(), "--lpips-weights", "lpips"), be, batch) {}
LpipsMetric::~LpipsMetric() = default;

std::vector<double> LpipsMetric::distances_u8(const uint8_t* a, const uint8_t* b, int64_t n, int64_t C, int64_t H,
                                              int64_t W) {
  std::vector<double> out;
  std::vector<float> ab, bb;
  const int64_t per = C * H * W;
  for (int64_t s = 0; s < n; s += net_->batch) {
    const int64_t B = std::min(net_->batch, n - s);
    ab.resize((size_t)(B * 3 * H * W));
    bb.resize(ab.size());
    u8_to_rgb(a + s * per, B, C, H * W, LPIPS_MAP, ab.data());
    u8_to_rgb(b + s * per, B, C, H * W, LPIPS_MAP, bb.data());
    for (float d : net_->run([&](Graph& g, Tensor* const* in) { return net_->net.distance(g, in[0], in[1]); },
                             {&ab, &bb}, B, H, W))
      out.push_back(d);
  }
  return out;
}

std::vector<double> LpipsMetric::distances(const float* a, const float* b, int64_t n, int64_t C, int64_t H, int64_t W) {
  std::vector<uint8_t> ua = rounded(a, n * C * H * W), ub = rounded(b, n * C * H * W);
  return distances_u8(ua.data(), ub.data(), n, C, H, W);
}

LpipsLoss::LpipsLoss(const std::string& weights, Backend* be) : store(std::make_unique<Store>(be)) {
  net = std::make_unique<LpipsVgg>(
      *store, load_pretrained(weights, LpipsVgg::format(), LpipsVgg::spec(), "--lpips-weights", "lpips"));
}
LpipsLoss::~LpipsLoss() = default;

}  // namespace nsvq
