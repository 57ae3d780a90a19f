// Compression codecs for every file walden stores in a repository: WAL segments and data files up to 1 GiB, always
// streamed. Each codec hands out node:stream Transforms; the stored formats are the standard ones (gzip, zstd frames,
// LZ4 frames), so the gzip, zstd and lz4 command-line tools read and write them too.
//
// bz2 is read only: pgBackRest can write it (compress-type=bz2) and walden reads such repositories through its binding
// of the system libbz2 (native/bz2, src/io/bz2-stream.ts); walden never writes bz2.
//
// Native addons (zstd-napi, lz4-napi, and walden's own bindings of the system liblz4 and libbz2 in native/) are optional and
// load lazily, on first use of their codec, so a machine without them still runs every command that does not need
// them.
//
// Decompression never ends quietly on bad input: empty, truncated, corrupt data or data trailing the last frame is a
// 'Format' error. Node's gunzip, zstd-napi and our LZ4 reader see that themselves; Node's built-in zstd (the fallback
// when zstd-napi is missing) does not, so its stream is guarded (see ZstdFrameGuard).
//
// gz, and zst through Node's built-in zstd, run on libuv's thread pool (4 threads unless UV_THREADPOOL_SIZE says
// otherwise, shared by the whole process); zstd-napi and both lz4 engines run on the calling thread.

import { createRequire } from 'node:module'
import { PassThrough, type Transform, type TransformCallback } from 'node:stream'
import * as zlib from 'node:zlib'
import { WaldenError, fail } from '../common/errors.js'
import { nativeAddonPath } from './native.js'
import { bz2Binding, bz2ChunkDecoder, Bz2DecompressStream } from './bz2-stream.js'
import { chunkDecodeAll, Lz4CompressStream, Lz4DecompressStream, lz4ChunkDecoder, lz4FrameBound, lz4FrameInto, lz4FrameIntoAsync, type ChunkDecoder, type Lz4Binding, type Lz4BlockInto } from './lz4-frame.js'
import { ZstdFrameGuard, ZstdNapiCompressStream, ZstdNapiDecompressStream, zstdCompressBound, zstdCompressInto, type ZstdBinding } from './zstd-stream.js'

/** What walden writes (the compress-type option). */
export type CompressType = 'none' | 'gz' | 'zst' | 'lz4'

/** What walden reads: its own types, and bz2 from repositories pgBackRest wrote. */
export type StoredCompressType = CompressType | 'bz2'

export interface Codec {
  readonly type: StoredCompressType
  /** File name suffix: '' for none, '.gz', '.zst', '.lz4', '.bz2'. */
  readonly extension: string
  readonly defaultLevel: number
  readonly levelRange: readonly [number, number]
  /** What does the work, for logs and diagnostics: 'node:zlib', 'zstd-napi', 'lz4-napi', 'libbz2'; '' for none. */
  readonly engine: string
  /**
   * A new compressing Transform; a level outside levelRange is an 'OptionInvalidValue' error. bz2 has none: walden
   * does not write it, and asking is a 'FeatureNotSupported' error.
   */
  compress(level?: number): Transform
  /** A new decompressing Transform; bad input makes it fail with a 'Format' error. */
  decompress(options?: DecompressOptions): Transform
  /**
   * The same as compress() and decompress() over one whole buffer, without stream machinery, where the engine
   * works synchronously anyway. For the many small files of a cluster, the streams cost more than the data.
   */
  compressSync?(data: Buffer, level?: number): Buffer
  decompressSync?(data: Buffer, options?: DecompressOptions): Buffer
  /**
   * compressSync() into a buffer the caller owns and reuses, of at least compressBound(data.length) bytes; returns the
   * length written. Where the engine can (walden's liblz4 binding, zstd-napi).
   */
  compressInto?(data: Buffer, level: number, out: Buffer): number
  /** compressInto() on libuv's thread pool; `data` and `out` must be left alone until it settles. Where the engine can. */
  compressIntoAsync?(data: Buffer, level: number, out: Buffer): Promise<number>
  compressBound?(size: number): number
  /**
   * A synchronous decoder that hands each decoded piece to a callback, valid only during that call, reusing its
   * buffers: for a caller that hashes and writes each piece at once. Where the engine can (none, and lz4 through
   * walden's liblz4 binding).
   */
  chunkDecoder?(options?: DecompressOptions): ChunkDecoder
}

