import assert from 'node:assert/strict'
import { closestCommand, unknownVariables } from '../../../src/config/unknown-variables.js'
import { OPTIONS } from '../../../src/config/options.js'

const KNOWN = Object.values(OPTIONS).map(o => o.env)

describe('unknown CACHE_* variables and commands: typos are named with what was meant', () => {
  it('suggests the option a typo most likely meant', () => {
    assert.deepEqual(unknownVariables({ CACHE_BOOTSTRAP_PEER: 'x', CACHE_MAXSIZE: '1GB' }, KNOWN), [
      { name: 'CACHE_BOOTSTRAP_PEER', suggestion: 'CACHE_BOOTSTRAP_PEERS' },
      { name: 'CACHE_MAXSIZE', suggestion: 'CACHE_MAX_SIZE' }
    ])
  })

  it('names a CACHE_* variable that is nowhere near an option without a suggestion', () => {
    assert.deepEqual(unknownVariables({ CACHE_SOMETHING_ELSE_ENTIRELY: '1' }, KNOWN), [{ name: 'CACHE_SOMETHING_ELSE_ENTIRELY' }])
  })

  it('ignores known options and variables of other programs, and lists the rest in name order', () => {
    const env = { CACHE_DIR: '/d', CACHE_MAX_SIZE: '1GB', PATH: '/bin', CACHE: 'x', NPM_CACHE_DIR: '/n', CACHE_ZZZ: '1', CACHE_AAA: '1' }
    assert.deepEqual(unknownVariables(env, KNOWN).map(u => u.name), ['CACHE_AAA', 'CACHE_ZZZ'])
    assert.deepEqual(unknownVariables({}, KNOWN), [])
  })

  it('suggests a command two edits away or less, and nothing further', () => {
    const commands = ['serve', 'warm', 'stats', 'gc', 'id', 'diagnose', 'healthcheck', 'swarm-key']
    assert.equal(closestCommand('statz', commands), 'stats')
    assert.equal(closestCommand('diagnsoe', commands), 'diagnose')
    assert.equal(closestCommand('swarmkey', commands), 'swarm-key')
    assert.equal(closestCommand('completely-different', commands), undefined)
  })
})
