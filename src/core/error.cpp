#include "src/core/error.h"

#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace deltakit {

const char* error_code_name(ErrorCode code) {
  switch (code) {
    case ErrorCode::Io: return "Io";
    case ErrorCode::FileTooSmall: return "FileTooSmall";
    case ErrorCode::HeaderTooLarge: return "HeaderTooLarge";
    case ErrorCode::HeaderNotJson: return "HeaderNotJson";
    case ErrorCode::HeaderNotObject: return "HeaderNotObject";
    case ErrorCode::DuplicateName: return "DuplicateName";
    case ErrorCode::UnknownDtype: return "UnknownDtype";
    case ErrorCode::InvalidShape: return "InvalidShape";
    case ErrorCode::InvalidOffsets: return "InvalidOffsets";
    case ErrorCode::SizeMismatch: return "SizeMismatch";
    case ErrorCode::OffsetsNotContiguous: return "OffsetsNotContiguous";
    case ErrorCode::DataLengthMismatch: return "DataLengthMismatch";
    case ErrorCode::Overflow: return "Overflow";
    case ErrorCode::InvalidMetadata: return "InvalidMetadata";
    case ErrorCode::IndexInvalid: return "IndexInvalid";
    case ErrorCode::PathEscapes: return "PathEscapes";
    case ErrorCode::MissingShard: return "MissingShard";
    case ErrorCode::TensorSetMismatch: return "TensorSetMismatch";
    case ErrorCode::ShapeMismatch: return "ShapeMismatch";
    case ErrorCode::DtypeMismatch: return "DtypeMismatch";
    case ErrorCode::OutputConflict: return "OutputConflict";
    case ErrorCode::AdapterInvalid: return "AdapterInvalid";
    case ErrorCode::FingerprintMismatch: return "FingerprintMismatch";
    case ErrorCode::NonFinite: return "NonFinite";
    case ErrorCode::Usage: return "Usage";
    case ErrorCode::InvalidValue: return "InvalidValue";
    case ErrorCode::Device: return "Device";
  }
  return "Unknown";
}

void throw_errno(const std::string& where, const std::string& what) {
  int e = errno;
  throw Error(ErrorCode::Io, where, what + ": " + std::strerror(e));
}

void print_error_line(const std::string& line) {
  // one line, whatever the message echoes (a recipe or path with a newline in it)
  std::string text;
  for (char c : line) {
    if (c == '\n') text += "\\n";
    else if (c == '\r') text += "\\r";
    else if (static_cast<unsigned char>(c) < 0x20 && c != '\t') text += '?';
    else text += c;
  }
  text += "\n";
  size_t done = 0;
  while (done < text.size()) {
    const ssize_t n = ::write(2, text.data() + done, text.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return;  // nowhere left to report to
    done += static_cast<size_t>(n);
  }
}

}  // namespace deltakit
