#include "formats/h5_support.h"

#include <cstring>
#include <mutex>

#include "src/core/error.h"

namespace deltakit {

namespace {

using Json = nlohmann::ordered_json;

herr_t collect_error(unsigned n, const H5E_error2_t* e, void* data) {
  auto* out = static_cast<std::vector<std::string>*>(data);
  if (e->desc && *e->desc) out->push_back(e->desc);
  (void)n;
  return 0;
}

[[noreturn]] void bad(const std::string& where, const std::string& what) {
  throw Error(ErrorCode::AdapterInvalid, where, what);
}

H5Handle attr_type_for(const Json& v, const std::string& key) {
  if (v.is_string()) {
    hid_t t = H5Tcopy(H5T_C_S1);
    H5Tset_size(t, H5T_VARIABLE);
    H5Tset_cset(t, H5T_CSET_UTF8);
    return {t, H5Tclose};
  }
  auto scalar_type = [&](const Json& x) -> hid_t {
    if (x.is_number_unsigned()) return H5T_STD_U64LE;
    if (x.is_number_integer()) return H5T_STD_I64LE;
    if (x.is_number_float()) return H5T_IEEE_F64LE;
    throw Error(ErrorCode::Usage, "", "attribute '" + key + "' has a type HDF5 attributes here cannot hold");
  };
  if (v.is_array()) {
    hid_t t = H5T_STD_U64LE;
    for (const auto& x : v) {
      hid_t s = scalar_type(x);
      if (s == H5T_IEEE_F64LE) t = H5T_IEEE_F64LE;
      else if (s == H5T_STD_I64LE && t == H5T_STD_U64LE) t = H5T_STD_I64LE;
    }
    return {H5Tcopy(t), H5Tclose};
  }
  return {H5Tcopy(scalar_type(v)), H5Tclose};
}

}  // namespace

void h5_setup() {
  static std::once_flag once;
  static bool ok = false;
  std::call_once(once, [] {
    // no library shutdown at exit: our handles close every object, and HDF5 1.10 faults when its
    // exit handler meets a file whose close already failed (a full disk at the final flush)
    H5dont_atexit();
    H5open();
    H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr);
    H5PLset_loading_state(0);  // never dlopen a filter named by a file
    ok = H5Zregister(&kZstdFilterClass) >= 0;
  });
  if (!ok) throw Error(ErrorCode::Io, "", "could not register the zstd HDF5 filter");
}

std::string h5_error_detail() {
  std::vector<std::string> msgs;
  H5Ewalk2(H5E_DEFAULT, H5E_WALK_UPWARD, collect_error, &msgs);
  H5Eclear2(H5E_DEFAULT);
  std::string out;
  for (size_t i = 0; i < msgs.size() && i < 3; ++i) {
    std::string m = msgs[i];
    // the POSIX driver's messages carry a time stamp, file name, offsets... and the one useful
    // part, "error message = '...'" (strerror): keep that, on one line
    auto at = m.find("error message = '");
    if (at != std::string::npos) {
      auto end = m.find('\'', at + 17);
      m = m.substr(at + 17, end == std::string::npos ? std::string::npos : end - at - 17);
    }
    for (char& c : m)
      if (c == '\n' || c == '\r') c = ' ';
    if (m.size() > 200) m = m.substr(0, 200) + "...";
    out += (i ? "; " : "") + m;
  }
  return out.empty() ? out : "HDF5: " + out;
}

