// Repeated identical errors are reported once, then only every `every`-th time, with the count, as dbmirror did for
// its mails: a host stalled on one transaction retries every cycle and would otherwise flood the log and the alerts.

export class RepeatFilter {
  readonly #every: number
  #last: string | undefined
  #count = 0

  constructor(every = 10) {
    this.#every = every
  }

  /** The repeat count when this occurrence should be reported, or undefined to stay quiet. */
  report(message: string): number | undefined {
    if (message === this.#last) this.#count++
    else {
      this.#last = message
      this.#count = 1
    }
    return this.#count === 1 || this.#count % this.#every === 0 ? this.#count : undefined
  }

  /** Things work again: the next error is reported whatever it is. */
  reset(): void {
    this.#last = undefined
    this.#count = 0
  }
}
