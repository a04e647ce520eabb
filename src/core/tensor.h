// Tensor views: a dtype, a shape and element strides over storage that is owned (64-byte
// aligned heap memory), memory-mapped from a file, or borrowed from the caller.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <memory>
#include <string>
#include <vector>

#include "core/dtype.h"

namespace dsinfer {

// A block of bytes that stays alive as long as any tensor views it.
class Storage {
 public:
  virtual ~Storage() = default;
  virtual void* data() = 0;
  virtual size_t bytes() const = 0;
};

// Heap memory aligned to 64 bytes (one cache line, one zmm register), zero-initialized.
class AlignedStorage final : public Storage {
 public:
  explicit AlignedStorage(size_t bytes);
  ~AlignedStorage() override;
  void* data() override { return ptr_; }
  size_t bytes() const override { return bytes_; }

 private:
  void* ptr_;
  size_t bytes_;
};

// Anonymous memory mapped without committing it: the OS supplies a zero page when each page is
// first touched, so a large, mostly unused buffer (a KV cache budget) costs only what is used.
class LazyStorage final : public Storage {
 public:
  explicit LazyStorage(size_t bytes);
  ~LazyStorage() override;
  void* data() override { return ptr_; }
  size_t bytes() const override { return bytes_; }

 private:
  void* ptr_ = nullptr;
  size_t bytes_;
};

// A read-only memory map of a whole file. Throws std::runtime_error naming the file on failure.
class MappedFile final : public Storage {
 public:
  explicit MappedFile(const std::string& path);
  ~MappedFile() override;
  void* data() override { return ptr_; }
  size_t bytes() const override { return bytes_; }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
  void* ptr_ = nullptr;
  size_t bytes_ = 0;
};

class Tensor {
 public:
  static constexpr int kMaxDims = 6;

  Tensor() = default;
  // A new zero-filled contiguous tensor.
  static Tensor empty(DType dtype, std::vector<int64_t> shape);
  // The same over LazyStorage: reads as zeros, memory committed page by page as it is written.
  static Tensor lazy(DType dtype, std::vector<int64_t> shape);
  // A contiguous view of memory the caller keeps alive.
  static Tensor borrow(void* data, DType dtype, std::vector<int64_t> shape);
  // A contiguous view into `storage` at byte offset `offset`.
  static Tensor view(std::shared_ptr<Storage> storage, size_t offset, DType dtype,
                     std::vector<int64_t> shape);

  DType dtype() const { return dtype_; }
  int dims() const { return int(shape_.size()); }
  int64_t size(int dim) const { return shape_[dim < 0 ? dim + dims() : dim]; }
  int64_t stride(int dim) const { return strides_[dim < 0 ? dim + dims() : dim]; }
  const std::vector<int64_t>& shape() const { return shape_; }
  const std::vector<int64_t>& strides() const { return strides_; }
  int64_t numel() const;
  size_t nbytes() const { return size_t(numel()) * dtype_size(dtype_); }
  bool is_contiguous() const;
  bool defined() const { return data_ != nullptr || numel() == 0; }

  void* raw() const { return data_; }
  template <class T>
  T* data() const {
    return static_cast<T*>(data_);
  }

  // Index `i` of dimension 0, dropping it.
  Tensor select(int64_t i) const;
  // Rows [begin, end) of dimension 0.
  Tensor slice(int64_t begin, int64_t end) const;
  // A new shape over the same contiguous data (one dimension may be -1).
  Tensor reshape(std::vector<int64_t> shape) const;

  std::string shape_string() const;  // e.g. "[128, 576] bf16"

 private:
  std::shared_ptr<Storage> storage_;
  void* data_ = nullptr;
  DType dtype_ = DType::f32;
  std::vector<int64_t> shape_, strides_;
};

}  // namespace dsinfer
