// XXH3-128 from the system's libxxhash (Debian's libxxhash0, which apt itself needs), for the checksum delta restore
// compares a cluster's files with: about ten times the speed of SHA-256 here, and 128 bits, so an accidental match of
// changed data is as unlikely as with SHA-256. SHA-256 stays the integrity check of everything in the repository.
//
// The functions are declared here rather than taken from xxhash.h, so building needs no -dev package; they are part
// of libxxhash's stable API since 0.8.0.

#include <node_api.h>
#include <stddef.h>
#include <stdio.h>

#include "../napi-args.h"

typedef struct XXH3_state_s XXH3_state_t;
typedef struct {
  unsigned long long low64;
  unsigned long long high64;
} XXH128_hash_t;

XXH3_state_t *XXH3_createState(void);
int XXH3_freeState(XXH3_state_t *state);
int XXH3_128bits_reset(XXH3_state_t *state);
int XXH3_128bits_update(XXH3_state_t *state, const void *input, size_t length);
XXH128_hash_t XXH3_128bits_digest(const XXH3_state_t *state);

static void state_free(napi_env env, void *data, void *hint) {
  (void)env;
  (void)hint;
  XXH3_freeState((XXH3_state_t *)data);
}

// new Xxh3() : a streaming XXH3-128 state.
static napi_value construct(napi_env env, napi_callback_info info) {
  napi_value self;
  napi_get_cb_info(env, info, NULL, NULL, &self, NULL);
  XXH3_state_t *state = XXH3_createState();
  if (state == NULL || XXH3_128bits_reset(state) != 0) return throw_error(env, "Xxh3: unable to create a state");
  if (napi_wrap(env, self, state, state_free, NULL, NULL) != napi_ok) {
    XXH3_freeState(state);
    return NULL;
  }
  return self;
}

static XXH3_state_t *state_of(napi_env env, napi_callback_info info, size_t *argc, napi_value *argv, napi_value *self) {
  napi_get_cb_info(env, info, argc, argv, self, NULL);
  void *state = NULL;
  if (napi_unwrap(env, *self, &state) != napi_ok || state == NULL) throw_error(env, "Xxh3: not a state");
  return (XXH3_state_t *)state;
}

// update(data: Uint8Array): this
static napi_value update(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  napi_value self;
  XXH3_state_t *state = state_of(env, info, &argc, argv, &self);
  if (state == NULL) return NULL;
  uint8_t *data;
  size_t length;
  if (argc < 1 || !bytes_of(env, argv[0], &data, &length)) return throw_error(env, "Xxh3.update: expected a Buffer");
  if (XXH3_128bits_update(state, data, length) != 0) return throw_error(env, "Xxh3.update failed");
  return self;
}

// digest(): 32 hex digits, high 64 bits first (XXH128's canonical form).
static napi_value digest(napi_env env, napi_callback_info info) {
  size_t argc = 0;
  napi_value self;
  XXH3_state_t *state = state_of(env, info, &argc, NULL, &self);
  if (state == NULL) return NULL;
  XXH128_hash_t hash = XXH3_128bits_digest(state);
  char hex[33];
  snprintf(hex, sizeof hex, "%016llx%016llx", hash.high64, hash.low64);
  napi_value result;
  napi_create_string_latin1(env, hex, 32, &result);
  return result;
}

static napi_value init(napi_env env, napi_value exports) {
  napi_property_descriptor methods[] = {
    {"update", NULL, update, NULL, NULL, NULL, napi_default, NULL},
    {"digest", NULL, digest, NULL, NULL, NULL, napi_default, NULL},
  };
  napi_value constructor;
  napi_define_class(env, "Xxh3", NAPI_AUTO_LENGTH, construct, NULL, 2, methods, &constructor);
  napi_set_named_property(env, exports, "Xxh3", constructor);
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
