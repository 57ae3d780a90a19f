// PostgreSQL's checksums, for the loops that read every byte of a backup or a WAL segment; the JavaScript versions in
// src/pg/ stay the reference and the fallback. Little-endian hosts only, as walden reads clusters little-endian.
//
// The data page checksum (src/include/storage/checksum_impl.h), the inner loop of every backup's page check: 32
// independent FNV-1a-like lanes that a C compiler turns into vector instructions, several times what V8 reaches with
// src/pg/page-checksum.ts. checksumBlock(page) returns pg_checksum_block()'s 32-bit value for the page as it is, with
// pd_checksum (bytes 8 and 9) taken as zero; the caller mixes in the block number as pg_checksum_page() does.
//
// CRC-32C (Castagnoli), which PostgreSQL puts on every WAL record and on pg_control; archive-push checks the record
// CRCs of every segment it stores (src/pg/wal-verify.ts). x86-64 CPUs since 2008 compute it in one instruction (SSE
// 4.2's crc32, which PostgreSQL uses too); the addon is built for the baseline x86-64 and picks that path at load
// time when the CPU has it, else a slicing-by-8 table (as src/pg/crc32c.ts, several times faster in C). Besides the
// plain crc32c, crc32cRecords and walRecordsScan do the per-record work of src/pg/wal-verify.ts in batches: a call
// per record would cost more than the CRC.

#include <node_api.h>
#include <pthread.h>
#include <stdint.h>
#include <string.h>

#if defined(__x86_64__) || defined(__i386__)
#include <nmmintrin.h>
#define HAVE_SSE42_PATH 1
#endif

#include "../napi-args.h"

#define N_SUMS 32
#define FNV_PRIME 16777619u

static const uint32_t base_offsets[N_SUMS] = {
  0x5B1F36E9, 0xB8525960, 0x02AB50AA, 0x1DE66D2A, 0x79FF467A, 0x9BB9F8A3, 0x217E7CD2, 0x83E13D2C,
  0xF8D4474F, 0xE39EB970, 0x42C6AE16, 0x993216FA, 0x7B093B5D, 0x98DAFF3C, 0xF718902A, 0x0B1C9CDB,
  0xE58F764B, 0x187636BC, 0x5D7B3BB1, 0xE73DE7DE, 0x92BEC979, 0xCCA6C0B2, 0x304A0979, 0x85AA43D4,
  0x783125BB, 0x6CA8EAA2, 0xE407EAC6, 0x4B5CFC3E, 0x9FBF8C76, 0x15CA20BE, 0xF2CA9FD3, 0x959BD756,
};

static uint32_t checksum_block(const uint8_t *page, size_t size) {
  uint32_t sums[N_SUMS];
  memcpy(sums, base_offsets, sizeof sums);
  size_t rows = size / (sizeof(uint32_t) * N_SUMS);
  for (size_t i = 0; i < rows; i++) {
    uint32_t row[N_SUMS];
    memcpy(row, page + i * sizeof row, sizeof row);
    // pd_checksum, the low half of word 2 of row 0, counts as zero.
    if (i == 0) row[2] &= 0xFFFF0000u;
    for (int j = 0; j < N_SUMS; j++) {
      uint32_t tmp = sums[j] ^ row[j];
      sums[j] = tmp * FNV_PRIME ^ (tmp >> 17);
    }
  }
  for (int round = 0; round < 2; round++) {
    for (int j = 0; j < N_SUMS; j++) {
      uint32_t tmp = sums[j];
      sums[j] = tmp * FNV_PRIME ^ (tmp >> 17);
    }
  }
  uint32_t result = 0;
  for (int j = 0; j < N_SUMS; j++) result ^= sums[j];
  return result;
}

static napi_value checksum_block_js(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  uint8_t *data;
  size_t length;
  if (argc < 1 || !bytes_of(env, argv[0], &data, &length) || length < 1024 || length % (sizeof(uint32_t) * N_SUMS) != 0) {
    return throw_error(env, "checksumBlock: expected a page (a Buffer of 1 KiB to 32 KiB)");
  }
  napi_value result;
  napi_create_uint32(env, checksum_block((const uint8_t *)data, length), &result);
  return result;
}

