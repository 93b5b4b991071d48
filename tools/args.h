// tools/args.h — command-line parsing for the nsvq subcommands: each command declares its options
// (name, default, help); unknown flags, missing values and malformed numbers are one-line errors.
#pragma once
#include <map>
#include <string>
#include <vector>

namespace nsvq {

struct Opt {
  std::string name;   // long name without dashes: "threads"
  std::string short_name;  // "t" or ""
  std::string def;    // default value ("" for none); flags: "0"
  std::string help;
  bool is_flag = false;
};

class Args {
 public:
  // Parses argv[first..argc). Prints usage and exits 0 on --help.
  Args(const std::string& cmd, const std::string& summary, const std::vector<Opt>& opts, int argc, char** argv, int first);
  std::string str(const std::string& name) const;
  int64_t i64(const std::string& name) const;
  double f64(const std::string& name) const;
  bool flag(const std::string& name) const;
  // Every value given to a repeatable option, in order (str() is the last one).
  std::vector<std::string> all(const std::string& name) const;
  bool given(const std::string& name) const { return given_.count(name) != 0; }
  const std::vector<std::string>& positional() const { return pos_; }
  std::string usage() const;

 private:
  std::string cmd_, summary_;
  std::vector<Opt> opts_;
  std::map<std::string, std::string> val_;
  std::map<std::string, bool> given_;
  std::map<std::string, std::vector<std::string>> all_;
  std::vector<std::string> pos_;
};

}  // namespace nsvq
