// libbpf's own warnings, as the agent shows them: without the netlink notice that the
// clsact qdisc already exists (an expected case: another program or an earlier agent).
// Until the agent is ready they are held back and the last one goes into the one error
// line a failure prints (libbpf_note); after libbpf_log_live() they are logged as they
// come. NFSF_DEBUG=1 in the environment shows them all, info level included.
#pragma once

#include <string>

namespace nfsfence::agent {

void libbpf_log_install();  // libbpf_set_print
void libbpf_log_live();     // from now on: log each warning as it comes
// " (libbpf: <its last warning>)" for an error line, or "" when it said nothing.
std::string libbpf_note();

}  // namespace nfsfence::agent
