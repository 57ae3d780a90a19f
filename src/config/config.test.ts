import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import { WaldenError } from '../common/errors.js'
import { configLoad } from './config.js'
import { COMMAND_NAMES, COMMANDS } from './commands.js'
import { OPTIONS } from './options.js'
import type { OptionDef } from './options.js'

const CONFIG = `
[global]
repo1-path=/var/lib/walden-global
compress-type=gz
process-max=2
log-level-console=info

[global:backup]
compress-type=lz4

[demo]
pg1-path=/srv/pg/demo
repo1-path=/srv/repo-demo

[demo:restore]
recovery-option=a=1
recovery-option=b=2
`

/** `text` null: no config file. */
function load(argv: string[], env: Record<string, string> = {}, text: string | null = CONFIG) {
  return configLoad({ argv, env, readFile: () => text ?? undefined, readDir: () => undefined })
}

function expectError(action: () => unknown, kind: string, message: string): void {
  assert.throws(action, (error: unknown) => {
    assert.ok(error instanceof WaldenError, String(error))
    assert.equal(error.kind, kind)
    assert.equal(error.message, message)
    return true
  })
}

describe('configLoad precedence', () => {
  test('command line > environment > [stanza:command] > [stanza] > [global:command] > [global] > default', () => {
    const cfg = load(['backup', '--stanza=demo'])
    assert.equal(cfg.string('repo1-path'), '/srv/repo-demo') // [demo] beats [global]
    assert.equal(cfg.string('compress-type'), 'lz4') // [global:backup] beats [global]
    assert.equal(cfg.number('process-max'), 2) // [global]
    assert.equal(cfg.source('process-max'), 'config file')
    assert.equal(cfg.string('type'), 'incr') // default for backup
    assert.equal(cfg.source('type'), 'default')

    const fromEnv = load(['backup', '--stanza=demo'], { WALDEN_COMPRESS_TYPE: 'zst', WALDEN_PROCESS_MAX: '3' })
    assert.equal(fromEnv.string('compress-type'), 'zst')
    assert.equal(fromEnv.number('process-max'), 3)
    assert.equal(fromEnv.source('process-max'), 'environment')

    const fromCli = load(['backup', '--stanza=demo', '--process-max=4'], { WALDEN_PROCESS_MAX: '3' })
    assert.equal(fromCli.number('process-max'), 4)
    assert.equal(fromCli.source('process-max'), 'command line')
  })

  test('options before or after the command mean the same', () => {
    const before = load(['--stanza=demo', '--type=diff', 'backup'])
    const after = load(['backup', '--stanza=demo', '--type', 'diff'])
    assert.equal(before.command, 'backup')
    assert.equal(before.string('type'), 'diff')
    assert.equal(after.string('type'), 'diff')
  })

  test('hash options collect repeated keys from one section', () => {
    const cfg = load(['restore', '--stanza=demo'])
    assert.deepEqual({ ...cfg.hash('recovery-option') }, { a: '1', b: '2' })
    const cli = load(['restore', '--stanza=demo', '--recovery-option=c=3', '--recovery-option', 'd=x=y'])
    assert.deepEqual({ ...cli.hash('recovery-option') }, { c: '3', d: 'x=y' })
  })

  test('list options keep every value in order: command line, one a line in the environment, repeated keys in one section', () => {
    const cli = load(['staging-link', '--stanza=demo', '--staging-setting=work_mem=64MB', '--staging-setting', '#shared_preload_libraries'])
    assert.deepEqual(cli.list('staging-setting'), ['work_mem=64MB', '#shared_preload_libraries'])
    const env = load(['staging-link', '--stanza=demo'], { WALDEN_STAGING_SETTING: "log_line_prefix='%m:%p'\nwork_mem=1MB\n" })
    assert.deepEqual(env.list('staging-setting'), ["log_line_prefix='%m:%p'", 'work_mem=1MB'])
    const file = load(['staging-link', '--stanza=demo'], {}, '[demo]\nstaging-backup-path=/b1\nstaging-backup-path=/b2\n')
    assert.deepEqual(file.list('staging-backup-path'), ['/b1', '/b2'])
    assert.deepEqual(load(['staging-link', '--stanza=demo']).list('staging-setting'), [])
    expectError(() => load(['staging-link', '--stanza=demo', '--staging-setting= ']), 'OptionInvalidValue', "option 'staging-setting' on the command line must not be empty")
  })

  test('booleans: --flag, --no-flag, y/n in config and environment', () => {
    assert.equal(load(['backup', '--stanza=demo', '--start-fast']).boolean('start-fast'), true)
    assert.equal(load(['backup', '--stanza=demo']).boolean('start-fast'), false)
    assert.equal(load(['backup', '--stanza=demo'], { WALDEN_START_FAST: 'y' }).boolean('start-fast'), true)
    assert.equal(load(['backup', '--stanza=demo', '--no-archive-check']).boolean('archive-check'), false)
    assert.equal(load(['backup', '--stanza=demo'], {}, '[global]\narchive-check=n\n').boolean('archive-check'), false)
  })

  test('paths are normalised', () => {
    assert.equal(load(['info', '--repo1-path=/a/b/'], {}, null).string('repo1-path'), '/a/b')
  })
})