// --- CRC-32C ---
//
// The kernels work on the CRC register (the complement of a finished CRC) so that pieces chain: the caller starts at
// ~0 and complements at the end (PostgreSQL's INIT_CRC32C / COMP_CRC32C / FIN_CRC32C).

typedef uint32_t (*crc_kernel)(uint32_t reg, const uint8_t *data, size_t length);

// Reflected polynomial 0x82F63B78. crc_tables[k][b]: the register change for byte b followed by k zero bytes.
static uint32_t crc_tables[8][256];

static void crc_tables_build(void) {
  for (uint32_t n = 0; n < 256; n++) {
    uint32_t c = n;
    for (int k = 0; k < 8; k++) c = (c & 1) ? (c >> 1) ^ 0x82F63B78u : c >> 1;
    crc_tables[0][n] = c;
  }
  for (int k = 1; k < 8; k++) {
    for (uint32_t n = 0; n < 256; n++) {
      uint32_t previous = crc_tables[k - 1][n];
      crc_tables[k][n] = crc_tables[0][previous & 0xFF] ^ (previous >> 8);
    }
  }
}

static uint32_t crc_table_kernel(uint32_t reg, const uint8_t *data, size_t length) {
  while (length >= 8) {
    uint32_t low, high;
    memcpy(&low, data, 4);
    memcpy(&high, data + 4, 4);
    low ^= reg;
    reg = crc_tables[7][low & 0xFF] ^ crc_tables[6][(low >> 8) & 0xFF] ^ crc_tables[5][(low >> 16) & 0xFF] ^
          crc_tables[4][low >> 24] ^ crc_tables[3][high & 0xFF] ^ crc_tables[2][(high >> 8) & 0xFF] ^
          crc_tables[1][(high >> 16) & 0xFF] ^ crc_tables[0][high >> 24];
    data += 8;
    length -= 8;
  }
  while (length--) reg = crc_tables[0][(reg ^ *data++) & 0xFF] ^ (reg >> 8);
  return reg;
}

#ifdef HAVE_SSE42_PATH
// Compiled for SSE 4.2 on its own, so the rest of the addon (and its loading) needs nothing beyond the baseline CPU;
// only called after the CPU said it has the instruction. Unaligned 8-byte loads cost nothing extra on the CPUs that
// have it, and WAL records are mostly a hundred bytes or so: no alignment prologue.
__attribute__((target("sse4.2"))) static uint32_t crc_sse42_kernel(uint32_t reg, const uint8_t *data, size_t length) {
#ifdef __x86_64__
  uint64_t reg64 = reg;
  while (length >= 8) {
    uint64_t word;
    memcpy(&word, data, 8);
    reg64 = _mm_crc32_u64(reg64, word);
    data += 8;
    length -= 8;
  }
  reg = (uint32_t)reg64;
#endif
  while (length >= 4) {
    uint32_t word;
    memcpy(&word, data, 4);
    reg = _mm_crc32_u32(reg, word);
    data += 4;
    length -= 4;
  }
  while (length--) reg = _mm_crc32_u8(reg, *data++);
  return reg;
}
#endif

// Chosen once, when the addon loads.
static crc_kernel crc_best = crc_table_kernel;
static const char *crc_best_name = "table";

// Once per process: the addon is loaded again by each worker thread.
static void crc_choose(void) {
  crc_tables_build();
#ifdef HAVE_SSE42_PATH
  __builtin_cpu_init();
  if (__builtin_cpu_supports("sse4.2")) {
    crc_best = crc_sse42_kernel;
    crc_best_name = "sse4.2";
  }
#endif
}

static int uint32_arg(napi_env env, napi_value value, uint32_t *result) {
  napi_valuetype type;
  if (napi_typeof(env, value, &type) != napi_ok || type != napi_number) return 0;
  return napi_get_value_uint32(env, value, result) == napi_ok;
}

