// `dsinfer bench tokenizer`: single-thread encode and decode speed of the DeepSeek tokenizer on
// English text. The tokenizer comes from $DSINFER_TOKENIZER_DIR or ../shared next to the
// checkout; the text from $DSINFER_BENCH_TEXT or the license texts in /usr/share/common-licenses.
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <stdexcept>

#include "bench_harness.h"
#include "tokenizer/streaming_decoder.h"
#include "tokenizer/tokenizer.h"

namespace dsinfer::bench {
namespace {

namespace fs = std::filesystem;

std::string read_file(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

// "" when there is none.
std::string tokenizer_dir() {
  if (const char* env = std::getenv("DSINFER_TOKENIZER_DIR")) return env;
  const fs::path rel = "shared/data/deepseek-v3-tokenizer";
  // The binary lives in <checkout>/build/bin; shared/ sits next to the checkout.
  std::error_code ec;
  fs::path exe = fs::read_symlink("/proc/self/exe", ec);
  std::vector<fs::path> candidates = {fs::current_path() / ".." / rel};
  if (!ec) candidates.push_back(exe.parent_path() / "../../.." / rel);
  for (const fs::path& c : candidates)
    if (fs::exists(c / "tokenizer.json")) return c.lexically_normal().string();
  return {};
}

// English prose: every distinct license text on the machine, about 250 KB.
std::string english_text(std::string& source) {
  if (const char* env = std::getenv("DSINFER_BENCH_TEXT")) {
    source = env;
    return read_file(env);
  }
  source = "/usr/share/common-licenses";
  std::set<std::string> seen;
  std::string text;
  if (fs::is_directory(source))
    for (const auto& entry : fs::directory_iterator(source)) {
      std::string body = read_file(entry.path());
      if (seen.insert(body).second) text += body;
    }
  if (text.empty())
    throw std::runtime_error("tokenizer bench: no text; set DSINFER_BENCH_TEXT to a text file");
  return text;
}

void add(Report& report, const char* name, const nlohmann::json& params, double ms, double bytes,
         double tokens) {
  Result r;
  r.name = name;
  r.params = params;
  r.median_ms = ms;
  r.gbs = bytes / ms / 1e6;
  r.peak = PeakKind::read;
  r.extra["MB/s"] = bytes / ms / 1e3;
  r.extra["Mtok/s"] = tokens / ms / 1e3;
  report.add(std::move(r), 1);
}

SuiteRegistrar tokenizer_suite(
    "tokenizer", "DeepSeek tokenizer encode/decode MB/s on one thread",
    [](const Options& opts, Report& report) {
      std::string dir = tokenizer_dir();
      if (dir.empty()) {
        // Not an error: `bench all` should still run the other suites.
        std::fprintf(stderr,
                     "tokenizer: skipped, no tokenizer found (set DSINFER_TOKENIZER_DIR)\n");
        return;
      }
      Tokenizer tok = Tokenizer::load(dir);
      std::string source;
      std::string text = english_text(source);
      if (opts.quick && text.size() > 64 * 1024) {
        size_t cut = 64 * 1024;  // back up to a character boundary
        while (cut > 0 && (static_cast<unsigned char>(text[cut]) & 0xC0) == 0x80) --cut;
        text.resize(cut);
      }
      std::vector<int32_t> ids = tok.encode(text, false);
      nlohmann::json params = {{"text", source}, {"bytes", text.size()}, {"tokens", ids.size()}};
      double bytes = double(text.size()), tokens = double(ids.size());
      int repeats = opts.quick ? 2 : 5;

      // The cache fills on the warm-up run; this is the steady state of a long-running engine.
      double ms = time_median_ms([&] { tok.encode(text, false); }, repeats);
      add(report, "encode (word cache)", params, ms, bytes, tokens);

      tok.set_cache_capacity(0);
      ms = time_median_ms([&] { tok.encode(text, false); }, repeats);
      add(report, "encode (no cache)", params, ms, bytes, tokens);
      tok.set_cache_capacity(1 << 16);

      ms = time_median_ms([&] { tok.decode(ids); }, repeats);
      add(report, "decode", params, ms, bytes, tokens);

      ms = time_median_ms(
          [&] {
            StreamingDecoder stream(tok);
            size_t n = 0;
            for (int32_t id : ids) n += stream.push(id).size();
            n += stream.flush().size();
            if (n != text.size()) throw std::runtime_error("streaming decode lost text");
          },
          repeats);
      add(report, "streaming decode", params, ms, bytes, tokens);
    });

}  // namespace
}  // namespace dsinfer::bench
