// S3 storage driver: a key prefix in an S3-compatible bucket. (Being written: see issue #12.)

import { fail } from '../common/errors.js'
import type { S3Location } from './location.js'
import type { Storage } from './storage.js'

export class S3Storage {
  constructor(location: S3Location) {
    fail('Config', `S3 repositories are not built yet (bucket '${location.bucket}')`)
  }
}

export type { Storage }
