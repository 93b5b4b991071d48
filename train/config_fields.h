// train/config_fields.h — the table behind a training command's knobs: each field of a config struct
// (TrainConfig, LdmConfig) with its option name, help text, type and JSON key, so that the command line
// (options, their defaults and parsing), the config JSON stored in checkpoints and reading it back all
// come from one list and cannot disagree (a default written twice is how ldm-train once trained at
// 1e-4 while its config said 1e-3).
#pragma once
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>
#include "engine/tensor.h"
#include "models/json.h"

namespace nsvq {

template <class C>
struct ConfigField {
  std::string name, help;  // option name without dashes ("log-every"); empty help: not a command-line option
  char type = 'i';         // 'i' int64, 'f' double, 's' string, 'b' bool (on/off)
  int64_t C::*pi = nullptr;
  double C::*pf = nullptr;
  std::string C::*ps = nullptr;
  bool C::*pb = nullptr;
  std::string key;  // JSON key when it is not the option name
  bool since = false;  // added after configs were first stored: absent from an older config = the default

  const std::string& json_key() const { return key.empty() ? name : key; }
  bool option() const { return !help.empty(); }
  // as given on a command line
  std::string get(const C& c) const {
    char b[64];
    switch (type) {
      case 'i': return std::to_string(c.*pi);
      case 'f': snprintf(b, sizeof b, "%.9g", c.*pf); return b;
      case 's': return c.*ps;
      default: return c.*pb ? "on" : "off";
    }
  }
  // fails naming the option on a bad value
  void set(C& c, const std::string& v) const {
    char* end = nullptr;
    switch (type) {
      case 'i': {
        long long x = strtoll(v.c_str(), &end, 10);
        if (v.empty() || *end) fail("--%s expects an integer, got '%s'", name.c_str(), v.c_str());
        c.*pi = x;
        return;
      }
      case 'f': {
        double x = strtod(v.c_str(), &end);
        if (v.empty() || *end || !std::isfinite(x)) fail("--%s expects a finite number, got '%s'", name.c_str(), v.c_str());
        c.*pf = x;
        return;
      }
      case 's': c.*ps = v; return;
      default:
        if (v == "on" || v == "1" || v == "true") c.*pb = true;
        else if (v == "off" || v == "0" || v == "false") c.*pb = false;
        else fail("--%s expects on or off, got '%s'", name.c_str(), v.c_str());
    }
  }
};

// Builds a field table: add.i("steps", &C::steps, "help"), ... (help "" for a field that is only in the JSON).
template <class C>
struct ConfigFieldList {
  std::vector<ConfigField<C>> v;
  ConfigFieldList& i(const char* n, int64_t C::*p, const char* h, const char* key = "") { return push(n, h, 'i', key).pi = p, *this; }
  ConfigFieldList& f(const char* n, double C::*p, const char* h, const char* key = "") { return push(n, h, 'f', key).pf = p, *this; }
  ConfigFieldList& s(const char* n, std::string C::*p, const char* h, const char* key = "") { return push(n, h, 's', key).ps = p, *this; }
  ConfigFieldList& b(const char* n, bool C::*p, const char* h, const char* key = "") { return push(n, h, 'b', key).pb = p, *this; }
  // marks the last field as newer than some stored configs (they load with its default)
  ConfigFieldList& added_later() { return v.back().since = true, *this; }

 private:
  ConfigField<C>& push(const char* n, const char* h, char t, const char* key) {
    ConfigField<C> f;
    f.name = n;
    f.help = h;
    f.type = t;
    f.key = key;
    v.push_back(f);
    return v.back();
  }
};

// The config as one JSON object {"key": value, ...} (numbers as numbers, on/off as booleans).
template <class C>
std::string config_json(const std::vector<ConfigField<C>>& fields, const C& c) {
  std::string s = "{";
  for (const ConfigField<C>& f : fields) {
    s += (s.size() > 1 ? ", " : "") + json_escape(f.json_key()) + ": ";
    if (f.type == 's') s += json_escape(c.*f.ps);
    else if (f.type == 'b') s += c.*f.pb ? "true" : "false";
    else s += f.get(c);
  }
  return s + "}";
}

// Back from config_json: every field must be present with the right type (one added later may be absent).
template <class C>
C config_from_json(const std::vector<ConfigField<C>>& fields, const std::string& text, const std::string& what) {
  Json j = json_parse(text, what + ": config");
  if (j.kind != Json::OBJECT) fail("%s: config is not a JSON object", what.c_str());
  C c;
  for (const ConfigField<C>& f : fields) {
    const Json* v = j.find(f.json_key());
    if (!v && f.since) continue;
    if (!v) fail("%s: config has no \"%s\" (written by another nsvq version?)", what.c_str(), f.json_key().c_str());
    bool ok = f.type == 's' ? v->kind == Json::STRING : f.type == 'b' ? v->kind == Json::BOOL : v->kind == Json::NUMBER;
    if (!ok) fail("%s: config \"%s\" has the wrong type", what.c_str(), f.json_key().c_str());
    if (f.type == 's') c.*f.ps = v->str;
    else if (f.type == 'b') c.*f.pb = v->b;
    else f.set(c, v->str);
  }
  return c;
}

}  // namespace nsvq
