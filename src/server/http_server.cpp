#include "server/http_server.h"

#include <httplib.h>
#include <sys/socket.h>

#include <algorithm>
#include <cctype>
#include <stdexcept>

#include "server/api_error.h"

namespace dsinfer::server {

struct HttpServer::Impl {
  HttpOptions options;
  httplib::Server server;
  int listen_fd = -1;  // seen by the socket-options hook, to raise the listen backlog
};

HttpServer::HttpServer(const HttpOptions& options) : impl_(std::make_unique<Impl>()) {
  impl_->options = options;
  httplib::Server& s = impl_->server;
  const int threads = std::max(1, options.threads);
  s.new_task_queue = [threads] { return new httplib::ThreadPool(size_t(threads)); };
  s.set_payload_max_length(options.max_body_bytes);
  s.set_read_timeout(options.read_timeout_s, 0);
  s.set_write_timeout(options.write_timeout_s, 0);
  s.set_keep_alive_max_count(1000);
  // The library listens with a backlog of 5: a burst of clients (a load test opening 32 streams
  // at once) overflows it and some connections fail. Keep the socket to listen again, deeper.
  Impl* impl = impl_.get();
  s.set_socket_options([impl](socket_t fd) {
    int yes = 1;
    ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof(yes));
    impl->listen_fd = fd;
  });
  // Errors httplib produces itself (oversized body, unknown route) in the OpenAI shape.
  s.set_error_handler([](const httplib::Request&, httplib::Response& res) {
    if (!res.body.empty()) return;
    std::string type = "invalid_request_error", msg = "request failed";
    if (res.status == 404) type = "not_found_error", msg = "no such endpoint";
    if (res.status == 413) msg = "the request body is larger than the server accepts";
    if (res.status == 405) msg = "method not allowed";
    res.set_content(ApiError(res.status, type, msg).to_json().dump(), "application/json");
  });
  s.set_exception_handler(
      [](const httplib::Request&, httplib::Response& res, std::exception_ptr ep) {
        std::string msg = "internal error";
        try {
          std::rethrow_exception(ep);
        } catch (const std::exception& e) {
          msg = e.what();
        } catch (...) {
        }
        res.status = 500;
        res.set_content(ApiError(500, "internal_error", msg).to_json().dump(), "application/json");
      });
}

HttpServer::~HttpServer() {
  stop();
}

void HttpServer::route(const std::string& method, const std::string& path, HttpHandler handler) {
  auto adapt = [handler](const httplib::Request& req, httplib::Response& res) {
    HttpRequest r;
    r.method = req.method;
    r.path = req.path;
    r.body = req.body;
    for (const auto& [k, v] : req.headers) {
      std::string key = k;
      std::transform(key.begin(), key.end(), key.begin(),
                     [](unsigned char c) { return std::tolower(c); });
      r.headers[key] = v;
    }
    auto out = std::make_shared<HttpResponse>();
    handler(r, *out);
    res.status = out->status;
    for (const auto& [k, v] : out->headers) res.set_header(k, v);
    if (!out->stream) {
      res.set_content(out->body, out->content_type);
      return;
    }
    res.set_header("Cache-Control", "no-cache");
    res.set_header("X-Accel-Buffering", "no");
    res.set_chunked_content_provider(out->content_type, [out](size_t, httplib::DataSink& sink) {
      out->stream(
          [&sink](const std::string& chunk) { return sink.write(chunk.data(), chunk.size()); });
      sink.done();
      return true;
    });
  };
  httplib::Server& s = impl_->server;
  if (method == "GET")
    s.Get(path, adapt);
  else if (method == "POST")
    s.Post(path, adapt);
  else
    throw std::invalid_argument("http: unsupported method " + method);
}

int HttpServer::bind() {
  const HttpOptions& o = impl_->options;
  int port = o.port;
  if (o.port == 0) {
    port = impl_->server.bind_to_any_port(o.host);
    if (port < 0) throw std::runtime_error("cannot listen on " + o.host + ": no free port");
  } else if (!impl_->server.bind_to_port(o.host, o.port)) {
    throw std::runtime_error("cannot listen on " + o.host + ":" + std::to_string(o.port) +
                             " (in use, or not an address of this machine)");
  }
  // A listening socket takes a new backlog from a second listen().
  if (impl_->listen_fd >= 0) ::listen(impl_->listen_fd, 1024);
  return port;
}

void HttpServer::serve() {
  impl_->server.listen_after_bind();
}

void HttpServer::stop() {
  if (impl_->server.is_running()) impl_->server.stop();
}

}  // namespace dsinfer::server
