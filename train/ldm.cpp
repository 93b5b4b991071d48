// train/ldm.cpp — latent diffusion: schedule, DDIM, latent cache, DiT trainer, sampler (train/ldm.h).
#include "train/ldm.h"
#include <unistd.h>
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <numeric>
#include "engine/rng.h"
#include "models/json.h"
#include "models/safetensors.h"
#include "ops/optim.h"
#include "train/data.h"
#include "train/image_io.h"
#include "train/report.h"
#include "train/run_util.h"

namespace nsvq {

namespace fs = std::filesystem;

// ------------------------------------------------------------------------------- noise process

DdpmSchedule ddpm_linear(int64_t T, double b0, double b1) {
  if (T < 1 || !(b0 > 0) || !(b1 < 1) || b0 > b1) fail("ddpm: bad linear schedule (T %lld, beta %g..%g)", (long long)T, b0, b1);
  DdpmSchedule s;
  s.T = T;
  s.beta.resize((size_t)T);
  s.alpha_bar.resize((size_t)T);
  double a = std::sqrt(b0), b = std::sqrt(b1), ab = 1.0;
  for (int64_t t = 0; t < T; t++) {
    double r = T == 1 ? a : a + (b - a) * (double)t / (double)(T - 1);
    s.beta[(size_t)t] = r * r;
    ab *= 1.0 - r * r;
    s.alpha_bar[(size_t)t] = ab;
  }
  return s;
}

std::vector<int64_t> ddim_timesteps(int64_t T, int64_t S) {
  if (S < 1 || S > T) fail("ddim: %lld sampling steps for a %lld-step process (need 1..%lld)", (long long)S, (long long)T, (long long)T);
  std::vector<int64_t> ts((size_t)S);
  for (int64_t i = 0; i < S; i++) ts[(size_t)i] = i * T / S;
  return ts;
}

void ddim_step(float* x, const float* eps, int64_t n, double ab, double ab_prev) {
  const double sa = std::sqrt(ab), s1a = std::sqrt(1.0 - ab), sp = std::sqrt(ab_prev), s1p = std::sqrt(1.0 - ab_prev);
  for (int64_t i = 0; i < n; i++) {
    double x0 = ((double)x[i] - s1a * eps[i]) / sa;
    x[i] = (float)(sp * x0 + s1p * eps[i]);
  }
}

// ------------------------------------------------------------------------------- the step graph

DitStep dit_train_step(Graph& g, const Dit& dit, AdamW& adam, int64_t B) {
  const DitConfig& dc = dit.config();
  const int64_t D = dc.in_channels, S = dc.input_size;
  DitStep s;
  s.xt = g.input(DType::f32, {B, D, S, S}, "x_t");
  s.t = g.input(DType::i32, {B}, "t");
  s.y = g.input(DType::i32, {B}, "y");
  s.eps = g.input(DType::f32, {B, D, S, S}, "eps");
  s.loss = loss_mse(g, dit.forward(g, s.xt, s.t, s.y), s.eps);
  g.mark_loss(s.loss);
  g.backward({{s.loss, 1.0f}}, GROUP_DIT);
  s.gnorm = adam.append_update(g);
  g.mark_output(s.gnorm);
  g.plan();
  return s;
}

AdamConfig ldm_adam_config(const LdmConfig& c) {
  AdamConfig ac;
  ac.lr = (float)c.lr;
  ac.beta1 = 0.9f;
  ac.beta2 = 0.999f;
  ac.weight_decay = (float)c.weight_decay;
  return ac;
}

void ldm_fill_batch(Graph& g, const DitStep& s, const LdmConfig& cfg, const DdpmSchedule& sch, int num_classes,
                    int64_t step, const std::function<int32_t(float* y0)>& next, LdmBatch& buf) {
  const int64_t B = s.xt->ne[0], per = s.xt->numel() / B;
  buf.xt.resize((size_t)(B * per));
  buf.eps.resize((size_t)(B * per));
  buf.y0.resize((size_t)per);
  buf.t.resize((size_t)B);
  buf.y.resize((size_t)B);
  Rng r((uint64_t)cfg.seed * 0x9E3779B97F4A7C15ull + (uint64_t)step, 5);
  for (int64_t b = 0; b < B; b++) {
    const int32_t label = next(buf.y0.data());
    const int64_t t = r.below((uint32_t)cfg.T);
    buf.t[(size_t)b] = (int32_t)t;
    buf.y[(size_t)b] = r.uniform() <= cfg.class_dropout ? num_classes : label;
    const double sa = std::sqrt(sch.alpha_bar[(size_t)t]), s1 = std::sqrt(1.0 - sch.alpha_bar[(size_t)t]);
    for (int64_t k = 0; k < per; k++) {
      float e = r.normal();
      buf.eps[(size_t)(b * per + k)] = e;
      buf.xt[(size_t)(b * per + k)] = (float)(sa * buf.y0[(size_t)k] + s1 * e);
    }
  }
  g.set_f32(s.xt, buf.xt);
  g.set_f32(s.eps, buf.eps);
  g.set_i32(s.t, buf.t);
  g.set_i32(s.y, buf.y);
}

// ------------------------------------------------------------------------------- config

const std::vector<LdmField>& ldm_fields() {
  static const std::vector<LdmField> f = [] {
    ConfigFieldList<LdmConfig> L;
    L.s("data", &LdmConfig::data, "training images: fmnist | cifar10:DIR | folder:DIR (one subfolder per class)");
    L.i("n-train", &LdmConfig::n_train, "use the first N training images (0: all)", "n_train");
    L.s("dit", &LdmConfig::dit, "DiT size: tier1 (hidden 128, depth 4, heads 4) | tier2 (384, 12, 6)");
    L.i("steps", &LdmConfig::steps, "training steps in total (with --resume: continue up to this many)");
    L.i("batch", &LdmConfig::batch, "latents per step");
    L.f("lr", &LdmConfig::lr, "AdamW learning rate (betas 0.9, 0.999; docs/ldm.md)");
    L.f("weight-decay", &LdmConfig::weight_decay, "AdamW decoupled weight decay", "weight_decay");
    L.f("ema", &LdmConfig::ema, "decay of the weight EMA used for sampling");
    L.f("class-dropout", &LdmConfig::class_dropout, "probability of the null class (classifier-free guidance)",
        "class_dropout");
    L.i("timesteps", &LdmConfig::T, "diffusion steps T (linear beta schedule 0.0015..0.0195)", "T");
    L.f("beta-start", &LdmConfig::beta_start, "", "beta_start");
    L.f("beta-end", &LdmConfig::beta_end, "", "beta_end");
    L.i("seed", &LdmConfig::seed, "seed of initialisation, data order, noise and label dropout");
    L.i("log-every", &LdmConfig::log_every, "steps between metrics.jsonl lines", "log_every");
    L.i("ckpt-every", &LdmConfig::ckpt_every,
        "steps between checkpoints (checkpoint.safetensors, what --resume continues); each is also kept as "
        "checkpoint-STEP.safetensors for sample / eval-gen part-way", "ckpt_every");
    L.i("scale-n", &LdmConfig::scale_n, "", "scale_n");
    return L.v;
  }();
  return f;
}

std::string ldm_config_json(const LdmConfig& c) { return config_json(ldm_fields(), c); }

LdmConfig ldm_config_from_json(const std::string& text, const std::string& what) {
  return config_from_json(ldm_fields(), text, what);
}

namespace {

void check_config(const LdmConfig& c) {
  auto need = [](bool ok, const char* m) {
    if (!ok) fail("%s", m);
  };
  need(c.steps >= 1 && c.batch >= 1, "--steps and --batch must be >= 1");
  need(c.lr > 0 && std::isfinite(c.lr), "--lr must be > 0");
  need(c.weight_decay >= 0, "--weight-decay must be >= 0");
  need(c.ema >= 0 && c.ema < 1, "--ema must be in [0, 1)");
  need(c.class_dropout >= 0 && c.class_dropout < 1, "--class-dropout must be in [0, 1)");
  need(c.T >= 2 && c.T <= 100000, "--timesteps must be in 2..100000");
  need(c.log_every >= 1 && c.ckpt_every >= 1, "--log-every and --ckpt-every must be >= 1");
  need(c.n_train >= 0 && c.scale_n >= 1, "--n-train must be >= 0");
  need(c.seed >= 0, "--seed must be >= 0");
  dit_preset(c.dit);  // fails on an unknown name
}

// FNV-1a 64 of a file's bytes, as 16 hex digits: what ties a latent cache to its tokenizer
std::string file_hash(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) fail("%s: cannot open", path.c_str());
  uint64_t h = 1469598103934665603ull;
  std::vector<char> buf(1 << 16);
  while (in) {
    in.read(buf.data(), (std::streamsize)buf.size());
    for (std::streamsize i = 0; i < in.gcount(); i++) h = (h ^ (uint8_t)buf[(size_t)i]) * 1099511628211ull;
  }
  char b[17];
  snprintf(b, sizeof b, "%016llx", (unsigned long long)h);
  return b;
}

int64_t meta_i64(const SafetensorsFile& f, const char* key) {
  auto it = f.metadata.find(key);
  if (it == f.metadata.end()) fail("%s: metadata \"%s\" missing", f.path.c_str(), key);
  try {
    return std::stoll(it->second);
  } catch (const std::exception&) {
    fail("%s: metadata \"%s\" is not an integer", f.path.c_str(), key);
  }
}
std::string meta_str(const SafetensorsFile& f, const char* key) {
  auto it = f.metadata.find(key);
  if (it == f.metadata.end()) fail("%s: metadata \"%s\" missing", f.path.c_str(), key);
  return it->second;
}

// The DiT of a tokenizer: latent channels and size from it, the rest from the preset.
DitConfig dit_for(const std::string& preset, TokenizerModel& tok, int num_classes) {
  DitConfig d = dit_preset(preset);
  d.in_channels = (int)tok.dim();
  d.input_size = (int)tok.grid();
  d.num_classes = num_classes;
  d.validate();
  return d;
}

// ---- the latent cache: the training set's code indices, labels and the effective codebook
struct Latents {
  int64_t N = 0, D = 0, h = 0, K = 0;
  int num_classes = 0;
  std::vector<int32_t> idx, labels;  // [N, h, h], [N]
  std::vector<float> codebook;       // [K, D]
  double scale = 1.0;                // std of zq over the first scale_n latents
  // y = zq / scale of latent i into out [D, h, h]
  void latent(int64_t i, float* out) const {
    const int64_t P = h * h;
    const int32_t* ix = idx.data() + i * P;
    for (int64_t p = 0; p < P; p++) {
      const float* e = codebook.data() + (int64_t)ix[p] * D;
      for (int64_t d = 0; d < D; d++) out[d * P + p] = (float)(e[d] / scale);
    }
  }
};

Latents latents_get(const std::string& path, const std::string& tok_hash, const LdmConfig& cfg, TokenizerModel& tok,
                    bool quiet) {
  Latents L;
  L.D = tok.dim();
  L.h = tok.grid();
  L.K = tok.codes();
  if (fs::exists(path)) {
    SafetensorsFile f = safetensors_read(path);
    auto m = [&](const char* k) {
      auto it = f.metadata.find(k);
      return it == f.metadata.end() ? std::string() : it->second;
    };
    if (m("format") == "nsvq-latents-1" && m("tokenizer_hash") == tok_hash && m("data") == cfg.data &&
        m("n_train") == std::to_string(cfg.n_train)) {
      const SafetensorsEntry *ei = f.find("indices"), *el = f.find("labels"), *ec = f.find("codebook");
      if (!ei || !el || !ec || ei->dtype != "I32" || el->dtype != "I32" || ec->dtype != "F32" || ei->shape.size() != 3 ||
          ec->numel() != L.K * L.D || ei->shape[1] != L.h || el->numel() != ei->shape[0])
        fail("%s: a latent cache of the wrong shapes (delete it to re-encode)", path.c_str());
      L.N = ei->shape[0];
      L.idx.resize((size_t)ei->numel());
      L.labels.resize((size_t)el->numel());
      L.codebook.resize((size_t)ec->numel());
      std::memcpy(L.idx.data(), f.data(*ei), L.idx.size() * 4);
      std::memcpy(L.labels.data(), f.data(*el), L.labels.size() * 4);
      std::memcpy(L.codebook.data(), f.data(*ec), L.codebook.size() * 4);
      L.num_classes = (int)meta_i64(f, "num_classes");
      for (int32_t v : L.idx)
        if (v < 0 || v >= L.K) fail("%s: code index %d out of range", path.c_str(), v);
      if (!quiet) printf("ldm-train: latent cache %s: %lld latents (reused)\n", path.c_str(), (long long)L.N);
    } else if (!quiet) {
      printf("ldm-train: latent cache %s was made from another tokenizer or data: re-encoding\n", path.c_str());
    }
  }
  if (L.N == 0) {
    Dataset d = dataset_load(cfg.data, "train", tok.resolution(), (int)tok.channels());
    if (d.C != tok.channels() || d.S != tok.resolution())
      fail("dataset %s has %lldx%lldx%lld images, the tokenizer takes %lldx%lldx%lld", cfg.data.c_str(), (long long)d.C,
           (long long)d.S, (long long)d.S, (long long)tok.channels(), (long long)tok.resolution(), (long long)tok.resolution());
    if (d.num_classes < 1) fail("dataset %s has no class labels: the class-conditional DiT needs them", cfg.data.c_str());
    L.N = cfg.n_train > 0 ? std::min<int64_t>(cfg.n_train, d.size()) : d.size();
    L.num_classes = d.num_classes;
    const int64_t per = d.C * d.S * d.S, P = L.h * L.h, B = 100;
    L.idx.resize((size_t)(L.N * P));
    L.labels.assign(d.labels.begin(), d.labels.begin() + L.N);
    std::vector<float> x((size_t)(B * per));
    auto t0 = std::chrono::steady_clock::now();
    for (int64_t i0 = 0; i0 < L.N; i0 += B) {
      int64_t nb = std::min(B, L.N - i0);
      for (int64_t i = 0; i < nb; i++) dataset_sample(d, i0 + i, x.data() + i * per, false, 0);
      tok.encode(x.data(), nb, L.idx.data() + i0 * P);
    }
    L.codebook = tok.codebook();
    tok.drop_graphs();
    std::vector<SafetensorsTensor> ts(3);
    ts[0] = {"indices", DType::i32, {L.N, L.h, L.h}, L.idx.data()};
    ts[1] = {"labels", DType::i32, {L.N}, L.labels.data()};
    ts[2] = {"codebook", DType::f32, {L.K, L.D}, L.codebook.data()};
    safetensors_write(path, ts,
                      {{"format", "nsvq-latents-1"}, {"tokenizer_hash", tok_hash}, {"data", cfg.data},
                       {"n_train", std::to_string(cfg.n_train)}, {"num_classes", std::to_string(L.num_classes)}});
    if (!quiet)
      printf("ldm-train: encoded %lld training images in %.1fs -> %s\n", (long long)L.N,
             std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(), path.c_str());
  }
  // scale: std of zq over the first scale_n latents (all elements), as LDM's scale_by_std
  const int64_t n = std::min(cfg.scale_n, L.N), P = L.h * L.h;
  double s1 = 0, s2 = 0;
  for (int64_t i = 0; i < n * P; i++) {
    const float* e = L.codebook.data() + (int64_t)L.idx[(size_t)i] * L.D;
    for (int64_t d = 0; d < L.D; d++) s1 += e[d], s2 += (double)e[d] * e[d];
  }
  double cnt = (double)(n * P * L.D), mean = s1 / cnt, var = s2 / cnt - mean * mean;
  L.scale = var > 0 ? std::sqrt(var * cnt / std::max(1.0, cnt - 1)) : 1.0;
  return L;
}

// Keeps the checkpoint just written under another name as well (a hard link: no second write; a copy
// where the file system has none), atomically: the name holds the complete file or nothing.
void keep_snapshot(const std::string& ckpt, const std::string& snap) {
  const std::string tmp = snap + ".tmp";
  std::error_code ec;
  fs::remove(tmp, ec);
  fs::create_hard_link(ckpt, tmp, ec);
  if (ec) {
    ec.clear();
    fs::copy_file(ckpt, tmp, ec);
  }
  if (!ec) fs::rename(tmp, snap, ec);
  if (ec) fail("%s: cannot keep the checkpoint (%s)", snap.c_str(), ec.message().c_str());
}

// host copies of Store tensors, for writing next to other tensors
struct HostTensors {
  std::vector<SafetensorsTensor> ts;
  std::vector<std::vector<uint8_t>> data;
  void add(const Store& st, const std::vector<Tensor*>& list, const std::string& prefix) {
    for (Tensor* t : list) {
      data.emplace_back(t->nbytes());
      st.download(t, data.back().data(), data.back().size());
    }
    size_t k = data.size() - list.size();
    for (Tensor* t : list) {
      SafetensorsTensor s;
      s.name = prefix + t->name;
      s.dtype = t->dtype;
      s.shape.assign(t->ne, t->ne + t->ndim);
      s.data = data[k++].data();
      ts.push_back(s);
    }
  }
};

}  // namespace

