// The HTTP transport (cpp-httplib, as llama-server uses, behind this interface so that nothing
// else includes it): routes of plain handlers over small request / response structs, which the
// tests can call without sockets. A streaming response is a function that writes chunks until
// it is done; the writer reports a client that has gone away.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <string>

namespace dsinfer::server {

struct HttpRequest {
  std::string method, path, body;
  std::map<std::string, std::string> headers;  // lower-case names
  std::string header(const std::string& name) const {
    auto it = headers.find(name);
    return it == headers.end() ? std::string() : it->second;
  }
};

struct HttpResponse {
  int status = 200;
  std::string content_type = "application/json";
  std::string body;
  std::map<std::string, std::string> headers;
  // Set for a streamed body: called once; `write` sends a chunk and returns false once the
  // client is gone (the stream should then stop).
  std::function<void(const std::function<bool(const std::string&)>& write)> stream;
};

using HttpHandler = std::function<void(const HttpRequest&, HttpResponse&)>;

struct HttpOptions {
  std::string host = "127.0.0.1";
  int port = 8080;                    // 0: any free port
  int threads = 64;                   // connections served at once (streams hold one each)
  size_t max_body_bytes = 32u << 20;  // larger bodies get 413
  int read_timeout_s = 600, write_timeout_s = 600;
};

class HttpServer {
 public:
  explicit HttpServer(const HttpOptions& options);
  ~HttpServer();
  void route(const std::string& method, const std::string& path, HttpHandler handler);
  // Binds (throws std::runtime_error naming host:port on failure) and returns the port.
  int bind();
  void serve();  // blocks until stop()
  void stop();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace dsinfer::server
