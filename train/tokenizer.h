// train/tokenizer.h — a VQGAN tokenizer for inference and evaluation: the autoencoder and quantizer
// of a TrainConfig in a Store (the trainer's own, or one loaded from a checkpoint), cached
// evaluation graphs per batch size (reconstruct, encode to indices, decode indices), and the
// evaluation of method.md §7 over a dataset: codebook utilization and perplexity over the whole
// evaluation set, quantization error, PSNR, SSIM and (with an fd-net) the Fréchet-distance proxy.
#pragma once
#include <map>
#include <memory>
#include <string>
#include <vector>
#include "models/quantizer.h"
#include "models/safetensors.h"
#include "models/vqgan.h"
#include "train/data.h"
#include "train/train_config.h"

namespace nsvq {

class FdFeatures;
class FidFeatures;
class LpipsMetric;

class TokenizerModel {
 public:
  // Registers the autoencoder and quantizer of cfg (resolved: train_config_resolve) in st (fresh,
  // seeded weights). part: only the encoder or decoder half (inference); inference: the quantizer
  // without its training state.
  TokenizerModel(Store& st, const TrainConfig& cfg, ModelPart part = ModelPart::all, bool inference = false);
  ~TokenizerModel();
  const TrainConfig& config() const { return cfg_; }
  const VqganConfig& vqgan() const { return vc_; }
  VqganAutoencoder& autoencoder() { return *ae_; }
  Quantizer& quantizer() { return *quant_; }
  Store& store() { return st_; }
  // The tensors inference needs (autoencoder parameters and the quantizer's codebook tensors).
  std::vector<Tensor*> weights() const;
  int64_t channels() const { return vc_.in_channels; }
  int64_t resolution() const { return vc_.resolution; }
  int64_t grid() const { return vc_.latent_size(); }
  int64_t dim() const { return vc_.embed_dim; }
  int64_t codes() const { return cfg_.codes; }

  // x: B images [C, R, R] in [-1, 1]. Outputs may be nullptr when not wanted.
  //   xr [B, C, R, R], idx [B, h, w], z_e [B, D, h, w], qerr: sum over latents of the nearest distance.
  //   Without xr only the encoder and the quantizer run (a graph of its own).
  void reconstruct(const float* x, int64_t B, float* xr, int32_t* idx, float* z_e = nullptr, double* qerr = nullptr);
  void encode(const float* x, int64_t B, int32_t* idx);
  void decode(const int32_t* idx, int64_t B, float* xr);  // indices must be < codes()
  // Continuous latents z [B, D, h, w] (e.g. a diffusion sample): snapped to the nearest codes (idx,
  // may be nullptr) and decoded to images xr [B, C, R, R].
  void decode_latent(const float* z, int64_t B, float* xr, int32_t* idx);
  // The effective codebook [K, D] on the host (SimVQ: W C + b), the rows decode() looks up.
  std::vector<float> codebook();
  void drop_graphs();  // frees the cached graphs

 private:
  struct Runner;
  Runner& runner(int mode, int64_t B);
  Store& st_;
  TrainConfig cfg_;
  VqganConfig vc_;
  std::unique_ptr<VqganAutoencoder> ae_;
  std::unique_ptr<Quantizer> quant_;
  std::map<std::pair<int, int64_t>, std::unique_ptr<Runner>> graphs_;
};

// A checkpoint opened for inference: its config and metadata, and the model with its weights (the
// weight-EMA copy when the run kept one and use_ema is set). Fails with one line naming the file for
// a missing, truncated, corrupt or non-tokenizer file, and lists missing or mis-shaped tensors.
struct LoadedTokenizer {
  std::string path;
  std::map<std::string, std::string> metadata;
  bool ema_weights = false;  // the EMA copy was loaded
  std::unique_ptr<Store> store;
  std::unique_ptr<TokenizerModel> model;
};
// Only the tensors of `part` are read from the file (never the whole file: optimizer moments,
// discriminator and the other half stay on disk).
LoadedTokenizer tokenizer_load(const std::string& path, Backend* be, bool use_ema = true, ModelPart part = ModelPart::all);
// The same from a file already read: the model of `cfg` with its weights stored under file_prefix
// (e.g. "first_stage_model." inside a latent-diffusion checkpoint).
LoadedTokenizer tokenizer_load(const SafetensorsFile& f, const TrainConfig& cfg, Backend* be, const std::string& file_prefix,
                               ModelPart part = ModelPart::all);

// The config stored in a tokenizer checkpoint's metadata; fails naming the file when it has none.
TrainConfig checkpoint_config(const SafetensorsFile& f);
// The half an inference file holds (metadata "part", written by nsvq export); all for a training checkpoint.
ModelPart checkpoint_part(const SafetensorsFile& f);
// Writes m's inference weights (those of its part, under their plain names) with the format, config
// and part in the metadata, plus `extra`: a file tokenizer_load, the C API and PyTorch read by name.
void tokenizer_save(TokenizerModel& m, const std::string& path, const std::map<std::string, std::string>& extra = {});

struct EvalResult {
  int64_t images = 0;
  double utilization = 0, perplexity = 0, quant_error = 0, psnr = 0, ssim = 0;
  double fd_proxy = -1;  // < 0: not computed (no fd-net)
  double rfid = -1;      // < 0: not computed (no InceptionV3-FID weights): JSON null
  double lpips = -1;     // < 0: not computed (no LPIPS weights): JSON null
  std::vector<int64_t> counts;  // per code, over the evaluation set
  std::string json() const;     // one JSON object (without the counts)
};
// Evaluates the first n images of d (centre crops, batches of `batch`). fd: optional fd-net; fid:
// optional InceptionV3-FID (rfid of the reconstructions against the originals); lpips: optional
// LPIPS-VGG16 (mean distance of each original and its reconstruction).
// recon: when not null, receives the first min(n, recon_n) originals and reconstructions interleaved
// (original, reconstruction, ...) for a grid.
EvalResult tokenizer_evaluate(TokenizerModel& m, const Dataset& d, int64_t n, int64_t batch, FdFeatures* fd = nullptr,
                              std::vector<float>* recon = nullptr, int64_t recon_n = 32, FidFeatures* fid = nullptr,
                              LpipsMetric* lpips = nullptr);

}  // namespace nsvq
