// models/pretrained.h — weights of the pretrained evaluation networks (pytorch-fid's InceptionV3,
// LPIPS' VGG16) as the upstream files name and shape them: the expected tensor list of a network,
// and loading a file converted by tools/convert-weights.py against it (format metadata, every name,
// shape and dtype checked; one line listing every problem). Host f32 values, folded or copied into a
// Store by the network that asked for them.
#pragma once
#include <cstdint>
#include <map>
#include <string>
#include <vector>
#include "engine/tensor.h"

namespace nsvq {

struct WeightSpec {
  std::string name;  // the upstream state_dict key (as converted)
  Shape shape;
};
// name -> row-major values of the spec's shape
using RawWeights = std::map<std::string, std::vector<float>>;

// Reads `path` (safetensors, optionally .zst): its metadata "format" must be `format`, and its tensors
// exactly `spec` (F32, same shapes). `option` names the command-line option in errors, `convert` the
// tools/convert-weights.py mode that makes such a file.
RawWeights load_pretrained(const std::string& path, const std::string& format, const std::vector<WeightSpec>& spec,
                           const char* option, const char* convert);

}  // namespace nsvq
