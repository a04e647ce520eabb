#include "core/tensor.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <memory>
#include <numeric>
#include <stdexcept>
#include <string>
#include <vector>

namespace dsinfer {
namespace {

using Shape = std::vector<int64_t>;

bool aligned64(const void* p) {
  return reinterpret_cast<uintptr_t>(p) % 64 == 0;
}

bool all_zero(const void* p, size_t n) {
  const auto* b = static_cast<const unsigned char*>(p);
  for (size_t i = 0; i < n; ++i)
    if (b[i] != 0) return false;
  return true;
}

// Runs fn, expects it to throw E, and returns the message (empty if it did not throw).
template <class E, class Fn>
std::string message_of(Fn fn) {
  try {
    fn();
  } catch (const E& e) {
    return e.what();
  } catch (const std::exception& e) {
    ADD_FAILURE() << "threw another exception type: " << e.what();
    return "";
  }
  ADD_FAILURE() << "did not throw";
  return "";
}

#define EXPECT_MESSAGE_HAS(msg, part) \
  EXPECT_NE(std::string(msg).find(part), std::string::npos) << "message: " << (msg)

// A Storage that counts its own destruction.
class CountedStorage final : public Storage {
 public:
  CountedStorage(size_t bytes, int* destroyed) : buf_(bytes), destroyed_(destroyed) {}
  ~CountedStorage() override { ++*destroyed_; }
  void* data() override { return buf_.data(); }
  size_t bytes() const override { return buf_.size(); }

