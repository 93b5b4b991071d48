// models/json.cpp — the strict JSON parser (RFC 8259: UTF-8 validated, duplicate keys rejected,
// nesting limited to 64) and the JSON writers of models/json.h.
#include "models/json.h"
#include <cstdio>
#include <cmath>
#include <cstring>
#include <unordered_set>
#include "engine/tensor.h"

namespace nsvq {

namespace {

class JsonParser {
 public:
  JsonParser(const char* p, size_t n, const std::string& what) : p_(p), n_(n), what_(what) {}

  Json document() {
    ws();
    Json v = value(0);
    ws();
    if (i_ != n_) error("trailing characters after the JSON value");
    return v;
  }

 private:
  [[noreturn]] void error(const char* msg) {
    fail("%s: %s at byte %zu", what_.c_str(), msg, i_);
  }
  void ws() {
    while (i_ < n_ && (p_[i_] == ' ' || p_[i_] == '\t' || p_[i_] == '\n' || p_[i_] == '\r')) i_++;
  }
  bool literal(const char* s) {
    size_t k = std::strlen(s);
    if (n_ - i_ >= k && std::memcmp(p_ + i_, s, k) == 0) {
      i_ += k;
      return true;
    }
    return false;
  }
  Json value(int depth) {
    if (depth > 64) error("nesting deeper than 64");
    if (i_ >= n_) error("unexpected end");
    Json v;
    char c = p_[i_];
    if (c == '{') {
      v.kind = Json::OBJECT;
      i_++;
      ws();
      if (i_ < n_ && p_[i_] == '}') {
        i_++;
        return v;
      }
      std::unordered_set<std::string> keys;
      for (;;) {
        ws();
        if (i_ >= n_ || p_[i_] != '"') error("expected a string key");
        std::string k = string();
        if (!keys.insert(k).second) error(("duplicate key \"" + k + "\"").c_str());
        ws();
        if (i_ >= n_ || p_[i_] != ':') error("expected ':'");
        i_++;
        ws();
        v.obj.emplace_back(std::move(k), value(depth + 1));
        ws();
        if (i_ < n_ && p_[i_] == ',') { i_++; continue; }
        if (i_ < n_ && p_[i_] == '}') { i_++; return v; }
        error("expected ',' or '}'");
      }
    }
    if (c == '[') {
      v.kind = Json::ARRAY;
      i_++;
      ws();
      if (i_ < n_ && p_[i_] == ']') {
        i_++;
        return v;
      }
      for (;;) {
        ws();
        v.arr.push_back(value(depth + 1));
        ws();
        if (i_ < n_ && p_[i_] == ',') { i_++; continue; }
        if (i_ < n_ && p_[i_] == ']') { i_++; return v; }
        error("expected ',' or ']'");
      }
    }
    if (c == '"') {
      v.kind = Json::STRING;
      v.str = string();
      return v;
    }
    if (literal("true")) { v.kind = Json::BOOL; v.b = true; return v; }
    if (literal("false")) { v.kind = Json::BOOL; return v; }
    if (literal("null")) return v;
    if (c == '-' || (c >= '0' && c <= '9')) {
      v.kind = Json::NUMBER;
      v.str = number();
      return v;
    }
    error("unexpected character");
  }
  static void put_utf8(std::string& s, uint32_t cp) {
    if (cp < 0x80) s += (char)cp;
    else if (cp < 0x800) { s += (char)(0xC0 | (cp >> 6)); s += (char)(0x80 | (cp & 0x3F)); }
    else if (cp < 0x10000) {
      s += (char)(0xE0 | (cp >> 12)); s += (char)(0x80 | ((cp >> 6) & 0x3F)); s += (char)(0x80 | (cp & 0x3F));
    } else {
      s += (char)(0xF0 | (cp >> 18)); s += (char)(0x80 | ((cp >> 12) & 0x3F));
      s += (char)(0x80 | ((cp >> 6) & 0x3F)); s += (char)(0x80 | (cp & 0x3F));
    }
  }
  uint32_t hex4() {
    if (n_ - i_ < 4) error("truncated \\u escape");
    uint32_t v = 0;
    for (int k = 0; k < 4; k++) {
      char c = p_[i_++];
      v <<= 4;
      if (c >= '0' && c <= '9') v |= (uint32_t)(c - '0');
      else if (c >= 'a' && c <= 'f') v |= (uint32_t)(c - 'a' + 10);
      else if (c >= 'A' && c <= 'F') v |= (uint32_t)(c - 'A' + 10);
      else error("bad hex digit in \\u escape");
    }
    return v;
  }
  std::string string() {
    i_++;  // opening quote
    std::string s;
    for (;;) {
      if (i_ >= n_) error("unterminated string");
      unsigned char c = (unsigned char)p_[i_];
      if (c == '"') { i_++; return s; }
      if (c < 0x20) error("control character in string");
      if (c == '\\') {
        i_++;
        if (i_ >= n_) error("unterminated escape");
        char e = p_[i_++];
        switch (e) {
          case '"': s += '"'; break;
          case '\\': s += '\\'; break;
          case '/': s += '/'; break;
          case 'b': s += '\b'; break;
          case 'f': s += '\f'; break;
          case 'n': s += '\n'; break;
          case 'r': s += '\r'; break;
          case 't': s += '\t'; break;
          case 'u': {
            uint32_t cp = hex4();
            if (cp >= 0xD800 && cp < 0xDC00) {
              if (!literal("\\u")) error("lone high surrogate");
              uint32_t lo = hex4();
              if (lo < 0xDC00 || lo >= 0xE000) error("bad low surrogate");
              cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
            } else if (cp >= 0xDC00 && cp < 0xE000) {
              error("lone low surrogate");
            }
            put_utf8(s, cp);
            break;
          }
          default: error("unknown escape");
        }
        continue;
      }
      if (c < 0x80) { s += (char)c; i_++; continue; }
      // raw UTF-8: validate the sequence (no overlongs, no surrogates, <= U+10FFFF)
      int len = c >= 0xF0 && c <= 0xF4 ? 4 : c >= 0xE0 ? 3 : c >= 0xC2 && c < 0xE0 ? 2 : 0;
      if (len == 0 || (c >= 0xF5)) error("invalid UTF-8");
      if (n_ - i_ < (size_t)len) error("truncated UTF-8");
      uint32_t cp = c & (len == 2 ? 0x1F : len == 3 ? 0x0F : 0x07);
      for (int k = 1; k < len; k++) {
        unsigned char cc = (unsigned char)p_[i_ + k];
        if ((cc & 0xC0) != 0x80) error("invalid UTF-8");
        cp = (cp << 6) | (cc & 0x3F);
      }
      if ((len == 3 && (cp < 0x800 || (cp >= 0xD800 && cp < 0xE000))) || (len == 4 && (cp < 0x10000 || cp > 0x10FFFF)))
        error("invalid UTF-8");
      s.append(p_ + i_, (size_t)len);
      i_ += (size_t)len;
    }
  }
  std::string number() {
    size_t s = i_;
    auto digit = [&] { return i_ < n_ && p_[i_] >= '0' && p_[i_] <= '9'; };
    if (p_[i_] == '-') i_++;
    if (!digit()) error("bad number");
    if (p_[i_] == '0') i_++;
    else while (digit()) i_++;
    if (i_ < n_ && p_[i_] == '.') {
      i_++;
      if (!digit()) error("bad number");
      while (digit()) i_++;
    }
    if (i_ < n_ && (p_[i_] == 'e' || p_[i_] == 'E')) {
      i_++;
      if (i_ < n_ && (p_[i_] == '+' || p_[i_] == '-')) i_++;
      if (!digit()) error("bad number");
      while (digit()) i_++;
    }
    return std::string(p_ + s, i_ - s);
  }

  const char* p_;
  size_t n_;
  size_t i_ = 0;
  const std::string& what_;
};

}  // namespace

Json json_parse(const char* text, size_t n, const std::string& what) { return JsonParser(text, n, what).document(); }
Json json_parse(const std::string& text, const std::string& what) { return json_parse(text.data(), text.size(), what); }

const Json* Json::find(const std::string& key) const {
  for (const auto& kv : obj)
    if (kv.first == key) return &kv.second;
  return nullptr;
}

std::string json_escape(const std::string& s) {
  std::string r = "\"";
  for (unsigned char c : s) {
    if (c == '"') r += "\\\"";
    else if (c == '\\') r += "\\\\";
    else if (c < 0x20) {
      char b[8];
      std::snprintf(b, sizeof b, "\\u%04x", c);
      r += b;
    } else r += (char)c;
  }
  return r + "\"";
}


std::string json_number(double v) {
  if (!std::isfinite(v)) return "null";
  char b[32];
  std::snprintf(b, sizeof b, "%.9g", v);
  return b;
}

}  // namespace nsvq
