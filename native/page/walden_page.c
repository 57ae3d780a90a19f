// PostgreSQL's data page checksum (src/include/storage/checksum_impl.h), the inner loop of every backup's page
// check: 32 independent FNV-1a-like lanes that a C compiler turns into vector instructions, several times what V8
// reaches with the JavaScript version in src/pg/page-checksum.ts, which stays the reference and the fallback.
//
// checksumBlock(page) returns pg_checksum_block()'s 32-bit value for the page as it is, with pd_checksum (bytes 8
// and 9) taken as zero; the caller mixes in the block number as pg_checksum_page() does. Little-endian hosts only,
// as walden reads clusters little-endian.

#include <node_api.h>
#include <stdint.h>
#include <string.h>

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

static napi_value init(napi_env env, napi_value exports) {
  napi_property_descriptor properties[] = {
    {"checksumBlock", NULL, checksum_block_js, NULL, NULL, NULL, napi_default, NULL},
  };
  napi_define_properties(env, exports, 1, properties);
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
