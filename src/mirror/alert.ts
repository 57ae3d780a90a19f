// --mirror-alert-command: a shell command run when a host stalls, with the details in the environment, so any
// notification (mail, chat, a pager) can be wired without walden knowing about it.

import { spawn } from 'node:child_process'
import { log } from '../common/log.js'
import { OPTIONS, optionEnvName } from '../config/options.js'

const ALERT_TIMEOUT_MS = 60_000

export async function alertRun(command: string, host: string, xid: string, error: string): Promise<void> {
  const env: NodeJS.ProcessEnv = { ...process.env, WALDEN_MIRROR_HOST: host, WALDEN_MIRROR_XID: xid, WALDEN_MIRROR_ERROR: error }
  // The command needs none of walden's secrets (connection strings that may hold passwords).
  for (const [name, def] of Object.entries(OPTIONS)) if ('secure' in def && def.secure === true) delete env[optionEnvName(name)]
  await new Promise<void>((resolve) => {
    const child = spawn('/bin/sh', ['-c', command], { env, stdio: ['ignore', 'ignore', 'pipe'] })
    let stderr = ''
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk))
    const timer = setTimeout(() => child.kill('SIGKILL'), ALERT_TIMEOUT_MS)
    child.on('error', (spawnError) => {
      clearTimeout(timer)
      log.warn(`mirror alert command could not be started: ${spawnError.message}`)
      resolve()
    })
    child.on('close', (code, signal) => {
      clearTimeout(timer)
      if (code !== 0) log.warn(`mirror alert command failed (${signal ?? `exit ${code}`}): ${stderr.trim()}`)
      resolve()
    })
  })
}