// ------------------------------------------------------------------------------- the network at run time

// ------------------------------------------------------------------------------- sampling

DitSampler::DitSampler(const Dit& dit, Backend* be, const DdpmSchedule& sch) : dit_(dit), be_(be), sch_(sch) {}
DitSampler::~DitSampler() = default;

std::vector<float> DitSampler::sample(const std::vector<int32_t>& labels, int64_t steps, double cfgw, uint64_t seed) {
  const DitConfig& dc = dit_.config();
  const int64_t n = (int64_t)labels.size(), D = dc.in_channels, S = dc.input_size, per = D * S * S;
  if (n < 1) fail("sample: no samples asked for");
  for (int32_t c : labels)
    if (c < 0 || c >= dc.num_classes) fail("sample: class %d out of range (the model has %d classes)", c, dc.num_classes);
  if (!(cfgw >= 0) || !std::isfinite(cfgw)) fail("sample: --cfg must be a finite number >= 0");
  std::vector<int64_t> ts = ddim_timesteps(sch_.T, steps);
  const bool guided = cfgw != 1.0;
  const int64_t chunk = std::min<int64_t>(n, 128), GB = guided ? 2 * chunk : chunk;
  if (!g_ || B_ != GB) {  // the forward graph for this batch (kept for the next call with the same size)
    g_ = std::make_unique<Graph>(be_);
    B_ = GB;
    x_ = g_->input(DType::f32, {GB, D, S, S}, "x");
    t_ = g_->input(DType::i32, {GB}, "t");
    y_ = g_->input(DType::i32, {GB}, "y");
    eps_ = dit_.forward(*g_, x_, t_, y_);
    g_->mark_output(eps_);
    g_->plan();
  }
  Graph& g = *g_;
  Rng rng(seed, 77);
  std::vector<float> x((size_t)(n * per));
  for (float& v : x) v = rng.normal();  // all starting noise first: a sample does not depend on the chunking
  std::vector<float> xin((size_t)(GB * per)), e((size_t)(chunk * per));
  std::vector<int32_t> tin((size_t)GB), yin((size_t)GB);
  for (int64_t c0 = 0; c0 < n; c0 += chunk) {
    const int64_t nb = std::min(chunk, n - c0);
    float* xc = x.data() + c0 * per;
    for (int64_t b = 0; b < chunk; b++) {  // a short last chunk repeats its last sample (outputs ignored)
      yin[(size_t)b] = labels[(size_t)(c0 + std::min(b, nb - 1))];
      if (guided) yin[(size_t)(chunk + b)] = dc.num_classes;  // the null class
    }
    for (int64_t i = steps - 1; i >= 0; i--) {
      const int64_t t = ts[(size_t)i];
      for (int64_t b = 0; b < GB; b++) {
        const int64_t src = std::min(b % chunk, nb - 1);
        std::copy(xc + src * per, xc + (src + 1) * per, xin.data() + b * per);
        tin[(size_t)b] = (int32_t)t;
      }
      g.set_f32(x_, xin);
      g.set_i32(t_, tin);
      g.set_i32(y_, yin);
      g.compute();
      std::vector<float> eo = g.get_f32(eps_);
      for (int64_t k = 0; k < chunk * per; k++)
        e[(size_t)k] = guided ? (float)(eo[(size_t)(chunk * per + k)] + cfgw * (eo[(size_t)k] - eo[(size_t)(chunk * per + k)]))
                              : eo[(size_t)k];
      double ab = sch_.alpha_bar[(size_t)t], ab_prev = i > 0 ? sch_.alpha_bar[(size_t)ts[(size_t)(i - 1)]] : 1.0;
      ddim_step(xc, e.data(), nb * per, ab, ab_prev);
    }
  }
  return x;
}

