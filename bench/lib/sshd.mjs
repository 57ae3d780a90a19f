// The SSH side of `npm run bench -- --repo-type=ssh` (issue #13): one OpenSSH server on a free loopback port for the
// whole run, as test/harness/ssh.ts starts for the tests (Debian's /usr/sbin/sshd with its own host key, config and
// authorized keys in the bench's folder; never the system's sshd or port 22). Two OS users stand for the two hosts
// of pgBackRest's "dedicated repository host" setup: `postgres` is the database host (owns the cluster) and
// `walden-repo` the backup host (owns both tools' repositories). Each user has a key pair made for this run,
// authorized for the other, and an ssh wrapper (for cmd-ssh) that pins this server's host key.
//
// Both tools go through the same wrapper, so the same ssh client, cipher and options carry their bytes.
//
// The far end of every session (walden remote, pgbackrest's remote) is started by sshd, not by the command the bench
// times, so measure.py does not see it. A timed command therefore names a remote command wrapper that runs the tool
// under /usr/bin/time, which writes each far-end process's peak RSS and CPU time into a folder the bench reads after
// the command (remoteCollect).

import { spawn, spawnSync } from 'node:child_process'
import { closeSync, existsSync, openSync, readdirSync, readFileSync, rmSync } from 'node:fs'
import { chmod, chown, mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises'
import { connect, createServer } from 'node:net'
import { join } from 'node:path'
import { BenchError, IS_ROOT } from './proc.mjs'

const SSHD = '/usr/sbin/sshd'
const SSH = '/usr/bin/ssh'
const TIME = '/usr/bin/time'
export const PG_USER = 'postgres'
export const REPO_USER = 'walden-repo'
const USERS = [PG_USER, REPO_USER]

function freePort() {
  return new Promise((resolvePort, reject) => {
    const server = createServer()
    server.unref()
    server.on('error', reject)
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address()
      server.close(() => resolvePort(port))
    })
  })
}

function portOpen(port) {
  return new Promise((resolveOpen) => {
    const socket = connect(port, '127.0.0.1')
    socket.once('connect', () => {
      socket.destroy()
      resolveOpen(true)
    })
    socket.once('error', () => resolveOpen(false))
  })
}

function idOf(user) {
  const uid = spawnSync('id', ['-u', user], { encoding: 'utf8' })
  const gid = spawnSync('id', ['-g', user], { encoding: 'utf8' })
  if (uid.status !== 0 || gid.status !== 0) return undefined
  return { uid: Number(uid.stdout), gid: Number(gid.stdout) }
}

function keygen(path, comment) {
  const result = spawnSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', comment, '-f', path], { encoding: 'utf8' })
  if (result.status !== 0) throw new BenchError(`ssh-keygen failed: ${result.stderr}`)
}

/** Children of a process, recursively, from /proc. */
function descendants(pid) {
  const children = new Map()
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8')
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1])
      if (!children.has(ppid)) children.set(ppid, [])
      children.get(ppid).push(Number(entry))
    } catch {
      // Gone meanwhile.
    }
  }
  const found = []
  const walk = (parent) => {
    for (const child of children.get(parent) ?? []) {
      found.push(child)
      walk(child)
    }
  }
  walk(pid)
  return found
}

/** Servers started by this bench, stopped by the clean-up however the bench ends. */
const live = new Set()

export class SshHost {
  constructor(dir) {
    this.dir = dir
    this.port = 0
    this.child = undefined
    this.users = {}
  }

  /**
   * Starts sshd in `<root>/sshd`. The bench runs as root (sshd needs it to switch users); both users must exist
   * (.ci/run creates walden-repo), and their password field must not start with '!' (sshd without PAM refuses a
   * locked account even for a key), as test/harness/ssh.ts also arranges.
   */
  static async start(root) {
    if (!IS_ROOT) throw new BenchError('--repo-type=ssh needs root: sshd switches to the postgres and walden-repo users')
    for (const path of [SSHD, SSH, TIME]) if (!existsSync(path)) throw new BenchError(`${path} is missing: apt-get install openssh-server openssh-client time (see .ci/run)`)
    for (const user of USERS) if (!idOf(user)) throw new BenchError(`--repo-type=ssh needs the OS user '${user}' (see .ci/run, which creates walden-repo)`)
    const shadow = readFileSync('/etc/shadow', 'utf8')
    for (const user of USERS) {
      const field = shadow.split('\n').find((line) => line.startsWith(`${user}:`))?.split(':')[1] ?? ''
      if (field.startsWith('!')) spawnSync('usermod', ['--password', '*', user])
    }
    await mkdir('/run/sshd', { recursive: true, mode: 0o755 })

    const host = new SshHost(join(root, 'sshd'))
    live.add(host)
    // The backup host's folders (repositories, its logs, locks and config files): a sibling of the bench's folder,
    // owned by root, since the bench's folder belongs to postgres (see sshToolsSetup).
    host.backupRoot = await mkdtemp(`${root}-backup-host-`)
    await chmod(host.backupRoot, 0o755)
    await host.#files()
    await host.#listen()
    return host
  }

