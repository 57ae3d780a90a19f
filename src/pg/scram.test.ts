import { describe, test } from 'node:test'
import assert from 'node:assert/strict'
import { scramPasswordNew, scramPasswordProblem, scramSecret, scramSecretMatches } from './scram.js'

describe('SCRAM secrets', () => {
  test('a secret accepts its own password and no other', () => {
    const password = `it's a \\ "$$" secret`
    const secret = scramSecret(password)
    assert.match(secret, /^SCRAM-SHA-256\$4096:[A-Za-z0-9+/=]+\$[A-Za-z0-9+/=]+:[A-Za-z0-9+/=]+$/)
    assert.equal(scramSecretMatches(secret, password), true)
    assert.equal(scramSecretMatches(secret, `${password} `), false)
    assert.equal(scramSecretMatches(null, password), false)
    assert.equal(scramSecretMatches('md5abcdef', password), false)
  })

  test('a secret PostgreSQL 15 stored (password "replicate me") is recognised', () => {
    // From pg_authid after: set password_encryption = 'scram-sha-256'; create role r password 'replicate me'
    const stored = 'SCRAM-SHA-256$4096:HPfGWIXRefdXVLTtRVvKfA==$uoIUiHGlKCViWMnClpPFamWjyF8jRPoBOuaLwH4nLSA=:nNOCJIg1Ysj+sKCfSORz6tr/6LRNFp8LyR+gzi++CUQ='
    assert.equal(scramSecretMatches(stored, 'replicate me'), true)
    assert.equal(scramSecretMatches(stored, 'replicate me!'), false)
  })

  test('passwords walden cannot hash the way PostgreSQL does are refused', () => {
    assert.match(scramPasswordProblem('two\nlines')!, /line break/)
    assert.match(scramPasswordProblem('caf\u00e9')!, /printable ASCII/)
    assert.match(scramPasswordProblem('')!, /empty/)
    assert.equal(scramPasswordProblem(scramPasswordNew()), undefined)
  })
})
