#include "lua/version.h"

#include <llhttp.h>
#include <luajit.h>
#include <openssl/crypto.h>
#include <uv.h>
#include <zlib.h>

namespace evo {

std::vector<std::pair<std::string, std::string>> versions() {
  const std::string llhttp = std::to_string(LLHTTP_VERSION_MAJOR) + "." +
                             std::to_string(LLHTTP_VERSION_MINOR) + "." +
                             std::to_string(LLHTTP_VERSION_PATCH);
  return {
      {"evo", EVO_VERSION},     {"luajit", LUAJIT_VERSION}, {"libuv", uv_version_string()},
      {"luv", EVO_LUV_VERSION}, {"llhttp", llhttp},         {"openssl", OpenSSL_version(OPENSSL_VERSION)},
      {"zlib", zlibVersion()},
  };
}

}  // namespace evo