 private:
  std::vector<unsigned char> buf_;
  int* destroyed_;
};

// A temporary file removed at scope exit.
class TempFile {
 public:
  explicit TempFile(const std::string& contents) {
    std::string dir = ::testing::TempDir();
    if (dir.empty() || dir.back() != '/') dir += '/';
    std::string templ = dir + "dsinfer_tensor_test_XXXXXX";
    std::vector<char> buf(templ.begin(), templ.end());
    buf.push_back('\0');
    int fd = ::mkstemp(buf.data());
    if (fd < 0) throw std::runtime_error("mkstemp failed in " + dir);
    path_ = buf.data();
    size_t done = 0;
    while (done < contents.size()) {
      ssize_t w = ::write(fd, contents.data() + done, contents.size() - done);
      if (w <= 0) break;
      done += size_t(w);
    }
    ::close(fd);
    if (done != contents.size()) throw std::runtime_error("short write to " + path_);
  }
  ~TempFile() { ::unlink(path_.c_str()); }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

std::string pattern(size_t n) {
  std::string s(n, '\0');
  for (size_t i = 0; i < n; ++i) s[i] = char((i * 131 + 7) & 0xff);
  return s;
}

// A [4, 3, 2] f32 tensor holding 0..23.
Tensor iota_432() {
  Tensor t = Tensor::empty(DType::f32, {4, 3, 2});
  std::iota(t.data<float>(), t.data<float>() + 24, 0.0f);
  return t;
}

// ---- AlignedStorage / empty ------------------------------------------------------------------

TEST(AlignedStorage, IsAlignedZeroedAndKeepsRequestedSize) {
  for (size_t bytes : {size_t(0), size_t(1), size_t(63), size_t(64), size_t(65), size_t(4097)}) {
    AlignedStorage s(bytes);
    EXPECT_EQ(s.bytes(), bytes);
    ASSERT_NE(s.data(), nullptr);
    EXPECT_TRUE(aligned64(s.data())) << bytes;
    EXPECT_TRUE(all_zero(s.data(), bytes)) << bytes;
  }
}

TEST(Tensor, EmptyIsZeroedContiguousAnd64ByteAligned) {
  // Dirty the allocator first, so memory that is merely reused (not cleared) would show.
  for (int round = 0; round < 2; ++round) {
    std::vector<Tensor> made;
    const std::vector<std::pair<DType, Shape>> cases = {
        {DType::f32, {7, 13}},        {DType::bf16, {3}},
        {DType::fp8_e4m3, {5, 1, 3}}, {DType::i64, {2, 2, 2}},
        {DType::u8, {1000}},          {DType::f32, {64, 64}},
        {DType::bf16, {1, 1, 1}},     {DType::i32, {2, 3, 4, 5, 1, 2}}};
    for (const auto& [dtype, shape] : cases) {
      Tensor t = Tensor::empty(dtype, shape);
      SCOPED_TRACE(t.shape_string());
      EXPECT_EQ(t.dtype(), dtype);
      EXPECT_EQ(t.shape(), shape);
      EXPECT_EQ(t.dims(), int(shape.size()));
      int64_t numel = 1;
      for (int64_t d : shape) numel *= d;
      EXPECT_EQ(t.numel(), numel);
      EXPECT_EQ(t.nbytes(), size_t(numel) * dtype_size(dtype));
      EXPECT_TRUE(t.is_contiguous());
      EXPECT_TRUE(t.defined());
      EXPECT_TRUE(aligned64(t.raw()));
      EXPECT_TRUE(all_zero(t.raw(), t.nbytes()));
      std::memset(t.raw(), 0xab, t.nbytes());  // the whole nbytes is writable
      made.push_back(t);
    }
  }
}

TEST(Tensor, EmptyStridesAreRowMajor) {
  Tensor t = Tensor::empty(DType::bf16, {2, 3, 5, 7});
  EXPECT_EQ(t.strides(), (Shape{105, 35, 7, 1}));
  EXPECT_EQ(t.size(0), 2);
  EXPECT_EQ(t.size(3), 7);
  EXPECT_EQ(t.size(-1), 7);
  EXPECT_EQ(t.size(-4), 2);
  EXPECT_EQ(t.stride(0), 105);
  EXPECT_EQ(t.stride(-1), 1);
  EXPECT_EQ(t.stride(-3), 35);
}

TEST(Tensor, ScalarAndZeroSizedShapes) {
  Tensor scalar = Tensor::empty(DType::f32, {});
  EXPECT_EQ(scalar.dims(), 0);
  EXPECT_EQ(scalar.numel(), 1);
  EXPECT_EQ(scalar.nbytes(), 4u);
  EXPECT_TRUE(aligned64(scalar.raw()));
  EXPECT_EQ(*scalar.data<float>(), 0.0f);

  Tensor none = Tensor::empty(DType::f32, {3, 0, 4});
  EXPECT_EQ(none.numel(), 0);
  EXPECT_EQ(none.nbytes(), 0u);
  EXPECT_TRUE(none.defined());
  EXPECT_EQ(none.strides(), (Shape{0, 4, 1}));
}

TEST(Tensor, EmptyRejectsNegativeDimsAndTooManyDims) {
  EXPECT_THROW(Tensor::empty(DType::f32, {2, -1}), std::invalid_argument);
  EXPECT_THROW(Tensor::empty(DType::f32, {1, 1, 1, 1, 1, 1, 1}), std::invalid_argument);
  EXPECT_EQ(Tensor::empty(DType::f32, {1, 1, 1, 1, 1, 2}).dims(), Tensor::kMaxDims);
}

TEST(Tensor, DefaultTensorIsUndefined) {
  Tensor t;
  EXPECT_FALSE(t.defined());
  EXPECT_EQ(t.raw(), nullptr);
  EXPECT_EQ(t.dims(), 0);
}

// ---- borrow / view ---------------------------------------------------------------------------

TEST(Tensor, BorrowWrapsCallerMemory) {
  alignas(16) int32_t buf[2][5] = {};
  Tensor t = Tensor::borrow(buf, DType::i32, {2, 5});
  EXPECT_EQ(t.raw(), static_cast<void*>(buf));
  EXPECT_EQ(t.shape(), (Shape{2, 5}));
  EXPECT_EQ(t.strides(), (Shape{5, 1}));
  EXPECT_TRUE(t.is_contiguous());
  t.data<int32_t>()[7] = 42;
  EXPECT_EQ(buf[1][2], 42);
  EXPECT_TRUE(Tensor::borrow(nullptr, DType::f32, {0}).defined());
  EXPECT_FALSE(Tensor::borrow(nullptr, DType::f32, {1}).defined());
  EXPECT_THROW(Tensor::borrow(buf, DType::i32, {-2}), std::invalid_argument);
}

TEST(Tensor, ViewPointsAtOffsetInStorage) {
  auto storage = std::make_shared<AlignedStorage>(256);
  Tensor t = Tensor::view(storage, 64, DType::bf16, {8, 4});
  EXPECT_EQ(t.raw(), static_cast<char*>(storage->data()) + 64);
  EXPECT_EQ(t.shape(), (Shape{8, 4}));
  EXPECT_EQ(t.strides(), (Shape{4, 1}));
  EXPECT_EQ(t.dtype(), DType::bf16);
  // Exactly up to the end is fine.
  EXPECT_NO_THROW(Tensor::view(storage, 0, DType::f32, {64}));
  EXPECT_NO_THROW(Tensor::view(storage, 252, DType::f32, {1}));
  EXPECT_NO_THROW(Tensor::view(storage, 256, DType::f32, {0}));
}

TEST(Tensor, ViewBeyondStorageThrowsNamingTheSizes) {
  auto storage = std::make_shared<AlignedStorage>(100);
  std::string msg = message_of<std::out_of_range>([&] {
    Tensor::view(storage, 40, DType::f32, {4, 4});
  });  // 64 bytes at 40 > 100
  EXPECT_MESSAGE_HAS(msg, "64");
  EXPECT_MESSAGE_HAS(msg, "40");
  EXPECT_MESSAGE_HAS(msg, "100");
  EXPECT_THROW(Tensor::view(storage, 97, DType::f32, {1}), std::out_of_range);
  EXPECT_THROW(Tensor::view(storage, 101, DType::u8, {0}), std::out_of_range);
  // An offset so large that offset + size wraps around must not pass the check.
  EXPECT_THROW(Tensor::view(storage, std::numeric_limits<size_t>::max() - 2, DType::f32, {1}),
               std::out_of_range);
  EXPECT_THROW(Tensor::view(nullptr, 0, DType::f32, {1}), std::invalid_argument);
}

TEST(Tensor, ViewsKeepTheirStorageAlive) {
  int destroyed = 0;
  Tensor a, b, c, d;
  {
    auto storage = std::make_shared<CountedStorage>(96, &destroyed);
    a = Tensor::view(storage, 0, DType::f32, {4, 6});
  }
  EXPECT_EQ(destroyed, 0);
  b = a.select(1);
  c = a.slice(1, 3);
  d = a.reshape({24});
  a = Tensor();
  b = Tensor();
  c = Tensor();
  EXPECT_EQ(destroyed, 0) << "the reshaped view still refers to the storage";
  d.data<float>()[23] = 1.0f;
  d = Tensor();
  EXPECT_EQ(destroyed, 1);
}

// ---- select / slice / reshape ----------------------------------------------------------------

TEST(Tensor, SelectDropsTheFirstDimension) {
  Tensor t = iota_432();
  Tensor s = t.select(2);
  EXPECT_EQ(s.shape(), (Shape{3, 2}));
  EXPECT_EQ(s.strides(), (Shape{2, 1}));
  EXPECT_EQ(s.dtype(), DType::f32);
  EXPECT_EQ(s.data<float>(), t.data<float>() + 12);
  EXPECT_EQ(s.data<float>()[0], 12.0f);
  EXPECT_EQ(s.data<float>()[5], 17.0f);
  EXPECT_TRUE(s.is_contiguous());
  Tensor row = s.select(1);
  EXPECT_EQ(row.shape(), (Shape{2}));
  EXPECT_EQ(row.data<float>()[1], 15.0f);
  Tensor elem = row.select(1);
  EXPECT_EQ(elem.dims(), 0);
  EXPECT_EQ(elem.numel(), 1);
  EXPECT_EQ(*elem.data<float>(), 15.0f);
  EXPECT_EQ(t.select(3).data<float>()[0], 18.0f);
}

TEST(Tensor, SelectUsesTheDtypeSize) {
  Tensor t = Tensor::empty(DType::bf16, {5, 3});
  EXPECT_EQ(static_cast<char*>(t.select(4).raw()) - static_cast<char*>(t.raw()), 4 * 3 * 2);
  Tensor u = Tensor::empty(DType::i64, {5, 3});
  EXPECT_EQ(static_cast<char*>(u.select(2).raw()) - static_cast<char*>(u.raw()), 2 * 3 * 8);
}

TEST(Tensor, SelectOutOfRangeThrowsNamingIndexAndShape) {
  Tensor t = iota_432();
  std::string msg = message_of<std::out_of_range>([&] { t.select(4); });
  EXPECT_MESSAGE_HAS(msg, "4");
  EXPECT_MESSAGE_HAS(msg, "[4, 3, 2]");
  EXPECT_THROW(t.select(-1), std::out_of_range);
  EXPECT_THROW(t.select(1000), std::out_of_range);
  EXPECT_THROW(t.select(0).select(1).select(0).select(0), std::out_of_range);  // 0-dim
  EXPECT_THROW(Tensor::empty(DType::f32, {0, 3}).select(0), std::out_of_range);
}

TEST(Tensor, SliceKeepsRowsOfTheFirstDimension) {
  Tensor t = iota_432();
  Tensor s = t.slice(1, 3);
  EXPECT_EQ(s.shape(), (Shape{2, 3, 2}));
  EXPECT_EQ(s.strides(), (Shape{6, 2, 1}));
  EXPECT_EQ(s.data<float>(), t.data<float>() + 6);
  EXPECT_EQ(s.data<float>()[11], 17.0f);
  EXPECT_TRUE(s.is_contiguous());
  EXPECT_EQ(t.slice(0, 4).shape(), t.shape());
  EXPECT_EQ(t.slice(0, 4).raw(), t.raw());
  Tensor none = t.slice(4, 4);
  EXPECT_EQ(none.shape(), (Shape{0, 3, 2}));
  EXPECT_EQ(none.numel(), 0);
  EXPECT_EQ(t.slice(2, 2).numel(), 0);
  // A slice of a slice.
  Tensor ss = s.slice(1, 2);
  EXPECT_EQ(ss.shape(), (Shape{1, 3, 2}));
  EXPECT_EQ(ss.data<float>()[0], 12.0f);
}

TEST(Tensor, SliceOutOfRangeThrowsNamingRangeAndShape) {
  Tensor t = iota_432();
  std::string msg = message_of<std::out_of_range>([&] { t.slice(2, 5); });
  EXPECT_MESSAGE_HAS(msg, "5");
  EXPECT_MESSAGE_HAS(msg, "[4, 3, 2]");
  EXPECT_THROW(t.slice(-1, 2), std::out_of_range);
  EXPECT_THROW(t.slice(3, 2), std::out_of_range);
  EXPECT_THROW(t.slice(5, 5), std::out_of_range);
  EXPECT_THROW(Tensor::empty(DType::f32, {}).slice(0, 0), std::out_of_range);
}

TEST(Tensor, ReshapeKeepsDataAndMakesContiguousStrides) {
  Tensor t = iota_432();
  Tensor r = t.reshape({6, 4});
  EXPECT_EQ(r.shape(), (Shape{6, 4}));
  EXPECT_EQ(r.strides(), (Shape{4, 1}));
  EXPECT_EQ(r.raw(), t.raw());
  EXPECT_EQ(r.select(5).data<float>()[3], 23.0f);
  EXPECT_EQ(t.reshape({-1}).shape(), (Shape{24}));
  EXPECT_EQ(t.reshape({2, -1, 3}).shape(), (Shape{2, 4, 3}));
  EXPECT_EQ(t.reshape({1, 24, 1}).strides(), (Shape{24, 1, 1}));
  EXPECT_EQ(t.reshape({-1, 1, 1, 1, 1, 1}).shape(), (Shape{24, 1, 1, 1, 1, 1}));
  Tensor elem = t.select(1).select(2).select(0).reshape({1, 1});  // a one-element tensor
  EXPECT_EQ(elem.shape(), (Shape{1, 1}));
  EXPECT_EQ(*elem.data<float>(), 10.0f);
  EXPECT_EQ(elem.reshape({}).dims(), 0);
}

TEST(Tensor, ReshapeOfSlicesAndZeroSizedTensors) {
  Tensor t = iota_432();
  Tensor flat = t.slice(1, 3).reshape({-1});
  EXPECT_EQ(flat.shape(), (Shape{12}));
  EXPECT_EQ(flat.data<float>()[0], 6.0f);
  Tensor none = Tensor::empty(DType::f32, {0, 5});
  EXPECT_EQ(none.reshape({5, 0}).shape(), (Shape{5, 0}));
  EXPECT_EQ(none.reshape({0}).shape(), (Shape{0}));
  EXPECT_EQ(none.reshape({-1}).shape(), (Shape{0}));
  EXPECT_EQ(none.reshape({-1, 5}).shape(), (Shape{0, 5}));
}

TEST(Tensor, BadReshapeThrowsNamingBothShapes) {
  Tensor t = iota_432();
  std::string msg = message_of<std::invalid_argument>([&] { t.reshape({5, 5}); });
  EXPECT_MESSAGE_HAS(msg, "[4, 3, 2]");
  EXPECT_MESSAGE_HAS(msg, "[5, 5]");
  EXPECT_MESSAGE_HAS(msg, "24");
  EXPECT_THROW(t.reshape({-1, -1}), std::invalid_argument);
  EXPECT_THROW(t.reshape({7, -1}), std::invalid_argument);  // 24 is not a multiple of 7
  EXPECT_THROW(t.reshape({5, -1}), std::invalid_argument);
  EXPECT_THROW(t.reshape({}), std::invalid_argument);
  EXPECT_THROW(t.reshape({25}), std::invalid_argument);
  // Negative sizes other than a single -1 are errors, even when their product matches.
  EXPECT_THROW(t.reshape({-2, -12}), std::invalid_argument);
  EXPECT_THROW(t.reshape({-4, 3, -2}), std::invalid_argument);
  EXPECT_THROW(t.reshape({1, 1, 1, 1, 1, 1, 24}), std::invalid_argument);  // 7 dims
  // With a zero dimension the -1 could be anything: ambiguous, not silently kept as -1.
  Tensor none = Tensor::empty(DType::f32, {0, 5});
  EXPECT_THROW(none.reshape({0, -1}), std::invalid_argument);
  EXPECT_THROW(none.reshape({3, 4}), std::invalid_argument);
}

TEST(Tensor, ShapeString) {
  EXPECT_EQ(Tensor::empty(DType::bf16, {128, 576}).shape_string(), "[128, 576] bf16");
  EXPECT_EQ(Tensor::empty(DType::f32, {}).shape_string(), "[] f32");
  EXPECT_EQ(Tensor::empty(DType::i8, {0}).shape_string(), "[0] i8");
  EXPECT_EQ(Tensor::empty(DType::fp8_e4m3, {2, 3, 4}).shape_string(), "[2, 3, 4] fp8_e4m3");
  EXPECT_EQ(iota_432().select(0).shape_string(), "[3, 2] f32");
}

// ---- MappedFile ------------------------------------------------------------------------------

TEST(MappedFile, MapsTheFileBytesExactly) {
  for (size_t n : {size_t(1), size_t(1000), size_t(4096), size_t(3 * 4096 + 17)}) {
    const std::string contents = pattern(n);
    TempFile file(contents);
    MappedFile m(file.path());
    EXPECT_EQ(m.path(), file.path());
    ASSERT_EQ(m.bytes(), n);
    ASSERT_NE(m.data(), nullptr);
    EXPECT_EQ(std::memcmp(m.data(), contents.data(), n), 0) << n;
  }
}

TEST(MappedFile, MissingFileErrorNamesThePath) {
  const std::string path =
      ::testing::TempDir() + "/dsinfer_no_such_file_" + std::to_string(::getpid()) + ".safetensors";
  std::string msg = message_of<std::runtime_error>([&] { MappedFile m(path); });
  EXPECT_MESSAGE_HAS(msg, path);
}

TEST(MappedFile, DirectoryErrorNamesThePath) {
  const std::string dir = ::testing::TempDir();
  std::string msg = message_of<std::runtime_error>([&] { MappedFile m(dir); });
  EXPECT_MESSAGE_HAS(msg, dir);
}

TEST(MappedFile, ZeroLengthFileMapsFine) {
  TempFile file("");
  auto m = std::make_shared<MappedFile>(file.path());
  EXPECT_EQ(m->bytes(), 0u);
  Tensor t = Tensor::view(m, 0, DType::u8, {0});
  EXPECT_EQ(t.numel(), 0);
  EXPECT_TRUE(t.defined());
  EXPECT_THROW(Tensor::view(m, 0, DType::u8, {1}), std::out_of_range);
}

TEST(MappedFile, ViewsKeepTheMapAliveAfterTheLastHandleGoes) {
  const std::string contents = pattern(8192);
  TempFile file(contents);
  std::weak_ptr<MappedFile> watch;
  Tensor rows;
  {
    auto m = std::make_shared<MappedFile>(file.path());
    watch = m;
    Tensor all = Tensor::view(m, 4096, DType::u8, {64, 64});
    rows = all.slice(10, 20);
  }
  EXPECT_FALSE(watch.expired());
  EXPECT_EQ(rows.shape(), (Shape{10, 64}));
  // Reading the mapping after the MappedFile handle is gone: a use-after-unmap would crash here.
  EXPECT_EQ(std::memcmp(rows.raw(), contents.data() + 4096 + 640, 640), 0);
  rows = Tensor();
  EXPECT_TRUE(watch.expired());
}

}  // namespace
}  // namespace dsinfer
