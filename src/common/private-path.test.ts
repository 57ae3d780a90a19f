import assert from 'node:assert/strict'
import { mkdtemp, rm, stat, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, test } from 'node:test'
import { Logger } from './log.js'
import { privateFolder } from './private-path.js'

const mode = async (path: string): Promise<string> => ((await stat(path)).mode & 0o777).toString(8)
const base = await mkdtemp(join(tmpdir(), 'walden-private-'))
after(() => rm(base, { recursive: true, force: true }))

// process.umask(mask) works on the main thread, which the test runner gives each file.
for (const umask of [0o000, 0o022, 0o077]) {
  test(`log files are 0640 in 0750 folders with umask ${umask.toString(8).padStart(3, '0')}`, async () => {
    const previous = process.umask(umask)
    try {
      const folder = join(base, `log-${umask}`, 'a', 'b')
      const logger = new Logger()
      logger.configure({ console: 'off', file: 'info', filePath: join(folder, 'x-y.log') })
      logger.info('a line naming database secret_db')
      for (const path of [join(base, `log-${umask}`), join(base, `log-${umask}`, 'a'), folder]) assert.equal(await mode(path), '750', path)
      assert.equal(await mode(join(folder, 'x-y.log')), '640')
    } finally {
      process.umask(previous)
    }
  })
}

test('a log an older walden left world-readable is closed; existing folders keep their mode', async () => {
  const folder = join(base, 'existing')
  await privateFolder(folder)
  const { chmod } = await import('node:fs/promises')
  await chmod(folder, 0o755)
  await writeFile(join(folder, 'old.log'), 'old line\n', { mode: 0o644 })
  const logger = new Logger()
  logger.configure({ console: 'off', file: 'info', filePath: join(folder, 'old.log') })
  logger.info('new line')
  assert.equal(await mode(join(folder, 'old.log')), '640')
  assert.equal(await mode(folder), '755')
})