describe('configLoad errors name the option', () => {
  test('unknown option on the command line', () => {
    expectError(() => load(['backup', '--stanza=demo', '--bogus=1']), 'OptionInvalid', "invalid option '--bogus'")
  })
  test('option not valid for the command', () => {
    expectError(() => load(['info', '--delta']), 'OptionInvalid', "option '--delta' is not valid for command 'info'")
  })
  test('value out of range', () => {
    expectError(
      () => load(['backup', '--stanza=demo', '--process-max=0']),
      'OptionInvalidValue',
      "option 'process-max' on the command line is out of range: 0 is not between 1 and 64",
    )
  })
  test('value of the wrong type', () => {
    expectError(
      () => load(['backup', '--stanza=demo', '--process-max=two']),
      'OptionInvalidValue',
      "option 'process-max' on the command line must be a whole number, not 'two'",
    )
  })
  test('value not allowed', () => {
    expectError(
      () => load(['backup', '--stanza=demo', '--type=weekly']),
      'OptionInvalidValue',
      "option 'type' on the command line must be one of 'full', 'diff', 'incr', not 'weekly'",
    )
  })
  test('unknown option in the config file names file and line', () => {
    expectError(
      () => load(['backup', '--stanza=demo'], {}, '[global]\nrepo1-path=/r\nrepo-pth=/x\n'),
      'OptionInvalid',
      "invalid option 'repo-pth' at line 3 of '/etc/walden/walden.conf'",
    )
  })
  test('bad boolean in the config file', () => {
    expectError(
      () => load(['backup', '--stanza=demo'], {}, '[global]\nstart-fast=yes\n'),
      'OptionInvalidValue',
      "option 'start-fast' in section '[global]' of '/etc/walden/walden.conf' must be 'y' or 'n', not 'yes'",
    )
  })
  test('stanza-only option in [global]', () => {
    expectError(
      () => load(['backup', '--stanza=demo'], {}, '[global]\npg1-path=/x\n'),
      'OptionInvalid',
      "option 'pg1-path' at line 2 of '/etc/walden/walden.conf' may only be set in a stanza section",
    )
  })
  test('command-line-only option in the config file', () => {
    expectError(
      () => load(['backup', '--stanza=demo'], {}, '[global]\ntype=full\n'),
      'OptionInvalid',
      "option 'type' at line 2 of '/etc/walden/walden.conf' cannot be set in a config file",
    )
  })
  test('option in a command section it does not apply to', () => {
    expectError(
      () => load(['backup', '--stanza=demo'], {}, '[global:archive-get]\nstart-fast=y\n'),
      'OptionInvalid',
      "option 'start-fast' at line 2 of '/etc/walden/walden.conf' is not valid for command 'archive-get'",
    )
  })
  test('unknown environment variable: a warning, so archiving never stops over an unrelated variable', () => {
    assert.deepEqual(load(['info'], { WALDEN_REPO_PATH: '/x' }).warnings, [
      "environment variable 'WALDEN_REPO_PATH' is not a walden option and is ignored",
    ])
  })
  test('missing stanza, bad stanza name, unknown command, missing parameter', () => {
    expectError(() => load(['backup']), 'OptionRequired', "backup command requires option 'stanza'")
    expectError(() => load(['backup', '--stanza=../x']), 'OptionInvalidValue', "stanza name '../x' is not valid")
    expectError(() => load(['bakup']), 'CommandInvalid', "invalid command 'bakup'")
    expectError(() => load(['archive-get', '--stanza=demo', '000000010000000000000001']), 'ParamRequired', 'archive-get command requires parameter DEST_PATH')
  })
  test('an explicit config file that does not exist', () => {
    expectError(() => load(['info', '--config=/nonexistent.conf'], {}, null), 'Config', "config file '/nonexistent.conf' does not exist")
  })
})

