// LZ4 block compression for walden, from the system's liblz4 (Debian's liblz4-1, which apt and systemd already
// need, so it is on every machine walden runs on). On WAL full of hashed text, the lz4-napi package compresses at
// about 160 MB/s and liblz4 at about 500 MB/s on the same core; compression is most of a WAL push's CPU.
//
// Only liblz4's block API is used, in the layout src/io/lz4-frame.ts expects from its binding: a 4-byte
// little-endian uncompressed size, then the raw block. Its functions are declared here rather than taken from
// lz4.h, so building needs no -dev package; their signatures have been part of liblz4's stable ABI since 1.7.

#include <node_api.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../napi-args.h"

int LZ4_versionNumber(void);
int LZ4_compressBound(int inputSize);
int LZ4_compress_default(const char *src, char *dst, int srcSize, int dstCapacity);
int LZ4_decompress_safe(const char *src, char *dst, int compressedSize, int dstCapacity);
int LZ4_decompress_safe_usingDict(const char *src, char *dst, int srcSize, int dstCapacity, const char *dictStart, int dictSize);

// LZ4's own limit on one input (LZ4_MAX_INPUT_SIZE).
#define MAX_INPUT 0x7E000000

static void put_le32(uint8_t *at, uint32_t value) {
  at[0] = value & 0xff;
  at[1] = (value >> 8) & 0xff;
  at[2] = (value >> 16) & 0xff;
  at[3] = (value >> 24) & 0xff;
}

static uint32_t get_le32(const uint8_t *at) {
  return (uint32_t)at[0] | (uint32_t)at[1] << 8 | (uint32_t)at[2] << 16 | (uint32_t)at[3] << 24;
}

// Decodes one raw block, with the data before it as dictionary when there is one (linked blocks); the decoded
// length, or a negative number for a corrupt block.
static int decode_block(const uint8_t *block, size_t length, uint8_t *out, size_t capacity, const uint8_t *dict, size_t dict_length) {
  return dict_length > 0
    ? LZ4_decompress_safe_usingDict((const char *)block, (char *)out, (int)length, (int)capacity, (const char *)dict, (int)dict_length)
    : LZ4_decompress_safe((const char *)block, (char *)out, (int)length, (int)capacity);
}

// compressSync(data): Buffer of [uncompressed size, 4 bytes LE][LZ4 block].
static napi_value compress_sync(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  uint8_t *input;
  size_t length;
  if (argc < 1 || !bytes_of(env, argv[0], &input, &length)) return throw_error(env, "compressSync: expected a Buffer");
  if (length > MAX_INPUT) return throw_error(env, "compressSync: input too large for one LZ4 block");
  int bound = LZ4_compressBound((int)length);
  // Compressed into a scratch buffer first, so the Buffer handed back has exactly the block's size and no slack
  // stays allocated behind it while it waits to be written. One per thread: worker threads share this library.
  static _Thread_local uint8_t *scratch = NULL;
  static _Thread_local int scratch_size = 0;
  if (bound > scratch_size) {
    uint8_t *grown = realloc(scratch, (size_t)bound);
    if (grown == NULL) return throw_error(env, "compressSync: out of memory");
    scratch = grown;
    scratch_size = bound;
  }
  int written = length == 0 ? 0 : LZ4_compress_default((const char *)input, (char *)scratch, (int)length, bound);
  if (length > 0 && written <= 0) return throw_error(env, "compressSync: LZ4_compress_default failed");
  napi_value result;
  uint8_t *out;
  if (napi_create_buffer(env, (size_t)written + 4, (void **)&out, &result) != napi_ok) return NULL;
  put_le32(out, (uint32_t)length);
  memcpy(out + 4, scratch, (size_t)written);
  return result;
}

// The arguments of compressBlockInto and compressBlockIntoAsync, (data, out, offset): the input, and the room in out
// from offset (at most what LZ4 takes in one call). Throws and returns 0 when they are not that.
typedef struct {
  const uint8_t *input;
  size_t length;
  uint8_t *out;
  size_t room;
} block_into_args;

