// models/json.h — a small strict JSON reader (parse to a tree; errors are one line naming the input
// and the byte offset) and the helpers to write JSON text: safetensors headers, the config stored in
// checkpoints, metrics.jsonl lines and --json outputs.
#pragma once
#include <cstddef>
#include <string>
#include <utility>
#include <vector>

namespace nsvq {

struct Json {
  enum Kind { NUL, BOOL, NUMBER, STRING, ARRAY, OBJECT } kind = NUL;
  bool b = false;
  std::string str;  // STRING: the decoded text; NUMBER: the literal
  std::vector<Json> arr;
  std::vector<std::pair<std::string, Json>> obj;  // in document order
  const Json* find(const std::string& key) const;  // OBJECT member or nullptr
};

// Parses one JSON value (surrounding whitespace allowed). Fails with "<what>: <problem> at byte N".
Json json_parse(const char* text, size_t n, const std::string& what);
Json json_parse(const std::string& text, const std::string& what);

// A quoted JSON string literal for s ("..." with escapes).
std::string json_escape(const std::string& s);
// A JSON number (%.9g, round-trips float); null for NaN and infinities.
std::string json_number(double v);

}  // namespace nsvq
