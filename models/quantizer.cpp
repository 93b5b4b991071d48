// models/quantizer.cpp — the five quantizer variants built on the vq op family (models/quantizer.h,
// ops/vq.h; rules in method.md §2-§4, choices in docs/quantizers.md).
#include "models/quantizer.h"
#include <algorithm>
#include <cmath>
#include "engine/rng.h"

namespace nsvq {

QuantKind quant_kind_from_name(const std::string& n) {
  if (n == "vq") return QuantKind::vq;
  if (n == "vq-l2") return QuantKind::vq_l2;
  if (n == "ema") return QuantKind::ema;
  if (n == "simvq") return QuantKind::simvq;
  if (n == "nsvq") return QuantKind::nsvq;
  fail("unknown quantizer '%s' (expected vq, vq-l2, ema, simvq or nsvq)", n.c_str());
}

const char* quant_kind_name(QuantKind k) {
  switch (k) {
    case QuantKind::vq: return "vq";
    case QuantKind::vq_l2: return "vq-l2";
    case QuantKind::ema: return "ema";
    case QuantKind::simvq: return "simvq";
    case QuantKind::nsvq: return "nsvq";
  }
  return "?";
}

float TauSchedule::factor(int64_t step) const {
  if (step < warmup || period <= 0) return 1.0f;
  return (float)std::pow((double)decay, (double)((step - warmup) / period));
}

Tensor* simvq_codebook(Graph& g, Tensor* C, Tensor* W, Tensor* b) {
  Tensor* c = matmul(g, C, W, false, true);  // [K, D] = C W^T
  return b ? add(g, c, b) : c;
}

// ---------------------------------------------------------------- construction

Tensor* Quantizer::add_state(const std::string& name, DType dt, const Shape& s, uint32_t flags) {
  Tensor* t = store_.add(prefix_ + "." + name, dt, s, flags, cfg_.group);
  state_.push_back(t);
  return t;
}

Quantizer::Quantizer(Store& store, const QuantizerConfig& cfg, const std::string& prefix, bool inference)
    : store_(store), prefix_(prefix), inference_(inference) {
  static_cast<QuantizerConfig&>(cfg_) = cfg;
  const int64_t K = cfg.codes, D = cfg.dim;
  if (K < 1) fail("quantizer: --codes must be >= 1, got %lld", (long long)K);
  if (K > (1 << 24)) fail("quantizer: %lld codes is more than 2^24", (long long)K);
  if (D < 1) fail("quantizer: code dimension must be >= 1, got %lld", (long long)D);
  if (cfg.kind == QuantKind::nsvq) {
    if (cfg.replace_window < 1) fail("quantizer: replacement window must be >= 1 step");
    if (cfg.replace_threshold < 1) fail("quantizer: replacement threshold must be >= 1");
    if (cfg.reservoir < 1) fail("quantizer: reservoir must hold >= 1 vector");
    if (!(cfg.lambda >= 0.0f)) fail("quantizer: lambda must be >= 0");
    if (cfg.tau.period < 1 || !(cfg.tau.decay > 0.0f) || !(cfg.tau.rho > 0.0f) || !(cfg.tau.tau_peak > 0.0f))
      fail("quantizer: tau schedule needs period >= 1 and positive decay, rho and tau_peak");
  }
  if (cfg.kind == QuantKind::ema && !(cfg.ema_decay >= 0.0f && cfg.ema_decay < 1.0f))
    fail("quantizer: EMA decay must be in [0, 1)");

  const bool learnable = cfg.kind != QuantKind::ema && cfg.kind != QuantKind::simvq;
  uint32_t eflags = learnable ? TF_PARAM : cfg.kind == QuantKind::simvq ? (TF_PARAM | TF_FROZEN) : TF_PERSIST;
  embedding_ = add_state("embedding.weight", DType::f32, {K, D}, eflags);
  if (cfg.kind == QuantKind::simvq) {
    proj_w_ = add_state("embedding_proj.weight", DType::f32, {D, D}, TF_PARAM);
    if (cfg.simvq_bias) proj_b_ = add_state("embedding_proj.bias", DType::f32, {D}, TF_PARAM);
  }
  std::vector<float> e;  // the initial codebook (none when the values will be loaded: Store::skip_init)
  if (!store.skip_init) {
    Rng rng(cfg.seed, 11);
    e.resize((size_t)(K * D));
    if (cfg.kind == QuantKind::simvq) {
      // C ~ N(0, 1/D) frozen; W, b ~ U(-1/sqrt(D), 1/sqrt(D)) (PyTorch Linear default)
      for (float& v : e) v = rng.normal() / std::sqrt((float)D);
      float a = 1.0f / std::sqrt((float)D);
      std::vector<float> w((size_t)(D * D)), b((size_t)D);
      for (float& v : w) v = a * (2.0f * rng.uniform() - 1.0f);
      for (float& v : b) v = a * (2.0f * rng.uniform() - 1.0f);
      store_.upload_f32(proj_w_, w);
      if (proj_b_) store_.upload_f32(proj_b_, b);
    } else {
      for (float& v : e) v = (2.0f * rng.uniform() - 1.0f) / (float)K;  // U(-1/K, 1/K)
    }
    store_.upload_f32(embedding_, e);
  }
  if (inference) return;  // the codebook is all evaluation reads
  counts_ = add_state("counts", DType::i32, {K}, TF_PERSIST);
  if (cfg.kind == QuantKind::nsvq || cfg.kind == QuantKind::ema) {
    replaced_ = add_state("replaced", DType::i32, {1}, TF_PERSIST);
    std::vector<int32_t> none = {0};
    store_.upload(replaced_, none.data(), 4);
  }
  if (cfg.kind == QuantKind::nsvq) {
    reservoir_ = add_state("reservoir", DType::f32, {cfg.reservoir, D}, TF_PERSIST);
    rstate_ = add_state("reservoir_state", DType::i32, {2}, TF_PERSIST);
    tau_scale_ = add_state("tau_scale", DType::f32, {1}, TF_PERSIST);
    store_.upload_f32(tau_scale_, {cfg.tau.relative ? 0.0f : cfg.tau.tau_peak});
  }
  if (cfg.kind == QuantKind::ema) {
    ema_n_ = add_state("ema.cluster_size", DType::f32, {K}, TF_PERSIST);
    ema_m_ = add_state("ema.embed_sum", DType::f32, {K, D}, TF_PERSIST);
    store_.upload_f32(ema_n_, std::vector<float>((size_t)K, 1.0f));  // n = 1, m = n e
    if (!e.empty()) store_.upload_f32(ema_m_, e);
  }
}

// ---------------------------------------------------------------- graph

// [N, D] rows of z; img gets z's image shape (ndim 0 for row input)
Tensor* Quantizer::rows_of(Graph& g, Tensor* z, QuantOut& o, Shape& img) const {
  const int64_t D = cfg_.dim;
  img = Shape();
  if (z->dtype != DType::f32) fail("quantizer: latents %s must be f32", z->desc().c_str());
  if (z->ndim == 4) {
    if (z->ne[1] != D)
      fail("quantizer: latents %s have %lld channels, codes have %lld", z->shape().str().c_str(), (long long)z->ne[1],
           (long long)D);
    img = z->shape();
    o.rows = z->ne[0] * z->ne[2] * z->ne[3];
    return reshape(g, contiguous(g, permute(g, z, {0, 2, 3, 1})), {o.rows, D});
  }
  if (z->ndim != 2 || z->ne[1] != D)
    fail("quantizer: latents %s must be [N, %lld] or [B, %lld, h, w]", z->shape().str().c_str(), (long long)D, (long long)D);
  o.rows = z->ne[0];
  return z;
}

QuantOut Quantizer::build(Graph& g, Tensor* z_in, bool training) {
  if (training && inference_) fail("quantizer: built for inference only (no training state)");
  QuantOut o;
  o.training = training;
  Shape img;
  Tensor* z = rows_of(g, z_in, o, img);
  const int64_t K = cfg_.codes, D = cfg_.dim, N = o.rows;
  if (N < 1) fail("quantizer: no latents in %s", z_in->shape().str().c_str());
  Tensor* zd = detach(g, z);
  Tensor *q = nullptr, *zq = nullptr, *idx = nullptr;
  const QuantKind kind = cfg_.kind;
  const bool nsvq = kind == QuantKind::nsvq;
  const bool need_ctl =
      training && (kind == QuantKind::ema || (nsvq && (cfg_.replace || cfg_.dense_loss || cfg_.vq_new)));
  if (need_ctl) o.ctl = g.input(DType::i32, {VQ_CTL_COUNT}, prefix_ + ".ctl");

  if (kind == QuantKind::vq || kind == QuantKind::simvq || (nsvq && !training)) {
    Tensor* E = kind == QuantKind::simvq ? simvq_codebook(g, embedding_, proj_w_, proj_b_) : embedding_;
    o.search = vq_nearest(g, zd, detach(g, E));
    idx = vq_indices(g, o.search);
    q = get_rows(g, E, idx);
    o.codebook_loss = loss_mse(g, q, zd);
    o.commit_loss = loss_mse(g, z, detach(g, q));
    zq = vq_straight_through(g, z, q, 0.0f);
  } else if (kind == QuantKind::vq_l2) {
    Tensor* zh = vq_l2_normalize(g, z);
    Tensor* eh = vq_l2_normalize(g, embedding_);
    o.search = vq_nearest(g, detach(g, zh), detach(g, eh));
    idx = vq_indices(g, o.search);
    q = get_rows(g, eh, idx);
    o.codebook_loss = loss_mse(g, q, detach(g, zh));
    o.commit_loss = loss_mse(g, zh, detach(g, q));
    zq = vq_straight_through(g, zh, q, 0.0f);
  } else if (kind == QuantKind::ema) {
    o.search = vq_nearest(g, zd, embedding_);
    idx = vq_indices(g, o.search);
    q = get_rows(g, embedding_, idx);  // before the EMA update below (nodes run in creation order)
    o.commit_loss = loss_mse(g, z, detach(g, q));
    zq = vq_straight_through(g, z, q, 0.0f);
  } else {  // nsvq, training
    const bool need_lse = cfg_.dense_loss || cfg_.vq_new;
    if (need_lse) o.tau_factor = g.input(DType::f32, {1}, prefix_ + ".tau_factor");
    Tensor* tau_pre = need_lse ? mul(g, tau_scale_, o.tau_factor) : nullptr;
    o.search = vq_nearest(g, zd, embedding_, tau_pre);
    idx = vq_indices(g, o.search);
    o.hist = vq_histogram(g, idx, K);
    Tensor* counts = vq_counts_add(g, counts_, o.hist);
    Tensor* E = embedding_;
    if (cfg_.replace) {
      const int64_t n_push = std::min(N, cfg_.reservoir);
      o.push_idx = g.input(DType::i32, {n_push}, prefix_ + ".push_idx");
      Tensor* R = vq_reservoir_push(g, reservoir_, rstate_, zd, o.push_idx);
      E = vq_replace(g, embedding_, counts, R, rstate_, o.ctl, replaced_, cfg_.replace_threshold);
    }
    Tensor* Ed = detach(g, E);
    Tensor* search = o.search;
    if (need_lse) {
      Tensor* peak = cfg_.tau.relative ? vq_tau_calibrate(g, tau_scale_, o.search, o.ctl, cfg_.tau.rho) : tau_scale_;
      o.tau = mul(g, peak, o.tau_factor);
      search = vq_lse_refresh(g, o.search, zd, Ed, o.tau, o.ctl);
      g.mark_output(o.tau);
    }
    if (cfg_.dense_loss && !cfg_.vq_new) {
      Tensor* st = vq_dense_stats(g, zd, Ed, search, o.tau, zd, cfg_.lambda, 1.0f);
      o.dense_loss = vq_dense_loss(g, st, E, N);
    }
    q = get_rows(g, E, idx);
    if (!o.dense_loss) o.codebook_loss = loss_mse(g, q, zd);
    o.commit_loss = loss_mse(g, z, detach(g, q));
    float a = cfg_.modified_ste ? 2.0f * cfg_.alpha / (float)(N * D) : 0.0f;
    zq = vq_straight_through(g, z, q, a);
    if (cfg_.vq_new) {
      Tensor* A = vq_soft_mix(g, zd, Ed, search, o.tau, E, cfg_.lambda);
      zq = add(g, zq, sub(g, A, detach(g, A)));  // zero-valued; carries W^T dL/dzq to the codes
    }
  }

  // statistics (nsvq training made the histogram above, before the replacement)
  if (!o.hist) o.hist = vq_histogram(g, idx, K);
  if (training && !nsvq) vq_counts_add(g, counts_, o.hist);
  o.code_stats = vq_code_stats(g, o.hist);
  o.quant_error = scale(g, mean(g, vq_min_dist(g, o.search)), 1.0f / (float)D);
  if (kind == QuantKind::ema && training) {
    Tensor* sums = scatter_add_rows(g, zd, idx, K);
    vq_ema_update(g, embedding_, ema_n_, ema_m_, o.hist, sums, zd, o.ctl, replaced_, cfg_.ema_decay, cfg_.ema_eps,
                  cfg_.ema_dead);
  }

  // losses
  if (o.dense_loss) o.loss = add(g, scale(g, o.dense_loss, cfg_.alpha), scale(g, o.commit_loss, cfg_.beta));
  else if (o.codebook_loss) o.loss = add(g, o.codebook_loss, scale(g, o.commit_loss, cfg_.beta));
  else o.loss = scale(g, o.commit_loss, cfg_.beta);

  // evaluation: the decoder gets exactly the code vectors (z + (q - z) can differ from q in the last
  // bit), so that decoding stored indices reproduces a reconstruction bit for bit
  if (!training) zq = q;

  // back to z's layout
  if (img.ndim == 4) {
    zq = contiguous(g, permute(g, reshape(g, zq, {img[0], img[2], img[3], D}), {0, 3, 1, 2}));
    idx = reshape(g, idx, {img[0], img[2], img[3]});
  }
  o.zq = zq;
  o.indices = idx;
  for (Tensor* t : {o.zq, o.indices, o.loss, o.hist, o.code_stats, o.quant_error, o.search}) g.mark_output(t);
  for (Tensor* t : {o.codebook_loss, o.commit_loss, o.dense_loss})
    if (t) g.mark_output(t);
  return o;
}

void Quantizer::begin_step(Graph& g, const QuantOut& o, int64_t step) {
  if (!o.training) return;
  if (step < 0) fail("quantizer: negative step %lld", (long long)step);
  if (o.ctl) {
    int32_t flags = 0;
    if (cfg_.kind == QuantKind::nsvq) {
      if (cfg_.replace && cfg_.replace_runtime && step % cfg_.replace_window == 0) flags |= VQ_FLAG_REPLACE;
      // relative tau: from the search of step 1, the first batch quantized after the step-0 replacement
      // (step 0 calibrates on its own search, so that its dense loss has a tau of the right scale)
      if (cfg_.tau.relative && step <= 1) flags |= VQ_FLAG_CALIBRATE;
      if (flags) flags |= VQ_FLAG_REFRESH;
    }
    int32_t ctl[VQ_CTL_COUNT];
    ctl[VQ_CTL_SEED_LO] = (int32_t)(uint32_t)cfg_.seed;
    ctl[VQ_CTL_SEED_HI] = (int32_t)(uint32_t)(cfg_.seed >> 32);
    ctl[VQ_CTL_STEP_LO] = (int32_t)(uint32_t)step;
    ctl[VQ_CTL_STEP_HI] = (int32_t)(uint32_t)((uint64_t)step >> 32);
    ctl[VQ_CTL_FLAGS] = flags;
    g.set_i32(o.ctl, ctl, VQ_CTL_COUNT);
  }
  if (o.tau_factor) {
    float f = cfg_.tau.factor(step);
    g.set_f32(o.tau_factor, &f, 1);
  }
  if (o.push_idx && !o.push_identity) {
    // which rows enter the reservoir: all of them when they fit (written once), else a uniform random
    // subset drawn with a generator keyed by (seed, step) (partial Fisher-Yates): no host state.
    const int64_t n = o.push_idx->numel(), N = o.rows;
    static thread_local std::vector<int32_t> rows;
    rows.resize((size_t)N);
    for (int64_t i = 0; i < N; i++) rows[(size_t)i] = (int32_t)i;
    if (n < N) {
      Rng r(cfg_.seed ^ (0x9E3779B97F4A7C15ull * (uint64_t)(step + 1)), 0x7273);
      for (int64_t j = 0; j < n; j++) std::swap(rows[(size_t)j], rows[(size_t)(j + r.below((uint32_t)(N - j)))]);
    }
    g.set_i32(o.push_idx, rows.data(), (size_t)n);
    o.push_identity = n == N;
  }
}

QuantStats Quantizer::read_stats(const Graph& g, const QuantOut& o) const {
  QuantStats s;
  std::vector<float> cs = g.get_f32(o.code_stats);
  s.perplexity = cs[0];
  s.used = cs[1];
  s.quant_error = g.get_scalar(o.quant_error);
  if (o.tau) s.tau = g.get_scalar(o.tau);
  if (replaced_ && o.training) {
    int32_t r = 0;
    store_.download(replaced_, &r, 4);
    s.replaced = r;
  }
  return s;
}

Tensor* Quantizer::lookup(Graph& g, Tensor* idx) const {
  if (idx->dtype != DType::i32 || (idx->ndim != 1 && idx->ndim != 3))
    fail("quantizer: code indices %s must be i32 [N] or [B, h, w]", idx->desc().c_str());
  Tensor* E = embedding_;
  if (cfg_.kind == QuantKind::simvq) E = simvq_codebook(g, embedding_, proj_w_, proj_b_);
  if (cfg_.kind == QuantKind::vq_l2) E = vq_l2_normalize(g, embedding_);
  Tensor* q = get_rows(g, E, idx);  // [..., D]
  if (idx->ndim == 1) return q;
  return contiguous(g, permute(g, q, {0, 3, 1, 2}));
}

// ---------------------------------------------------------------- host access

std::vector<float> Quantizer::codebook() const {
  if (cfg_.kind != QuantKind::simvq) return store_.download_f32(embedding_);
  Graph g(store_.backend());  // C W^T + b on the quantizer's backend
  Tensor* c = simvq_codebook(g, embedding_, proj_w_, proj_b_);
  g.mark_output(c);
  g.compute();
  return g.get_f32(c);
}

std::vector<int32_t> Quantizer::window_counts() const {
  if (!counts_) fail("quantizer: built for inference only (no usage counts)");
  std::vector<int32_t> v((size_t)cfg_.codes);
  store_.download(counts_, v.data(), v.size() * 4);
  return v;
}

void Quantizer::reset_counts() {
  if (!counts_) return;
  std::vector<int32_t> z((size_t)cfg_.codes, 0);
  store_.upload(counts_, z.data(), z.size() * 4);
}

std::vector<Tensor*> Quantizer::state() const { return state_; }

}  // namespace nsvq
