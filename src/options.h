// Shared Boost.Program_options plumbing for the subcommands.
#pragma once

#include <boost/program_options.hpp>
#include <charconv>
#include <iostream>
#include <limits>
#include <optional>

#include "nfs/policy.h"
#include "src/cli.h"

namespace nfsfence::cli {

namespace po = boost::program_options;

// An unsigned option value read strictly: decimal digits only, within T's range and
// [min, max]. Boost's own conversion takes "-1" for an unsigned option as 2^64-1.
template <typename T, T Min = 0, T Max = std::numeric_limits<T>::max()>
struct Number {
  T value{};
};
template <typename T, T Min, T Max>
std::ostream& operator<<(std::ostream& os, const Number<T, Min, Max>& n) {
  return os << n.value;
}
template <typename T, T Min, T Max>
void validate(boost::any& v, const std::vector<std::string>& values, Number<T, Min, Max>*, int) {
  po::validators::check_first_occurrence(v);
  const std::string& s = po::validators::get_single_string(values);
  T n{};
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), n);
  bool digits = !s.empty() && s.find_first_not_of("0123456789") == std::string::npos;
  if (!digits || ec != std::errc() || end != s.data() + s.size() || n < Min || n > Max)
    throw po::error_with_option_name("the argument ('" + s +
                                     "') for option '%canonical_option%' is not a whole number from " +
                                     std::to_string(Min) + " to " + std::to_string(Max));
  v = boost::any(Number<T, Min, Max>{n});
}

// A byte size option ("48Mi", "500M", a number of bytes), read with the policy's rules.
struct Size {
  uint64_t value{};
};
inline std::ostream& operator<<(std::ostream& os, const Size& n) { return os << format_size(n.value); }
inline void validate(boost::any& v, const std::vector<std::string>& values, Size*, int) {
  po::validators::check_first_occurrence(v);
  const std::string& s = po::validators::get_single_string(values);
  auto n = parse_size(s);
  if (!n || *n == 0)
    throw po::error_with_option_name("the argument ('" + s +
                                     "') for option '%canonical_option%' is not a size above 0 " +
                                     "(e.g. 48Mi, 500M, or bytes)");
  v = boost::any(Size{*n});
}

// The decoder's memory options, shared by decode and replay.
inline void add_decoder_limits(po::options_description& opts, Size& memory, Number<uint32_t>& idle) {
  opts.add_options()(
      "max-memory", po::value(&memory)->default_value(memory),
      "memory budget of TCP reassembly, calls waiting for replies and replies waiting for calls, in total; "
      "past it the least recently active flow or the oldest call is dropped (counted in --stats)")(
      "idle-timeout", po::value(&idle)->default_value(idle),
      "seconds of capture time after which a silent TCP flow is closed as by a FIN (0: never)");
}
// Parses args; prints help (exit 0) or a one-line usage error (exit 2). Returns the exit
// code to stop with, or nothing to go on.
inline std::optional<int> parse_options(const std::vector<std::string>& args, const char* synopsis, const char* epilog,
                                        po::options_description& opts, po::positional_options_description& pos,
                                        po::variables_map& vm) {
  opts.add_options()("help,h", "show this help");
  try {
    po::store(po::command_line_parser(args).options(opts).positional(pos).run(), vm);
    if (vm.count("help")) {
      std::cout << "usage: " << synopsis << "\n\n" << opts << "\n" << epilog;
      return kExitOk;
    }
    po::notify(vm);
  } catch (const po::error& e) {
    error(std::string(e.what()) + " (usage: " + synopsis + "; see --help)");
    return kExitUsage;
  }
  return std::nullopt;
}

}  // namespace nfsfence::cli
