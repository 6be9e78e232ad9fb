// Thin, defensive helpers over the HDF5 C API: owning handles, one-time library setup (no error
// stack printing, no dynamic filter plugins, our zstd filter registered), errors that carry
// HDF5's own description, and attributes converted to and from JSON values with every type and
// size checked on the way in.
#pragma once

#include <hdf5.h>

#include "formats/h5_zstd_filter.h"

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace deltakit {


// Idempotent: silence HDF5's automatic error printing, disable plugin loading, register zstd.
void h5_setup();

// "HDF5: <innermost descriptions>" of the current error stack ("" if empty), then clears it.
std::string h5_error_detail();

class H5Handle {
 public:
  using Closer = herr_t (*)(hid_t);
  H5Handle() = default;
  H5Handle(hid_t id, Closer close) : id_(id), close_(close) {}
  ~H5Handle() { reset(); }
  H5Handle(H5Handle&& o) noexcept : id_(o.id_), close_(o.close_) { o.id_ = -1; }
  H5Handle& operator=(H5Handle&& o) noexcept {
    if (this != &o) reset(), id_ = o.id_, close_ = o.close_, o.id_ = -1;
    return *this;
  }
  H5Handle(const H5Handle&) = delete;
  H5Handle& operator=(const H5Handle&) = delete;
  hid_t get() const { return id_; }
  explicit operator bool() const { return id_ >= 0; }
  void reset() {
    if (id_ >= 0 && close_) close_(id_);
    id_ = -1;
  }
  // Closes now and reports whether the close succeeded (a file's close writes its metadata).
  bool close() {
    const bool ok = id_ < 0 || !close_ || close_(id_) >= 0;
    id_ = -1;
    return ok;
  }

 private:
  hid_t id_ = -1;
  Closer close_ = nullptr;
};

// Attributes <-> JSON. Written: strings (variable-length UTF-8), unsigned/signed 64-bit integers,
// doubles, and 1-D arrays of numbers (an empty array is a null dataspace).
void h5_write_attr(hid_t obj, const std::string& key, const nlohmann::ordered_json& value);
// Every attribute of an object, refusing anything but those forms (and 32-bit ints/floats or
// fixed-length strings, which h5py may write). Sizes capped: strings 16 MB, arrays 2^20 entries,
// 4096 attributes. Throws Error(AdapterInvalid) naming `where`.
nlohmann::ordered_json h5_read_attrs(hid_t obj, const std::string& where);

// Names of the links in a group, refusing any link that is not hard (soft and external links
// could point outside the file). Order: creation order where tracked, else name.
std::vector<std::string> h5_hard_links(hid_t group, const std::string& where);

// Tensor/file names as HDF5 link names: '%' -> %25, '/' -> %2F, a leading '.' -> %2E.
std::string h5_escape_name(const std::string& name);

}  // namespace deltakit
