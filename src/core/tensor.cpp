#include "core/tensor.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <new>
#include <stdexcept>

namespace dsinfer {

AlignedStorage::AlignedStorage(size_t bytes) : bytes_(bytes) {
  size_t rounded = (bytes + 63) / 64 * 64;
  ptr_ = std::aligned_alloc(64, rounded ? rounded : 64);
  if (!ptr_) throw std::bad_alloc();
  std::memset(ptr_, 0, rounded);
}
AlignedStorage::~AlignedStorage() {
  std::free(ptr_);
}

LazyStorage::LazyStorage(size_t bytes) : bytes_(bytes) {
  ptr_ = ::mmap(nullptr, bytes ? bytes : 1, PROT_READ | PROT_WRITE,
                MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (ptr_ == MAP_FAILED) {
    ptr_ = nullptr;
    throw std::bad_alloc();
  }
}
LazyStorage::~LazyStorage() {
  if (ptr_) ::munmap(ptr_, bytes_ ? bytes_ : 1);
}

MappedFile::MappedFile(const std::string& path) : path_(path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw std::runtime_error(path + ": cannot open: " + std::strerror(errno));
  struct stat st;
  if (::fstat(fd, &st) != 0) {
    int e = errno;
    ::close(fd);
    throw std::runtime_error(path + ": cannot stat: " + std::strerror(e));
  }
  bytes_ = size_t(st.st_size);
  if (bytes_ > 0) {
    ptr_ = ::mmap(nullptr, bytes_, PROT_READ, MAP_PRIVATE, fd, 0);
    if (ptr_ == MAP_FAILED) {
      int e = errno;
      ::close(fd);
      ptr_ = nullptr;
      throw std::runtime_error(path + ": cannot mmap: " + std::strerror(e));
    }
  }
  ::close(fd);
}
MappedFile::~MappedFile() {
  if (ptr_) ::munmap(ptr_, bytes_);
}

namespace {
std::vector<int64_t> contiguous_strides(const std::vector<int64_t>& shape) {
  std::vector<int64_t> s(shape.size());
  int64_t acc = 1;
  for (int i = int(shape.size()) - 1; i >= 0; --i) {
    s[i] = acc;
    acc *= shape[i];
  }
  return s;
}
int64_t product(const std::vector<int64_t>& shape) {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}
void check_shape(const std::vector<int64_t>& shape) {
  if (int(shape.size()) > Tensor::kMaxDims) throw std::invalid_argument("tensor: too many dims");
  for (int64_t d : shape)
    if (d < 0) throw std::invalid_argument("tensor: negative dimension");
}
}  // namespace

Tensor Tensor::empty(DType dtype, std::vector<int64_t> shape) {
  check_shape(shape);
  auto storage = std::make_shared<AlignedStorage>(size_t(product(shape)) * dtype_size(dtype));
  return view(storage, 0, dtype, std::move(shape));
}

Tensor Tensor::lazy(DType dtype, std::vector<int64_t> shape) {
  check_shape(shape);
  auto storage = std::make_shared<LazyStorage>(size_t(product(shape)) * dtype_size(dtype));
  return view(storage, 0, dtype, std::move(shape));
}

Tensor Tensor::borrow(void* data, DType dtype, std::vector<int64_t> shape) {
  check_shape(shape);
  Tensor t;
  t.data_ = data;
  t.dtype_ = dtype;
  t.strides_ = contiguous_strides(shape);
  t.shape_ = std::move(shape);
  return t;
}

Tensor Tensor::view(std::shared_ptr<Storage> storage, size_t offset, DType dtype,
                    std::vector<int64_t> shape) {
  check_shape(shape);
  if (!storage) throw std::invalid_argument("tensor view: null storage");
  size_t need = size_t(product(shape)) * dtype_size(dtype);
  if (offset > storage->bytes() || need > storage->bytes() - offset)
    throw std::out_of_range("tensor view of " + std::to_string(need) + " bytes at offset " +
                            std::to_string(offset) + " exceeds storage of " +
                            std::to_string(storage->bytes()) + " bytes");
  Tensor t = borrow(static_cast<char*>(storage->data()) + offset, dtype, std::move(shape));
  t.storage_ = std::move(storage);
  return t;
}

int64_t Tensor::numel() const {
  return product(shape_);
}

bool Tensor::is_contiguous() const {
  return strides_ == contiguous_strides(shape_);
}

Tensor Tensor::select(int64_t i) const {
  if (dims() == 0 || i < 0 || i >= shape_[0])
    throw std::out_of_range("tensor select: index " + std::to_string(i) + " out of range for " +
                            shape_string());
  Tensor t = *this;
  t.data_ = static_cast<char*>(data_) + size_t(i * strides_[0]) * dtype_size(dtype_);
  t.shape_.erase(t.shape_.begin());
  t.strides_.erase(t.strides_.begin());
  return t;
}

Tensor Tensor::slice(int64_t begin, int64_t end) const {
  if (dims() == 0 || begin < 0 || end < begin || end > shape_[0])
    throw std::out_of_range("tensor slice: [" + std::to_string(begin) + ", " + std::to_string(end) +
                            ") out of range for " + shape_string());
  Tensor t = *this;
  t.data_ = static_cast<char*>(data_) + size_t(begin * strides_[0]) * dtype_size(dtype_);
  t.shape_[0] = end - begin;
  return t;
}

Tensor Tensor::reshape(std::vector<int64_t> shape) const {
  const std::vector<int64_t> requested = shape;
  auto fail = [&](const std::string& why) {
    std::string s = "[";
    for (size_t i = 0; i < requested.size(); ++i)
      s += (i ? ", " : "") + std::to_string(requested[i]);
    throw std::invalid_argument("tensor reshape of " + shape_string() + " to " + s + "]: " + why);
  };
  if (!is_contiguous()) fail("not contiguous");
  if (int(shape.size()) > kMaxDims) fail("too many dims");
  int infer = -1;
  int64_t known = 1;
  for (int i = 0; i < int(shape.size()); ++i) {
    if (shape[i] == -1) {
      if (infer >= 0) fail("two -1 dimensions");
      infer = i;
    } else if (shape[i] < 0) {
      fail("negative dimension");
    } else {
      known *= shape[i];
    }
  }
  if (infer >= 0) {
    if (known == 0) fail("-1 is ambiguous when another dimension is 0");
    if (numel() % known != 0)
      fail(std::to_string(numel()) + " elements are not a multiple of " + std::to_string(known));
    shape[infer] = numel() / known;
  }
  if (product(shape) != numel())
    fail(std::to_string(numel()) + " elements, the new shape has " +
         std::to_string(product(shape)));
  Tensor t = *this;
  t.strides_ = contiguous_strides(shape);
  t.shape_ = std::move(shape);
  return t;
}

std::string Tensor::shape_string() const {
  std::string s = "[";
  for (size_t i = 0; i < shape_.size(); ++i) s += (i ? ", " : "") + std::to_string(shape_[i]);
  return s + "] " + std::string(dtype_name(dtype_));
}

}  // namespace dsinfer