export interface DecompressOptions {
  /**
   * The caller checks the output against its own checksum (walden verifies the SHA-256 of everything it reads
   * back), so a content checksum of the format need not be computed again where that costs: LZ4's XXH32 runs in
   * JavaScript. Checks that cost nothing (zstd's, gzip's CRC, in native code) still run.
   */
  verifiedByCaller?: boolean
  /**
   * chunkDecoder only: the caller waits for input between pieces (an await between writes), while synchronous
   * decoders may run in the same thread meanwhile; at most one such decoder per thread at a time.
   */
  yielding?: boolean
}

/**
 * Runs one of our own Transforms (zstd-napi, lz4), whose work happens synchronously inside _transform and _flush,
 * over a whole buffer, collecting what it pushes.
 */
function runSync(stream: Transform, data: Buffer): Buffer {
  const output: Buffer[] = []
  let failure: Error | null | undefined
  stream.push = (chunk: Buffer | null): boolean => {
    if (chunk) output.push(chunk)
    return true
  }
  const callback = (error?: Error | null): void => {
    failure ??= error
  }
  stream._transform(data, 'buffer' as BufferEncoding, callback)
  if (!failure) stream._flush(callback)
  if (failure) throw failure
  return output.length === 1 ? output[0]! : Buffer.concat(output)
}

/** Implementations a codec may rest on; the test hook below can hide each. */
export type CompressEngine = 'node-zstd' | 'zstd-napi' | 'liblz4' | 'lz4-napi' | 'libbz2'

/** Test hook: engines in this set count as absent, to reach the fallback and the unavailable paths. */
export const hiddenEnginesForTest = new Set<CompressEngine>()

// Output buffer size for node:zlib streams. Its default of 16 KiB makes a trip to the thread pool per 16 KiB of
// output, which costs decompression a measurable share of its speed.
const ZLIB_CHUNK = 256 * 1024

const TYPES: readonly CompressType[] = ['none', 'gz', 'zst', 'lz4']

/** The codec for a compression type; an 'OptionInvalidValue' error if its implementation is missing here. */
export function codecFor(type: StoredCompressType): Codec {
  switch (type) {
    case 'none':
      return NONE
    case 'gz':
      return GZ
    case 'zst':
      return zstCodec()
    case 'lz4':
      return lz4Codec()
    case 'bz2':
      return bz2Codec()
    default:
      return fail('OptionInvalidValue', `compress-type '${String(type)}' is not known`, {
        hint: `use one of ${TYPES.map((name) => `'${name}'`).join(', ')}`,
      })
  }
}

/** Whether codecFor(type) works on this machine. */
export function codecAvailable(type: StoredCompressType): boolean {
  try {
    codecFor(type)
    return true
  } catch {
    return false
  }
}

/** The codec a stored file was written with, from its name: '.gz', '.zst', '.lz4', '.bz2', anything else none. */
export function codecFromExtension(fileName: string): Codec {
  for (const type of ['gz', 'zst', 'lz4', 'bz2'] as const) {
    if (fileName.endsWith(`.${type}`)) return codecFor(type)
  }
  return NONE
}

function checkLevel(type: CompressType, range: readonly [number, number], level: number): number {
  if (!Number.isInteger(level) || level < range[0] || level > range[1]) {
    fail('OptionInvalidValue', `compress-level '${level}' is not valid for compress-type '${type}'`, {
      hint: range[0] === range[1] ? `${type} has one level, ${range[0]}` : `use a level from ${range[0]} to ${range[1]}`,
    })
  }
  return level
}

// Node's zlib streams report decoder errors as plain errors with a zlib or zstd code. Replacing destroy() on the
// instance turns exactly those into 'Format' errors before the stream records and emits them; errors from elsewhere
// (a pipeline destroying this stream because another failed) pass unchanged.
function reportFormatErrors(stream: Transform, type: CompressType): Transform {
  const destroy = stream.destroy
  stream.destroy = function (this: Transform, error?: Error | null, ...rest: unknown[]) {
    const code = (error as { code?: unknown } | null | undefined)?.code
    const mapped =
      error && !(error instanceof WaldenError) && typeof code === 'string' && /^(Z|ZSTD)_/.test(code)
        ? new WaldenError('Format', `${type} data is corrupt: '${error.message}'`, { cause: error })
        : error
    return Reflect.apply(destroy, this, [mapped, ...rest]) as Transform
  }
  return stream
}

// --- none -------------------------------------------------------------------------------------------------------

