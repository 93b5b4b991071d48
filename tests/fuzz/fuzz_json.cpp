// tests/fuzz/fuzz_json.cpp — libFuzzer target: the strict JSON reader (models/json.h) on any bytes, then
// the checkpoint config readers on whatever parses (train and latent-diffusion configs).
#include <cstdint>
#include <string>
#include "engine/tensor.h"
#include "models/json.h"
#include "train/ldm.h"
#include "train/train_config.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text((const char*)data, size);
  try {
    nsvq::Json j = nsvq::json_parse((const char*)data, size, "fuzz");
    (void)j;
  } catch (const nsvq::Error&) {
  }
  try {
    nsvq::train_config_from_json(text, "fuzz");
  } catch (const nsvq::Error&) {
  }
  try {
    nsvq::ldm_config_from_json(text, "fuzz");
  } catch (const nsvq::Error&) {
  }
  return 0;
}
