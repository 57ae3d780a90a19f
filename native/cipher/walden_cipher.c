// walden's AES-256-GCM for the chunked cipher format (src/io/cipher.ts): one chunk sealed or opened into a buffer
// the caller owns, through the OpenSSL that Node.js itself carries (its symbols are the process's; nothing is linked).
//
// Why not node:crypto: it needs a new Cipheriv object per chunk (a nonce cannot be changed on one) and hands every
// chunk's output back in a freshly allocated buffer. In a backup that garbage (tens of MB per worker between two
// collections, faulted in again after each) cost more than the encryption: profiled at about 0.3 s of CPU per worker
// on a 750 MB cluster, where the AES-GCM itself is some tens of ms. Here one context per thread is reused and nothing
// is allocated per chunk.
//
// The OpenSSL symbols resolve against the Node.js process at load time (-z now in binding.gyp): a Node.js that does
// not export them makes loading fail, which src/io/native.ts turns into the node:crypto fallback, instead of a crash
// at the first call.

#include "../napi-args.h"
#include <openssl/evp.h>

// One cipher context per thread (per N-API environment): a worker thread has its own.
static void context_free(napi_env env, void *data, void *hint) {
  (void)env;
  (void)hint;
  EVP_CIPHER_CTX_free((EVP_CIPHER_CTX *)data);
}

static EVP_CIPHER_CTX *context_of(napi_env env) {
  void *data = NULL;
  if (napi_get_instance_data(env, &data) == napi_ok && data != NULL) return (EVP_CIPHER_CTX *)data;
  EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
  if (ctx == NULL) return NULL;
  if (napi_set_instance_data(env, ctx, context_free, NULL) != napi_ok) {
    EVP_CIPHER_CTX_free(ctx);
    return NULL;
  }
  return ctx;
}

#define TAG 16

// gcm(encrypt, key, nonce, aad, input, output): AES-256-GCM of input into output (at least input.length + 16 bytes
// when sealing: ciphertext then tag). Opening takes input as ciphertext then tag, writes the plaintext
// (input.length - 16 bytes) and returns false, having verified nothing usable, when the tag does not match; the caller
// must then discard what was written. Returns true on success.
static napi_value gcm(napi_env env, napi_callback_info info) {
  size_t argc = 6;
  napi_value argv[6];
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 6) return throw_error(env, "gcm(encrypt, key, nonce, aad, input, output)");
  bool encrypt;
  if (napi_get_value_bool(env, argv[0], &encrypt) != napi_ok) return throw_error(env, "gcm: encrypt must be a boolean");
  uint8_t *key, *nonce, *aad, *input, *output;
  size_t key_length, nonce_length, aad_length, input_length, output_length;
  if (!bytes_of(env, argv[1], &key, &key_length) || key_length != 32) return throw_error(env, "gcm: key must be 32 bytes");
  if (!bytes_of(env, argv[2], &nonce, &nonce_length) || nonce_length != 12) return throw_error(env, "gcm: nonce must be 12 bytes");
  if (!bytes_of(env, argv[3], &aad, &aad_length)) return throw_error(env, "gcm: aad must be a Uint8Array");
  if (!bytes_of(env, argv[4], &input, &input_length)) return throw_error(env, "gcm: input must be a Uint8Array");
  if (!bytes_of(env, argv[5], &output, &output_length)) return throw_error(env, "gcm: output must be a Uint8Array");
  if (input_length > (size_t)1 << 30) return throw_error(env, "gcm: input too large");
  size_t data_length = encrypt ? input_length : input_length - TAG;
  if (!encrypt && input_length < TAG) return throw_error(env, "gcm: input shorter than a tag");
  if (output_length < (encrypt ? input_length + TAG : data_length)) return throw_error(env, "gcm: output too small");

  EVP_CIPHER_CTX *ctx = context_of(env);
  if (ctx == NULL) return throw_error(env, "gcm: no cipher context");
  int length = 0;
  int ok = EVP_CipherInit_ex(ctx, EVP_aes_256_gcm(), NULL, key, nonce, encrypt ? 1 : 0) == 1;
  // A zero-length update is skipped: OpenSSL accepts NULL buffers there, but not every build accepts them.
  if (ok && aad_length > 0) ok = EVP_CipherUpdate(ctx, NULL, &length, aad, (int)aad_length) == 1;
  if (ok && data_length > 0) ok = EVP_CipherUpdate(ctx, output, &length, input, (int)data_length) == 1;
  if (ok && !encrypt) ok = EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, TAG, input + data_length) == 1;
  if (ok) ok = EVP_CipherFinal_ex(ctx, output + data_length, &length) == 1;
  if (ok && encrypt) ok = EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, TAG, output + data_length) == 1;
  if (!ok && encrypt) return throw_error(env, "gcm: OpenSSL failed to encrypt");
  napi_value result;
  napi_get_boolean(env, ok, &result);
  return result;
}

static napi_value init(napi_env env, napi_value exports) {
  napi_property_descriptor properties[] = {
    {"gcm", NULL, gcm, NULL, NULL, NULL, napi_default, NULL},
  };
  napi_define_properties(env, exports, 1, properties);
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