// A PassThrough hands each chunk on as it is, without copying. The level means nothing here and is ignored, so one
// compress-level setting can serve whichever compress-type is chosen.
const NONE: Codec = Object.freeze({
  type: 'none',
  extension: '',
  defaultLevel: 0,
  levelRange: [0, 0] as const,
  engine: '',
  compress: () => new PassThrough(),
  decompress: () => new PassThrough(),
  compressSync: (data: Buffer) => data,
  decompressSync: (data: Buffer) => data,
  chunkDecoder: () => ({ write: (chunk: Buffer, sink: (data: Buffer) => void) => sink(chunk), end: () => undefined, release: () => undefined }),
})

// --- gz ---------------------------------------------------------------------------------------------------------

// Level 6 is gzip's and pgBackRest's default: sizes and speeds then compare directly with theirs. Level 1 is several
// times faster for about a tenth more output, for whoever prefers speed.
const GZ_RANGE = [0, 9] as const
const GZ: Codec = Object.freeze({
  type: 'gz',
  extension: '.gz',
  defaultLevel: 6,
  levelRange: GZ_RANGE,
  engine: 'node:zlib',
  compress: (level = 6) => zlib.createGzip({ level: checkLevel('gz', GZ_RANGE, level), chunkSize: ZLIB_CHUNK }),
  decompress: () => reportFormatErrors(zlib.createGunzip({ chunkSize: ZLIB_CHUNK }), 'gz'),
  compressSync: (data: Buffer, level = 6) => zlib.gzipSync(data, { level: checkLevel('gz', GZ_RANGE, level) }),
  decompressSync: (data: Buffer) => {
    try {
      return zlib.gunzipSync(data)
    } catch (error) {
      throw new WaldenError('Format', `gz data is corrupt: '${(error as Error).message}'`, { cause: error })
    }
  },
})

// --- zst --------------------------------------------------------------------------------------------------------

// Level 3 is zstd's default. The range stops at 19, like the zstd CLI without --ultra: levels 20 to 22 use windows of
// up to 128 MiB, which every reader then needs too (per file, per parallel process), and run many times slower than
// 19 for about 1% smaller output.
const ZST_RANGE = [1, 19] as const
const ZST_DEFAULT = 3

interface NodeZstd {
  createZstdCompress(options: { chunkSize: number; params: Record<number, number> }): Transform
  createZstdDecompress(options: { chunkSize: number }): Transform
  constants: { ZSTD_c_compressionLevel: number; ZSTD_c_checksumFlag: number }
}

// Node has zstd in zlib from 22.15 and 23.8; detected by feature, since backports make versions a poor guide.
function nodeZstd(): NodeZstd | undefined {
  if (hiddenEnginesForTest.has('node-zstd')) return undefined
  const candidate = zlib as unknown as Partial<NodeZstd>
  return typeof candidate.createZstdCompress === 'function' &&
    typeof candidate.createZstdDecompress === 'function' &&
    typeof candidate.constants?.ZSTD_c_compressionLevel === 'number' &&
    typeof candidate.constants.ZSTD_c_checksumFlag === 'number'
    ? (candidate as NodeZstd)
    : undefined
}

// zstd-napi comes first when it loads, Node's built-in zstd second. Measured on Node 24.9 (same data, per CPU
// second), zstd-napi compresses about 25% and decompresses about 60% faster; it runs on the calling thread, so it
// scales with worker threads, where node:zlib queues on libuv's pool of 4; and Node's decoder needs ZstdFrameGuard
// to be trusted at all.
// One compression context per level and thread, reused for every small file: creating one costs more than
// compressing a few KiB. A context is ready for the next frame once a frame has ended.
const zstdContexts = new Map<number, InstanceType<ZstdBinding['CCtx']>>()
function zstdContext(zstd: ZstdBinding, level: number): InstanceType<ZstdBinding['CCtx']> {
  let context = zstdContexts.get(level)
  if (!context) zstdContexts.set(level, (context = new zstd.CCtx()))
  return context
}

