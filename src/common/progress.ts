// Progress of long copies (bytes, rate, ETA) on the console, only when stderr is a terminal: cron jobs and
// log files get the summary lines instead.

export class Progress {
  readonly #total: number
  readonly #what: string
  readonly #started = Date.now()
  readonly #enabled: boolean
  #done = 0
  #lastDraw = 0

  constructor(what: string, totalBytes: number, enabled = process.stderr.isTTY === true) {
    this.#what = what
    this.#total = totalBytes
    this.#enabled = enabled
  }

  add(bytes: number): void {
    this.#done += bytes
    if (!this.#enabled) return
    const now = Date.now()
    if (now - this.#lastDraw < 250 && this.#done < this.#total) return
    this.#lastDraw = now
    const seconds = Math.max(0.001, (now - this.#started) / 1000)
    const rate = this.#done / seconds
    const eta = rate > 0 ? Math.max(0, (this.#total - this.#done) / rate) : 0
    const percent = this.#total > 0 ? Math.min(100, (100 * this.#done) / this.#total) : 100
    process.stderr.write(
      `\r${this.#what}: ${formatBytes(this.#done)} of ${formatBytes(this.#total)} (${percent.toFixed(1)}%), ` +
        `${formatBytes(rate)}/s, ETA ${formatDuration(eta)}   `,
    )
  }

  end(): void {
    if (this.#enabled && this.#lastDraw !== 0) process.stderr.write('\n')
  }
}

/** Bytes in human units: 1023B, 1.5KB, 22.2MB, 1.6GB (powers of 1024, pgBackRest's spelling). */
export function formatBytes(bytes: number): string {
  const units = ['B', 'KB', 'MB', 'GB', 'TB', 'PB']
  let value = bytes
  let unit = 0
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024
    unit++
  }
  return unit === 0 ? `${Math.round(value)}${units[0]}` : `${value.toFixed(1)}${units[unit]}`
}

export function formatDuration(seconds: number): string {
  const whole = Math.round(seconds)
  const hours = Math.floor(whole / 3600)
  const minutes = Math.floor((whole % 3600) / 60)
  const rest = whole % 60
  return hours > 0 ? `${hours}h${String(minutes).padStart(2, '0')}m` : minutes > 0 ? `${minutes}m${String(rest).padStart(2, '0')}s` : `${rest}s`
}
