// A real OpenSSH server for integration tests: Debian's /usr/sbin/sshd on a free loopback port, with its own host key,
// sshd_config and authorized keys in a temp folder (never the system's sshd, config or port 22). Two OS users stand
// for two hosts: `postgres` (the database host, owns the cluster) and `walden-repo` (the backup host, owns the
// repository). Each user gets a key pair made for this run, authorized for the other user, and a known_hosts file
// that pins this server's host key; `sshCommand(user)` is an ssh wrapper that uses them, for cmd-ssh.
//
// One server per test file, started on first use and stopped (with every session process it forked) after the file's
// tests. stop() and start() also serve the tests of a server that goes away in the middle of a transfer.

import { spawn, spawnSync } from 'node:child_process'
import type { ChildProcess } from 'node:child_process'
import { closeSync, existsSync, openSync, readdirSync, readFileSync } from 'node:fs'
import { chmod, chown, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { createServer, connect } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after } from 'node:test'

const SSHD = '/usr/sbin/sshd'
const SSH = '/usr/bin/ssh'
export const REPO_USER = 'walden-repo'
export const PG_USER = 'postgres'
const USERS = [PG_USER, REPO_USER] as const
export type SshUser = (typeof USERS)[number]

export interface SshServer {
  port: number
  dir: string
  /** Path of an ssh wrapper for `user`: its key, its known_hosts, no prompts. Runs as whoever calls it. */
  sshCommand(user: SshUser): string
  /** Replaces `user`'s known_hosts with one that pins a different host key (a host that is not the one expected). */
  knownHostsWrong(user: SshUser): Promise<void>
  knownHostsRestore(user: SshUser): Promise<void>
  /** PIDs of session processes this server forked (one per connection) and their children. */
  sessionPids(): number[]
  /** Stops the listener and every session: connections drop in the middle of whatever they do. */
  stop(): Promise<void>
  /** Starts the listener again on the same port. */
  start(): Promise<void>
  /** The server's own log (sshd -e), for failure messages. */
  log(): Promise<string>
}

let shared: Promise<SshServer> | undefined

/** The file's SSH server (started on first call). */
export function sshServer(): Promise<SshServer> {
  shared ??= startSshServer()
  return shared
}

function sh(command: string, args: readonly string[]): string {
  const result = spawnSync(command, args, { encoding: 'utf8' })
  if (result.status !== 0) throw new Error(`${command} ${args.join(' ')} failed (${result.status}): ${result.stderr}${result.error ?? ''}`)
  return result.stdout
}

/** The uid and gid of an OS user. */
export function userIds(user: string): { uid: number; gid: number } {
  return { uid: Number(sh('id', ['-u', user]).trim()), gid: Number(sh('id', ['-g', user]).trim()) }
}

/**
 * Live processes of `uid` whose command line matches `pattern` and that belong to the caller's run (`mine`: other test
 * files and benches on the machine run walden as the same users), from /proc, as 'pid: command line'.
 */
export function processesOf(uid: number, pattern: RegExp, mine: (pid: number, cmdline: string) => boolean): string[] {
  const found: string[] = []
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue
    try {
      const status = readFileSync(`/proc/${entry}/status`, 'utf8')
      if (Number(/^Uid:\s+(\d+)/m.exec(status)?.[1]) !== uid) continue
      if (/^State:\s+Z/m.test(status)) continue
      const cmdline = readFileSync(`/proc/${entry}/cmdline`, 'utf8').replaceAll('\0', ' ').trim()
      if (pattern.test(cmdline) && mine(Number(entry), cmdline)) found.push(`${entry}: ${cmdline}`)
    } catch {
      // gone meanwhile
    }
  }
  return found
}

/** Waits until no such process is left (a few seconds at most), and returns what is left. */
export async function leftOver(uid: number, pattern: RegExp, mine: (pid: number, cmdline: string) => boolean): Promise<string[]> {
  for (let waited = 0; waited < 5000; waited += 100) {
    if (processesOf(uid, pattern, mine).length === 0) return []
    await new Promise((resolve) => setTimeout(resolve, 100))
  }
  return processesOf(uid, pattern, mine)
}

/**
 * The repository user exists (created like .ci/run does when missing), and both users can log in with a key: with
 * UsePAM off, sshd refuses an account whose password field starts with '!' (locked) even for key logins, so such a
 * field becomes '*' (no password can match either; password logins stay impossible).
 */
