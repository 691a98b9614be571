// Rendering decoded RPC messages: JSON (one object per message, see docs/decode-schema.md)
// and a one-line text form for people.
#pragma once

#include <nlohmann/json_fwd.hpp>
#include <string>

#include "nfs/rpc_message.h"

namespace nfsfence {

class Decoder;

nlohmann::json message_json(const RpcMessage& m);
std::string message_text(const RpcMessage& m);
nlohmann::json stats_json(const Decoder& d);
const char* decode_result_name(DecodeResult r);

}  // namespace nfsfence