function zstCodec(): Codec {
  const napi = loadAddon<ZstdBinding>('zstd-napi', 'zstd-napi/binding', (binding) => typeof binding.DCtx === 'function')
  if ('module' in napi) {
    const zstd = napi.module
    return {
      type: 'zst',
      extension: '.zst',
      defaultLevel: ZST_DEFAULT,
      levelRange: ZST_RANGE,
      engine: 'zstd-napi',
      compress: (level = ZST_DEFAULT) => new ZstdNapiCompressStream(zstd, checkLevel('zst', ZST_RANGE, level)),
      decompress: () => new ZstdNapiDecompressStream(zstd),
      compressSync: (data: Buffer, level = ZST_DEFAULT) =>
        runSync(new ZstdNapiCompressStream(zstd, checkLevel('zst', ZST_RANGE, level), zstdContext(zstd, level)), data),
      decompressSync: (data: Buffer) => runSync(new ZstdNapiDecompressStream(zstd), data),
      compressInto: (data: Buffer, level: number, out: Buffer) =>
        zstdCompressInto(zstd, zstdContext(zstd, level), checkLevel('zst', ZST_RANGE, level), data, out),
      compressBound: zstdCompressBound,
    }
  }
  const builtin = nodeZstd()
  if (builtin) {
    return {
      type: 'zst',
      extension: '.zst',
      defaultLevel: ZST_DEFAULT,
      levelRange: ZST_RANGE,
      engine: 'node:zlib',
      compress: (level = ZST_DEFAULT) =>
        builtin.createZstdCompress({
          chunkSize: ZLIB_CHUNK,
          params: {
            [builtin.constants.ZSTD_c_compressionLevel]: checkLevel('zst', ZST_RANGE, level),
            // zstd's own default is no checksum; the CLI's is a checksum, and it is cheap insurance against damage.
            [builtin.constants.ZSTD_c_checksumFlag]: 1,
          },
        }),
      decompress: () => guardFrames(reportFormatErrors(builtin.createZstdDecompress({ chunkSize: ZLIB_CHUNK }), 'zst')),
    }
  }
  return unavailable(
    'zst',
    "install the optional package 'zstd-napi' (npm builds it with a C compiler), run walden on Node.js 22.15 or later, or choose another compress-type",
    napi.error,
  )
}

// Feeds everything the built-in decoder reads through a ZstdFrameGuard too, and checks at the end that the frame was
// whole. zlib's _flush() runs through _transform(), which the guard ignores as it is empty. When input follows the
// first frame, Node's decoder ends its output at once (push(null)) and drops that input unread; the guard has seen it
// and must still get to judge it at the end, so that early end is held back until then.
function guardFrames(stream: Transform): Transform {
  const guard = new ZstdFrameGuard()
  let flushing = false
  const push = stream.push
  stream.push = function (this: Transform, chunk: unknown, encoding?: BufferEncoding) {
    if (chunk === null && !flushing) return false
    return push.call(this, chunk, encoding)
  }
  const transform = stream._transform
  stream._transform = function (this: Transform, chunk: Buffer, encoding: BufferEncoding, callback: TransformCallback) {
    try {
      guard.update(chunk)
    } catch (error) {
      callback(error as Error)
      return
    }
    transform.call(this, chunk, encoding, callback)
  }
  const flush = stream._flush
  stream._flush = function (this: Transform, callback: TransformCallback) {
    flushing = true
    const finish: TransformCallback = (error, data) => {
      if (error) return callback(error, data)
      try {
        guard.finish()
      } catch (guardError) {
        return callback(guardError as Error)
      }
      callback(null, data)
    }
    if (flush) flush.call(this, finish)
    else finish()
  }
  return stream
}

// --- lz4 --------------------------------------------------------------------------------------------------------

// lz4-napi (lz4_flex) has one compressor, LZ4's fast one, with no acceleration or HC levels, so the only level is 1,
// which is also what pgBackRest uses by default for lz4.
const LZ4_RANGE = [1, 1] as const