LdmModel::LdmModel(const std::string& path, Backend* be, bool raw_weights) {
  SafetensorsFile f = safetensors_open(path);  // tensors read as loaded: the Adam moments stay on disk
  auto fmt = f.metadata.find("format");
  if (fmt == f.metadata.end() || fmt->second != "nsvq-ldm-1")
    fail("%s: not an nsvq latent-diffusion checkpoint (no format \"nsvq-ldm-1\" in its metadata)", path.c_str());
  cfg_ = ldm_config_from_json(meta_str(f, "config"), path);
  step_ = meta_i64(f, "step");
  scale_ = std::stod(meta_str(f, "scale"));
  TrainConfig tc = train_config_from_json(meta_str(f, "tokenizer_config"), path + " (tokenizer_config)");
  tok_ = tokenizer_load(f, tc, be, "first_stage_model.", ModelPart::decoder);  // sampling only decodes
  const int64_t classes = meta_i64(f, "num_classes");
  const SafetensorsEntry* table = f.find("y_embedder.embedding_table.weight");
  if (classes < 1 || !table || table->shape.size() != 2 || table->shape[0] != classes + 1)  // before allocating
    fail("%s: num_classes %lld does not match its class table", path.c_str(), (long long)classes);
  dc_ = dit_for(cfg_.dit, *tok_.model, (int)classes);
  st_ = std::make_unique<Store>(be);
  dit_ = std::make_unique<Dit>(*st_, dc_, (uint64_t)cfg_.seed);
  // every tensor by its plain name (the position table is a buffer, not in the EMA copy), then the
  // parameters from the EMA copy
  LoadReport rep = load_tensors(*st_, f, st_->tensors(), false);
  if (!rep.missing.empty()) fail("%s: tensor %s of the DiT is missing", path.c_str(), rep.missing[0].c_str());
  if (!raw_weights) {
    LoadReport re = load_tensors(*st_, f, st_->params(GROUP_DIT), false, "ema.");
    if (!re.missing.empty()) fail("%s: tensor ema.%s is missing", path.c_str(), re.missing[0].c_str());
  }
  sampler_ = std::make_unique<DitSampler>(*dit_, be, ddpm_linear(cfg_.T, cfg_.beta_start, cfg_.beta_end));
}

