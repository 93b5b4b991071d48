// train/tokenizer.cpp — the inference model, its cached evaluation graphs, checkpoint loading for
// inference and the evaluation loop (train/tokenizer.h).
#include "train/tokenizer.h"
#include <algorithm>
#include <cmath>
#include <cstdio>
#include "models/json.h"
#include "models/safetensors.h"
#include "train/fdnet.h"
#include "train/fid_lpips.h"
#include "train/metrics.h"

namespace nsvq {

enum { MODE_RECON = 0, MODE_ENCODE = 1, MODE_DECODE = 2, MODE_DECODE_LATENT = 3, MODE_CODEBOOK = 4 };

struct TokenizerModel::Runner {
  Graph g;
  Tensor *x = nullptr, *idx_in = nullptr, *xr = nullptr, *idx = nullptr, *z = nullptr, *dist = nullptr;
  explicit Runner(Backend* be) : g(be) {}
};

TokenizerModel::TokenizerModel(Store& st, const TrainConfig& cfg, ModelPart part, bool inference)
    : st_(st), cfg_(cfg), vc_(cfg.vqgan_config()) {
  ae_ = std::make_unique<VqganAutoencoder>(st, vc_, (uint64_t)cfg.seed, part);
  quant_ = std::make_unique<Quantizer>(st, cfg.quantizer_config(vc_.embed_dim), "quantize", inference);
}

TokenizerModel::~TokenizerModel() = default;

void TokenizerModel::drop_graphs() { graphs_.clear(); }

std::vector<Tensor*> TokenizerModel::weights() const {
  std::vector<Tensor*> w;
  for (Tensor* t : st_.tensors())
    if (t->has(TF_PARAM) && t->name.rfind("quantize.", 0) != 0) w.push_back(t);  // autoencoder
  for (const char* n : {"embedding.weight", "embedding_proj.weight", "embedding_proj.bias"})
    if (Tensor* t = st_.find(std::string("quantize.") + n)) w.push_back(t);
  return w;
}

TokenizerModel::Runner& TokenizerModel::runner(int mode, int64_t B) {
  auto key = std::make_pair(mode, B);
  auto it = graphs_.find(key);
  if (it != graphs_.end()) return *it->second;
  auto r = std::make_unique<Runner>(st_.backend());
  Graph& g = r->g;
  const int64_t C = vc_.in_channels, R = vc_.resolution, h = grid();
  if (mode == MODE_DECODE) {
    r->idx_in = g.input(DType::i32, {B, h, h}, "indices");
    r->xr = ae_->decode(g, quant_->lookup(g, r->idx_in));
    g.mark_output(r->xr);
  } else if (mode == MODE_CODEBOOK) {  // B = K: the rows of indices 0..K-1 as [1, D, 1, K]
    r->idx_in = g.input(DType::i32, {1, 1, B}, "indices");
    r->z = quant_->lookup(g, r->idx_in);
    g.mark_output(r->z);
  } else if (mode == MODE_DECODE_LATENT) {
    r->x = g.input(DType::f32, {B, dim(), h, h}, "z");
    QuantOut q = quant_->build(g, r->x, false);
    r->idx = q.indices;
    r->xr = ae_->decode(g, q.zq);
    g.mark_output(r->xr);
  } else {
    r->x = g.input(DType::f32, {B, C, R, R}, "x");
    r->z = ae_->encode(g, r->x);
    QuantOut q = quant_->build(g, r->z, false);
    r->idx = q.indices;
    r->dist = vq_min_dist(g, q.search);
    g.mark_output(r->dist);
    g.mark_output(r->z);
    if (mode == MODE_RECON) {
      r->xr = ae_->decode(g, q.zq);
      g.mark_output(r->xr);
    }
  }
  g.plan();
  return *(graphs_[key] = std::move(r));
}

template <class T>
static void copy_out(const std::vector<T>& v, T* dst) {
  std::copy(v.begin(), v.end(), dst);
}

void TokenizerModel::reconstruct(const float* x, int64_t B, float* xr, int32_t* idx, float* z_e, double* qerr) {
  Runner& r = runner(xr ? MODE_RECON : MODE_ENCODE, B);  // no images wanted (the drift probe): no decoder
  r.g.set_f32(r.x, x, (size_t)r.x->numel());
  r.g.compute();
  if (xr) copy_out(r.g.get_f32(r.xr), xr);
  if (idx) copy_out(r.g.get_i32(r.idx), idx);
  if (z_e) copy_out(r.g.get_f32(r.z), z_e);
  if (qerr) {
    std::vector<float> d = r.g.get_f32(r.dist);
    double s = 0;
    for (float v : d) s += v;
    *qerr = s;
  }
}

void TokenizerModel::encode(const float* x, int64_t B, int32_t* idx) {
  Runner& r = runner(MODE_ENCODE, B);
  r.g.set_f32(r.x, x, (size_t)r.x->numel());
  r.g.compute();
  copy_out(r.g.get_i32(r.idx), idx);
}

void TokenizerModel::decode(const int32_t* idx, int64_t B, float* xr) {
  Runner& r = runner(MODE_DECODE, B);
  const int64_t n = r.idx_in->numel();
  for (int64_t i = 0; i < n; i++)
    if (idx[i] < 0 || idx[i] >= cfg_.codes) fail("code index %d out of range (codebook has %lld codes)", idx[i], (long long)cfg_.codes);
  r.g.set_i32(r.idx_in, idx, (size_t)n);
  r.g.compute();
  copy_out(r.g.get_f32(r.xr), xr);
}

void TokenizerModel::decode_latent(const float* z, int64_t B, float* xr, int32_t* idx) {
  Runner& r = runner(MODE_DECODE_LATENT, B);
  r.g.set_f32(r.x, z, (size_t)r.x->numel());
  r.g.compute();
  copy_out(r.g.get_f32(r.xr), xr);
  if (idx) copy_out(r.g.get_i32(r.idx), idx);
}

std::vector<float> TokenizerModel::codebook() {
  const int64_t K = cfg_.codes, D = dim();
  Runner& r = runner(MODE_CODEBOOK, K);
  std::vector<int32_t> ids((size_t)K);
  for (int64_t k = 0; k < K; k++) ids[(size_t)k] = (int32_t)k;
  r.g.set_i32(r.idx_in, ids.data(), ids.size());
  r.g.compute();
  std::vector<float> dk = r.g.get_f32(r.z), e((size_t)(K * D));  // [D, K] -> [K, D]
  for (int64_t d = 0; d < D; d++)
    for (int64_t k = 0; k < K; k++) e[(size_t)(k * D + d)] = dk[(size_t)(d * K + k)];
  drop_graphs();  // a K-sized graph is not worth keeping
  return e;
}

// ------------------------------------------------------------------------------- loading

TrainConfig checkpoint_config(const SafetensorsFile& f) {
  auto cfg_it = f.metadata.find("config");
  auto fmt_it = f.metadata.find("format");
  if (cfg_it == f.metadata.end() || fmt_it == f.metadata.end() || fmt_it->second != "nsvq-tokenizer-1")
    fail("%s: not an nsvq tokenizer checkpoint (no format \"nsvq-tokenizer-1\" and config in its metadata)",
         f.path.c_str());
  return train_config_from_json(cfg_it->second, f.path);
}

LoadedTokenizer tokenizer_load(const SafetensorsFile& f, const TrainConfig& cfg, Backend* be, const std::string& prefix,
                               ModelPart part) {
  // First the model's tensor names and shapes without memory (backend_meta), checked against the
  // file's header: a config the file does not back (a codebook of 2^24 codes, the wrong preset, tensors
  // it lacks) fails here, before anything is allocated.
  {
    Store meta(backend_meta());
    meta.skip_init = true;
    TokenizerModel shapes(meta, cfg, part, true);
    std::vector<std::string> missing, bad;
    for (Tensor* t : shapes.weights()) {
      const SafetensorsEntry* e = f.find(prefix + t->name);
      if (!e) {
        missing.push_back(prefix + t->name);
        continue;
      }
      bool ok = e->dtype == "F32" && e->shape.size() == (size_t)t->ndim;
      for (int d = 0; ok && d < t->ndim; d++) ok = e->shape[(size_t)d] == t->ne[d];
      if (!ok) {
        std::string fs;
        for (size_t d = 0; d < e->shape.size(); d++) fs += (d ? ", " : "") + std::to_string(e->shape[d]);
        bad.push_back(e->name + ": file " + e->dtype + " [" + fs + "], model " + t->shape().str());
      }
    }
    if (!missing.empty()) {
      std::string m;
      for (size_t i = 0; i < missing.size() && i < 8; i++) m += (i ? ", " : "") + missing[i];
      fail("%s: %zu tensors of its model are missing: %s%s", f.path.c_str(), missing.size(), m.c_str(),
           missing.size() > 8 ? ", ..." : "");
    }
    if (!bad.empty())
      fail("%s: %zu tensors do not fit the model its config describes (e.g. %s)", f.path.c_str(), bad.size(), bad[0].c_str());
  }
  LoadedTokenizer L;
  L.path = f.path;
  L.metadata = f.metadata;
  L.store = std::make_unique<Store>(be);
  L.store->skip_init = true;  // every weight is loaded below (all are there: checked above)
  L.model = std::make_unique<TokenizerModel>(*L.store, cfg, part, true);
  L.ema_weights = prefix == "model_ema.";
  load_tensors(*L.store, f, L.model->weights(), false, prefix);
  return L;
}

ModelPart checkpoint_part(const SafetensorsFile& f) {
  auto it = f.metadata.find("part");
  return it == f.metadata.end() ? ModelPart::all : model_part_from_name(it->second);
}

void tokenizer_save(TokenizerModel& m, const std::string& path, const std::map<std::string, std::string>& extra) {
  std::map<std::string, std::string> md = extra;
  md["format"] = "nsvq-tokenizer-1";
  md["nsvq_version"] = NSVQ_VERSION;
  md["config"] = train_config_json(m.config());
  md["part"] = model_part_name(m.autoencoder().part());
  md["vqgan"] = vqgan_config_json(m.vqgan());
  save_tensors(m.store(), path, m.weights(), md);
}

LoadedTokenizer tokenizer_load(const std::string& path, Backend* be, bool use_ema, ModelPart part) {
  SafetensorsFile f = safetensors_open(path);
  TrainConfig cfg = checkpoint_config(f);
  const ModelPart have = checkpoint_part(f);
  if (have != ModelPart::all && have != part)
    fail("%s: an inference file of the %s only; this needs %s (nsvq export --part %s)", path.c_str(),
         model_part_name(have), part == ModelPart::all ? "both halves" : ("the " + std::string(model_part_name(part))).c_str(),
         part == ModelPart::all ? "all" : model_part_name(part));
  bool ema = false;  // the run kept a weight-EMA copy
  for (const SafetensorsEntry& e : f.entries) ema |= use_ema && cfg.weight_ema > 0 && e.name.rfind("model_ema.", 0) == 0;
  return tokenizer_load(f, cfg, be, ema ? "model_ema." : "", part);
}

// ------------------------------------------------------------------------------- evaluation

std::string EvalResult::json() const {
  std::string s = "{\"images\": " + std::to_string(images);
  s += ", \"utilization\": " + json_number(utilization);
  s += ", \"perplexity\": " + json_number(perplexity);
  s += ", \"quant_error\": " + json_number(quant_error);
  s += ", \"psnr\": " + json_number(psnr);
  s += ", \"ssim\": " + json_number(ssim);
  if (fd_proxy >= 0) s += ", \"fd_proxy\": " + json_number(fd_proxy);
  s += ", \"rfid\": " + (rfid >= 0 ? json_number(rfid) : std::string("null"));
  s += ", \"lpips\": " + (lpips >= 0 ? json_number(lpips) : std::string("null"));
  return s + "}";
}

EvalResult tokenizer_evaluate(TokenizerModel& m, const Dataset& d, int64_t n, int64_t batch, FdFeatures* fd,
                              std::vector<float>* recon, int64_t recon_n, FidFeatures* fid, LpipsMetric* lpips) {
  if (d.C != m.channels() || d.S != m.resolution())
    fail("dataset %s has %lldx%lldx%lld images, the model takes %lldx%lldx%lld", d.name.c_str(), (long long)d.C,
         (long long)d.S, (long long)d.S, (long long)m.channels(), (long long)m.resolution(), (long long)m.resolution());
  n = std::min(n, d.size());
  if (n < 1) fail("nothing to evaluate: the dataset has no images");
  EvalResult r;
  r.images = n;
  r.counts.assign((size_t)m.codes(), 0);
  const int64_t C = m.channels(), S = m.resolution(), per = C * S * S, hw = m.grid() * m.grid();
  std::unique_ptr<FeatureStats> fr, ff, ir, ifk;
  if (fd) {
    fr = std::make_unique<FeatureStats>(fd->feature_dim());
    ff = std::make_unique<FeatureStats>(fd->feature_dim());
  }
  if (fid) {
    ir = std::make_unique<FeatureStats>(FidFeatures::dim());
    ifk = std::make_unique<FeatureStats>(FidFeatures::dim());
  }
  double qsum = 0, psnr_sum = 0, ssim_sum = 0, lpips_sum = 0;
  int64_t psnr_n = 0;
  std::vector<float> x, xr;
  std::vector<int32_t> idx;
  std::vector<uint8_t> a((size_t)per), b((size_t)per);
  for (int64_t i0 = 0; i0 < n; i0 += batch) {
    const int64_t B = std::min(batch, n - i0);
    x.resize((size_t)(B * per));
    xr.resize((size_t)(B * per));
    idx.resize((size_t)(B * hw));
    for (int64_t b0 = 0; b0 < B; b0++) dataset_sample(d, i0 + b0, x.data() + b0 * per, false, 0);
    double q = 0;
    m.reconstruct(x.data(), B, xr.data(), idx.data(), nullptr, &q);
    qsum += q;
    for (int32_t k : idx) r.counts[(size_t)k]++;
    for (int64_t b0 = 0; b0 < B; b0++) {
      for (int64_t j = 0; j < per; j++) {
        a[(size_t)j] = to_uint8(x[(size_t)(b0 * per + j)]);
        b[(size_t)j] = to_uint8(xr[(size_t)(b0 * per + j)]);
      }
      double p = psnr_u8(a.data(), b.data(), per);
      if (std::isfinite(p)) {  // identical images (infinite PSNR) are left out of the mean
        psnr_sum += p;
        psnr_n++;
      }
      ssim_sum += ssim_u8(a.data(), b.data(), C, S, S);
    }
    if (fd) {
      fd->accumulate(*fr, x.data(), B, C, S);
      fd->accumulate(*ff, xr.data(), B, C, S);
    }
    if (fid) {
      fid->accumulate(*ir, x.data(), B, C, S);
      fid->accumulate(*ifk, xr.data(), B, C, S);
    }
    if (lpips)
      for (double v : lpips->distances(x.data(), xr.data(), B, C, S, S)) lpips_sum += v;
    if (recon)
      for (int64_t b0 = 0; b0 < B && (int64_t)recon->size() < 2 * recon_n * per; b0++) {
        recon->insert(recon->end(), x.begin() + b0 * per, x.begin() + (b0 + 1) * per);
        recon->insert(recon->end(), xr.begin() + b0 * per, xr.begin() + (b0 + 1) * per);
      }
  }
  r.utilization = codebook_utilization(r.counts);
  r.perplexity = codebook_perplexity(r.counts);
  r.quant_error = qsum / (double)(n * hw) / (double)m.dim();
  r.psnr = psnr_n ? psnr_sum / (double)psnr_n : INFINITY;
  r.ssim = ssim_sum / (double)n;
  if (fd) r.fd_proxy = fd_proxy(*fr, *ff);
  if (fid) r.rfid = frechet_distance(*ir, *ifk, "rfid");
  if (lpips) r.lpips = lpips_sum / (double)n;
  return r;
}

}  // namespace nsvq