static int block_into_args_of(napi_env env, napi_callback_info info, const char *usage, const char *too_large, napi_value argv[3], block_into_args *args) {
  size_t argc = 3;
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  uint8_t *input;
  uint8_t *out;
  size_t out_length;
  uint32_t offset;
  if (argc < 3 || !bytes_of(env, argv[0], &input, &args->length) || !bytes_of(env, argv[1], &out, &out_length) ||
      napi_get_value_uint32(env, argv[2], &offset) != napi_ok || offset > out_length) {
    throw_error(env, usage);
    return 0;
  }
  if (args->length > MAX_INPUT) {
    throw_error(env, too_large);
    return 0;
  }
  args->input = input;
  args->out = out + offset;
  args->room = out_length - offset > MAX_INPUT ? MAX_INPUT : out_length - offset;
  return 1;
}

// The block's size, or 0 when it does not fit in the room (incompressible data, which the frame stores as it is).
static int block_into_compress(const block_into_args *args) {
  int written = args->length == 0 || args->room == 0 ? 0 : LZ4_compress_default((const char *)args->input, (char *)args->out, (int)args->length, (int)args->room);
  return written > 0 ? written : 0;
}

// compressBlockInto(data, out, offset): compresses data as one raw LZ4 block into out from offset, within the room
// out has there; returns the block's size, or 0 when it does not fit (incompressible data, which the frame then
// stores as it is). No allocation: a caller compressing chunk after chunk reuses one output buffer.
static napi_value compress_block_into(napi_env env, napi_callback_info info) {
  napi_value argv[3];
  block_into_args args;
  if (!block_into_args_of(env, info, "compressBlockInto: expected (Buffer, Buffer, offset)", "compressBlockInto: input too large for one LZ4 block", argv, &args)) return NULL;
  napi_value result;
  napi_create_int32(env, block_into_compress(&args), &result);
  return result;
}

// compressBlockIntoAsync(data, out, offset): compressBlockInto on libuv's thread pool; a Promise of the same result.
// For a single archive-push, which has a whole process to itself: the pool compresses one chunk while JavaScript
// reads and hashes the next. Both buffers are held until the work is done; the caller must leave them alone until
// the promise settles.
typedef struct {
  napi_async_work work;
  napi_deferred deferred;
  napi_ref input_ref;
  napi_ref out_ref;
  block_into_args args;
  int written;
} compress_job;

static void compress_job_execute(napi_env env, void *data) {
  (void)env;
  compress_job *job = data;
  job->written = block_into_compress(&job->args);
}

static void compress_job_complete(napi_env env, napi_status status, void *data) {
  compress_job *job = data;
  napi_value value;
  if (status == napi_ok) {
    napi_create_int32(env, job->written, &value);
    napi_resolve_deferred(env, job->deferred, value);
  } else {
    napi_value message;
    napi_create_string_utf8(env, "compressBlockIntoAsync: the work was cancelled", NAPI_AUTO_LENGTH, &message);
    napi_create_error(env, NULL, message, &value);
    napi_reject_deferred(env, job->deferred, value);
  }
  napi_delete_reference(env, job->input_ref);
  napi_delete_reference(env, job->out_ref);
  napi_delete_async_work(env, job->work);
  free(job);
}

static napi_value compress_block_into_async(napi_env env, napi_callback_info info) {
  napi_value argv[3];
  block_into_args args;
  if (!block_into_args_of(env, info, "compressBlockIntoAsync: expected (Buffer, Buffer, offset)", "compressBlockIntoAsync: input too large for one LZ4 block", argv, &args)) return NULL;
  compress_job *job = calloc(1, sizeof *job);
  if (job == NULL) return throw_error(env, "compressBlockIntoAsync: out of memory");
  job->args = args;
  napi_value promise;
  napi_value name;
  if (napi_create_promise(env, &job->deferred, &promise) != napi_ok ||
      napi_create_reference(env, argv[0], 1, &job->input_ref) != napi_ok ||
      napi_create_reference(env, argv[1], 1, &job->out_ref) != napi_ok ||
      napi_create_string_utf8(env, "walden:lz4-compress", NAPI_AUTO_LENGTH, &name) != napi_ok ||
      napi_create_async_work(env, NULL, name, compress_job_execute, compress_job_complete, job, &job->work) != napi_ok ||
      napi_queue_async_work(env, job->work) != napi_ok) {
    // Not queued: nothing will complete it, so undo here what was set up.
    if (job->work != NULL) napi_delete_async_work(env, job->work);
    if (job->input_ref != NULL) napi_delete_reference(env, job->input_ref);
    if (job->out_ref != NULL) napi_delete_reference(env, job->out_ref);
    free(job);
    return throw_error(env, "compressBlockIntoAsync: could not queue the work");
  }
  return promise;
}

