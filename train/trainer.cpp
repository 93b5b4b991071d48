// train/trainer.cpp — the tokenizer trainer (train/trainer.h): step graphs per phase, the stage
// controller, checkpoints (atomic, previous kept, bitwise resume), drift probe, logging, final
// evaluation and pictures.
#include "train/trainer.h"
#include <sys/stat.h>
#include <unistd.h>
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include "engine/dist.h"
#include "models/discriminator.h"
#include "models/json.h"
#include "models/lpips.h"
#include "models/safetensors.h"
#include "ops/optim.h"
#include "train/atomic_file.h"
#include "train/data.h"
#include "train/fdnet.h"
#include "train/fid_lpips.h"
#include "train/image_io.h"
#include "train/metrics.h"
#include "train/plot.h"
#include "train/report.h"
#include "train/run_util.h"
#include "train/tokenizer.h"

namespace nsvq {

namespace fs = std::filesystem;

const char* stage_name(Stage s) {
  switch (s) {
    case Stage::stage1: return "stage1";
    case Stage::warmup: return "warmup";
    case Stage::stage2: return "stage2";
  }
  return "?";
}

Stage stage_of(const TrainConfig& c, int64_t step) {
  if (step < c.stage1) return Stage::stage1;
  if (step < c.stage1 + c.warmup) return Stage::warmup;
  return Stage::stage2;
}

namespace {

bool is_encoder_param(const Tensor* t) {
  return t->name.rfind("encoder.", 0) == 0 || t->name.rfind("quant_conv.", 0) == 0;
}

// Milliseconds of one LPIPS forward + backward (the gradient reaching the reconstruction) at the
// training batch, after a warm-up run: what the perceptual loss adds to each step.
double time_lpips(const LpipsVgg& net, Backend* be, int64_t B, int64_t C, int64_t R) {
  Graph g(be);
  Tensor* a = g.input(DType::f32, {B, C, R, R}, "a");
  Tensor* b = g.input(DType::f32, {B, C, R, R}, "b");
  Tensor* gb = g.gradients({{mean(g, net.distance(g, a, b)), 1.0f}}, {b})[0];
  g.mark_output(gb);
  g.plan();
  std::vector<float> va((size_t)(B * C * R * R)), vb(va.size());
  for (size_t i = 0; i < va.size(); i++) {
    va[i] = std::sin(0.37f * (float)i);
    vb[i] = std::sin(0.41f * (float)i);
  }
  g.set_f32(a, va);
  g.set_f32(b, vb);
  double ms = 0;
  for (int rep = 0; rep < 2; rep++) {
    auto t0 = std::chrono::steady_clock::now();
    g.compute();
    g.get_f32(gb);
    ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  }
  return ms;
}

// One phase's step graph: generator forward, losses, backward, Adam; discriminator when adversarial.
struct StepGraph {
  std::unique_ptr<Graph> g;
  Stage stage = Stage::stage1;
  bool adv = false;
  Tensor *x = nullptr, *xr = nullptr, *l_rec = nullptr, *l_adv = nullptr, *lam = nullptr, *l_g = nullptr;
  Tensor *l_d = nullptr, *gn_g = nullptr, *gn_d = nullptr, *l_perc = nullptr;
  QuantOut q;
  // several ranks: the step's losses averaged over ranks (flat, in the order of `averaged`)
  std::vector<Tensor*> averaged, means;
};

class Trainer {
 public:
  Trainer(TrainConfig cfg, const TrainOptions& opt, Backend* be) : cfg_(std::move(cfg)), opt_(opt), be_(be), st_(be) {}
  int run();

 private:
  void setup();
  void build(Stage stage, bool adv);
  bool adv_at(int64_t s) const {  // a zero adversarial weight: no discriminator at all
    double w = cfg_.adv == "adaptive" ? cfg_.disc_weight : cfg_.lambda_adv;
    return w > 0 && s >= cfg_.disc_start && stage_of(cfg_, s) != Stage::warmup;
  }
  std::string ckpt_path(bool prev = false) const {
    return opt_.out + (prev ? "/checkpoint.prev.safetensors" : "/checkpoint.safetensors") + (cfg_.zstd ? ".zst" : "");
  }
  void save_checkpoint();
  void check_ranks_agree();
  float loss(const Graph& g, Tensor* t) const;  // a loss of this step, averaged over the ranks
  void load_checkpoint(const SafetensorsFile& f);
  void ema_update(const std::vector<char>& replaced_rows);
  void probe();
  void log_line(const std::string& json);
  void final_outputs();
  void truncate_metrics(int64_t step);

