// pg_hba.conf lines walden writes (setup's replication entry), by the rules of PostgreSQL's tokenizer
// (src/backend/libpq/hba.c, next_token): fields are separated by blanks and commas, '#' starts a comment outside
// quotes, and a field in double quotes is taken literally, a doubled quote inside standing for one. Quoting also takes
// away the special meaning of keywords such as all or replication, and of a leading '+' or '@'.

import { isIP } from 'node:net'
import { fail } from '../common/errors.js'

/** A field quoted for pg_hba.conf. */
export function hbaQuote(word: string): string {
  return `"${word.replaceAll('"', '""')}"`
}

/** PostgreSQL's NAMEDATALEN - 1: a longer role name is silently cut, and would then name another role. */
const MAX_NAME_BYTES = 63

/**
 * Why a role name cannot be written into pg_hba.conf, the password file and SQL safely, if it cannot. Control
 * characters have no escape in pg_hba.conf or the password file (one entry a line). A leading '/' makes PostgreSQL
 * 16+ read the name as a regular expression, quoted or not; '+' and '@' are refused with it so the rule stays simple.
 */
export function roleNameProblem(name: string): string | undefined {
  if (name === '') return 'it is empty'
  // eslint-disable-next-line no-control-regex
  if (/[\x00-\x1f\x7f]/.test(name)) return 'it contains a control character (such as a line break)'
  if (Buffer.byteLength(name, 'utf8') > MAX_NAME_BYTES) return `it is longer than ${MAX_NAME_BYTES} bytes, and PostgreSQL would cut it`
  if (/^[+/@]/.test(name)) return "it starts with '+', '/' or '@', which pg_hba.conf gives a special meaning"
  return undefined
}

const HOST_LABEL = '[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?'
const HOST_NAME = new RegExp(`^\\.?${HOST_LABEL}(?:\\.${HOST_LABEL})*$`)
const HBA_KEYWORDS = new Set(['all', 'samehost', 'samenet'])

/**
 * The address field for a standby host or network: an IP address (written as a single-host CIDR), an address/bits
 * network, or a host name (a leading dot matches every name in that domain, as in pg_hba.conf). Refuses anything
 * else, naming what was given: an address field cannot be quoted, so only values with no special characters pass.
 */
export function hbaAddress(value: string): string {
  const shown = JSON.stringify(value)
  const refuse = (why: string): never =>
    fail('OptionInvalidValue', `standby-host ${shown} ${why}`, {
      hint: 'give the standby\'s IP address (10.0.0.5), its network (10.0.0.0/24, fd00::/64) or its host name (standby1.example.com).',
    })
  const slash = value.indexOf('/')
  if (slash >= 0) {
    const address = value.slice(0, slash)
    const bits = value.slice(slash + 1)
    const family = isIP(address)
    if (family === 0) refuse('is not a network: the part before / is not an IP address')
    if (!/^\d{1,3}$/.test(bits) || Number(bits) > (family === 4 ? 32 : 128)) refuse(`is not a network: /${bits} is not a prefix length for IPv${family}`)
    return value
  }
  const family = isIP(value)
  if (family === 4) return `${value}/32`
  if (family === 6) return `${value}/128`
  if (HBA_KEYWORDS.has(value)) refuse(`is a pg_hba.conf keyword, not a host; name the standby`)
  if (value.length > 253 || !HOST_NAME.test(value)) refuse('is not an IP address, a network or a host name')
  return value
}

/**
 * The line setup adds for a standby: physical replication, plus database postgres, which standby-create's
 * check of the connection (and its slot creation) uses, for this role only, from this address, by SCRAM.
 */
export function hbaReplicationLine(role: string, address: string): string {
  return `host    replication,postgres    ${hbaQuote(role)}    ${address}    scram-sha-256`
}