LdmModel::~LdmModel() = default;

std::vector<float> LdmModel::sample(const std::vector<int32_t>& labels, int64_t steps, double cfgw, uint64_t seed,
                                    std::vector<int32_t>* tokens) {
  std::vector<float> y = sampler_->sample(labels, steps, cfgw, seed);
  // decode: z = y * scale, snapped to the nearest codes inside the tokenizer, in chunks of 128
  const int64_t n = (int64_t)labels.size(), per = dc_.in_channels * dc_.input_size * dc_.input_size,
                P = dc_.input_size * dc_.input_size, R = tok_.model->resolution(), C = tok_.model->channels();
  std::vector<float> out((size_t)(n * C * R * R));
  if (tokens) tokens->assign((size_t)(n * P), 0);
  for (float& v : y) v = (float)(v * scale_);
  std::vector<int32_t> idx;
  for (int64_t c0 = 0; c0 < n; c0 += 128) {
    const int64_t nb = std::min<int64_t>(128, n - c0);
    idx.resize((size_t)(nb * P));
    tok_.model->decode_latent(y.data() + c0 * per, nb, out.data() + c0 * C * R * R, idx.data());
    if (tokens) std::copy(idx.begin(), idx.end(), tokens->begin() + c0 * P);
  }
  return out;
}

