// One error type for every input problem deltakit detects. Each validation rule has its own
// code (like safetensors' SafeTensorError variants) so tests can assert the exact rule that
// fired; the message always names the file and says what is wrong, on one line.
#pragma once

#include <stdexcept>
#include <string>

namespace deltakit {

enum class ErrorCode {
  Io,                    // open/read/write/fsync/rename failed
  FileTooSmall,          // fewer bytes than the format's fixed prefix
  HeaderTooLarge,        // declared header length over the cap or past the end of the file
  HeaderNotJson,         // header bytes are not valid UTF-8 JSON
  HeaderNotObject,       // JSON is not an object / an entry is not an object
  DuplicateName,         // the same tensor (or key) twice
  UnknownDtype,          // dtype string not in the safetensors list
  InvalidShape,          // shape entries not non-negative integers
  InvalidOffsets,        // offsets not [begin, end] integers with begin <= end
  SizeMismatch,          // product(shape) * dtype size != end - begin
  OffsetsNotContiguous,  // gap or overlap between tensors, or first offset not 0
  DataLengthMismatch,    // last end != data length (truncated or bytes appended)
  Overflow,              // size arithmetic overflowed 64 bits
  InvalidMetadata,       // __metadata__ not a map of strings
  IndexInvalid,          // model.safetensors.index.json malformed
  PathEscapes,           // a shard path leaving the checkpoint folder
  MissingShard,          // a shard named by the index is absent
  TensorSetMismatch,     // base and fine-tune name different tensors
  ShapeMismatch,         // same tensor, different shape
  DtypeMismatch,         // same tensor, different dtype
  OutputConflict,        // output path equals an input, or exists without --overwrite
  AdapterInvalid,        // adapter file malformed or inconsistent
  FingerprintMismatch,   // adapter made from another base
  NonFinite,             // NaN/Inf where the policy refuses them
  Usage,                 // bad command-line arguments
  InvalidValue,          // a value the algorithm cannot take (a density, a token id, a length),
                         // found below the layer that knows its file: located there by at()
  Device,                // --device cuda with no usable GPU, or a CUDA/NCCL call failed
};

const char* error_code_name(ErrorCode code);

class Error : public std::runtime_error {
 public:
  // `where` is the file (or object) the problem is in; what() is "where: message".
  Error(ErrorCode code, const std::string& where, const std::string& message)
      : std::runtime_error(where.empty() ? message : where + ": " + message),
        code_(code), where_(where), message_(message) {}
  ErrorCode code() const { return code_; }
  const std::string& where() const { return where_; }
  const std::string& message() const { return message_; }

 private:
  ErrorCode code_;
  std::string where_, message_;
};

// Runs `f`; an InvalidValue error thrown below (by the engine or a merge method, which know no
// file) comes out as `code` located at `where`, with `context` before its message.
template <class F>
decltype(auto) locate_invalid_values(ErrorCode code, const std::string& where, F&& f, const std::string& context = "") {
  try {
    return f();
  } catch (const Error& e) {
    if (e.code() != ErrorCode::InvalidValue) throw;
    throw Error(code, where, context + e.message());
  }
}

// Throws Error(Io) with strerror(errno) appended.
[[noreturn]] void throw_errno(const std::string& where, const std::string& what);

// Writes `line` and a newline to stderr in one write(2): ranks sharing mpirun's stderr each get
// their line out whole, where std::cerr's piecewise writes interleave mid-line.
void print_error_line(const std::string& line);

}  // namespace deltakit
