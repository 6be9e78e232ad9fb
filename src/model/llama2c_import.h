// `deltakit import-llama2c`: a llama2.c checkpoint and its tokenizer (formats/llama2c.h) as an
// HF-layout model folder the engine loads.
#pragma once

#include <string>

namespace deltakit {

// safetensors with HF names (q/k rows permuted from llama2.c's interleaved rotary pairs to HF's
// rotate_half layout), config.json, tokenizer.bin and deltakit_tokenizer.json. Every size in the
// header is checked against the file length before a weight is read.
void import_llama2c(const std::string& model_bin, const std::string& tokenizer_bin, const std::string& out_dir,
                    bool overwrite);

}  // namespace deltakit