// crc32c(data, start, end, crc): continues the finished CRC-32C `crc` (0 to start) over data[start..end), as
// crc32cUpdate in src/pg/crc32c.ts does. One call per range: see crc32cRecords for many small ones.
static napi_value crc32c_with(napi_env env, napi_callback_info info, crc_kernel kernel) {
  size_t argc = 4;
  napi_value argv[4];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  uint8_t *data;
  size_t length;
  uint32_t start, end, crc;
  if (argc < 4 || !bytes_of(env, argv[0], &data, &length) || !uint32_arg(env, argv[1], &start) ||
      !uint32_arg(env, argv[2], &end) || !uint32_arg(env, argv[3], &crc) || start > end || end > length) {
    return throw_error(env, "crc32c: expected (bytes, start, end, crc) with start <= end <= length");
  }
  napi_value result;
  napi_create_uint32(env, ~kernel(~crc, data + start, end - start), &result);
  return result;
}

static napi_value crc32c_js(napi_env env, napi_callback_info info) {
  return crc32c_with(env, info, crc_best);
}

// The portable path on every CPU, for tests to compare with the one chosen at load time.
static napi_value crc32c_table_js(napi_env env, napi_callback_info info) {
  return crc32c_with(env, info, crc_table_kernel);
}

static napi_value crc32c_implementation_js(napi_env env, napi_callback_info info) {
  (void)info;
  napi_value result;
  napi_create_string_utf8(env, crc_best_name, NAPI_AUTO_LENGTH, &result);
  return result;
}

#define CRC_OP_RANGE 0
#define CRC_OP_RECORD 1
#define WAL_RECORD_CRC_OFFSET 20

// crc32cRecords(data, ops, count, state): the record CRCs of a piece of WAL in one call, as crc32cRecords in
// src/pg/crc32c.ts, which documents the ops. A segment of small records has a hundred thousand of them, and a call
// into the addon per record would cost more than the CRC itself.
static napi_value crc32c_records_js(napi_env env, napi_callback_info info) {
  size_t argc = 4;
  napi_value argv[4];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  uint8_t *data;
  size_t length;
  uint32_t count;
  size_t ops_length, state_length;
  uint32_t *ops, *state;
  if (argc < 4 || !bytes_of(env, argv[0], &data, &length) || !uint32_arg(env, argv[2], &count) ||
      !uint32s_of(env, argv[1], &ops, &ops_length) || (size_t)count * 3 > ops_length ||
      !uint32s_of(env, argv[3], &state, &state_length) || state_length < 1) {
    return throw_error(env, "crc32cRecords: expected (bytes, ops: Uint32Array, count, state: Uint32Array)");
  }
  // Every range is checked before any is read: a bad one is a bug in the caller, not a reason to read out of bounds.
  for (uint32_t i = 0; i < count; i++) {
    const uint32_t *op = ops + (size_t)i * 3;
    int valid = op[0] == CRC_OP_RANGE ? op[1] <= op[2] && op[2] <= length
                : op[0] == CRC_OP_RECORD ? (size_t)op[1] + WAL_RECORD_CRC_OFFSET + 4 <= length
                : 0;
    if (!valid) return throw_error(env, "crc32cRecords: an operation is outside the data");
  }
  uint32_t reg = ~state[0];
  int32_t failed = -1;
  for (uint32_t i = 0; i < count; i++) {
    const uint32_t *op = ops + (size_t)i * 3;
    if (op[0] == CRC_OP_RANGE) {
      reg = crc_best(reg, data + op[1], op[2] - op[1]);
      continue;
    }
    const uint8_t *header = data + op[1];
    uint32_t crc = ~crc_best(reg, header, WAL_RECORD_CRC_OFFSET);
    uint32_t stored;
    memcpy(&stored, header + WAL_RECORD_CRC_OFFSET, 4);
    if (crc != stored) {
      failed = (int32_t)i;
      reg = ~crc;
      break;
    }
    reg = ~0u;
  }
  state[0] = ~reg;
  napi_value result;
  napi_create_int32(env, failed, &result);
  return result;
}