  TrainConfig cfg_;
  TrainOptions opt_;
  Backend* be_;
  Store st_;
  Dataset test_;
  std::unique_ptr<TokenizerModel> model_;
  std::unique_ptr<NLayerDiscriminator> disc_;
  std::unique_ptr<LpipsLoss> lpips_;  // the perceptual loss's network (its own Store: not checkpointed)
  double perc_ms_ = -1;               // its forward + backward time per step, measured at setup
  std::unique_ptr<AdamW> opt_g_, opt_d_;
  std::unique_ptr<BatchStream> loader_;
  int rank_ = 0, ranks_ = 1;  // data-parallel rank and number of ranks (dist())
  int64_t local_batch_ = 0;   // cfg_.batch / ranks_: the images this rank encodes per step
  bool root() const { return rank_ == 0; }
  StepGraph sg_;
  int64_t step_ = 0;
  int nonfinite_run_ = 0;
  std::string last_eval_;
  // weight EMA: (weight, shadow) pairs
  std::vector<std::pair<Tensor*, Tensor*>> ema_;
  // drift probe
  Tensor *probe_lat_ = nullptr, *probe_enc_ = nullptr, *probe_valid_ = nullptr;
  std::vector<Tensor*> enc_params_;
  std::vector<float> probe_x_;
  int64_t probe_n_ = 0;
  bool tty_ = false;
};

void Trainer::setup() {
  if (cfg_.data.empty()) fail("preset %s needs --data (cifar10:DIR or folder:DIR)", cfg_.preset.c_str());
  VqganConfig vc = cfg_.vqgan_config();
  // the training stream: this rank's slice of every global batch (folder sources and shards packed
  // from folders: random crop and flip; the fixed-size sets train on the images as they are); it
  // refuses a --batch that does not split evenly over the ranks
  loader_ = open_train_stream(cfg_.data, vc.resolution, vc.in_channels, cfg_.batch, (uint64_t)cfg_.seed, rank_, ranks_);
  local_batch_ = loader_->local_batch();
  test_ = dataset_load(cfg_.data, "test", vc.resolution, vc.in_channels);
  if (loader_->channels() != vc.in_channels || loader_->image_size() != vc.resolution || test_.C != vc.in_channels ||
      test_.S != vc.resolution)
    fail("dataset %s gives %lldx%lldx%lld images; model %s takes %dx%dx%d", cfg_.data.c_str(),
         (long long)loader_->channels(), (long long)loader_->image_size(), (long long)loader_->image_size(),
         cfg_.model.c_str(), vc.in_channels, vc.resolution, vc.resolution);
  if (test_.size() == 0) fail("dataset %s: no usable test images", cfg_.data.c_str());
  train_config_resolve(cfg_, loader_->size() / cfg_.batch);

  model_ = std::make_unique<TokenizerModel>(st_, cfg_);
  if (cfg_.perceptual_weight > 0) {
    cfg_.lpips_weights = fs::absolute(cfg_.lpips_weights).string();  // a resume from elsewhere finds it
    lpips_ = std::make_unique<LpipsLoss>(cfg_.lpips_weights, be_);
    perc_ms_ = time_lpips(*lpips_->net, be_, local_batch_, vc.in_channels, vc.resolution);
  }
  disc_ = std::make_unique<NLayerDiscriminator>(st_, discriminator_preset(cfg_.model), (uint64_t)cfg_.seed + 7919);
  disc_->sync_bn = ranks_ > 1;  // BatchNorm over the global batch: the same statistics as one process
  AdamConfig ac;
  ac.lr = (float)cfg_.lr;
  ac.beta1 = 0.5f;
  ac.beta2 = 0.9f;
  opt_g_ = std::make_unique<AdamW>(st_, st_.params(GROUP_GENERATOR), ac, "adam_g");
  opt_d_ = std::make_unique<AdamW>(st_, st_.params(GROUP_DISCRIMINATOR), ac, "adam_d");
  opt_g_->clip_norm = opt_d_->clip_norm = (float)cfg_.grad_clip;
  opt_g_->average_over_ranks = opt_d_->average_over_ranks = ranks_ > 1;
  for (Tensor* t : st_.params(GROUP_GENERATOR))
    if (is_encoder_param(t)) enc_params_.push_back(t);
  if (cfg_.encoder_lr_mult != 1.0) opt_g_->set_lr_mult(enc_params_, (float)cfg_.encoder_lr_mult);
  if (cfg_.weight_ema > 0)
    for (Tensor* w : model_->weights()) {
      Tensor* e = st_.add("model_ema." + w->name, DType::f32, w->shape(), TF_PERSIST, w->group);
      st_.upload_f32(e, st_.download_f32(w));
      ema_.push_back({w, e});
    }
  // drift probe: the first `probe` test images, fixed
  probe_n_ = std::min(cfg_.probe, test_.size());
  const int64_t per = vc.in_channels * vc.resolution * vc.resolution, h = vc.latent_size();
  probe_x_.resize((size_t)(probe_n_ * per));
  for (int64_t i = 0; i < probe_n_; i++) dataset_sample(test_, i, probe_x_.data() + i * per, false, 0);
  int64_t n_enc = 0;
  for (Tensor* t : enc_params_) n_enc += t->numel();
  probe_lat_ = st_.add("train.probe.latents", DType::f32, {probe_n_, vc.embed_dim, h, h}, TF_PERSIST);
  probe_enc_ = st_.add("train.probe.encoder", DType::f32, {n_enc}, TF_PERSIST);
  probe_valid_ = st_.add("train.probe.valid", DType::i32, {1}, TF_PERSIST);
}

void Trainer::build(Stage stage, bool adv) {
  sg_ = StepGraph();
  sg_.stage = stage;
  sg_.adv = adv;
  const bool frozen = stage != Stage::stage1;
  for (Tensor* t : enc_params_) t->flags = frozen ? (t->flags | TF_FROZEN) : (t->flags & ~TF_FROZEN);
  model_->quantizer().set_replace(stage != Stage::stage2);
  sg_.g = std::make_unique<Graph>(be_);
  Graph& g = *sg_.g;
  if (ranks_ > 1) g.set_replay(false);  // collectives are not recorded into CUDA graphs
  const VqganConfig& vc = model_->vqgan();
  sg_.x = g.input(DType::f32, {local_batch_, vc.in_channels, vc.resolution, vc.resolution}, "x");
  Tensor* z = model_->autoencoder().encode(g, sg_.x);
  if (frozen) z = detach(g, z);  // the frozen encoder runs forward only
  // several ranks: the quantizer sees the latents of the whole global batch (all-gathered, in rank
  // order = the 1-rank order), so its state updates (counts, reservoir, replacement, EMA, tau) are the
  // same computation on every rank; the gradient of the gather is a reduce-scatter (each rank's
  // latents get the sum of every rank's quantizer-loss gradient and its own decoder's)
  Tensor* zq;
  if (ranks_ > 1) {
    sg_.q = model_->quantizer().build(g, allgather(g, z), true);
    zq = slice(g, sg_.q.zq, 0, rank_ * local_batch_, (rank_ + 1) * local_batch_);
  } else {
    sg_.q = model_->quantizer().build(g, z, true);
    zq = sg_.q.zq;
  }
  sg_.xr = model_->autoencoder().decode(g, zq);
  sg_.l_rec = loss_l1(g, sg_.xr, sg_.x);
  // L_nll = L_rec + w_p * mean_b LPIPS(x_b, xr_b) (method.md §5.2)
  std::vector<LossTerm> nll = {{sg_.l_rec, 1.0f}};
  Tensor* l_nll = sg_.l_rec;
  if (lpips_) {
    sg_.l_perc = mean(g, lpips_->net->distance(g, sg_.x, sg_.xr));
    nll.push_back({sg_.l_perc, (float)cfg_.perceptual_weight});
    l_nll = add(g, l_nll, scale(g, sg_.l_perc, (float)cfg_.perceptual_weight));
  }
  sg_.l_g = add(g, l_nll, sg_.q.loss);
  if (adv) {
    Tensor* fake = disc_->forward(g, sg_.xr, true);
    sg_.l_adv = cfg_.gan_loss == "ns" ? non_saturating_g_loss(g, fake) : hinge_g_loss(g, fake);
    if (cfg_.adv == "adaptive") {
      // taming: disc_weight * clamp(|grad_WL L_nll| / (|grad_WL L_adv| + 1e-4), 0, 1e4), detached
      Tensor* WL = model_->autoencoder().last_layer_weight();
      Tensor* gn = g.gradients(nll, {WL})[0];
      Tensor* ga = g.gradients({{sg_.l_adv, 1.0f}}, {WL})[0];
      if (ranks_ > 1) {  // the global batch's gradients: lambda is the same on every rank and as with one
        std::vector<Tensor*> m = allreduce(g, {gn, ga}, 1.0f / (float)ranks_);
        gn = m[0];
        ga = m[1];
      }
      Tensor* ratio = div(g, sqrt(g, sum_sq(g, gn)), unary(g, sqrt(g, sum_sq(g, ga)), UN_AFFINE, 1.0f, 1e-4f));
      sg_.lam = detach(g, scale(g, clamp(g, ratio, 0.0f, 1e4f), (float)cfg_.disc_weight));
    } else {
      sg_.lam = g.constant({}, (float)cfg_.lambda_adv);
    }
    g.mark_output(sg_.lam);
    sg_.l_g = add(g, sg_.l_g, mul(g, sg_.lam, sg_.l_adv));
    sg_.l_d = hinge_d_loss(g, disc_->forward(g, sg_.x, true), disc_->forward(g, detach(g, sg_.xr), true));
  }
  for (Tensor* l : {sg_.l_rec, sg_.l_g, sg_.l_adv, sg_.l_d, sg_.l_perc})
    if (l) g.mark_loss(l);
  g.backward({{sg_.l_g, 1.0f}}, GROUP_GENERATOR);
  if (adv) g.backward({{sg_.l_d, 1.0f}}, GROUP_DISCRIMINATOR);
  sg_.gn_g = opt_g_->append_update(g);
  if (adv) sg_.gn_d = opt_d_->append_update(g);
  if (ranks_ > 1) {
    // the losses of the global batch (what is logged, and what decides about non-finite steps)
    for (Tensor* l : {sg_.l_g, sg_.l_rec, sg_.l_adv, sg_.l_d, sg_.l_perc})
      if (l) sg_.averaged.push_back(l);
    sg_.means = allreduce(g, sg_.averaged, 1.0f / (float)ranks_);
    for (Tensor* m : sg_.means) g.mark_output(m);
  }
  g.plan();
}

// ------------------------------------------------------------------------------- checkpoints

float Trainer::loss(const Graph& g, Tensor* t) const {
  for (size_t i = 0; i < sg_.averaged.size(); i++)
    if (sg_.averaged[i] == t) return g.get_scalar(sg_.means[i]);
  return g.get_scalar(t);
}

// Several ranks: every tensor of the Store (weights, Adam moments, quantizer state, BatchNorm
// statistics, weight EMA) must hold the same bits on every rank — the drift probe's references,
// which rank 0 alone keeps, excepted. A difference is a bug, and stops the run naming the tensor.
void Trainer::check_ranks_agree() {
  std::vector<Tensor*> ts;
  std::vector<uint64_t> h;
  for (Tensor* t : st_.tensors()) {
    if (t == probe_lat_ || t == probe_enc_ || t == probe_valid_) continue;
    std::vector<uint8_t> b(t->nbytes());
    st_.download(t, b.data(), b.size());
    uint64_t x = 1469598103934665603ull;  // FNV-1a
    for (uint8_t c : b) x = (x ^ c) * 1099511628211ull;
    ts.push_back(t);
    h.push_back(x);
  }
  std::vector<uint64_t> all(h.size() * (size_t)ranks_);
  dist().allgather(h.data(), all.data(), h.size() * sizeof(uint64_t));
  for (int r = 1; r < ranks_; r++)
    for (size_t i = 0; i < h.size(); i++)
      if (all[(size_t)r * h.size() + i] != all[i])
        fail("rank %d holds another %s than rank 0 at step %lld: the ranks diverged", r, ts[i]->name.c_str(),
             (long long)step_);
}

void Trainer::save_checkpoint() {
  if (!root()) return;  // rank 0 alone writes
  std::map<std::string, std::string> md;
  md["format"] = "nsvq-tokenizer-1";
  md["nsvq_version"] = NSVQ_VERSION;
  md["config"] = train_config_json(cfg_);
  md["step"] = std::to_string(step_);
  md["stage"] = stage_name(stage_of(cfg_, std::max<int64_t>(0, step_ - 1)));
  BatchStream::Pos p = loader_->position();
  md["loader_epoch"] = std::to_string(p.epoch);
  md["loader_index"] = std::to_string(p.index);
  md["adam_g_step"] = std::to_string(opt_g_->step());
  md["adam_d_step"] = std::to_string(opt_d_->step());
  md["nonfinite_run"] = std::to_string(nonfinite_run_);
  md["rng"] = "philox4x32-10 keyed by (seed, step) and (seed, loader position); no other state";
  if (!last_eval_.empty()) md["metrics"] = last_eval_;
  // keep the previous checkpoint: hard-link it to the .prev name (atomically replacing the old one),
  // then write the new one atomically; at every moment a complete checkpoint exists under its name
  const std::string cur = ckpt_path(), prev = ckpt_path(true);
  if (access(cur.c_str(), F_OK) == 0) {
    std::string tmp = prev + ".tmp";
    unlink(tmp.c_str());
    if (link(cur.c_str(), tmp.c_str()) != 0 || rename(tmp.c_str(), prev.c_str()) != 0)
      fail("%s: cannot keep the previous checkpoint (%s)", prev.c_str(), strerror(errno));
  }
  save_store(st_, cur, md);
}

int64_t meta_int(const SafetensorsFile& f, const char* key) {
  auto it = f.metadata.find(key);
  if (it == f.metadata.end()) fail("%s: checkpoint metadata has no \"%s\"", f.path.c_str(), key);
  char* end = nullptr;
  long long v = strtoll(it->second.c_str(), &end, 10);
  if (it->second.empty() || *end || v < 0) fail("%s: checkpoint metadata \"%s\" is not a count", f.path.c_str(), key);
  return v;
}

void Trainer::load_checkpoint(const SafetensorsFile& f) {
  step_ = meta_int(f, "step");
  BatchStream::Pos p;
  p.epoch = meta_int(f, "loader_epoch");
  p.index = meta_int(f, "loader_index");
  opt_g_->set_step(meta_int(f, "adam_g_step"));
  opt_d_->set_step(meta_int(f, "adam_d_step"));
  nonfinite_run_ = (int)meta_int(f, "nonfinite_run");
  auto m = f.metadata.find("metrics");
  if (m != f.metadata.end()) last_eval_ = m->second;
  load_tensors(st_, f, st_.tensors(), true);  // strict: every tensor present, nothing unexpected, shapes equal
  loader_->seek(p);
}

// ------------------------------------------------------------------------------- per step

void Trainer::ema_update(const std::vector<char>& replaced) {
  const float d = (float)cfg_.weight_ema;
  for (auto& we : ema_) {
    std::vector<float> w = st_.download_f32(we.first), e = st_.download_f32(we.second);
    for (size_t i = 0; i < w.size(); i++) e[i] = d * e[i] + (1.0f - d) * w[i];
    if (!replaced.empty() && we.first == model_->quantizer().embedding()) {
      const int64_t D = we.first->ne[1];  // replaced codes: the shadow takes the new row (method.md §3.3)
      for (size_t k = 0; k < replaced.size(); k++)
        if (replaced[k]) std::copy(w.begin() + (int64_t)k * D, w.begin() + (int64_t)(k + 1) * D, e.begin() + (int64_t)k * D);
    }
    st_.upload_f32(we.second, e);
  }
}

void Trainer::log_line(const std::string& json) {
  if (root()) metrics_append(opt_.out + "/metrics.jsonl", json);
}

void Trainer::truncate_metrics(int64_t step) {
  if (root()) metrics_truncate(opt_.out + "/metrics.jsonl", step);
}

void Trainer::probe() {
  const VqganConfig& vc = model_->vqgan();
  const int64_t per = vc.in_channels * vc.resolution * vc.resolution, h = vc.latent_size(), D = vc.embed_dim;
  const int64_t lat_per = D * h * h;
  std::vector<float> z((size_t)(probe_n_ * lat_per));
  std::vector<int32_t> idx((size_t)(probe_n_ * h * h));
  // batches no larger than a training step's (encoder only): the probe never needs more memory than training
  const int64_t PB = std::min(cfg_.eval_batch, cfg_.batch);
  for (int64_t i0 = 0; i0 < probe_n_; i0 += PB) {
    int64_t B = std::min(PB, probe_n_ - i0);
    model_->reconstruct(probe_x_.data() + i0 * per, B, nullptr, idx.data() + i0 * h * h, z.data() + i0 * lat_per);
  }
  std::vector<float> enc;
  for (Tensor* t : enc_params_) {
    std::vector<float> v = st_.download_f32(t);
    enc.insert(enc.end(), v.begin(), v.end());
  }
  std::vector<int64_t> counts((size_t)cfg_.codes, 0);
  for (int32_t k : idx) counts[(size_t)k]++;
  int32_t valid = 0;
  st_.download(probe_valid_, &valid, 4);
  std::string line = "{\"step\": " + std::to_string(step_) + ", \"probe\": {";
  line += "\"utilization\": " + json_number(codebook_utilization(counts));
  line += ", \"dead_rate\": " + json_number(1.0 - codebook_utilization(counts));
  if (valid) {
    std::vector<float> zp = st_.download_f32(probe_lat_), ep = st_.download_f32(probe_enc_);
    double num = 0, den = 0, pn = 0, pd = 0;
    for (size_t i = 0; i < z.size(); i++) {
      num += (double)(z[i] - zp[i]) * (z[i] - zp[i]);
      den += (double)zp[i] * zp[i];
    }
    for (size_t i = 0; i < enc.size(); i++) {
      pn += (double)(enc[i] - ep[i]) * (enc[i] - ep[i]);
      pd += (double)ep[i] * ep[i];
    }
    line += ", \"drift\": " + json_number(den > 0 ? num / den : 0.0);
    line += ", \"param_drift\": " + json_number(pd > 0 ? std::sqrt(pn / pd) : 0.0);
  }
  line += "}}";
  log_line(line);
  st_.upload_f32(probe_lat_, z);
  st_.upload_f32(probe_enc_, enc);
  valid = 1;
  st_.upload(probe_valid_, &valid, 4);
}

// ------------------------------------------------------------------------------- outputs

void Trainer::final_outputs() {
  // plots from metrics.jsonl
  std::vector<Json> lines = read_metrics(opt_.out + "/metrics.jsonl");
  std::vector<double> vl;
  std::vector<std::string> vlab;
  if (cfg_.stage1 < cfg_.steps) {
    vl = {(double)cfg_.stage1, (double)(cfg_.stage1 + cfg_.warmup)};
    vlab = {"freeze", cfg_.warmup * 12 < cfg_.steps ? "" : "stage 2"};  // close lines: one label
  }
  auto plot = [&](const char* file, const char* title, const char* ylabel, bool logy,
                  std::vector<std::tuple<const char*, const char*, const char*>> ser) {
    LinePlot p;
    p.title = title;
    p.xlabel = "step";
    p.ylabel = ylabel;
    p.log_y = logy;
    p.vlines = vl;
    p.vline_labels = vlab;
    for (auto& s : ser) {
      PlotSeries ps;
      ps.label = std::get<0>(s);
      ps.y = series_of(lines, std::get<1>(s), std::get<2>(s), ps.x);
      if (!ps.y.empty()) p.series.push_back(ps);
    }
    write_svg(opt_.out + "/" + file, svg_line_plot(p));
  };
  std::string t = std::string(cfg_.quantizer) + ", K=" + std::to_string(cfg_.codes);
  plot("utilization.svg", ("codebook utilization (" + t + ")").c_str(), "fraction of codes used", false,
       {{"training window", nullptr, "util_window"}, {"probe set", "probe", "utilization"}});
  plot("loss.svg", ("losses (" + t + ")").c_str(), "loss", true,
       {{"L1 reconstruction", nullptr, "rec"}, {"VQ loss", nullptr, "vq"}, {"generator adversarial", nullptr, "adv"},
        {"discriminator", nullptr, "d_loss"}, {"quantization error", nullptr, "quant_error"}});
  plot("drift.svg", ("encoder drift on the probe set (" + t + ")").c_str(), "relative drift (0 after a freeze: not drawn)", true,
       {{"latent drift", "probe", "drift"}, {"parameter drift", "probe", "param_drift"}});
}

// ------------------------------------------------------------------------------- the loop

int Trainer::run() {
  namespace chr = std::chrono;
  rank_ = dist().rank();
  ranks_ = dist().size();
  if (!root()) opt_.quiet = true;  // rank 0 alone prints and writes
  if (root()) fs::create_directories(opt_.out);
  const std::string cur_plain = opt_.out + "/checkpoint.safetensors", cur_zst = cur_plain + ".zst";
  std::string resume_path;
  if (!root()) {
    if (opt_.resume) resume_path = "rank 0's checkpoint";
  } else if (opt_.resume) {
    bool a = access(cur_plain.c_str(), F_OK) == 0, b = access(cur_zst.c_str(), F_OK) == 0;
    if (!a && !b) fail("--resume: no checkpoint in %s", opt_.out.c_str());
    resume_path = a && b ? (fs::last_write_time(cur_zst) > fs::last_write_time(cur_plain) ? cur_zst : cur_plain)
                         : a ? cur_plain : cur_zst;
  } else if (access(cur_plain.c_str(), F_OK) == 0 || access(cur_zst.c_str(), F_OK) == 0) {
    fail("%s already holds a run; pass --resume to continue it or choose another --out", opt_.out.c_str());
  }
  SafetensorsFile ck;
  if (!resume_path.empty() && !root()) {
    // the other ranks resume from rank 0's checkpoint, sent to them (no shared file system needed)
    uint64_t n = 0;
    dist().broadcast(&n, sizeof n);
    std::vector<uint8_t> bytes((size_t)n);
    dist().broadcast(bytes.data(), bytes.size());
    ck = safetensors_parse(std::move(bytes), resume_path);
  } else if (!resume_path.empty()) {
    try {
      ck = safetensors_read(resume_path);
    } catch (const Error& e) {  // damaged on disk (writes are atomic, a crash cannot do it): the one before
      const std::string prev = opt_.out + "/checkpoint.prev.safetensors" + (resume_path.size() > 4 &&
                               resume_path.compare(resume_path.size() - 4, 4, ".zst") == 0 ? ".zst" : "");
      if (access(prev.c_str(), F_OK) != 0) throw;
      if (!opt_.quiet) printf("train: %s; resuming from %s (the damaged file is kept as .damaged)\n", e.what(), prev.c_str());
      fs::rename(resume_path, resume_path + ".damaged");  // so that the next save keeps prev as it is
      resume_path = prev;
      ck = safetensors_read(resume_path);
    }
    if (ranks_ > 1) {
      uint64_t n = ck.bytes.size();
      dist().broadcast(&n, sizeof n);
      dist().broadcast(ck.bytes.data(), ck.bytes.size());
    }
  }
  if (!resume_path.empty()) {
    int64_t steps = cfg_.steps;
    cfg_ = checkpoint_config(ck);
    if (opt_.steps_given) cfg_.steps = steps;
    std::string changed;  // options given again must equal the stored ones
    for (const auto& [name, value] : opt_.resume_given)
      for (const TrainField& f : train_fields()) {
        if (f.name != name) continue;
        TrainConfig given = cfg_;
        f.set(given, f.type == 's' && name == "lpips-weights" && !value.empty() ? fs::absolute(value).string() : value);
        if (f.get(given) != f.get(cfg_))
          changed += (changed.empty() ? "" : ", ") + ("--" + name + " " + value + " (stored: " + f.get(cfg_) + ")");
      }
    if (!changed.empty())
      fail("--resume: %s was started with other values: %s; leave them out or give the stored ones (only --steps "
           "may change)", opt_.out.c_str(), changed.c_str());
  }
  setup();
  if (!resume_path.empty()) {
    load_checkpoint(ck);
    ck = SafetensorsFile();
    if (step_ > cfg_.steps)
      fail("%s is at step %lld, beyond --steps %lld", resume_path.c_str(), (long long)step_, (long long)cfg_.steps);
    truncate_metrics(step_);
  } else {
    truncate_metrics(-1);
    log_line("{\"step\": 0, \"config\": " + train_config_json(cfg_) + "}");
  }
  tty_ = !opt_.quiet && isatty(fileno(stderr));
  if (!opt_.quiet)
    printf("train: %s, %s quantizer, K=%lld, %lld steps of %lld (%s), stage 1 until %lld, warm-up %lld, adversarial from %lld -> %s\n",
           cfg_.preset.c_str(), cfg_.quantizer.c_str(), (long long)cfg_.codes, (long long)cfg_.steps,
           (long long)cfg_.batch, cfg_.data.c_str(), (long long)cfg_.stage1, (long long)cfg_.warmup,
           (long long)cfg_.disc_start, opt_.out.c_str());
  if (!resume_path.empty() && !opt_.quiet) printf("train: resumed %s at step %lld\n", resume_path.c_str(), (long long)step_);
  if (ranks_ > 1 && !opt_.quiet)
    printf("train: data parallel, %s: %lld images per rank per step; gradients averaged by all-reduce\n",
           dist().describe().c_str(), (long long)local_batch_);
  if (lpips_ && !opt_.quiet)
    printf("train: perceptual loss LPIPS-VGG16 x %g (%s): its forward + backward at batch %lld takes %.0f ms per step\n",
           cfg_.perceptual_weight, cfg_.lpips_weights.c_str(), (long long)local_batch_, perc_ms_);
  fflush(stdout);

  StopSignals signals;

  const VqganConfig& vc = model_->vqgan();
  std::vector<float> xb((size_t)(local_batch_ * vc.in_channels * vc.resolution * vc.resolution));
  std::vector<int32_t> yb((size_t)local_batch_);
  auto t_start = chr::steady_clock::now();
  double ms_acc = 0;
  int64_t ms_n = 0, done_here = 0;
  Quantizer& quant = model_->quantizer();
  const bool nsvq = cfg_.is_nsvq();
  bool replacing_now = false;
  if (step_ == 0 && cfg_.drift_every > 0 && root()) probe();
  while (step_ < cfg_.steps) {
    const int64_t s = step_;
    Stage stage = stage_of(cfg_, s);
    bool adv = adv_at(s);
    if (!sg_.g || sg_.stage != stage || sg_.adv != adv) {
      if (sg_.g && sg_.stage != stage) {
        const char* what = stage == Stage::warmup ? "encoder frozen, adversarial off (warm-up)"
                           : stage == Stage::stage2 ? "stage 2: adversarial refinement, encoder frozen, replacement off"
                                                    : "stage 1";
        if (!opt_.quiet) fprintf(tty_ ? stderr : stdout, "%strain: step %lld: %s\n", tty_ ? "\n" : "", (long long)s, what);
        log_line("{\"step\": " + std::to_string(s) + ", \"event\": \"" + stage_name(stage) + "\"}");
      }
      build(stage, adv);
    }
    Graph& g = *sg_.g;
    auto t0 = chr::steady_clock::now();
    loader_->next(xb.data(), yb.data());
    g.set_f32(sg_.x, xb);
    const bool window_start = s % cfg_.replace_window == 0;
    if (!nsvq && window_start) quant.reset_counts();  // training-window utilization for the baselines
    std::vector<int32_t> pre_counts;
    const bool replacing = nsvq && cfg_.replace && stage != Stage::stage2 && window_start;
    replacing_now = replacing;  // the window counts were just zeroed: no window utilization to log
    if (replacing && !ema_.empty()) pre_counts = quant.window_counts();
    quant.begin_step(g, sg_.q, s);
    opt_g_->begin_step(g);
    if (adv) opt_d_->begin_step(g);
    g.compute();
    double ms = chr::duration<double, std::milli>(chr::steady_clock::now() - t0).count();
    ms_acc += ms;
    ms_n++;

    float l_g = loss(g, sg_.l_g), gn_g = g.get_scalar(sg_.gn_g);
    float gn_d = adv ? g.get_scalar(sg_.gn_d) : 0.0f;
    bool bad_g = !std::isfinite(l_g) || !std::isfinite(gn_g), bad_d = adv && !std::isfinite(gn_d);
    if (!std::isfinite(gn_g)) opt_g_->undo_step();
    if (bad_d) opt_d_->undo_step();
    if (bad_g || bad_d) {
      nonfinite_run_++;
      if (root())
        fprintf(stderr, "%strain: warning: step %lld: non-finite %s (loss %g, grad norms %g / %g); step skipped\n",
              tty_ ? "\n" : "", (long long)s, bad_g ? "generator loss or gradient" : "discriminator gradient", l_g,
              gn_g, gn_d);
      if (nonfinite_run_ >= 5) {
        step_++;
        save_checkpoint();
        fail("%d steps in a row with non-finite losses (last: step %lld); stopped, checkpoint saved in %s",
             nonfinite_run_, (long long)s, opt_.out.c_str());
      }
    } else {
      nonfinite_run_ = 0;
      if (adv) disc_->count_batch(st_);
      if (!ema_.empty()) {
        std::vector<char> replaced;
        if (!pre_counts.empty()) {
          std::vector<int32_t> hist = g.get_i32(sg_.q.hist);
          replaced.resize(hist.size());
          for (size_t k = 0; k < hist.size(); k++) replaced[k] = pre_counts[k] + hist[k] < cfg_.replace_threshold;
        }
        ema_update(replaced);
      }
    }
    step_++;
    done_here++;

    if (step_ % cfg_.log_every == 0 || step_ == cfg_.steps || step_ == 1) {
      QuantStats qs = quant.read_stats(g, sg_.q);
      std::vector<int32_t> wc = quant.window_counts();
      int64_t used = 0;
      for (int32_t c : wc) used += c > 0;
      double ms_step = ms_acc / (double)ms_n;
      ms_acc = 0;
      ms_n = 0;
      std::string j = "{\"step\": " + std::to_string(step_) + ", \"stage\": \"" + stage_name(stage) + "\"";
      auto num = [&](const char* k, double v) { j += std::string(", \"") + k + "\": " + json_number(v); };
      num("loss_g", l_g);
      num("rec", loss(g, sg_.l_rec));
      if (sg_.l_perc) num("perc", loss(g, sg_.l_perc));
      num("vq", g.get_scalar(sg_.q.loss));
      if (sg_.q.dense_loss) num("dense", g.get_scalar(sg_.q.dense_loss));
      if (sg_.q.codebook_loss) num("codebook", g.get_scalar(sg_.q.codebook_loss));
      num("commit", g.get_scalar(sg_.q.commit_loss));
      if (adv) {
        num("adv", loss(g, sg_.l_adv));
        num("lambda_adv", g.get_scalar(sg_.lam));
        num("d_loss", loss(g, sg_.l_d));
        num("grad_norm_d", gn_d);
      }
      num("grad_norm_g", gn_g);
      if (!replacing_now) num("util_window", (double)used / (double)cfg_.codes);
      num("perplexity", qs.perplexity);
      num("batch_codes", qs.used);
      num("quant_error", qs.quant_error);
      if (sg_.q.tau) num("tau", qs.tau);
      if (qs.replaced >= 0) num("replaced", qs.replaced);
      num("lr", cfg_.lr);
      num("ms_per_step", ms_step);
      if (sg_.l_perc) num("perc_ms", perc_ms_);  // timings last: a comparison of runs can cut them off
      num("img_per_s", cfg_.batch * 1000.0 / ms_step);
      BatchStream::Pos p = loader_->position();
      num("epoch", (double)p.epoch + (double)p.index / (double)loader_->size());
      j += "}";
      log_line(j);
      if (!opt_.quiet) {
        double el = chr::duration<double>(chr::steady_clock::now() - t_start).count();
        double eta = el / (double)done_here * (double)(cfg_.steps - step_);
        char b[320];
        snprintf(b, sizeof b, "step %lld/%lld [%s] rec %.4f vq %.4f util %.1f%% ppl %.0f %.0f img/s ETA %s",
                 (long long)step_, (long long)cfg_.steps, stage_name(stage), loss(g, sg_.l_rec),
                 g.get_scalar(sg_.q.loss), 100.0 * used / (double)cfg_.codes, qs.perplexity,
                 cfg_.batch * 1000.0 / ms_step, fmt_duration(eta).c_str());
        if (tty_) fprintf(stderr, "\r%-110s", b);
        else printf("%s\n", b);
        fflush(tty_ ? stderr : stdout);
      }
    }
    if (cfg_.drift_every > 0 && step_ % cfg_.drift_every == 0 && root()) probe();
    bool stop_now = signals.caught() != 0 || (opt_.stop_after >= 0 && done_here >= opt_.stop_after);
    if (ranks_ > 1) stop_now = dist().allreduce_max(stop_now) != 0;  // a signal to any rank stops all at this step
    if (step_ % cfg_.ckpt_every == 0 || stop_now || step_ == cfg_.steps) {
      if (ranks_ > 1) check_ranks_agree();
      save_checkpoint();
    }
    if (stop_now && step_ < cfg_.steps) {
      if (!opt_.quiet)
        fprintf(stderr, "%strain: %s at step %lld; checkpoint saved in %s (continue with --resume)\n",
                tty_ ? "\n" : "", signals.caught() ? "interrupted" : "stopped", (long long)step_, opt_.out.c_str());
      return signals.caught() ? 130 : 0;
    }
  }
  signals.restore();  // the last checkpoint is written: Ctrl-C during the evaluation just stops
  if (tty_) fprintf(stderr, "\n");
  sg_ = StepGraph();  // free the step graph's arena before evaluating
  if (const char* dump = getenv("NSVQ_DIST_DUMP"); dump && *dump && ranks_ > 1)  // tests: each rank's state
    save_store(st_, opt_.out + "/rank" + std::to_string(rank_) + ".safetensors", {{"step", std::to_string(step_)}});
  if (!root()) return 0;  // rank 0 evaluates and draws

  // final evaluation (with the weight-EMA copy when the run keeps one)
  if (cfg_.eval_n > 0) {
    std::vector<std::vector<float>> backup;
    for (auto& we : ema_) {
      backup.push_back(st_.download_f32(we.first));
      st_.upload_f32(we.first, st_.download_f32(we.second));
    }
    std::vector<float> recon;
    std::unique_ptr<FdFeatures> fd;
    if (!opt_.fd_net.empty()) fd = std::make_unique<FdFeatures>(opt_.fd_net, be_);
    std::unique_ptr<LpipsMetric> lm;
    if (lpips_) lm = std::make_unique<LpipsMetric>(cfg_.lpips_weights, be_);
    EvalResult r = tokenizer_evaluate(*model_, test_, cfg_.eval_n, cfg_.eval_batch, fd.get(), &recon, 32, nullptr, lm.get());
    for (size_t i = 0; i < ema_.size(); i++) st_.upload_f32(ema_[i].first, backup[i]);
    model_->drop_graphs();
    last_eval_ = r.json();
    log_line("{\"step\": " + std::to_string(step_) + ", \"eval\": " + last_eval_ + "}");
    write_file_atomic(opt_.out + "/eval.json", (last_eval_ + "\n").data(), last_eval_.size() + 1);
    image_write_png(opt_.out + "/recon.png",
                    image_grid(recon.data(), (int64_t)(recon.size() / (size_t)(vc.in_channels * vc.resolution * vc.resolution)),
                               vc.in_channels, vc.resolution, vc.resolution, 16));
    BarPlot bp;
    bp.title = "code usage on " + std::to_string(r.images) + " test images (" + cfg_.quantizer + ", K=" +
               std::to_string(cfg_.codes) + ")";
    bp.xlabel = "code (sorted by usage)";
    bp.ylabel = "assignments";
    bp.sort_desc = true;
    for (int64_t c : r.counts) bp.values.push_back((double)c);
    write_svg(opt_.out + "/codebook_usage.svg", svg_bar_plot(bp));
    save_checkpoint();  // again, now with the evaluation in its metadata
    if (!opt_.quiet)
      printf("eval: %lld test images: utilization %.4f, perplexity %.1f, quant_error %.4g, PSNR %.2f dB, SSIM %.4f%s\n",
             (long long)r.images, r.utilization, r.perplexity, r.quant_error, r.psnr, r.ssim,
             (std::string(r.fd_proxy >= 0 ? ", fd_proxy " + std::to_string(r.fd_proxy) : "") +
              (r.lpips >= 0 ? ", LPIPS " + std::to_string(r.lpips) : ""))
                 .c_str());
  }
  final_outputs();
  if (!opt_.quiet) {
    double el = chr::duration<double>(chr::steady_clock::now() - t_start).count();
    printf("train: done, %lld steps in %s; outputs in %s\n", (long long)done_here, fmt_duration(el).c_str(), opt_.out.c_str());
  }
  return 0;
}

}  // namespace

int train_run(TrainConfig cfg, const TrainOptions& opt, Backend* be) {
  if (opt.out.empty()) fail("--out is empty");
  Trainer t(std::move(cfg), opt, be);
  return t.run();
}

}  // namespace nsvq
