// bzip2 decompression for walden, from the system's libbz2 (Debian's libbz2-1.0, which dpkg itself pre-depends on,
// so it is on every machine walden runs on). Read only: pgBackRest can write bz2 (compress-type=bz2) and walden reads
// such repositories; walden never writes bz2.
//
// Why a binding and not an npm package: measured on a 16 MiB WAL segment (2.8 MB as bzip2 -9), the most used one,
// unbzip2-stream 1.4.3 (pure JavaScript, last release 2024), took 1.4 to 2.8 s of CPU and grew the process by about
// 150 MB while decoding it; this binding took 0.36 to 0.65 s, like bzip2 -d itself, and memory stays at libbz2's
// tables plus one 256 KiB output buffer. seek-bzip and the WebAssembly decoders take whole buffers only, which a
// 1 GiB relation file rules out; spawning bzip2 costs a process per stored file, and restore reads thousands.
//
// The functions and bz_stream are declared here rather than taken from bzlib.h, so building needs no -dev package;
// they are libbz2's stable API and ABI since 1.0.
//
// new Bz2Decoder(): one bz2 stream's decoder (libbz2 allocates its ~3.6 MB of tables on the first block).
// decode(input, out, result): decodes from input into out; result (a Uint32Array of 3) receives the bytes of input
// consumed, the bytes of out written, and 1 when the stream ended (0 otherwise). A damaged stream throws an Error whose
// message starts with "bz2:", for the caller to report as a format error.
// reset(): ready for the next stream (after an end: bzip2 -d reads concatenated streams as one file).
// release(): frees libbz2's state now rather than at garbage collection.

#include <node_api.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "../napi-args.h"

typedef struct {
  char *next_in;
  unsigned int avail_in;
  unsigned int total_in_lo32;
  unsigned int total_in_hi32;
  char *next_out;
  unsigned int avail_out;
  unsigned int total_out_lo32;
  unsigned int total_out_hi32;
  void *state;
  void *(*bzalloc)(void *, int, int);
  void (*bzfree)(void *, void *);
  void *opaque;
} bz_stream;

int BZ2_bzDecompressInit(bz_stream *strm, int verbosity, int small);
int BZ2_bzDecompress(bz_stream *strm);
int BZ2_bzDecompressEnd(bz_stream *strm);

#define BZ_OK 0
#define BZ_STREAM_END 4
#define BZ_MEM_ERROR (-3)
#define BZ_DATA_ERROR (-4)
#define BZ_DATA_ERROR_MAGIC (-5)

typedef struct {
  bz_stream stream;
  int live;  // initialised and not yet ended with BZ2_bzDecompressEnd
} decoder;

static void decoder_end(decoder *self) {
  if (self->live) BZ2_bzDecompressEnd(&self->stream);
  self->live = 0;
}

static int decoder_init(decoder *self) {
  memset(&self->stream, 0, sizeof self->stream);
  if (BZ2_bzDecompressInit(&self->stream, 0, 0) != BZ_OK) return 0;
  self->live = 1;
  return 1;
}

static void decoder_free(napi_env env, void *data, void *hint) {
  (void)env;
  (void)hint;
  decoder_end((decoder *)data);
  free(data);
}

static napi_value construct(napi_env env, napi_callback_info info) {
  napi_value self;
  napi_get_cb_info(env, info, NULL, NULL, &self, NULL);
  decoder *state = calloc(1, sizeof *state);
  if (state == NULL || !decoder_init(state)) {
    free(state);
    return throw_error(env, "Bz2Decoder: unable to initialise libbz2");
  }
  if (napi_wrap(env, self, state, decoder_free, NULL, NULL) != napi_ok) {
    decoder_end(state);
    free(state);
    return NULL;
  }
  return self;
}

static decoder *decoder_of(napi_env env, napi_callback_info info, size_t *argc, napi_value *argv) {
  napi_value self;
  napi_get_cb_info(env, info, argc, argv, &self, NULL);
  void *state = NULL;
  if (napi_unwrap(env, self, &state) != napi_ok || state == NULL) {
    throw_error(env, "Bz2Decoder: not a decoder");
    return NULL;
  }
  return (decoder *)state;
}

static napi_value decode(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3];
  decoder *self = decoder_of(env, info, &argc, argv);
  if (self == NULL) return NULL;
  uint8_t *input;
  size_t input_length;
  uint8_t *out;
  size_t out_length;
  uint32_t *result;
  size_t result_length;
  if (argc < 3 || !bytes_of(env, argv[0], &input, &input_length) || !bytes_of(env, argv[1], &out, &out_length) ||
      !uint32s_of(env, argv[2], &result, &result_length) || result_length < 3) {
    return throw_error(env, "Bz2Decoder.decode: expected (Buffer, Buffer, Uint32Array(3))");
  }
  if (!self->live) return throw_error(env, "Bz2Decoder.decode: the decoder was released");
  // libbz2 counts in unsigned int: larger pieces are taken in parts by the caller's loop.
  unsigned int in = input_length > UINT_MAX ? UINT_MAX : (unsigned int)input_length;
  unsigned int room = out_length > UINT_MAX ? UINT_MAX : (unsigned int)out_length;
  self->stream.next_in = (char *)input;
  self->stream.avail_in = in;
  self->stream.next_out = (char *)out;
  self->stream.avail_out = room;
  int status = BZ2_bzDecompress(&self->stream);
  result[0] = in - self->stream.avail_in;
  result[1] = room - self->stream.avail_out;
  result[2] = status == BZ_STREAM_END ? 1 : 0;
  // Nothing of the caller's buffers may stay behind in the stream.
  self->stream.next_in = NULL;
  self->stream.avail_in = 0;
  self->stream.next_out = NULL;
  self->stream.avail_out = 0;
  switch (status) {
    case BZ_OK:
    case BZ_STREAM_END:
      return NULL;
    case BZ_DATA_ERROR_MAGIC:
      return throw_error(env, "bz2: not bzip2 data (bad magic number)");
    case BZ_DATA_ERROR:
      return throw_error(env, "bz2: the data is corrupt (a block's CRC or structure is wrong)");
    case BZ_MEM_ERROR:
      return throw_error(env, "Bz2Decoder.decode: out of memory");
    default:
      return throw_error(env, "Bz2Decoder.decode: libbz2 failed");
  }
}

static napi_value reset(napi_env env, napi_callback_info info) {
  size_t argc = 0;
  decoder *self = decoder_of(env, info, &argc, NULL);
  if (self == NULL) return NULL;
  decoder_end(self);
  if (!decoder_init(self)) return throw_error(env, "Bz2Decoder.reset: unable to initialise libbz2");
  return NULL;
}

static napi_value release(napi_env env, napi_callback_info info) {
  size_t argc = 0;
  decoder *self = decoder_of(env, info, &argc, NULL);
  if (self == NULL) return NULL;
  decoder_end(self);
  return NULL;
}

static napi_value init(napi_env env, napi_value exports) {
  napi_property_descriptor methods[] = {
    {"decode", NULL, decode, NULL, NULL, NULL, napi_default, NULL},
    {"reset", NULL, reset, NULL, NULL, NULL, napi_default, NULL},
    {"release", NULL, release, NULL, NULL, NULL, napi_default, NULL},
  };
  napi_value constructor;
  napi_define_class(env, "Bz2Decoder", NAPI_AUTO_LENGTH, construct, NULL, sizeof methods / sizeof methods[0], methods, &constructor);
  napi_set_named_property(env, exports, "Bz2Decoder", constructor);
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