// uncompressSync(data, dict?): data is [upper bound of the uncompressed size, 4 bytes LE][LZ4 block]; dict the
// data before it, for linked blocks.
static napi_value uncompress_sync(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  uint8_t *input;
  size_t length;
  if (argc < 1 || !bytes_of(env, argv[0], &input, &length) || length < 4) return throw_error(env, "uncompressSync: expected a Buffer");
  uint8_t *dict;
  size_t dict_length;
  if (!optional_bytes_of(env, argc, argv, 1, &dict, &dict_length)) return throw_error(env, "uncompressSync: dict must be a Buffer");
  uint32_t capacity = get_le32(input);
  if (capacity > MAX_INPUT || length - 4 > MAX_INPUT || dict_length > MAX_INPUT) return throw_error(env, "uncompressSync: block too large");
  napi_value arraybuffer;
  uint8_t *out;
  // An ArrayBuffer of the upper bound, viewed at the decoded length: no copy.
  if (napi_create_arraybuffer(env, capacity, (void **)&out, &arraybuffer) != napi_ok) return NULL;
  int decoded = decode_block(input + 4, length - 4, out, capacity, dict, dict_length);
  if (decoded < 0) return throw_error(env, "uncompressSync: the LZ4 block is corrupt");
  napi_value result;
  if (napi_create_typedarray(env, napi_uint8_array, (size_t)decoded, arraybuffer, 0, &result) != napi_ok) return NULL;
  return result;
}

// uncompressBlockInto(block, out, dict?): decodes one raw LZ4 block into out (which bounds its size); returns the
// decoded length. No allocation: a caller decoding block after block reuses one output buffer.
static napi_value uncompress_block_into(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  uint8_t *input;
  size_t length;
  uint8_t *out;
  size_t out_length;
  if (argc < 2 || !bytes_of(env, argv[0], &input, &length) || !bytes_of(env, argv[1], &out, &out_length)) {
    return throw_error(env, "uncompressBlockInto: expected (Buffer, Buffer)");
  }
  uint8_t *dict;
  size_t dict_length;
  if (!optional_bytes_of(env, argc, argv, 2, &dict, &dict_length)) return throw_error(env, "uncompressBlockInto: dict must be a Buffer");
  if (length > MAX_INPUT || out_length > MAX_INPUT || dict_length > MAX_INPUT) return throw_error(env, "uncompressBlockInto: block too large");
  int decoded = decode_block(input, length, out, out_length, dict, dict_length);
  if (decoded < 0) return throw_error(env, "uncompressBlockInto: the LZ4 block is corrupt");
  napi_value result;
  napi_create_int32(env, decoded, &result);
  return result;
}

static napi_value version(napi_env env, napi_callback_info info) {
  (void)info;
  napi_value result;
  napi_create_int32(env, LZ4_versionNumber(), &result);
  return result;
}

static napi_value init(napi_env env, napi_value exports) {
  napi_property_descriptor properties[] = {
    {"compressSync", NULL, compress_sync, NULL, NULL, NULL, napi_default, NULL},
    {"compressBlockInto", NULL, compress_block_into, NULL, NULL, NULL, napi_default, NULL},
    {"compressBlockIntoAsync", NULL, compress_block_into_async, NULL, NULL, NULL, napi_default, NULL},
    {"uncompressSync", NULL, uncompress_sync, NULL, NULL, NULL, napi_default, NULL},
    {"uncompressBlockInto", NULL, uncompress_block_into, NULL, NULL, NULL, napi_default, NULL},
    {"version", NULL, version, NULL, NULL, NULL, napi_default, NULL},
  };
  napi_define_properties(env, exports, sizeof properties / sizeof properties[0], properties);
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
