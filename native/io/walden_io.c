// walden's I/O helpers: where a buffer's memory lies, for writes with O_DIRECT (src/storage/direct-write.ts), and the
// kernel file locks walden's locks are made of (src/common/lock.ts).
//
// Linux accepts an O_DIRECT write only from memory aligned to the device's logical block size, and JavaScript cannot
// see a buffer's address. An ArrayBuffer's memory never moves once allocated, so the caller allocates a little more
// than it needs once, asks here how far its start is from the next boundary, and keeps the aligned slice.

// F_OFD_SETLK and F_OFD_GETLK are GNU extensions in glibc's <fcntl.h>.
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <string.h>

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

// Whole-file open file description (OFD) locks. The kernel ties them to the open file, not to a pid: closing the last
// descriptor of it, or the death of the process for any reason, releases the lock at once, before the process is a
// zombie and whether or not anyone reaps it. Unlike flock(2), a lock can be tested (F_OFD_GETLK) without being taken,
// so asking whether a lock is held never makes a process that takes it at that moment fail.
static void whole_file(struct flock *lock, short type) {
  memset(lock, 0, sizeof(*lock));
  lock->l_type = type;
  lock->l_whence = SEEK_SET;
  lock->l_start = 0;
  lock->l_len = 0;  // to the end of the file, however long it grows
}

static int fd_of(napi_env env, napi_callback_info info, size_t want, napi_value *argv, int *fd) {
  size_t argc = want;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < want) return 0;
  return napi_get_value_int32(env, argv[0], fd) == napi_ok && *fd >= 0;
}

static napi_value int_value(napi_env env, int value) {
  napi_value result;
  napi_create_int32(env, value, &result);
  return result;
}

// lockFile(fd, exclusive): takes a write (exclusive) or read (shared) lock on the whole file without waiting: 0 when
// taken, -1 when another open file description holds a conflicting lock, or the errno of any other failure. Waiting
// is left out on purpose: it would block the event loop, and walden reports a busy lock rather than queue behind it.
static napi_value lock_file(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  int fd;
  bool exclusive;
  if (!fd_of(env, info, 2, argv, &fd) || napi_get_value_bool(env, argv[1], &exclusive) != napi_ok) return throw_error(env, "lockFile(fd, exclusive)");
  struct flock lock;
  whole_file(&lock, exclusive ? F_WRLCK : F_RDLCK);
  if (fcntl(fd, F_OFD_SETLK, &lock) == 0) return int_value(env, 0);
  return int_value(env, errno == EAGAIN || errno == EACCES ? -1 : errno);
}

// lockTest(fd): whether another open file description holds a lock on the file that a write lock would conflict
// with: -1 when one does, 0 when none does, or the errno of a failure. Needs only a read-only descriptor.
static napi_value lock_test(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  int fd;
  if (!fd_of(env, info, 1, argv, &fd)) return throw_error(env, "lockTest(fd)");
  struct flock lock;
  whole_file(&lock, F_WRLCK);
  if (fcntl(fd, F_OFD_GETLK, &lock) != 0) return int_value(env, errno);
  return int_value(env, lock.l_type == F_UNLCK ? 0 : -1);
}

static napi_value init(napi_env env, napi_value exports) {
  napi_property_descriptor properties[] = {
    {"addressModulo", NULL, address_modulo, NULL, NULL, NULL, napi_default, NULL},
    {"lockFile", NULL, lock_file, NULL, NULL, NULL, napi_default, NULL},
    {"lockTest", NULL, lock_test, NULL, NULL, NULL, napi_default, NULL},
  };
  napi_define_properties(env, exports, sizeof(properties) / sizeof(properties[0]), properties);
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