describe('tables', () => {
  test('every option is documented and names known commands', () => {
    for (const [name, def] of Object.entries(OPTIONS) as Array<[string, OptionDef]>) {
      assert.ok(def.summary.length > 10, `option '${name}' has no summary`)
      assert.ok(def.summary.endsWith('.'), `option '${name}' summary must be a sentence`)
      for (const command of def.commands) assert.ok(COMMAND_NAMES.includes(command), `${name}: ${command}`)
      if (def.type === 'enum') assert.ok(def.allow ?? def.perCommand, `enum option '${name}' has no allowed values`)
    }
    for (const name of COMMAND_NAMES) assert.ok(COMMANDS[name].summary.endsWith('.'), name)
  })
  test('help works without a config file and lists every command', () => {
    const cfg = load(['--help'], {}, '[global]\nthis is broken\n')
    assert.equal(cfg.command, 'help')
    assert.deepEqual(load(['backup', '--help']).params, ['backup'])
  })
})

describe('size options and the background roles (archive-async)', () => {
  test('sizes take KiB/MiB/GiB/TiB (and KB/MB/GB/TB, also 1024-based) or plain bytes; the default is written as people write it', () => {
    const queueMax = (value?: string): number | undefined =>
      load(['--stanza=demo', ...(value === undefined ? [] : [`--archive-get-queue-max=${value}`]), 'archive-get', 'X', '/tmp/x']).number('archive-get-queue-max')
    assert.equal(queueMax(), 128 * 1024 * 1024)
    assert.equal(queueMax('1GiB'), 1024 ** 3)
    assert.equal(queueMax('64mb'), 64 * 1024 * 1024)
    assert.equal(queueMax('4096'), 4096)
    assert.equal(queueMax('0'), 0)
    expectError(
      () => queueMax('1.5GB'),
      'OptionInvalidValue',
      "option 'archive-get-queue-max' on the command line must be a size such as 128MiB, 1GiB or 1048576, not '1.5GB'",
    )
  })

  test("'archive-push:async' is archive-push in its background role, taking any parameters; other roles are unknown commands", () => {
    const background = load(['--stanza=demo', 'archive-push:async', '/srv/pg/demo/pg_wal/000000010000000000000001'])
    assert.equal(background.command, 'archive-push')
    assert.equal(background.role, 'async')
    assert.equal(load(['--stanza=demo', 'archive-get:async', 'A', 'B', 'C']).params.length, 3)
    assert.equal(load(['--stanza=demo', 'archive-push', 'pg_wal/X']).role, 'main')
    expectError(() => load(['--stanza=demo', 'backup:async']), 'CommandInvalid', "invalid command 'backup:async'")
  })
})

