// Recipes: which codecs encode a tensor's delta, and how they combine.
//
// Grammar (whitespace around operators is ignored):
//   recipe := chain [ "+" cherry ]
//   chain  := stage [ ">" stage ]
//   stage  := name [ ":" param { "," param } ]        param := key "=" value
// Stages and their parameters (defaults in brackets):
//   raw                                   exact delta; stands alone
//   dare:p=[0.9],rescale=[auto]|none|F,seed=[--seed]   random drop, survivors × 1/(1−p) or F
//   topk:density=[0.1],scope=[tensor]|model  keep the floor(density·n) largest |δ| (n: the
//                                         tensor, or with scope=model every such tensor)
//   bitdelta:scale=[matrix]|row|group:G,levels=[1]     signs × per-unit mean magnitude
//   quant:bits=2|3|[4]|8,group=[128]      asymmetric min-max round to nearest
//   lowrank:rank=R | energy=E             truncated SVD (2-D tensors)
//   cherry:frac=[0.01],per=[row]|tensor,importance=[magnitude]|fisher:FILE|act:FILE,
//          scope=[tensor]|model           scope=model: one top-frac budget over the model
// Meaning of the combinations:
//   S            a sparsifier (dare, topk) alone stores positions and values in the tensor's dtype
//   S > V        the sparsifier's kept values (in position order) are coded by V (bitdelta or
//                quant), e.g. "dare:p=0.5 > bitdelta": random half kept, each ±α; per-row
//                scales then mean the kept values of each row
//   V, lowrank   a dense coder over the whole tensor
//   ... + cherry the modifier scores every entry against what the chain before it reconstructs
//                and keeps the top share exactly; the chain is refitted without those entries
// Refused: raw or lowrank in a chain, two sparsifiers, two value coders, a coder before a
// sparsifier, cherry anywhere but last or on raw, unknown names, keys or values.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "src/codec/cherry.h"
#include "src/codec/stage.h"

namespace deltakit {

struct Recipe {
  std::vector<std::shared_ptr<const Stage>> chain;  // made by the stage registry (stage.h)
  std::optional<CherryParams> cherry;
  bool is_raw() const { return chain.size() == 1 && chain[0]->role() == StageRole::Raw; }
  // Every parameter spelled out, e.g. "dare:p=0.9,rescale=auto,seed=0 > bitdelta:scale=row,levels=1".
  std::string canonical() const;
  // Stage names only: "dare>bitdelta+cherry".
  std::string codec_names() const;
  // The cherry modifier spelled out ("cherry:frac=0.01,per=row,importance=magnitude"); "" if none.
  std::string cherry_text() const;
};

// Throws Error(Usage) naming the problem; default_seed fills dare's/lowrank's seed.
Recipe parse_recipe(const std::string& text, uint64_t default_seed = 0);

}  // namespace deltakit
