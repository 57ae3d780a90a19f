// Writes docs/reference.md from the command, option and error tables.
import { writeFileSync } from 'node:fs'
import { renderReference } from '../src/cli/reference.js'

writeFileSync(new URL('../docs/reference.md', import.meta.url), renderReference())
console.log('wrote docs/reference.md')