  async #files() {
    const dir = this.dir
    // Both users read their keys, config and wrapper below this folder.
    await mkdir(dir, { recursive: true })
    await chmod(dir, 0o755)
    for (const sub of ['authorized', 'users', 'bin']) await mkdir(join(dir, sub), { mode: 0o755 })
    this.hostKey = join(dir, 'host_ed25519_key')
    keygen(this.hostKey, 'walden-bench-host')
    for (const user of USERS) {
      const home = join(dir, 'users', user)
      await mkdir(home, { mode: 0o700 })
      keygen(join(home, 'id_ed25519'), `walden-bench-${user}`)
      this.users[user] = { home, ...idOf(user), publicKey: (await readFile(join(home, 'id_ed25519.pub'), 'utf8')).trim() }
    }
    // The far ends' /usr/bin/time records: written by whichever user a session runs as.
    this.remoteDir = join(dir, 'remote-usage')
    await mkdir(this.remoteDir)
    await chmod(this.remoteDir, 0o1777)
  }

  /** Writes what depends on the port (known_hosts, sshd_config), then starts sshd; a port taken meanwhile means another. */
  async #listen() {
    const hostPublic = (await readFile(`${this.hostKey}.pub`, 'utf8')).trim().split(' ').slice(0, 2).join(' ')
    const logPath = join(this.dir, 'sshd.log')
    for (let attempt = 1; ; attempt++) {
      this.port = await freePort()
      for (const user of USERS) {
        const { home, uid, gid } = this.users[user]
        const other = user === PG_USER ? REPO_USER : PG_USER
        await writeFile(join(this.dir, 'authorized', user), `${this.users[other].publicKey}\n`, { mode: 0o644 })
        await writeFile(join(home, 'known_hosts'), `[127.0.0.1]:${this.port} ${hostPublic}\n`, { mode: 0o644 })
        await writeFile(
          join(home, 'config'),
          [
            'Host *',
            `  IdentityFile ${join(home, 'id_ed25519')}`,
            '  IdentitiesOnly yes',
            `  UserKnownHostsFile ${join(home, 'known_hosts')}`,
            '  GlobalKnownHostsFile /dev/null',
            '  StrictHostKeyChecking yes',
            '  UpdateHostKeys no',
            '  BatchMode yes',
            '',
          ].join('\n'),
          { mode: 0o644 },
        )
        for (const file of ['', 'id_ed25519', 'id_ed25519.pub', 'known_hosts', 'config']) await chown(join(home, file), uid, gid)
        await writeFile(this.sshCommand(user), `#!/bin/sh\nexec ${SSH} -F ${join(home, 'config')} "$@"\n`, { mode: 0o755 })
      }
      const configPath = join(this.dir, 'sshd_config')
      await writeFile(
        configPath,
        [
          `Port ${this.port}`,
          'ListenAddress 127.0.0.1',
          `HostKey ${this.hostKey}`,
          `PidFile ${join(this.dir, 'sshd.pid')}`,
          `AuthorizedKeysFile ${join(this.dir, 'authorized', '%u')}`,
          'PubkeyAuthentication yes',
          'PasswordAuthentication no',
          'KbdInteractiveAuthentication no',
          'UsePAM no',
          // The keys live under the bench's folder in /tmp, which every user may write to: StrictModes would refuse them.
          'StrictModes no',
          'PermitRootLogin no',
          `AllowUsers ${USERS.join(' ')}`,
          'AllowTcpForwarding no',
          'X11Forwarding no',
          'PrintMotd no',
          'PrintLastLog no',
          // process-max workers of both tools open their sessions at the same moment.
          'MaxStartups 64',
          'LogLevel INFO',
          '',
        ].join('\n'),
        { mode: 0o600 },
      )
      const logFd = openSync(logPath, 'a')
      // -D: no daemon, so this process is the listener and the sessions are its children; -e: log to the file.
      const child = spawn(SSHD, ['-D', '-e', '-f', configPath], { stdio: ['ignore', logFd, logFd], detached: true })
      closeSync(logFd)
      this.child = child
      const exited = new Promise((resolveExit) => child.once('exit', () => resolveExit(true)))
      for (let waited = 0; waited < 5000; waited += 50) {
        if (await portOpen(this.port)) return
        if (await Promise.race([exited, new Promise((resolveWait) => setTimeout(() => resolveWait(false), 50))])) break
      }
      this.#kill()
      if (attempt >= 3) throw new BenchError(`sshd did not start:\n${await readFile(logPath, 'utf8').catch(() => '')}`)
    }
  }

  /** The ssh wrapper for `user`: its key and known_hosts, no prompts. For cmd-ssh. */
  sshCommand(user) {
    return join(this.dir, 'bin', `ssh-${user}`)
  }

  /**
   * A remote command for `repo1-host-cmd`/`pg1-host-cmd` that runs `program` (argv array) under /usr/bin/time,
   * which appends the far end's peak RSS (KiB) and user/system CPU seconds to a file of its own in remoteDir.
   */
  async measuredCommand(name, program) {
    const path = join(this.dir, 'bin', `measured-${name}`)
    const quoted = program.map((word) => `'${word.replaceAll("'", "'\\''")}'`).join(' ')
    await writeFile(path, `#!/bin/sh\nexec ${TIME} -f '%M %U %S' -o ${this.remoteDir}/${name}.$$ ${quoted} "$@"\n`, { mode: 0o755 })
    return path
  }

  /** PIDs of every session process sshd forked, and their children (the far ends). */
  sessionPids() {
    return this.child?.pid ? descendants(this.child.pid) : []
  }

  /** Forgets earlier far-end records, before a timed command. */
  async remoteReset() {
    for (const name of await readdir(this.remoteDir)) await rm(join(this.remoteDir, name), { force: true })
  }

  /**
   * The far ends of the command just timed: waits until every session has ended (a far end may outlive the local
   * command by a moment while it closes), then sums what /usr/bin/time wrote. Returns { remoteProcesses,
   * remoteRssBytes (sum of each far end's peak: they run side by side, one per worker, so this bounds their peak
   * together), remoteRssSingleBytes (the largest one), remoteCpuS } or {} when no far end was measured.
   */
  async remoteCollect(timeoutMs = 10_000) {
    const deadline = Date.now() + timeoutMs
    while (this.sessionPids().length > 0 && Date.now() < deadline) await new Promise((resolveWait) => setTimeout(resolveWait, 20))
    const records = []
    for (const name of await readdir(this.remoteDir)) {
      const text = await readFile(join(this.remoteDir, name), 'utf8').catch(() => '')
      // A far end killed by a signal gets a "Command terminated by signal" line first; the figures are last.
      const fields = text.trim().split('\n').at(-1)?.split(' ').map(Number)
      if (fields?.length === 3 && fields.every(Number.isFinite)) records.push({ rssBytes: fields[0] * 1024, cpuS: fields[1] + fields[2] })
    }
    if (records.length === 0) return {}
    return {
      remoteProcesses: records.length,
      remoteRssBytes: records.reduce((sum, record) => sum + record.rssBytes, 0),
      remoteRssSingleBytes: Math.max(...records.map((record) => record.rssBytes)),
      remoteCpuS: records.reduce((sum, record) => sum + record.cpuS, 0),
    }
  }

  #kill() {
    for (const pid of [...this.sessionPids(), ...(this.child?.pid ? [this.child.pid] : [])]) {
      try {
        process.kill(pid, 'SIGKILL')
      } catch {
        // Already gone.
      }
    }
    this.child = undefined
  }

  /** Stops the listener and every session. The folder goes with the bench's; the backup host's unless `keep`. */
  stop({ keep = false } = {}) {
    this.#kill()
    live.delete(this)
    if (this.backupRoot && !keep) rmSync(this.backupRoot, { recursive: true, force: true })
  }
}

/** Stops every sshd this bench started (clean-up; synchronous, for the exit handler too). */
export function sshHostsStop(options) {
  for (const host of [...live]) host.stop(options)
}