describe('secret options (repo1-cipher-pass)', () => {
  test('are refused on the command line, where `ps` shows them, without echoing the value', () => {
    assert.throws(
      () => load(['--stanza=demo', '--repo1-cipher-pass=hunter2-secret', 'backup']),
      (error: unknown) => {
        assert.ok(error instanceof WaldenError)
        assert.equal(error.kind, 'OptionInvalid')
        assert.match(error.message, /'--repo1-cipher-pass' is secret and may not be given on the command line/)
        assert.match(error.hint ?? '', /WALDEN_REPO1_CIPHER_PASS/)
        assert.ok(!error.message.includes('hunter2-secret') && !(error.hint ?? '').includes('hunter2-secret'))
        return true
      },
    )
  })

  test('come from the environment or the config file, are redacted in the command-begin echo and never passed on', () => {
    const fromEnv = load(['--stanza=demo', 'restore'], { WALDEN_REPO1_CIPHER_PASS: 'hunter2-secret', WALDEN_REPO1_CIPHER_TYPE: 'aes-256-gcm' })
    assert.equal(fromEnv.string('repo1-cipher-pass'), 'hunter2-secret')
    assert.ok(!fromEnv.describe().includes('hunter2-secret'))
    assert.match(fromEnv.describe(), /--repo1-cipher-pass=<redacted>/)
    // restore writes these into restore_command, which lands in postgresql.auto.conf.
    const passed = fromEnv.explicitArguments('archive-get')
    assert.ok(passed.includes('--repo1-cipher-type=aes-256-gcm'))
    assert.ok(!passed.some((arg) => arg.includes('hunter2-secret')), passed.join(' '))
    const fromFile = load(['--stanza=demo', 'backup'], {}, `${CONFIG}\n[global:backup]\nrepo1-cipher-pass=from-file-secret\n`.replace('[global:backup]\ncompress-type=lz4\n', ''))
    assert.equal(fromFile.string('repo1-cipher-pass'), 'from-file-secret')
    assert.ok(!fromFile.describe().includes('from-file-secret'))
  })

  test('a connection string in recovery-option is redacted in the command-begin echo too', () => {
    const cfg = load(['--stanza=demo', 'restore', '--type=standby'], { WALDEN_RECOVERY_OPTION: 'primary_conninfo=host=primary user=rep password=S3cretPW' })
    assert.equal(cfg.hash('recovery-option')['primary_conninfo'], 'host=primary user=rep password=S3cretPW')
    assert.ok(!cfg.describe().includes('S3cretPW'), cfg.describe())
    assert.match(cfg.describe(), /--recovery-option=primary_conninfo=<redacted>/)
  })
})

describe('pg2..pg8: standbys for backup-standby', () => {
  const text = `${CONFIG}\n[demo]\npg2-path=/srv/pg/standby\npg2-port=5433\n`
  test('backup reads them from the stanza section and the command line', () => {
    const cfg = load(['--stanza=demo', '--pg3-path=/srv/pg/third', '--backup-standby=prefer', 'backup'], {}, text)
    assert.equal(cfg.string('pg2-path'), '/srv/pg/standby')
    assert.equal(cfg.number('pg2-port'), 5433)
    assert.equal(cfg.string('pg3-path'), '/srv/pg/third')
    assert.equal(cfg.string('backup-standby'), 'prefer')
    // Unset options of an unnamed index keep pg1's defaults.
    assert.equal(cfg.string('pg3-user'), 'postgres')
  })
  test('other commands ignore them in the config file and refuse them on the command line', () => {
    const cfg = load(['--stanza=demo', 'archive-push', '/srv/pg/demo/pg_wal/000000010000000000000001'], {}, text)
    assert.equal(cfg.has('pg2-path'), false)
    expectError(() => load(['--stanza=demo', '--pg2-path=/x', 'restore'], {}, text), 'OptionInvalid', "option '--pg2-path' is not valid for command 'restore'")
  })
  test('pg2-path, like pg1-path, only in a stanza section; backup-standby only takes its values', () => {
    assert.throws(() => load(['--stanza=demo', 'backup'], {}, `[global]\npg2-path=/srv/pg/standby\n`), /pg2-path/)
    assert.throws(() => load(['--stanza=demo', '--backup-standby=yes', 'backup'], {}, text), /backup-standby/)
    assert.equal(OPTIONS['pg9-path' as keyof typeof OPTIONS], undefined)
  })
})