// walRecordsScan(data, state): the fast path of src/pg/wal-verify.ts's record walk, the one loop that runs per record.
// From state[0] (a record's start in data) up to state[1] (the end of its page), checks the WAL records that lie
// whole on the page: xl_tot_len, xl_prev pointing at the record before, the CRC. It stops, leaving everything else to
// the JavaScript walk (which then reports any problem in its own words), at the first record it cannot pass: one
// running onto the next page, a header cut by the page end, the zeroes after the end of WAL, anything damaged. It
// also stops after a switch record, setting state[7]. state: [0] position in data (in/out), [1] page end in data,
// [2] segment offset of data[0], [3] and [4] the segment's start LSN, low and high halves, [5] segment offset of the
// record before, 0xFFFFFFFF when unknown (in/out), [6] records passed (out), [7] 1 after a switch record (out).
#define WAL_RECORD_HEADER 24
#define STATE_WORDS 8
#define NO_RECORD 0xFFFFFFFFu

static napi_value wal_records_scan_js(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  uint8_t *data;
  size_t length;
  size_t state_length;
  uint32_t *state;
  if (argc < 2 || !bytes_of(env, argv[0], &data, &length) || !uint32s_of(env, argv[1], &state, &state_length) ||
      state_length < STATE_WORDS || state[1] > length || state[0] > state[1]) {
    return throw_error(env, "walRecordsScan: expected (bytes, state: Uint32Array of 8 with position <= end <= length)");
  }
  uint32_t position = state[0], end = state[1], base = state[2], start_low = state[3], start_high = state[4];
  uint32_t previous = state[5], passed = 0, switched = 0;
  while (end - position >= WAL_RECORD_HEADER) {
    const uint8_t *header = data + position;
    uint32_t total, previous_low, previous_high, stored;
    memcpy(&total, header, 4);
    if (total < WAL_RECORD_HEADER || total > end - position) break;
    memcpy(&previous_low, header + 8, 4);
    memcpy(&previous_high, header + 12, 4);
    if (previous != NO_RECORD && (previous_low != start_low + previous || previous_high != start_high)) break;
    uint32_t reg = crc_best(~0u, header + WAL_RECORD_HEADER, total - WAL_RECORD_HEADER);
    reg = crc_best(reg, header, WAL_RECORD_CRC_OFFSET);
    memcpy(&stored, header + WAL_RECORD_CRC_OFFSET, 4);
    if (~reg != stored) break;
    passed++;
    previous = base + position;
    position = (position + total + 7) & ~7u;
    // xl_rmid RM_XLOG_ID and xl_info XLOG_SWITCH: the rest of the segment is padding.
    if (header[17] == 0 && (header[16] & 0xF0) == 0x40) {
      switched = 1;
      break;
    }
  }
  state[0] = position;
  state[5] = previous;
  state[6] = passed;
  state[7] = switched;
  return NULL;
}

static napi_value init(napi_env env, napi_value exports) {
  static pthread_once_t chosen = PTHREAD_ONCE_INIT;
  pthread_once(&chosen, crc_choose);
  napi_property_descriptor properties[] = {
    {"checksumBlock", NULL, checksum_block_js, NULL, NULL, NULL, napi_default, NULL},
    {"crc32c", NULL, crc32c_js, NULL, NULL, NULL, napi_default, NULL},
    {"crc32cTable", NULL, crc32c_table_js, NULL, NULL, NULL, napi_default, NULL},
    {"crc32cImplementation", NULL, crc32c_implementation_js, NULL, NULL, NULL, napi_default, NULL},
    {"crc32cRecords", NULL, crc32c_records_js, NULL, NULL, NULL, napi_default, NULL},
    {"walRecordsScan", NULL, wal_records_scan_js, NULL, NULL, NULL, napi_default, NULL},
  };
  napi_define_properties(env, exports, sizeof properties / sizeof properties[0], properties);
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