export function sshUsersEnsure(): void {
  if (spawnSync('id', ['-u', REPO_USER]).status !== 0) {
    sh('useradd', ['--system', '--user-group', '--home-dir', `/var/lib/${REPO_USER}`, '--create-home', '--shell', '/bin/sh', '--password', '*', REPO_USER])
  }
  const shadow = readFileSync('/etc/shadow', 'utf8')
  for (const user of USERS) {
    const field = shadow.split('\n').find((line) => line.startsWith(`${user}:`))?.split(':')[1] ?? ''
    if (field.startsWith('!')) sh('usermod', ['--password', '*', user])
  }
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer()
    server.on('error', reject)
    server.listen(0, '127.0.0.1', () => {
      const address = server.address()
      const port = typeof address === 'object' && address !== null ? address.port : 0
      server.close(() => resolve(port))
    })
  })
}

function portOpen(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1')
    socket.once('connect', () => {
      socket.destroy()
      resolve(true)
    })
    socket.once('error', () => resolve(false))
  })
}

/** Children of a process, recursively, from /proc. */
export function descendants(pid: number): number[] {
  const children = new Map<number, number[]>()
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8')
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1])
      const list = children.get(ppid) ?? []
      list.push(Number(entry))
      children.set(ppid, list)
    } catch {
      // gone meanwhile
    }
  }
  const result: number[] = []
  const walk = (parent: number): void => {
    for (const child of children.get(parent) ?? []) {
      result.push(child)
      walk(child)
    }
  }
  walk(pid)
  return result
}