describe('config-include-path', () => {
  /** A file system of config files: path -> text; folders are the paths' parents. */
  function loadFiles(argv: string[], files: Record<string, string>, env: Record<string, string> = {}) {
    return configLoad({
      argv,
      env,
      readFile: (path) => files[path],
      readDir: (path) => {
        const names = Object.keys(files)
          .filter((file) => file.startsWith(`${path}/`))
          .map((file) => file.slice(path.length + 1))
        return names.length > 0 ? names : undefined
      },
    })
  }
  const MAIN = '[global]\nrepo1-path=/srv/repo\n'

  test("the default folder's *.conf files join the default config file, in name order, sections merged by precedence", () => {
    const cfg = loadFiles(['backup', '--stanza=demo'], {
      '/etc/walden/walden.conf': MAIN,
      '/etc/walden/conf.d/20-demo.conf': '[demo]\npg1-path=/srv/pg\ncompress-type=lz4\n',
      '/etc/walden/conf.d/10-global.conf': '[global]\ncompress-type=gz\nprocess-max=3\n',
      '/etc/walden/conf.d/30-notes.txt': '[global]\nprocess-max=9\n',
    })
    assert.equal(cfg.string('repo1-path'), '/srv/repo')
    assert.equal(cfg.string('pg1-path'), '/srv/pg')
    // [demo] wins over [global], whichever file each is in; a file not named *.conf is not read.
    assert.equal(cfg.string('compress-type'), 'lz4')
    assert.equal(cfg.number('process-max'), 3)
    assert.equal(cfg.configFile('process-max'), '/etc/walden/conf.d/10-global.conf')
    assert.equal(cfg.configFile('repo1-path'), '/etc/walden/walden.conf')
  })

  test('an option set in one section of two files is an error naming both', () => {
    expectError(
      () =>
        loadFiles(['info'], {
          '/etc/walden/walden.conf': MAIN,
          '/etc/walden/conf.d/a.conf': '[global]\nrepo1-path=/other\n',
        }),
      'OptionInvalid',
      "option 'repo1-path' at line 2 of '/etc/walden/conf.d/a.conf' is set more than once in section '[global]'",
    )
  })

  test('--config alone reads that file only; with --config-include-path the folder too; without a config file the folder alone', () => {
    const files = { '/my/walden.conf': MAIN, '/etc/walden/conf.d/a.conf': '[global]\nprocess-max=5\n', '/inc/b.conf': '[global]\nprocess-max=6\n' }
    assert.equal(loadFiles(['backup', '--stanza=demo', '--config=/my/walden.conf'], files).source('process-max'), 'default')
    assert.equal(loadFiles(['backup', '--stanza=demo', '--config=/my/walden.conf', '--config-include-path=/inc'], files).number('process-max'), 6)
    assert.equal(loadFiles(['backup', '--stanza=demo', '--config-include-path=/inc'], files).number('process-max'), 6)
    assert.equal(loadFiles(['backup', '--stanza=demo'], files, { WALDEN_CONFIG_INCLUDE_PATH: '/inc' }).number('process-max'), 6)
    assert.equal(loadFiles(['backup', '--stanza=demo'], files).number('process-max'), 5)
  })

  test('a folder given that does not exist is an error; the default one missing is not', () => {
    expectError(
      () => loadFiles(['info', '--config-include-path=/nothere'], { '/etc/walden/walden.conf': MAIN }),
      'PathMissing',
      "config include path '/nothere' does not exist",
    )
    assert.equal(loadFiles(['info'], { '/etc/walden/walden.conf': MAIN }).string('repo1-path'), '/srv/repo')
  })

  test('a mistake in an include file names that file', () => {
    expectError(
      () => loadFiles(['info'], { '/etc/walden/walden.conf': MAIN, '/etc/walden/conf.d/x.conf': '[global]\nrepo1-paht=/x\n' }),
      'OptionInvalid',
      "invalid option 'repo1-paht' at line 2 of '/etc/walden/conf.d/x.conf'",
    )
    expectError(
      () => loadFiles(['info'], { '/etc/walden/walden.conf': MAIN, '/etc/walden/conf.d/x.conf': '[global:nocommand]\n' }),
      'Config',
      "invalid section '[global:nocommand]' in '/etc/walden/conf.d/x.conf'",
    )
  })
})

test("--repo is accepted by every command pgBackRest 2.45 accepts it for (from `pgbackrest help COMMAND`), with a repository chosen", () => {
  // annotate has no walden counterpart; walden accepts --repo for more commands than these (archive-push, check, ...).
  const pgbackrestRepoCommands = ['archive-get', 'backup', 'expire', 'info', 'repo-get', 'repo-ls', 'restore', 'stanza-delete', 'verify'] as const
  for (const command of pgbackrestRepoCommands) assert.ok((OPTIONS.repo as OptionDef).commands.includes(command), command)
  const cfg = load(['repo-ls', '--repo=2', 'archive'], {}, '[global]\nrepo2-path=/srv/two\n')
  assert.equal(cfg.string('repo'), '2')
  assert.deepEqual(cfg.params, ['archive'])
})
