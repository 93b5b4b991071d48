// models/pretrained.cpp — loading converted pretrained weights against a network's tensor list
// (see models/pretrained.h).
#include "models/pretrained.h"
#include <cstring>
#include <set>
#include "models/safetensors.h"

namespace nsvq {

RawWeights load_pretrained(const std::string& path, const std::string& format, const std::vector<WeightSpec>& spec,
                           const char* option, const char* convert) {
  if (path.empty()) fail("%s: no file given", option);
  SafetensorsFile f = safetensors_read(path);
  auto fm = f.metadata.find("format");
  if (fm == f.metadata.end() || fm->second != format)
    fail("%s %s: not a %s weights file (metadata format '%s'; make one with tools/convert-weights.py %s)", option,
         path.c_str(), format.c_str(), fm == f.metadata.end() ? "" : fm->second.c_str(), convert);
  std::vector<std::string> missing, bad, unexpected;
  std::set<std::string> wanted;
  RawWeights w;
  for (const WeightSpec& s : spec) {
    wanted.insert(s.name);
    const SafetensorsEntry* e = f.find(s.name);
    if (!e) {
      missing.push_back(s.name);
      continue;
    }
    bool same = e->dtype == "F32" && (int)e->shape.size() == s.shape.ndim;
    for (int d = 0; same && d < s.shape.ndim; d++) same = e->shape[(size_t)d] == s.shape[d];
    if (!same) {
      std::string fs;
      for (int64_t v : e->shape) fs += (fs.empty() ? "" : ", ") + std::to_string(v);
      bad.push_back(s.name + " (file " + e->dtype + "[" + fs + "], expected F32" + s.shape.str() + ")");
      continue;
    }
    std::vector<float>& v = w[s.name];
    v.resize((size_t)s.shape.numel());
    std::memcpy(v.data(), f.data(*e), v.size() * sizeof(float));
  }
  for (const SafetensorsEntry& e : f.entries)
    if (!wanted.count(e.name)) unexpected.push_back(e.name);
  if (missing.empty() && bad.empty() && unexpected.empty()) return w;
  auto list = [](const char* what, const std::vector<std::string>& v) {
    if (v.empty()) return std::string();
    std::string s = std::string("; ") + what + " " + std::to_string(v.size()) + ": " + v[0];
    for (size_t i = 1; i < v.size() && i < 3; i++) s += ", " + v[i];
    return s + (v.size() > 3 ? ", ..." : "");
  };
  std::string msg = list("missing", missing) + list("mismatched", bad) + list("unexpected", unexpected);
  fail("%s %s: not the expected %s tensors%s (make the file with tools/convert-weights.py %s)", option, path.c_str(),
       format.c_str(), msg.c_str(), convert);
}

}  // namespace nsvq