// ------------------------------------------------------------------------------- the trainer

int ldm_train(LdmConfig cfg, const LdmTrainOptions& opt, bool steps_given, Backend* be) {
  namespace chr = std::chrono;
  if (opt.out.empty()) fail("ldm-train: --out is empty");
  const std::string ckpt = opt.out + "/checkpoint.safetensors", metrics = opt.out + "/metrics.jsonl";
  std::unique_ptr<SafetensorsFile> resume_file;
  LoadedTokenizer tok;
  std::string tok_hash, tok_source = opt.tokenizer;
  if (opt.resume) {
    if (!fs::exists(ckpt)) fail("%s: no checkpoint to resume (train first without --resume)", opt.out.c_str());
    resume_file = std::make_unique<SafetensorsFile>(safetensors_read(ckpt));
    const SafetensorsFile& f = *resume_file;
    if (f.metadata.count("format") == 0 || f.metadata.at("format") != "nsvq-ldm-1")
      fail("%s: not an nsvq latent-diffusion checkpoint", ckpt.c_str());
    int64_t steps = cfg.steps;
    cfg = ldm_config_from_json(meta_str(f, "config"), ckpt);
    if (steps_given) cfg.steps = steps;
    if (meta_i64(f, "step") > cfg.steps)
      fail("%s: the run is at step %lld, beyond --steps %lld", ckpt.c_str(), (long long)meta_i64(f, "step"), (long long)cfg.steps);
    TrainConfig tc = train_config_from_json(meta_str(f, "tokenizer_config"), ckpt + " (tokenizer_config)");
    tok = tokenizer_load(f, tc, be, "first_stage_model.");
    tok_hash = meta_str(f, "tokenizer_hash");
    tok_source = meta_str(f, "tokenizer_source");
  } else {
    if (opt.tokenizer.empty()) fail("ldm-train: give the tokenizer checkpoint (-m CKPT)");
    if (fs::exists(ckpt)) fail("%s already holds a run (use --resume, or another --out)", opt.out.c_str());
    check_config(cfg);
    tok = tokenizer_load(opt.tokenizer, be, true);
    tok_hash = file_hash(opt.tokenizer);
  }
  check_config(cfg);
  fs::create_directories(opt.out);
  TokenizerModel& tm = *tok.model;
  Latents L = latents_get(opt.out + "/latents.safetensors.zst", tok_hash, cfg, tm, opt.quiet);
  if (resume_file) L.scale = std::stod(meta_str(*resume_file, "scale"));  // as trained

  // model, optimizer, weight EMA
  const DitConfig dc = dit_for(cfg.dit, tm, L.num_classes);
  Store st(be);
  Dit dit(st, dc, (uint64_t)cfg.seed);
  AdamW adam(st, st.params(GROUP_DIT), ldm_adam_config(cfg), "adam");
  std::vector<std::pair<Tensor*, Tensor*>> ema;
  for (Tensor* p : st.params(GROUP_DIT)) {
    Tensor* e = st.add("ema." + p->name, DType::f32, p->shape(), TF_PERSIST, p->group);
    st.upload_f32(e, st.download_f32(p));
    ema.push_back({p, e});
  }
  const int64_t B = cfg.batch, D = dc.in_channels, S = dc.input_size;
  Graph g(be);
  const DitStep ds = dit_train_step(g, dit, adam, B);
  Tensor *loss = ds.loss, *gnorm = ds.gnorm;

  int64_t step = 0, epoch = 0, pos = 0;
  double loss_sum = 0, ms_sum = 0;  // the open logging interval (carried across a resume)
  int64_t loss_n = 0, ms_n = 0;
  if (resume_file) {
    const SafetensorsFile& f = *resume_file;
    LoadReport rep = load_tensors(st, f, st.tensors(), false);
    if (!rep.missing.empty()) fail("%s: %zu tensors of the DiT are missing (e.g. %s)", ckpt.c_str(), rep.missing.size(), rep.missing[0].c_str());
    step = meta_i64(f, "step");
    epoch = meta_i64(f, "epoch");
    pos = meta_i64(f, "pos");
    adam.set_step(meta_i64(f, "adam_step"));
    loss_sum = std::stod(meta_str(f, "log_loss_sum"));
    loss_n = meta_i64(f, "log_loss_n");
    metrics_truncate(metrics, step);
    resume_file.reset();
  } else {
    metrics_truncate(metrics, -1);
    metrics_append(metrics, "{\"step\": 0, \"config\": " + ldm_config_json(cfg) + ", \"scale\": " + json_number(L.scale) +
                                ", \"latents\": " + std::to_string(L.N) + "}");
  }
  const std::string tok_cfg = train_config_json(tm.config());
  auto exact = [](double v) {  // a double that reads back bit for bit
    char b[40];
    snprintf(b, sizeof b, "%.17g", v);
    return std::string(b);
  };
  auto save = [&]() {
    HostTensors h;
    h.add(st, st.tensors(), "");
    h.add(tm.store(), tm.weights(), "first_stage_model.");
    safetensors_write(ckpt, h.ts,
                      {{"format", "nsvq-ldm-1"}, {"config", ldm_config_json(cfg)}, {"step", std::to_string(step)},
                       {"epoch", std::to_string(epoch)}, {"pos", std::to_string(pos)},
                       {"adam_step", std::to_string(adam.step())}, {"scale", exact(L.scale)},
                       {"num_classes", std::to_string(L.num_classes)}, {"tokenizer_config", tok_cfg},
                       {"tokenizer_hash", tok_hash}, {"tokenizer_source", tok_source},
                       {"log_loss_sum", exact(loss_sum)}, {"log_loss_n", std::to_string(loss_n)}});
  };
  const bool tty = !opt.quiet && isatty(fileno(stderr));
  if (!opt.quiet) {
    printf("ldm-train: DiT %s (hidden %d, depth %d, heads %d) on %lldx%lldx%lld latents of %lld images, scale %.4g, "
           "%lld steps of %lld -> %s\n",
           cfg.dit.c_str(), dc.hidden, dc.depth, dc.heads, (long long)D, (long long)S, (long long)S, (long long)L.N,
           L.scale, (long long)cfg.steps, (long long)B, opt.out.c_str());
    fflush(stdout);
  }

  // the epoch's order: a Fisher-Yates shuffle from (seed, epoch)
  std::vector<int64_t> order;
  auto make_order = [&]() {
    order.resize((size_t)L.N);
    std::iota(order.begin(), order.end(), 0);
    Rng r((uint64_t)cfg.seed, (uint32_t)(1000 + epoch));
    for (int64_t i = L.N - 1; i > 0; i--) std::swap(order[(size_t)i], order[(size_t)r.below((uint32_t)(i + 1))]);
  };
  make_order();
  DdpmSchedule sch = ddpm_linear(cfg.T, cfg.beta_start, cfg.beta_end);
  LdmBatch batch;
  StopSignals signals;
  int64_t done_here = 0, bad_run = 0;
  auto t_start = chr::steady_clock::now();
  while (step < cfg.steps) {
    auto t0 = chr::steady_clock::now();
    // the batch: data order from (seed, epoch), noise / timesteps / label dropout from (seed, step)
    ldm_fill_batch(g, ds, cfg, sch, dc.num_classes, step, [&](float* y0) {
      if (pos >= L.N) {
        epoch++;
        pos = 0;
        make_order();
      }
      int64_t i = order[(size_t)pos++];
      L.latent(i, y0);
      return L.labels[(size_t)i];
    }, batch);
    adam.begin_step(g);
    g.compute();
    float l = g.get_scalar(loss), gn = g.get_scalar(gnorm);
    if (!std::isfinite(l) || !std::isfinite(gn)) {
      adam.undo_step();  // the Adam kernels skipped the update
      if (!opt.quiet) fprintf(stderr, "ldm-train: step %lld: non-finite loss or gradient, update skipped\n", (long long)step);
      if (++bad_run >= 5) {
        save();
        fail("ldm-train: 5 non-finite steps in a row at step %lld (checkpoint written; try a lower --lr)", (long long)step);
      }
    } else {
      bad_run = 0;
      for (auto& pe : ema) {  // weight EMA on the host
        std::vector<float> w = st.download_f32(pe.first), e = st.download_f32(pe.second);
        for (size_t k = 0; k < w.size(); k++) e[k] = (float)(cfg.ema * e[k] + (1.0 - cfg.ema) * w[k]);
        st.upload_f32(pe.second, e);
      }
      loss_sum += l;
      loss_n++;
    }
    step++;
    done_here++;
    ms_sum += chr::duration<double, std::milli>(chr::steady_clock::now() - t0).count();
    ms_n++;
    if (step % cfg.log_every == 0 || step == cfg.steps) {
      double ms = ms_sum / std::max<int64_t>(1, ms_n);
      metrics_append(metrics, "{\"step\": " + std::to_string(step) + ", \"loss\": " + json_number(loss_n ? loss_sum / loss_n : NAN) +
                                  ", \"grad_norm\": " + json_number(gn) + ", \"ms_per_step\": " + json_number(ms) +
                                  ", \"img_per_s\": " + json_number(B * 1000.0 / ms) +
                                  ", \"epoch\": " + json_number(epoch + (double)pos / L.N) + "}");
      if (!opt.quiet) {
        double el = chr::duration<double>(chr::steady_clock::now() - t_start).count();
        double eta = el / done_here * (cfg.steps - step);
        fprintf(tty ? stderr : stdout, "%sstep %lld/%lld loss %.4f %.0f img/s ETA %s%s", tty ? "\r" : "", (long long)step,
                (long long)cfg.steps, loss_n ? loss_sum / loss_n : NAN, B * 1000.0 / ms, fmt_duration(eta).c_str(),
                tty ? "   " : "\n");
        fflush(tty ? stderr : stdout);
      }
      loss_sum = ms_sum = 0;
      loss_n = ms_n = 0;
    }
    bool stop = signals.caught() != 0 || (opt.stop_after >= 0 && done_here >= opt.stop_after);
    const bool periodic = step % cfg.ckpt_every == 0;
    if (periodic || step == cfg.steps || stop) save();
    if (periodic) keep_snapshot(ckpt, opt.out + "/checkpoint-" + std::to_string(step) + ".safetensors");
    if (stop && step < cfg.steps) {
      if (!opt.quiet)
        printf("%sldm-train: %s at step %lld; checkpoint in %s (continue with --resume)\n", tty ? "\n" : "",
               signals.caught() ? "interrupted" : "stopped", (long long)step, opt.out.c_str());
      return signals.caught() ? 130 : 0;
    }
  }
  signals.restore();
  if (tty) fprintf(stderr, "\n");
  // a first look: opt.preview samples per class (DDIM 25 steps, guidance 1.5) from the EMA weights
  if (opt.preview > 0) {
    LdmModel m(ckpt, be);
    std::vector<int32_t> labels;
    for (int c = 0; c < dc.num_classes; c++)
      for (int64_t k = 0; k < opt.preview; k++) labels.push_back(c);
    std::vector<float> img = m.sample(labels, std::min<int64_t>(25, cfg.T), 1.5, (uint64_t)cfg.seed);
    const int64_t C = tm.channels(), R = tm.resolution();
    image_write_png(opt.out + "/samples.png", image_grid(img.data(), (int64_t)labels.size(), C, R, R, opt.preview));
  }
  if (!opt.quiet) {
    printf("ldm-train: done, %lld steps in %s", (long long)done_here,
           fmt_duration(chr::duration<double>(chr::steady_clock::now() - t_start).count()).c_str());
    if (opt.preview > 0)
      printf("; samples (%lld per class, one row each) in %s/samples.png", (long long)opt.preview, opt.out.c_str());
    printf("\n");
  }
  return 0;
}

}  // namespace nsvq