function lz4Codec(): Codec {
  // walden's own binding of the system liblz4 first (native/lz4: about 3.5 times faster than lz4-napi compressing
  // WAL), lz4-napi where it was not built. Both write and read the same frames.
  const looksRight = (binding: Record<string, unknown>): boolean => typeof binding.compressSync === 'function' && typeof binding.uncompressSync === 'function'
  let loaded = loadAddon<Lz4Binding>('liblz4', nativeAddonPath('lz4') ?? 'walden_lz4.node (not built)', looksRight)
  let engine: CompressEngine = 'liblz4'
  if ('error' in loaded) {
    loaded = loadAddon<Lz4Binding>('lz4-napi', 'lz4-napi', looksRight)
    engine = 'lz4-napi'
  }
  if ('error' in loaded) {
    return unavailable('lz4', "run `npm run build` (which builds walden's liblz4 binding), install the optional package 'lz4-napi', or choose another compress-type", loaded.error)
  }
  const binding = loaded.module
  // walden's binding hands decoded blocks back as a Uint8Array view (no copy); the frame reader wants Buffers.
  const lz4: Lz4Binding =
    engine === 'liblz4'
      ? {
          compressSync: (data) => binding.compressSync(data),
          uncompressSync: (data, dict) => {
            const view = binding.uncompressSync(data, dict)
            return Buffer.from(view.buffer, view.byteOffset, view.byteLength)
          },
        }
      : binding
  return {
    type: 'lz4',
    extension: '.lz4',
    defaultLevel: 1,
    levelRange: LZ4_RANGE,
    engine,
    compress: (level = 1) => {
      checkLevel('lz4', LZ4_RANGE, level)
      return new Lz4CompressStream(lz4)
    },
    decompress: (options) => new Lz4DecompressStream(lz4, { contentChecksum: !options?.verifiedByCaller }),
    compressSync: (data: Buffer, level = 1) => {
      checkLevel('lz4', LZ4_RANGE, level)
      return runSync(new Lz4CompressStream(lz4), data)
    },
    decompressSync: (data: Buffer, options) => runSync(new Lz4DecompressStream(lz4, { contentChecksum: !options?.verifiedByCaller }), data),
    ...(engine === 'liblz4'
      ? {
          compressInto: (data: Buffer, level: number, out: Buffer) => {
            checkLevel('lz4', LZ4_RANGE, level)
            return lz4FrameInto(binding as unknown as Lz4BlockInto, data, out)
          },
          ...(typeof (binding as unknown as Lz4BlockInto).compressBlockIntoAsync === 'function'
            ? {
                compressIntoAsync: (data: Buffer, level: number, out: Buffer) => {
                  checkLevel('lz4', LZ4_RANGE, level)
                  return lz4FrameIntoAsync(binding as unknown as Parameters<typeof lz4FrameIntoAsync>[0], data, out)
                },
              }
            : {}),
          compressBound: lz4FrameBound,
          chunkDecoder: (options?: DecompressOptions) =>
            lz4ChunkDecoder(lz4, binding as unknown as Lz4BlockInto, { contentChecksum: !options?.verifiedByCaller, yielding: options?.yielding === true }),
        }
      : {}),
  }
}

// --- bz2 (read only) --------------------------------------------------------------------------------------------

// Through walden's binding of the system libbz2 (native/bz2: why a binding, and not an npm package or the bzip2
// program, is said there). No compress(): walden never writes bz2, and compress-type does not offer it.
function bz2Codec(): Codec {
  const Decoder = hiddenEnginesForTest.has('libbz2') ? undefined : bz2Binding()
  if (!Decoder) {
    return unavailable('bz2', "run `npm run build` (which builds walden's libbz2 binding; it needs Debian's libbz2-1.0, which every Debian has), or restore this repository with pgBackRest", undefined)
  }
  const refuse = (): never =>
    fail('FeatureNotSupported', 'walden does not write bz2; it only reads repositories pgBackRest wrote with it', {
      hint: "choose compress-type 'zst', 'lz4', 'gz' or 'none'",
    })
  return {
    type: 'bz2',
    extension: '.bz2',
    defaultLevel: 9,
    levelRange: [1, 9] as const,
    engine: 'libbz2',
    compress: refuse,
    compressSync: refuse,
    decompress: () => new Bz2DecompressStream(Decoder),
    decompressSync: (data: Buffer) => chunkDecodeAll(bz2ChunkDecoder(Decoder), data),
    chunkDecoder: () => bz2ChunkDecoder(Decoder),
  }
}

// --- loading addons ---------------------------------------------------------------------------------------------

// require() from an ES module: both addons are CommonJS. Loaded once per process (and worker thread), including the
// failure, whose cause is kept for the error.
const loadPackage = createRequire(import.meta.url)
const addons = new Map<CompressEngine, { module: unknown } | { error: unknown }>()

function loadAddon<T>(
  engine: 'zstd-napi' | 'liblz4' | 'lz4-napi',
  specifier: string,
  looksRight: (module: Record<string, unknown>) => boolean,
): { module: T } | { error: unknown } {
  if (hiddenEnginesForTest.has(engine)) return { error: new Error(`'${engine}' is hidden by a test`) }
  let entry = addons.get(engine)
  if (!entry) {
    try {
      const module: unknown = loadPackage(specifier)
      entry =
        typeof module === 'object' && module !== null && looksRight(module as Record<string, unknown>)
          ? { module }
          : { error: new Error(`'${specifier}' does not have the expected exports`) }
    } catch (error) {
      entry = { error }
    }
    addons.set(engine, entry)
  }
  return entry as { module: T } | { error: unknown }
}

function unavailable(type: StoredCompressType, hint: string, cause: unknown): never {
  return fail('OptionInvalidValue', `compress-type '${type}' is not available on this machine`, { hint, cause })
}
