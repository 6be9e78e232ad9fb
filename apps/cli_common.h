// Shared pieces of the deltakit subcommands: option parsing with --help, number formatting and
// one place that prints warnings. Subcommands hold no algorithms: they parse, call the
// pipeline, print.
#pragma once

#include <boost/program_options.hpp>
#include <cstdint>
#include <string>
#include <vector>

#include "src/core/comm.h"
#include "src/gpu/device_codec.h"
#include "src/pipeline/progress.h"

namespace deltakit::cli {

namespace po = boost::program_options;

using Args = std::vector<std::string>;

// Parse args against `opts` (plus --help) with the given positionals. Returns false if --help
// was printed (the command should exit 0). Errors throw po::error (exit code 2 in main).
bool parse(const std::string& command, const std::string& usage, po::options_description& opts,
           const po::positional_options_description& pos, const Args& args, po::variables_map& vm);

// Throws Error(Usage) naming the missing option.
void require(const po::variables_map& vm, const std::vector<std::string>& names);

std::string human_bytes(double bytes);
std::string fixed(double v, int decimals);
std::string sci(double v);
// Printed by rank 0 only.
void warn(const std::string& command, const std::string& message);

// The job's ranks (MPI under a launcher, else one); set by main.
Comm& world();
void set_world(Comm* comm);

// --resume, --quiet, --log-json: the options of commands that run as (distributed) jobs.
void add_job_options(po::options_description& opts);
ProgressOptions progress_options(const po::variables_map& vm);
// --device cpu|cuda (src/gpu/device_codec.h)
void add_device_option(po::options_description& opts);
gpu::Device device_option(const po::variables_map& vm);

int cmd_inspect(const Args& args);
int cmd_diff(const Args& args);
int cmd_compress(const Args& args);
int cmd_export_lora(const Args& args);
int cmd_apply(const Args& args);
int cmd_serve(const Args& args);
int cmd_merge(const Args& args);
int cmd_make_fixture(const Args& args);
int cmd_demo(const Args& args);
int cmd_train(const Args& args);
int cmd_finetune(const Args& args);
int cmd_eval(const Args& args);
int cmd_importance(const Args& args);
int cmd_plan(const Args& args);
int cmd_riemann(const Args& args);
int cmd_generate(const Args& args);
int cmd_tokenize(const Args& args);
int cmd_import_llama2c(const Args& args);

}  // namespace deltakit::cli
