// tools/cmd_tokenizer.cpp — using a trained tokenizer: `nsvq eval`, `nsvq tokenize`, `nsvq decode`,
// `nsvq reconstruct`, and the checkpoint report behind `nsvq info -m`.
#include <cstdio>
#include <filesystem>
#include "engine/backend.h"
#include "models/module.h"
#include "models/safetensors.h"
#include "train/fdnet.h"
#include "train/fid_lpips.h"
#include "train/atomic_file.h"
#include "train/image_io.h"
#include "train/tokenizer.h"
#include "train/tokens.h"
#include "tools/args.h"
#include "tools/commands.h"

namespace nsvq {

namespace {

const Opt OPT_MODEL{"model", "m", "", "checkpoint (checkpoint.safetensors[.zst] of a run)"};
const Opt OPT_RAW{"raw-weights", "", "", "use the trained weights even when the run kept a weight EMA", true};
const Opt OPT_DEVICE{"device", "", "cpu", "cpu | cuda | cuda:N"};
const Opt OPT_PRECISION NSVQ_PRECISION_OPTION;
const Opt OPT_THREADS{"threads", "t", "0", "CPU threads (0: all cores)"};

// The model of -m: only the half a command runs is read (tokenize: the encoder; decode: the decoder).
LoadedTokenizer open_model(const Args& a, const char* cmd, ModelPart part = ModelPart::all) {
  if (a.str("model").empty()) fail("nsvq %s: -m CHECKPOINT is required", cmd);
  cpu_set_threads((int)a.i64("threads"));
  return tokenizer_load(a.str("model"), backend_for(a.str("device"), a.str("precision")), !a.flag("raw-weights"), part);
}

// One image file as a float [C, R, R] in [-1, 1] for model m; the wrong size or a colour image for
// a gray model are errors naming the file (--resize resizes and centre-crops instead).
void read_input(const std::string& path, TokenizerModel& m, bool resize, float* x) {
  const int C = (int)m.channels();
  const int64_t R = m.resolution();
  Image im = image_read(path, C);
  if (C == 1 && im.src_channels >= 3)
    fail("%s: a colour image (%d channels); the model takes gray images", path.c_str(), im.src_channels);
  if (im.H != R || im.W != R) {
    if (!resize)
      fail("%s: %lldx%lld pixels; the model takes %lldx%lld (pass --resize to resize and centre-crop)", path.c_str(),
           (long long)im.W, (long long)im.H, (long long)R, (long long)R);
    im = image_resize_center_crop(im, R);
  }
  for (size_t i = 0; i < im.px.size(); i++) x[i] = im.px[i] * (2.0f / 255.0f) - 1.0f;
}

}  // namespace

int cmd_eval(int argc, char** argv, int first) {
  Args a("eval", "Evaluates a tokenizer on a dataset's test split (method.md §7) and prints the metrics.",
         {OPT_MODEL, {"data", "", "", "fmnist | cifar10:DIR | folder:DIR (default: the run's dataset)"},
          {"n", "", "10000", "test images (0: all)"}, {"batch", "", "100", "images per batch"},
          {"fd-net", "", "", "fd-net file (nsvq fd-net train) for the Frechet-distance proxy"},
          {"fid-weights", "", "", "InceptionV3-FID weights (tools/convert-weights.py inception) for rfid; docs/metrics.md"},
          {"lpips-weights", "", "", "LPIPS-VGG16 weights (tools/convert-weights.py lpips) for lpips; docs/metrics.md"},
          {"json", "", "", "print one JSON object", true}, OPT_RAW, OPT_DEVICE, OPT_PRECISION, OPT_THREADS},
         argc, argv, first);
  LoadedTokenizer L = open_model(a, "eval");
  TokenizerModel& m = *L.model;
  std::string spec = a.given("data") ? a.str("data") : m.config().data;
  int64_t n = a.i64("n"), batch = a.i64("batch");
  if (n < 0 || batch < 1) fail("nsvq eval: --n must be >= 0 and --batch >= 1");
  Dataset d = dataset_load(spec, "test", m.resolution(), (int)m.channels());
  if (n == 0) n = d.size();
  std::unique_ptr<FdFeatures> fd;
  if (!a.str("fd-net").empty()) fd = std::make_unique<FdFeatures>(a.str("fd-net"), m.store().backend());
  std::unique_ptr<FidFeatures> fid;
  std::unique_ptr<LpipsMetric> lpips;
  if (!a.str("fid-weights").empty()) fid = std::make_unique<FidFeatures>(a.str("fid-weights"), m.store().backend());
  if (!a.str("lpips-weights").empty()) lpips = std::make_unique<LpipsMetric>(a.str("lpips-weights"), m.store().backend());
  EvalResult r = tokenizer_evaluate(m, d, n, batch, fd.get(), nullptr, 0, fid.get(), lpips.get());
  if (a.flag("json")) {
    std::string j = r.json();
    j.insert(1, "\"checkpoint\": \"" + L.path + "\", \"data\": \"" + spec + "\", \"ema_weights\": " +
                    (L.ema_weights ? "true" : "false") + ", ");
    printf("%s\n", j.c_str());
  } else {
    printf("checkpoint: %s (step %s)%s\ndata: %s, %lld test images\n", L.path.c_str(), L.metadata["step"].c_str(),
           L.ema_weights ? ", weight-EMA copy" : "", spec.c_str(), (long long)r.images);
    printf("utilization %.4f  perplexity %.2f  quant_error %.5g  PSNR %.3f dB  SSIM %.4f\n", r.utilization,
           r.perplexity, r.quant_error, r.psnr, r.ssim);
    if (r.fd_proxy >= 0) printf("fd_proxy %.4f (Frechet distance of fd-net features; not comparable to rFID)\n", r.fd_proxy);
    if (r.rfid >= 0) printf("rFID %.4f (pytorch-fid InceptionV3, %lld images)\n", r.rfid, (long long)r.images);
    else printf("rFID unavailable (no --fid-weights; see docs/metrics.md)\n");
    if (r.lpips >= 0) printf("LPIPS %.5f (VGG16, v0.1)\n", r.lpips);
    else printf("LPIPS unavailable (no --lpips-weights; see docs/metrics.md)\n");
  }
  if (!d.skipped.empty()) fprintf(stderr, "eval: %zu unreadable files skipped\n", d.skipped.size());
  return 0;
}

int cmd_tokenize(int argc, char** argv, int first) {
  Args a("tokenize", "Encodes images (PNG, JPEG, ...) to code indices in a token file (train/tokens.h).",
         {OPT_MODEL, {"output", "o", "", "token file to write (.nsvqt; a name ending in .txt: text, a line per image: "
                                         "its path, then its grid_h x grid_w tokens row by row)"},
          {"resize", "", "", "resize and centre-crop images of another size", true}, {"batch", "", "32", "images per batch"},
          OPT_RAW, OPT_DEVICE, OPT_PRECISION, OPT_THREADS},
         argc, argv, first);
  if (a.str("output").empty()) fail("nsvq tokenize: -o TOKENS.nsvqt is required");
  if (a.positional().empty()) fail("nsvq tokenize: no input images");
  LoadedTokenizer L = open_model(a, "tokenize", ModelPart::encoder);
  TokenizerModel& m = *L.model;
  const int64_t n = (int64_t)a.positional().size(), per = m.channels() * m.resolution() * m.resolution();
  const int64_t hw = m.grid() * m.grid(), batch = std::max<int64_t>(1, a.i64("batch"));
  TokenFile t;
  t.n = n;
  t.h = t.w = m.grid();
  t.K = m.codes();
  t.idx.resize((size_t)(n * hw));
  std::vector<float> x;
  for (int64_t i0 = 0; i0 < n; i0 += batch) {
    int64_t B = std::min(batch, n - i0);
    x.resize((size_t)(B * per));
    for (int64_t b = 0; b < B; b++) read_input(a.positional()[(size_t)(i0 + b)], m, a.flag("resize"), x.data() + b * per);
    m.encode(x.data(), B, t.idx.data() + i0 * hw);
  }
  const std::string out = a.str("output");
  if (out.size() > 4 && out.compare(out.size() - 4, 4, ".txt") == 0) {  // text: a line per image
    std::string txt;
    for (int64_t i = 0; i < n; i++) {
      txt += a.positional()[(size_t)i];
      for (int64_t k = 0; k < hw; k++) txt += " " + std::to_string(t.idx[(size_t)(i * hw + k)]);
      txt += "\n";
    }
    write_file_atomic(out, txt.data(), txt.size());
  } else {
    tokens_write(out, t);
  }
  printf("tokenize: %lld images -> %s (%lldx%lld tokens each, K=%lld)\n", (long long)n, a.str("output").c_str(),
         (long long)t.h, (long long)t.w, (long long)t.K);
  return 0;
}

int cmd_decode(int argc, char** argv, int first) {
  Args a("decode", "Decodes a token file to PNG images (DIR/00000.png, ...).",
         {OPT_MODEL, {"output", "o", "", "folder for the PNGs"}, {"batch", "", "32", "images per batch"}, OPT_RAW,
          OPT_DEVICE, OPT_PRECISION, OPT_THREADS},
         argc, argv, first);
  if (a.str("output").empty()) fail("nsvq decode: -o DIR is required");
  if (a.positional().size() != 1) fail("nsvq decode: expected one token file");
  const std::string tp = a.positional()[0];
  TokenFile t = tokens_read(tp);  // before the model: a bad token file fails fast
  LoadedTokenizer L = open_model(a, "decode", ModelPart::decoder);
  TokenizerModel& m = *L.model;
  if (t.h != m.grid() || t.w != m.grid() || t.K != m.codes())
    fail("%s: %lldx%lld tokens over K=%lld codes; the model %s uses %lldx%lld over K=%lld", tp.c_str(), (long long)t.h,
         (long long)t.w, (long long)t.K, L.path.c_str(), (long long)m.grid(), (long long)m.grid(), (long long)m.codes());
  std::filesystem::create_directories(a.str("output"));
  const int64_t C = m.channels(), R = m.resolution(), per = C * R * R, hw = t.h * t.w;
  const int64_t batch = std::max<int64_t>(1, a.i64("batch"));
  std::vector<float> xr;
  for (int64_t i0 = 0; i0 < t.n; i0 += batch) {
    int64_t B = std::min(batch, t.n - i0);
    xr.resize((size_t)(B * per));
    m.decode(t.idx.data() + i0 * hw, B, xr.data());
    for (int64_t b = 0; b < B; b++) {
      char name[32];
      snprintf(name, sizeof name, "/%05lld.png", (long long)(i0 + b));
      image_write_png(a.str("output") + name, image_from_float(xr.data() + b * per, C, R, R));
    }
  }
  printf("decode: %lld images -> %s\n", (long long)t.n, a.str("output").c_str());
  return 0;
}

int cmd_reconstruct(int argc, char** argv, int first) {
  Args a("reconstruct", "Encodes, quantizes and decodes one image: nsvq reconstruct -m CKPT IN.png -o OUT.png",
         {OPT_MODEL, {"output", "o", "", "PNG to write"}, {"resize", "", "", "resize and centre-crop an image of another size", true},
          OPT_RAW, OPT_DEVICE, OPT_PRECISION, OPT_THREADS},
         argc, argv, first);
  if (a.str("output").empty()) fail("nsvq reconstruct: -o OUT.png is required");
  if (a.positional().size() != 1) fail("nsvq reconstruct: expected one input image");
  LoadedTokenizer L = open_model(a, "reconstruct");
  TokenizerModel& m = *L.model;
  const int64_t C = m.channels(), R = m.resolution();
  std::vector<float> x((size_t)(C * R * R)), xr(x.size());
  read_input(a.positional()[0], m, a.flag("resize"), x.data());
  m.reconstruct(x.data(), 1, xr.data(), nullptr);
  image_write_png(a.str("output"), image_from_float(xr.data(), C, R, R));
  return 0;
}

int cmd_export(int argc, char** argv, int first) {
  Args a("export", "Writes the inference weights of a tokenizer checkpoint (taming names, config in the metadata; the "
         "weight-EMA copy when the run kept one): what tokenize, decode and the C API need, a fraction of a training "
         "checkpoint.",
         {OPT_MODEL, {"output", "o", "", "file to write (.safetensors, or .safetensors.zst for zstd)"},
          {"part", "", "all", "all | encoder (tokenize) | decoder (decode)"}, OPT_RAW, OPT_THREADS},
         argc, argv, first);
  if (a.str("output").empty()) fail("nsvq export: -o MODEL.safetensors is required");
  if (!a.positional().empty()) fail("nsvq export: unexpected argument '%s'", a.positional()[0].c_str());
  const ModelPart part = model_part_from_name(a.str("part"));
  if (a.str("model").empty()) fail("nsvq export: -m CHECKPOINT is required");
  cpu_set_threads((int)a.i64("threads"));
  LoadedTokenizer L = tokenizer_load(a.str("model"), backend_by_name("cpu"), !a.flag("raw-weights"), part);
  std::map<std::string, std::string> md = {{"source", a.str("model")}, {"ema_weights", L.ema_weights ? "true" : "false"}};
  for (const char* k : {"step", "stage", "metrics"})
    if (L.metadata.count(k)) md[k] = L.metadata[k];
  tokenizer_save(*L.model, a.str("output"), md);
  int64_t bytes = 0;
  for (Tensor* t : L.model->weights()) bytes += (int64_t)t->nbytes();
  printf("export: %s of %s%s -> %s (%.1f MB of weights)\n", model_part_name(part), a.str("model").c_str(),
         L.ema_weights ? " (weight-EMA copy)" : "", a.str("output").c_str(), (double)bytes / 1e6);
  return 0;
}

int info_checkpoint(const std::string& path) {
  SafetensorsFile f = safetensors_open(path);
  LoadedTokenizer L = tokenizer_load(f, checkpoint_config(f), backend_by_name("cpu"), "", checkpoint_part(f));
  TokenizerModel& m = *L.model;
  const VqganConfig& vc = m.vqgan();
  Store& st = m.store();
  printf("checkpoint: %s\n", path.c_str());
  printf("nsvq version: %s\n", L.metadata.count("nsvq_version") ? L.metadata["nsvq_version"].c_str() : "?");
  printf("step: %s, stage: %s%s\n", L.metadata["step"].c_str(), L.metadata["stage"].c_str(),
         L.metadata.count("part") ? (", inference file: " + L.metadata["part"]).c_str() : "");
  printf("model: %s (%dx%dx%d, ch %d, f%d, %lldx%lld tokens, D=%d), quantizer %s, K=%lld\n", vc.name.c_str(),
         vc.in_channels, vc.resolution, vc.resolution, vc.ch, vc.downsample_factor(), (long long)m.grid(),
         (long long)m.grid(), vc.embed_dim, m.config().quantizer.c_str(), (long long)m.codes());
  printf("parameters: encoder %lld, decoder %lld, quant_conv %lld, post_quant_conv %lld, quantizer %lld\n",
         (long long)count_params(st, "encoder."), (long long)count_params(st, "decoder."),
         (long long)count_params(st, "quant_conv."), (long long)count_params(st, "post_quant_conv."),
         (long long)count_params(st, "quantize."));
  printf("config: %s\n", L.metadata["config"].c_str());
  printf("metrics: %s\n", L.metadata.count("metrics") ? L.metadata["metrics"].c_str() : "(none stored)");
  return 0;
}

}  // namespace nsvq
