// C shim over CLBlast's C++-only tuning API (TuneXgemm, TuneXgemmDirect, RetrieveParameters).
#include "runtime/tune_clblast.h"

#include <clblast.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <string>
#include <unordered_map>
#include <vector>

namespace {

int copy_out(const std::unordered_map<std::string, size_t> &map, oclseg_clblast_params *out) {
    std::vector<std::string> names;
    for (const auto &kv : map) names.push_back(kv.first);
    std::sort(names.begin(), names.end()); // stable, readable order in files
    out->count = 0;
    for (const auto &name : names) {
        if (out->count == OCLSEG_TUNE_MAX_PARAMS || name.size() >= OCLSEG_TUNE_NAME_LEN) return -9998;
        std::snprintf(out->names[out->count], OCLSEG_TUNE_NAME_LEN, "%s", name.c_str());
        out->values[out->count] = map.at(name);
        out->count++;
    }
    return 0;
}

} // namespace

extern "C" int oclseg_clblast_tune(cl_command_queue queue, const char *kernel, size_t m, size_t n,
                                   size_t k, double fraction, oclseg_clblast_params *out) {
    out->count = 0;
    try {
        std::unordered_map<std::string, size_t> params;
        clblast::StatusCode st;
        if (std::strcmp(kernel, "Xgemm") == 0)
            st = clblast::TuneXgemm<float>(&queue, m, n, k, fraction, params);
        else if (std::strcmp(kernel, "XgemmDirect") == 0)
            st = clblast::TuneXgemmDirect<float>(&queue, m, n, k, fraction, params);
        else
            return static_cast<int>(clblast::StatusCode::kNotImplemented);
        if (st != clblast::StatusCode::kSuccess) return static_cast<int>(st);
        return copy_out(params, out);
    } catch (...) {
        return -9999;
    }
}

extern "C" int oclseg_clblast_retrieve(cl_device_id device, const char *kernel,
                                       oclseg_clblast_params *out) {
    out->count = 0;
    try {
        std::unordered_map<std::string, size_t> params;
        auto st = clblast::RetrieveParameters(device, kernel, clblast::Precision::kSingle, params);
        if (st != clblast::StatusCode::kSuccess) return static_cast<int>(st);
        return copy_out(params, out);
    } catch (...) {
        return -9999;
    }
}
