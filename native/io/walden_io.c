// walden's I/O helper: where a buffer's memory lies, for writes with O_DIRECT (src/storage/direct-write.ts).
//
// Linux accepts an O_DIRECT write only from memory aligned to the device's logical block size, and JavaScript cannot
// see a buffer's address. An ArrayBuffer's memory never moves once allocated, so the caller allocates a little more
// than it needs once, asks here how far its start is from the next boundary, and keeps the aligned slice.

#include "../napi-args.h"

// addressModulo(bytes, modulus): the address of bytes[0] modulo `modulus` (a power of two, at most 1 MiB).
static napi_value address_modulo(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 2) return throw_error(env, "addressModulo(bytes, modulus)");
  uint8_t *data;
  size_t length;
  if (!bytes_of(env, argv[0], &data, &length)) return throw_error(env, "addressModulo: bytes must be a Uint8Array");
  uint32_t modulus;
  if (napi_get_value_uint32(env, argv[1], &modulus) != napi_ok || modulus == 0 || modulus > (1u << 20) || (modulus & (modulus - 1)) != 0) {
    return throw_error(env, "addressModulo: modulus must be a power of two up to 1 MiB");
  }
  napi_value result;
  napi_create_uint32(env, (uint32_t)((uintptr_t)data & (uintptr_t)(modulus - 1)), &result);
  return result;
}

static napi_value init(napi_env env, napi_value exports) {
  napi_property_descriptor properties[] = {
    {"addressModulo", NULL, address_modulo, NULL, NULL, NULL, napi_default, NULL},
  };
  napi_define_properties(env, exports, 1, properties);
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
