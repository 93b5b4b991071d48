// api/nsvq_api.cpp — the C API of include/nsvq.h over train/tokenizer: a handle holding the file's
// header and config, the encoder half and the decoder half loaded on first use (tokenizer_load with a
// ModelPart: only their tensors are read), HWC uint8 <-> CHW float conversion, and the error barrier:
// every entry point catches every exception and turns it into a code and a message on the handle.
#include "include/nsvq.h"
#include <algorithm>
#include <cstring>
#include <new>
#include <string>
#include <vector>
#include "engine/backend.h"
#include "models/safetensors.h"
#include "train/metrics.h"
#include "train/tokenizer.h"

using namespace nsvq;

struct nsvq_model {
  std::string path;
  int threads = 0;
  int batch = 1;
  TrainConfig cfg;
  nsvq_model_info info{};
  LoadedTokenizer enc, dec;  // loaded on first tokenize / decode
  std::string error;
  std::vector<float> x;  // one batch, CHW floats
};

namespace {

// An error of the file (unreadable, corrupt, truncated, not a tokenizer, the wrong half).
struct FileError : Error {
  explicit FileError(const std::string& m) : Error(m) {}
};

// Runs body() behind the error barrier: 0, or a code with the message stored on m.
template <class F>
int guarded(nsvq_model* m, F body) {
  try {
    m->error.clear();
    CpuThreadsScope threads(m->threads);
    body();
    return NSVQ_OK;
  } catch (const FileError& e) {
    m->error = e.what();
    return NSVQ_EFILE;
  } catch (const std::bad_alloc&) {
    m->error = "out of memory";
    return NSVQ_ENOMEM;
  } catch (const std::exception& e) {
    m->error = e.what();
    return NSVQ_EINVAL;
  } catch (...) {
    m->error = "internal error (unknown exception)";
    return NSVQ_EINTERNAL;
  }
}

int invalid(nsvq_model* m, const std::string& msg) {
  m->error = msg;
  return NSVQ_EINVAL;
}

void copy_error(char* err, size_t n, const std::string& msg) {
  if (!err || n == 0) return;
  size_t k = std::min(n - 1, msg.size());
  std::memcpy(err, msg.data(), k);
  err[k] = '\0';
}

// The half of the model a call needs, read from the file the first time (only its tensors).
TokenizerModel& half(nsvq_model* m, ModelPart part) {
  LoadedTokenizer& L = part == ModelPart::encoder ? m->enc : m->dec;
  if (!L.model) {
    try {
      L = tokenizer_load(m->path, backend_cpu(), true, part);
    } catch (const Error& e) {
      throw FileError(e.what());
    }
  }
  return *L.model;
}

}  // namespace

