// Shared Boost.Program_options plumbing for the subcommands.
#pragma once

#include <boost/program_options.hpp>
#include <iostream>
#include <optional>

#include "src/cli.h"

namespace nfsfence::cli {

namespace po = boost::program_options;

// Parses args; prints help (exit 0) or a one-line usage error (exit 2). Returns the exit
// code to stop with, or nothing to go on.
inline std::optional<int> parse_options(const std::vector<std::string>& args, const char* synopsis,
                                        const char* epilog, po::options_description& opts,
                                        po::positional_options_description& pos, po::variables_map& vm) {
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