async function startSshServer(): Promise<SshServer> {
  if (!existsSync(SSHD)) throw new Error(`${SSHD} is missing: install openssh-server (.ci/run does)`)
  sshUsersEnsure()
  // sshd's privilege-separation folder; the package's systemd unit would make it, a container has none running.
  await mkdir('/run/sshd', { recursive: true, mode: 0o755 })

  const dir = await mkdtemp(join(tmpdir(), 'walden-sshd-'))
  // Users read their authorized keys, config and wrapper below this folder.
  await chmod(dir, 0o755)
  const hostKey = join(dir, 'host_ed25519_key')
  sh('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', 'walden-test-host', '-f', hostKey])
  const otherHostKey = join(dir, 'other_host_ed25519_key')
  sh('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', 'walden-test-other-host', '-f', otherHostKey])
  const hostPublic = (await readFile(`${hostKey}.pub`, 'utf8')).trim().split(' ').slice(0, 2).join(' ')
  const otherPublic = (await readFile(`${otherHostKey}.pub`, 'utf8')).trim().split(' ').slice(0, 2).join(' ')

  let port = await freePort()
  const knownHosts = (user: SshUser): string => join(dir, 'users', user, 'known_hosts')
  const knownLine = (key: string): string => `[127.0.0.1]:${port} ${key}\n[localhost]:${port} ${key}\n`

  // A key pair per user, each authorized for the other user (the two hosts reach each other).
  await mkdir(join(dir, 'authorized'), { mode: 0o755 })
  await mkdir(join(dir, 'users'), { mode: 0o755 })
  await mkdir(join(dir, 'bin'), { mode: 0o755 })
  const publicKeys = new Map<SshUser, string>()
  for (const user of USERS) {
    const home = join(dir, 'users', user)
    await mkdir(home, { mode: 0o700 })
    sh('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', `walden-test-${user}`, '-f', join(home, 'id_ed25519')])
    publicKeys.set(user, (await readFile(join(home, 'id_ed25519.pub'), 'utf8')).trim())
  }
  const writeUserFiles = async (): Promise<void> => {
    for (const user of USERS) {
      const home = join(dir, 'users', user)
      const other = user === PG_USER ? REPO_USER : PG_USER
      await writeFile(join(dir, 'authorized', user), `${publicKeys.get(other)}\n`, { mode: 0o644 })
      await writeFile(knownHosts(user), knownLine(hostPublic), { mode: 0o644 })
      await writeFile(
        join(home, 'config'),
        [
          'Host *',
          `  IdentityFile ${join(home, 'id_ed25519')}`,
          '  IdentitiesOnly yes',
          `  UserKnownHostsFile ${knownHosts(user)}`,
          '  GlobalKnownHostsFile /dev/null',
          '  StrictHostKeyChecking yes',
          '  UpdateHostKeys no',
          '  BatchMode yes',
          '',
        ].join('\n'),
        { mode: 0o644 },
      )
      const { uid, gid } = userIds(user)
      for (const file of ['', 'id_ed25519', 'id_ed25519.pub', 'known_hosts', 'config']) await chown(join(home, file), uid, gid)
      await writeFile(join(dir, 'bin', `ssh-${user}`), `#!/bin/sh\nexec ${SSH} -F ${join(home, 'config')} "$@"\n`, { mode: 0o755 })
    }
  }

  const configPath = join(dir, 'sshd_config')
  const writeConfig = async (): Promise<void> => {
    await writeFile(
      configPath,
      [
        `Port ${port}`,
        'ListenAddress 127.0.0.1',
        `HostKey ${hostKey}`,
        `PidFile ${join(dir, 'sshd.pid')}`,
        `AuthorizedKeysFile ${join(dir, 'authorized', '%u')}`,
        'PubkeyAuthentication yes',
        'PasswordAuthentication no',
        'KbdInteractiveAuthentication no',
        'UsePAM no',
        // The keys live under /tmp, which every user may write to: StrictModes would refuse them for that.
        'StrictModes no',
        'PermitRootLogin no',
        `AllowUsers ${USERS.join(' ')}`,
        'AllowTcpForwarding no',
        'X11Forwarding no',
        'PrintMotd no',
        'PrintLastLog no',
        'MaxStartups 64',
        'LogLevel VERBOSE',
        '',
      ].join('\n'),
      { mode: 0o600 },
    )
  }

  await writeUserFiles()
  await writeConfig()
  const logPath = join(dir, 'sshd.log')
  let child: ChildProcess | undefined

  const start = async (): Promise<void> => {
    for (let attempt = 0; ; attempt++) {
      const logFd = openSync(logPath, 'a')
      // -D: no daemon, so this process is the listener and its sessions are its children; -e: log to stderr (the file).
      child = spawn(SSHD, ['-D', '-e', '-f', configPath], { stdio: ['ignore', logFd, logFd] })
      closeSync(logFd)
      const exited = new Promise<number>((resolve) => child!.once('exit', (code) => resolve(code ?? -1)))
      for (let waited = 0; waited < 5000; waited += 50) {
        if (await portOpen(port)) return
        const done = await Promise.race([exited, new Promise<undefined>((resolve) => setTimeout(() => resolve(undefined), 50))])
        if (done !== undefined) break
      }
      // The port was taken between choosing it and binding it (or sshd failed): try another one, a few times.
      child.kill('SIGKILL')
      if (attempt >= 3) throw new Error(`sshd did not start:\n${await readFile(logPath, 'utf8')}`)
      port = await freePort()
      await writeUserFiles()
      await writeConfig()
    }
  }

  const sessionPids = (): number[] => (child?.pid !== undefined ? descendants(child.pid) : [])

  const stop = async (): Promise<void> => {
    const listener = child
    if (!listener || listener.exitCode !== null || listener.signalCode !== null) return
    // Sessions first (they are the listener's children, and would outlive it), then the listener.
    const sessions = sessionPids()
    for (const pid of sessions) {
      try {
        process.kill(pid, 'SIGKILL')
      } catch {
        // already gone
      }
    }
    const exited = new Promise<void>((resolve) => listener.once('exit', () => resolve()))
    listener.kill('SIGTERM')
    await exited
    child = undefined
  }

  await start()
  const server: SshServer = {
    get port() {
      return port
    },
    dir,
    sshCommand: (user) => join(dir, 'bin', `ssh-${user}`),
    knownHostsWrong: async (user) => writeFile(knownHosts(user), knownLine(otherPublic)),
    knownHostsRestore: async (user) => writeFile(knownHosts(user), knownLine(hostPublic)),
    sessionPids,
    stop,
    start,
    log: () => readFile(logPath, 'utf8'),
  }
  live.add({
    cleanup: async () => {
      await stop()
      await rm(dir, { recursive: true, force: true })
    },
    killSync: () => {
      for (const pid of [...sessionPids(), ...(child?.pid !== undefined ? [child.pid] : [])]) {
        try {
          process.kill(pid, 'SIGKILL')
        } catch {
          // gone
        }
      }
    },
  })
  return server
}

const live = new Set<{ cleanup: () => Promise<void>; killSync: () => void }>()

after(async () => {
  for (const server of [...live]) await server.cleanup()
  live.clear()
})

// Last resort when the process ends some other way: no sshd may outlive the test run.
process.on('exit', () => {
  for (const server of live) server.killSync()
})