extern "C" {

const char* nsvq_version(void) { return NSVQ_VERSION; }

nsvq_model* nsvq_open(const char* path, int threads, char* err, size_t err_size) {
  if (!path) {
    copy_error(err, err_size, "nsvq_open: checkpoint_path is NULL");
    return nullptr;
  }
  nsvq_model* m = nullptr;
  try {
    m = new nsvq_model();
    m->path = path;
    m->threads = threads;
    CpuThreadsScope scope(threads);
    SafetensorsFile f = safetensors_open(path);
    f.visit({}, nullptr);  // a .zst is checked whole now (one streaming pass), not at first use
    m->cfg = checkpoint_config(f);
    checkpoint_part(f);  // a valid part name
    const VqganConfig vc = m->cfg.vqgan_config();
    m->info.image_size = vc.resolution;
    m->info.channels = vc.in_channels;
    m->info.grid_h = m->info.grid_w = vc.latent_size();
    m->info.codes = (int)m->cfg.codes;
    m->info.code_dim = vc.embed_dim;
    const int64_t r = std::max(1, vc.resolution / 32);
    m->batch = (int)std::max<int64_t>(1, 32 / (r * r));
    return m;
  } catch (const std::bad_alloc&) {
    copy_error(err, err_size, "out of memory");
  } catch (const std::exception& e) {
    copy_error(err, err_size, e.what());
  } catch (...) {
    copy_error(err, err_size, "internal error (unknown exception)");
  }
  delete m;
  return nullptr;
}

void nsvq_close(nsvq_model* m) { delete m; }

void nsvq_get_info(const nsvq_model* m, nsvq_model_info* info) {
  if (!info) return;
  if (!m) {
    *info = nsvq_model_info{};
    return;
  }
  *info = m->info;
}

int nsvq_set_batch(nsvq_model* m, int batch) {
  if (!m) return NSVQ_EINVAL;
  if (batch < 1) return invalid(m, "nsvq_set_batch: batch must be >= 1, got " + std::to_string(batch));
  m->batch = batch;
  m->error.clear();
  return NSVQ_OK;
}

int nsvq_tokenize(nsvq_model* m, const uint8_t* pixels, int n, int height, int width, int channels, int32_t* tokens) {
  if (!m) return NSVQ_EINVAL;
  const nsvq_model_info& in = m->info;
  if (n < 0) return invalid(m, "nsvq_tokenize: n must be >= 0, got " + std::to_string(n));
  if (n == 0) return NSVQ_OK;
  if (!pixels || !tokens) return invalid(m, std::string("nsvq_tokenize: ") + (pixels ? "tokens" : "pixels") + " is NULL");
  if (height != in.image_size || width != in.image_size || channels != in.channels)
    return invalid(m, "nsvq_tokenize: images of " + std::to_string(height) + "x" + std::to_string(width) + "x" +
                          std::to_string(channels) + "; the model takes " + std::to_string(in.image_size) + "x" +
                          std::to_string(in.image_size) + "x" + std::to_string(in.channels) +
                          " (resize before calling: the command line's --resize does it for files)");
  return guarded(m, [&] {
    TokenizerModel& tm = half(m, ModelPart::encoder);
    const int64_t C = in.channels, P = (int64_t)in.image_size * in.image_size, per = C * P;
    const int64_t hw = (int64_t)in.grid_h * in.grid_w;
    for (int64_t i0 = 0; i0 < n; i0 += m->batch) {
      const int64_t B = std::min<int64_t>(m->batch, n - i0);
      m->x.resize((size_t)(B * per));
      for (int64_t b = 0; b < B; b++) {  // HWC uint8 -> CHW in [-1, 1], as the command line reads files
        const uint8_t* src = pixels + (i0 + b) * per;
        float* dst = m->x.data() + b * per;
        for (int64_t p = 0; p < P; p++)
          for (int64_t c = 0; c < C; c++) dst[c * P + p] = src[p * C + c] * (2.0f / 255.0f) - 1.0f;
      }
      tm.encode(m->x.data(), B, tokens + i0 * hw);
    }
  });
}

int nsvq_decode(nsvq_model* m, const int32_t* tokens, int n, uint8_t* pixels) {
  if (!m) return NSVQ_EINVAL;
  const nsvq_model_info& in = m->info;
  if (n < 0) return invalid(m, "nsvq_decode: n must be >= 0, got " + std::to_string(n));
  if (n == 0) return NSVQ_OK;
  if (!pixels || !tokens) return invalid(m, std::string("nsvq_decode: ") + (pixels ? "tokens" : "pixels") + " is NULL");
  const int64_t hw = (int64_t)in.grid_h * in.grid_w;
  for (int64_t i = 0; i < n * hw; i++)
    if (tokens[i] < 0 || tokens[i] >= in.codes)
      return invalid(m, "nsvq_decode: token " + std::to_string(tokens[i]) + " at position " + std::to_string(i) +
                            " is out of range (the codebook has " + std::to_string(in.codes) + " codes)");
  return guarded(m, [&] {
    TokenizerModel& tm = half(m, ModelPart::decoder);
    const int64_t C = in.channels, P = (int64_t)in.image_size * in.image_size, per = C * P;
    for (int64_t i0 = 0; i0 < n; i0 += m->batch) {
      const int64_t B = std::min<int64_t>(m->batch, n - i0);
      m->x.resize((size_t)(B * per));
      tm.decode(tokens + i0 * hw, B, m->x.data());
      for (int64_t b = 0; b < B; b++) {  // CHW in [-1, 1] -> HWC uint8 (method.md §7.4 rounding)
        const float* src = m->x.data() + b * per;
        uint8_t* dst = pixels + (i0 + b) * per;
        for (int64_t p = 0; p < P; p++)
          for (int64_t c = 0; c < C; c++) dst[p * C + c] = to_uint8(src[c * P + p]);
      }
    }
  });
}

const char* nsvq_error(const nsvq_model* m) {
  if (!m) return "no model (the handle is NULL: nsvq_open failed or was not called)";
  return m->error.c_str();
}

}  // extern "C"
