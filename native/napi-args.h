// Argument handling shared by walden's native parts (native/*/walden_*.c): each is its own addon, built on its own,
// and includes this header for the few N-API steps they all repeat.

#ifndef WALDEN_NAPI_ARGS_H
#define WALDEN_NAPI_ARGS_H

#include <node_api.h>
#include <stddef.h>
#include <stdint.h>

// Throws a JavaScript Error; returns NULL for the caller to return.
static inline napi_value throw_error(napi_env env, const char *message) {
  napi_throw_error(env, NULL, message);
  return NULL;
}

// The bytes of a Buffer or Uint8Array argument; 0 for anything else.
static inline int bytes_of(napi_env env, napi_value value, uint8_t **data, size_t *length) {
  bool is_typed = false;
  if (napi_is_typedarray(env, value, &is_typed) != napi_ok || !is_typed) return 0;
  napi_typedarray_type type;
  napi_value buffer;
  size_t offset;
  if (napi_get_typedarray_info(env, value, &type, length, (void **)data, &buffer, &offset) != napi_ok) return 0;
  return type == napi_uint8_array;
}

// The words of a Uint32Array argument (length in elements); 0 for anything else.
static inline int uint32s_of(napi_env env, napi_value value, uint32_t **data, size_t *length) {
  napi_typedarray_type type;
  napi_value buffer;
  size_t offset;
  if (napi_get_typedarray_info(env, value, &type, length, (void **)data, &buffer, &offset) != napi_ok) return 0;
  return type == napi_uint32_array;
}

// An optional Buffer argument: absent or undefined gives no bytes (NULL, 0) and 1; anything else but bytes gives 0.
static inline int optional_bytes_of(napi_env env, size_t argc, napi_value *argv, size_t index, uint8_t **data, size_t *length) {
  *data = NULL;
  *length = 0;
  if (argc <= index) return 1;
  napi_valuetype type;
  if (napi_typeof(env, argv[index], &type) != napi_ok) return 0;
  return type == napi_undefined || bytes_of(env, argv[index], data, length);
}

#endif
