// tools/args.cpp — the option parser behind every nsvq subcommand.
#include "tools/args.h"
#include <cstdio>
#include <cstdlib>
#include "engine/tensor.h"

namespace nsvq {

Args::Args(const std::string& cmd, const std::string& summary, const std::vector<Opt>& opts, int argc, char** argv, int first)
    : cmd_(cmd), summary_(summary), opts_(opts) {
  for (const Opt& o : opts_) val_[o.name] = o.is_flag ? "0" : o.def;
  for (int i = first; i < argc; i++) {
    std::string a = argv[i];
    if (a == "--help" || a == "-h") {
      printf("%s", usage().c_str());
      exit(0);
    }
    if (a.size() < 2 || a[0] != '-' || a == "-") {
      pos_.push_back(a);
      continue;
    }
    std::string key = a.substr(a[1] == '-' ? 2 : 1), value;
    bool has_inline = false;
    size_t eq = key.find('=');
    if (eq != std::string::npos) {
      value = key.substr(eq + 1);
      key = key.substr(0, eq);
      has_inline = true;
    }
    const Opt* found = nullptr;
    for (const Opt& o : opts_)
      if ((a[1] == '-' && o.name == key) || (a[1] != '-' && o.short_name == key)) found = &o;
    if (!found) fail("nsvq %s: unknown option '%s' (see nsvq %s --help)", cmd.c_str(), a.c_str(), cmd.c_str());
    if (found->is_flag) {
      if (has_inline) fail("nsvq %s: option --%s takes no value", cmd.c_str(), found->name.c_str());
      val_[found->name] = "1";
    } else {
      if (!has_inline) {
        if (i + 1 >= argc) fail("nsvq %s: option --%s needs a value", cmd.c_str(), found->name.c_str());
        value = argv[++i];
      }
      val_[found->name] = value;
      all_[found->name].push_back(value);
    }
    given_[found->name] = true;
  }
}

std::string Args::str(const std::string& name) const {
  auto it = val_.find(name);
  if (it == val_.end()) fail("nsvq %s: internal: undeclared option --%s", cmd_.c_str(), name.c_str());
  return it->second;
}

int64_t Args::i64(const std::string& name) const {
  std::string s = str(name);
  char* end = nullptr;
  long long v = strtoll(s.c_str(), &end, 10);
  if (s.empty() || *end) fail("nsvq %s: --%s expects an integer, got '%s'", cmd_.c_str(), name.c_str(), s.c_str());
  return v;
}

double Args::f64(const std::string& name) const {
  std::string s = str(name);
  char* end = nullptr;
  double v = strtod(s.c_str(), &end);
  if (s.empty() || *end) fail("nsvq %s: --%s expects a number, got '%s'", cmd_.c_str(), name.c_str(), s.c_str());
  return v;
}

bool Args::flag(const std::string& name) const { return str(name) == "1"; }

std::vector<std::string> Args::all(const std::string& name) const {
  auto it = all_.find(name);
  if (it != all_.end()) return it->second;
  const std::string v = str(name);
  return v.empty() ? std::vector<std::string>() : std::vector<std::string>{v};
}

std::string Args::usage() const {
  std::string u = "usage: nsvq " + cmd_ + " [options]\n" + summary_ + "\n\noptions:\n";
  for (const Opt& o : opts_) {
    char line[512];
    std::string names = (o.short_name.empty() ? "    " : "-" + o.short_name + ", ") + "--" + o.name + (o.is_flag ? "" : " V");
    snprintf(line, sizeof line, "  %-28s %s%s\n", names.c_str(), o.help.c_str(),
             (!o.is_flag && !o.def.empty()) ? (" (default " + o.def + ")").c_str() : "");
    u += line;
  }
  return u;
}

}  // namespace nsvq