void h5_write_attr(hid_t obj, const std::string& key, const Json& v) {
  H5Handle type = attr_type_for(v, key);
  H5Handle space;
  if (v.is_array()) {
    hsize_t n = v.size();
    space = n ? H5Handle(H5Screate_simple(1, &n, nullptr), H5Sclose) : H5Handle(H5Screate(H5S_NULL), H5Sclose);
  } else {
    space = H5Handle(H5Screate(H5S_SCALAR), H5Sclose);
  }
  H5Handle attr(H5Acreate2(obj, key.c_str(), type.get(), space.get(), H5P_DEFAULT, H5P_DEFAULT), H5Aclose);
  if (!attr) throw Error(ErrorCode::Io, "", "cannot create attribute '" + key + "' (" + h5_error_detail() + ")");
  herr_t st = 0;
  if (v.is_string()) {
    std::string s = v.get<std::string>();
    const char* p = s.c_str();
    st = H5Awrite(attr.get(), type.get(), &p);
  } else if (v.is_array()) {
    if (!v.empty()) {
      if (H5Tequal(type.get(), H5T_IEEE_F64LE) > 0) {
        std::vector<double> d;
        for (const auto& x : v) d.push_back(x.get<double>());
        st = H5Awrite(attr.get(), H5T_NATIVE_DOUBLE, d.data());
      } else if (H5Tequal(type.get(), H5T_STD_I64LE) > 0) {
        std::vector<int64_t> d;
        for (const auto& x : v) d.push_back(x.get<int64_t>());
        st = H5Awrite(attr.get(), H5T_NATIVE_INT64, d.data());
      } else {
        std::vector<uint64_t> d;
        for (const auto& x : v) d.push_back(x.get<uint64_t>());
        st = H5Awrite(attr.get(), H5T_NATIVE_UINT64, d.data());
      }
    }
  } else if (v.is_number_unsigned()) {
    uint64_t d = v.get<uint64_t>();
    st = H5Awrite(attr.get(), H5T_NATIVE_UINT64, &d);
  } else if (v.is_number_integer()) {
    int64_t d = v.get<int64_t>();
    st = H5Awrite(attr.get(), H5T_NATIVE_INT64, &d);
  } else {
    double d = v.get<double>();
    st = H5Awrite(attr.get(), H5T_NATIVE_DOUBLE, &d);
  }
  if (st < 0) throw Error(ErrorCode::Io, "", "cannot write attribute '" + key + "' (" + h5_error_detail() + ")");
}

