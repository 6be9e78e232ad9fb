// A merge described the way mergekit's YAML configs describe it, so a mergekit user can bring
// theirs (algorithms.md §8):
//
//   merge_method: dare_ties
//   base_model: path/to/base
//   models:
//     - model: path/to/finetune-or-adapter.h5
//       parameters: {weight: 0.5, density: 0.3}
//     - model: path/to/other
//       parameters:
//         weight: [0.2, 0.8]                      # a gradient over the layers
//         density: [{filter: mlp, value: 0.5}, {value: 0.3}]
//   parameters: {normalize: true, lambda: 1.0}    # global; a model's own parameters win
//   dtype: bfloat16
//   tokenizer_source: base
//
// deltakit's additions: a `model` may be a deltakit adapter (.h5) made from base_model;
// `rescale_norm: l1|l2|linf|inverse|none` picks how DARE/DELLA survivors are rescaled (mergekit's
// `rescale: true` is l1, the papers' 1/(1 − p) is inverse); `seed` keys the random masks.
//
// Layer stacking (mergekit's `slices`, in place of `models`): the output's layers are the slices'
// layers in order; a slice's sources each give a `layer_range: [begin, end)` of one model, all of
// the same length, merged layer by layer by the method (passthrough: one source, copied). The
// embeddings come from the first slice's sources, the final norm and lm_head from the last's;
// a layer's gradient position runs from 0 to 1 within its slice.
//
//   slices:
//     - sources: [{model: a, layer_range: [0, 24]}]
//     - sources: [{model: b, layer_range: [20, 40]}]
//   merge_method: passthrough
#pragma once

#include <map>
#include <string>
#include <vector>

#include "src/merge/merge_params.h"

namespace deltakit {

struct MergeModelSpec {
  std::string path;
  std::map<std::string, ParamValue> params;
};

struct SliceSource {
  std::string path;
  int begin = 0, end = 0;  // layer_range [begin, end)
  std::map<std::string, ParamValue> params;
};
struct MergeSlice {
  std::vector<SliceSource> sources;
};

struct MergeConfig {
  std::string method;
  std::string base_model;                    // may be empty for linear
  std::vector<MergeModelSpec> models;        // with slices: each model once, in order of appearance
  std::vector<MergeSlice> slices;            // empty: every model whole (the `models` syntax)
  std::map<std::string, ParamValue> params;  // global
  std::string dtype;                         // "" = each tensor keeps the base's dtype
  std::string tokenizer_source;              // "" or "base": the base's side files; else a model's path
  uint64_t seed = 0;
  std::string rescale_norm;  // "" = the method's default (l1 when it rescales)
  std::string source_text;   // the YAML as given (copied beside the output)
};

// Parses and checks the config: known method, known parameter names, required ones present,
// each model listed once. Errors name `where` (the config file) and the offending key.
MergeConfig parse_merge_config(const std::string& yaml_text, const std::string& where);

// The value of parameter `key` for model `model` (-1: global only) at a tensor; the model's
// own value wins over the global one, then `fallback`.
double merge_param(const MergeConfig& c, int model, const std::string& key, const std::string& tensor, double position,
                   double fallback);
bool has_merge_param(const MergeConfig& c, int model, const std::string& key);
// The same with a model's own parameters given directly (a slice source's), or none.
double merge_param_from(const std::map<std::string, ParamValue>* own, const MergeConfig& c, const std::string& key,
                        const std::string& tensor, double position, double fallback);

}  // namespace deltakit
