// A server on the tiny preset, listening on a free port, and an HTTP client for it.
#pragma once

#include <gtest/gtest.h>
#include <httplib.h>

#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

#include "engine/engine_test_util.h"
#include "server/server.h"

namespace dsinfer::testing {

using json = nlohmann::json;

class TestServer {
 public:
  explicit TestServer(server::ServerOptions o = {}) {
    if (o.model_dir.empty()) o.model_dir = synthetic_model(GenPreset::tiny);
    o.http.port = 0;
    if (o.model.kv_cache_tokens == 0) o.model.kv_cache_tokens = 64 * 1024;
    srv_ = std::make_unique<server::Server>(o);
    port_ = srv_->start();
    thread_ = std::thread([this] { srv_->serve(); });
    srv_->wait_ready(120);
  }
  ~TestServer() {
    srv_->stop();
    thread_.join();
  }
  int port() const { return port_; }
  server::Server& server() { return *srv_; }
  httplib::Client client() const {
    httplib::Client c("127.0.0.1", port_);
    c.set_read_timeout(300, 0);
    return c;
  }
  // POST a JSON body; returns (status, parsed body or the raw text as a string).
  std::pair<int, json> post(const std::string& path, const json& body,
                            const std::string& key = "") const {
    httplib::Client c = client();
    httplib::Headers h;
    if (!key.empty()) h.emplace("Authorization", "Bearer " + key);
    auto r = c.Post(path.c_str(), h, body.dump(), "application/json");
    if (!r) return {-1, json()};
    return {r->status, json::parse(r->body, nullptr, false)};
  }
  std::pair<int, std::string> get(const std::string& path, const std::string& key = "") const {
    httplib::Client c = client();
    httplib::Headers h;
    if (!key.empty()) h.emplace("Authorization", "Bearer " + key);
    auto r = c.Get(path.c_str(), h);
    if (!r) return {-1, ""};
    return {r->status, r->body};
  }
  // A streamed POST: the SSE `data:` payloads in order ("[DONE]" included). on_event may stop
  // reading by returning false (the connection is then closed).
  std::vector<std::string> stream(
      const std::string& path, const json& body,
      std::function<bool(const std::string&)> on_event = nullptr) const {
    httplib::Client c = client();
    httplib::Request req;
    req.method = "POST";
    req.path = path;
    req.body = body.dump();
    req.set_header("Content-Type", "application/json");
    std::string buf;
    std::vector<std::string> events;
    req.content_receiver = [&](const char* data, size_t n, uint64_t, uint64_t) {
      buf.append(data, n);
      size_t at;
      while ((at = buf.find("\n\n")) != std::string::npos) {
        std::string ev = buf.substr(0, at);
        buf.erase(0, at + 2);
        if (ev.rfind("data: ", 0) != 0) continue;  // comments (keep-alive)
        events.push_back(ev.substr(6));
        if (on_event && !on_event(events.back())) return false;
      }
      return true;
    };
    httplib::Response res;
    httplib::Error err = httplib::Error::Success;
    c.send(req, res, err);
    if (events.empty())
      ADD_FAILURE() << "no events from " << path << ": status " << res.status << ", error "
                    << httplib::to_string(err) << ", body " << res.body.substr(0, 300);
    return events;
  }

 private:
  std::unique_ptr<server::Server> srv_;
  int port_ = 0;
  std::thread thread_;
};

}  // namespace dsinfer::testing
