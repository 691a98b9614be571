#include "nfs/rpc_client.h"

#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <rpc/rpc.h>  // bindresvport_sa
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <random>

#include "nfs/xdr_reader.h"

namespace nfsfence {
namespace {

Endpoint endpoint_of(const sockaddr_storage& ss) {
  Endpoint e;
  if (ss.ss_family == AF_INET6) {
    auto* s6 = reinterpret_cast<const sockaddr_in6*>(&ss);
    e.v6 = true;
    std::memcpy(e.addr.data(), &s6->sin6_addr, 16);
    e.port = ntohs(s6->sin6_port);
  } else {
    auto* s4 = reinterpret_cast<const sockaddr_in*>(&ss);
    std::memcpy(e.addr.data(), &s4->sin_addr, 4);
    e.port = ntohs(s4->sin_port);
  }
  return e;
}

bool wait_fd(int fd, short events, std::chrono::milliseconds timeout) {
  pollfd p{fd, events, 0};
  int r;
  do r = ::poll(&p, 1, int(timeout.count()));
  while (r < 0 && errno == EINTR);
  return r > 0;
}

}  // namespace

RpcClient::RpcClient(int fd, std::string peer, std::chrono::milliseconds timeout)
    : fd_(fd), peer_(std::move(peer)), timeout_(timeout), next_xid_(std::random_device{}()) {}

RpcClient::~RpcClient() {
  if (fd_ >= 0) ::close(fd_);
}

Expected<std::unique_ptr<RpcClient>> RpcClient::connect(const std::string& host, uint16_t port,
                                                        std::chrono::milliseconds timeout) {
  std::string peer = host + ":" + std::to_string(port);
  addrinfo hints{};
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* res = nullptr;
  int gai = ::getaddrinfo(host.c_str(), std::to_string(port).c_str(), &hints, &res);
  if (gai != 0) return make_error(peer + ": " + gai_strerror(gai));
  std::string last = "no address";
  for (addrinfo* ai = res; ai; ai = ai->ai_next) {
    int fd = ::socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0) continue;
    // A reserved source port: kernel nfsd and many exports refuse others. Not fatal when
    // unprivileged; the server then decides.
    ::bindresvport_sa(fd, nullptr);
    int r = ::connect(fd, ai->ai_addr, ai->ai_addrlen);
    if (r < 0 && errno == EINPROGRESS) {
      if (wait_fd(fd, POLLOUT, timeout)) {
        int err = 0;
        socklen_t len = sizeof err;
        ::getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len);
        r = err ? -1 : 0;
        errno = err;
      } else {
        errno = ETIMEDOUT;
      }
    }
    if (r == 0) {
      ::freeaddrinfo(res);
      return std::unique_ptr<RpcClient>(new RpcClient(fd, peer, timeout));
    }
    last = std::strerror(errno);
    ::close(fd);
  }
  ::freeaddrinfo(res);
  return make_error(peer + ": cannot connect: " + last);
}

Expected<Bytes> RpcClient::read_record() {
  Bytes msg;
  bool last = false;
  auto read_n = [&](uint8_t* p, size_t n) -> bool {
    while (n) {
      if (!wait_fd(fd_, POLLIN, timeout_)) return false;
      ssize_t r = ::recv(fd_, p, n, 0);
      if (r <= 0) {
        if (r < 0 && (errno == EINTR || errno == EAGAIN)) continue;
        return false;
      }
      p += r;
      n -= size_t(r);
    }
    return true;
  };
  while (!last) {
    uint8_t mark[4];
    if (!read_n(mark, 4)) return make_error(peer_ + ": connection closed or timed out waiting for a reply");
    uint32_t m = load_be32(mark);
    last = m & 0x80000000u;
    uint32_t len = m & 0x7fffffffu;
    if (len > (64u << 20) || msg.size() + len > (64u << 20)) return make_error(peer_ + ": implausible record length");
    size_t at = msg.size();
    msg.resize(at + len);
    if (!read_n(msg.data() + at, len)) return make_error(peer_ + ": connection closed in the middle of a reply");
  }
  return msg;
}

Expected<RpcMessage> RpcClient::call(uint32_t prog, uint32_t vers, uint32_t proc, const Bytes& args) {
  uint32_t xid = next_xid_++;
  XdrWriter w;
  w.call_header(xid, prog, vers, proc, 0, 0);
  w.fixed(ByteView(args.data(), args.size()));
  Bytes rec = w.record();
  for (size_t off = 0; off < rec.size();) {
    if (!wait_fd(fd_, POLLOUT, timeout_)) return make_error(peer_ + ": timed out sending a call");
    ssize_t r = ::send(fd_, rec.data() + off, rec.size() - off, MSG_NOSIGNAL);
    if (r < 0) {
      if (errno == EINTR || errno == EAGAIN) continue;
      return make_error(peer_ + ": send: " + std::strerror(errno));
    }
    off += size_t(r);
  }
  for (;;) {
    auto msg = read_record();
    if (!msg) return unexpected(msg.error());
    RpcHeader h;
    if (parse_rpc_header(ByteView(msg->data(), msg->size()), h) != RpcParse::Ok || h.type != MsgType::Reply)
      return make_error(peer_ + ": reply is not a valid RPC reply");
    if (h.xid != xid) continue;  // a late reply to an earlier, timed-out call
    if (h.reply_stat != 0) return make_error(peer_ + ": call rejected (auth or RPC version)");
    if (h.accept_stat != 0)
      return make_error(peer_ + ": program " + std::to_string(prog) + " v" + std::to_string(vers) +
                        " refused the call (accept_stat " + std::to_string(h.accept_stat) + ")");
    RpcMessage m;
    sockaddr_storage local{}, remote{};
    socklen_t ll = sizeof local, rl = sizeof remote;
    ::getsockname(fd_, reinterpret_cast<sockaddr*>(&local), &ll);
    ::getpeername(fd_, reinterpret_cast<sockaddr*>(&remote), &rl);
    m.flow = FlowKey{endpoint_of(remote), endpoint_of(local), Transport::Tcp};
    m.xid = xid;
    m.type = MsgType::Reply;
    m.prog = prog;
    m.vers = vers;
    m.proc = proc;
    auto call_fields = std::make_shared<NfsFields>();
    decode_call(prog, vers, proc, ByteView(args.data(), args.size()), *call_fields);
    m.call = call_fields;
    m.msg_len = msg->size();
    ByteView body(msg->data() + h.body_offset, msg->size() - h.body_offset);
    if (prog == kProgNfs || prog == kProgMount) {
      m.decode = decode_reply(prog, vers, proc, body, m.fields);
    } else {  // portmap GETPORT: one word, the port (0 when it is missing)
      uint32_t port = 0;
      (void)XdrReader(body).u32(port);
      m.fields.res_count = port;
    }
    return m;
  }
}

Expected<uint16_t> RpcClient::getport(const std::string& host, uint32_t prog, uint32_t vers,
                                      std::chrono::milliseconds timeout) {
  auto c = connect(host, 111, timeout);
  if (!c) return unexpected(c.error());
  XdrWriter a;
  a.u32(prog).u32(vers).u32(6 /*IPPROTO_TCP*/).u32(0);
  auto r = (*c)->call(kProgPortmap, 2, 3, a.bytes());
  if (!r) return unexpected(r.error());
  return uint16_t(r->fields.res_count.value_or(0));
}

}  // namespace nfsfence