namespace {

Json read_one_attr(hid_t obj, const std::string& key, const std::string& where) {
  const std::string at = "attribute '" + key + "'";
  H5Handle attr(H5Aopen(obj, key.c_str(), H5P_DEFAULT), H5Aclose);
  if (!attr) bad(where, "cannot open " + at + " (" + h5_error_detail() + ")");
  H5Handle type(H5Aget_type(attr.get()), H5Tclose);
  H5Handle space(H5Aget_space(attr.get()), H5Sclose);
  if (!type || !space) bad(where, "cannot read the type of " + at);
  H5S_class_t sc = H5Sget_simple_extent_type(space.get());
  hssize_t npoints = 1;
  bool array = false;
  if (sc == H5S_NULL) {
    npoints = 0, array = true;
  } else if (sc == H5S_SIMPLE) {
    if (H5Sget_simple_extent_ndims(space.get()) != 1) bad(where, at + " is not a scalar or 1-D array");
    npoints = H5Sget_simple_extent_npoints(space.get());
    array = true;
  } else if (sc != H5S_SCALAR) {
    bad(where, at + " has an unknown dataspace");
  }
  if (npoints < 0 || npoints > (1 << 20)) bad(where, at + " has too many elements");
  const H5T_class_t tc = H5Tget_class(type.get());
  const size_t size = H5Tget_size(type.get());
  if (tc == H5T_STRING) {
    if (array) bad(where, at + " is an array of strings");
    if (H5Tis_variable_str(type.get()) > 0) {
      H5Handle mem(H5Tcopy(H5T_C_S1), H5Tclose);
      H5Tset_size(mem.get(), H5T_VARIABLE);
      H5Tset_cset(mem.get(), H5Tget_cset(type.get()));
      char* p = nullptr;
      if (H5Aread(attr.get(), mem.get(), &p) < 0) bad(where, "cannot read " + at + " (" + h5_error_detail() + ")");
      std::string s = p ? std::string(p, strnlen(p, (16u << 20) + 1)) : std::string();
      if (p) H5free_memory(p);
      if (s.size() > (16u << 20)) bad(where, at + " is longer than 16 MB");
      return s;
    }
    if (size == 0 || size > (16u << 20)) bad(where, at + " is a fixed string of bad length");
    std::vector<char> buf(size + 1, 0);
    if (H5Aread(attr.get(), type.get(), buf.data()) < 0) bad(where, "cannot read " + at);
    return std::string(buf.data(), strnlen(buf.data(), size));
  }
  if (tc != H5T_INTEGER && tc != H5T_FLOAT) bad(where, at + " is neither a number nor a string");
  if ((tc == H5T_INTEGER && size != 1 && size != 2 && size != 4 && size != 8) ||
      (tc == H5T_FLOAT && size != 4 && size != 8))
    bad(where, at + " has an unsupported number size");
  Json vals = Json::array();
  if (npoints > 0) {
    if (tc == H5T_FLOAT) {
      std::vector<double> d(npoints);
      if (H5Aread(attr.get(), H5T_NATIVE_DOUBLE, d.data()) < 0) bad(where, "cannot read " + at);
      for (double x : d) vals.push_back(x);
    } else if (H5Tget_sign(type.get()) == H5T_SGN_NONE) {
      std::vector<uint64_t> d(npoints);
      if (H5Aread(attr.get(), H5T_NATIVE_UINT64, d.data()) < 0) bad(where, "cannot read " + at);
      for (uint64_t x : d) vals.push_back(x);
    } else {
      std::vector<int64_t> d(npoints);
      if (H5Aread(attr.get(), H5T_NATIVE_INT64, d.data()) < 0) bad(where, "cannot read " + at);
      for (int64_t x : d) vals.push_back(x);
    }
  }
  return array ? vals : vals[0];
}

struct NameList {
  std::vector<std::string> names;
  std::vector<std::string> not_hard;
};

herr_t collect_link(hid_t, const char* name, const H5L_info_t* info, void* data) {
  auto* out = static_cast<NameList*>(data);
  if (info->type != H5L_TYPE_HARD) out->not_hard.push_back(name);
  out->names.push_back(name);
  return out->names.size() > (1u << 22) ? 1 : 0;
}

herr_t collect_attr(hid_t, const char* name, const H5A_info_t*, void* data) {
  auto* out = static_cast<std::vector<std::string>*>(data);
  out->push_back(name);
  return out->size() > 4096 ? 1 : 0;
}

}  // namespace

Json h5_read_attrs(hid_t obj, const std::string& where) {
  std::vector<std::string> keys;
  hsize_t idx = 0;
  if (H5Aiterate2(obj, H5_INDEX_NAME, H5_ITER_INC, &idx, collect_attr, &keys) < 0)
    bad(where, "cannot list attributes (" + h5_error_detail() + ")");
  if (keys.size() > 4096) bad(where, "more than 4096 attributes");
  Json out = Json::object();
  for (const auto& k : keys) out[k] = read_one_attr(obj, k, where);
  return out;
}

std::vector<std::string> h5_hard_links(hid_t group, const std::string& where) {
  NameList list;
  hsize_t idx = 0;
  if (H5Literate(group, H5_INDEX_CRT_ORDER, H5_ITER_INC, &idx, collect_link, &list) < 0) {
    H5Eclear2(H5E_DEFAULT);
    list = NameList();
    idx = 0;
    if (H5Literate(group, H5_INDEX_NAME, H5_ITER_INC, &idx, collect_link, &list) < 0)
      bad(where, "cannot list the group's links (" + h5_error_detail() + ")");
  }
  if (list.names.size() > (1u << 22)) bad(where, "too many links");
  if (!list.not_hard.empty()) bad(where, "link '" + list.not_hard[0] + "' is a soft or external link (refused)");
  return list.names;
}

std::string h5_escape_name(const std::string& name) {
  std::string out;
  for (size_t i = 0; i < name.size(); ++i) {
    char c = name[i];
    if (c == '%') out += "%25";
    else if (c == '/') out += "%2F";
    else if (c == '.' && i == 0) out += "%2E";
    else out += c;
  }
  return out;
}

}  // namespace deltakit
