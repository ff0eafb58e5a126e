import assert from 'node:assert/strict'
import { Command } from 'commander'
import { addConfigOptions, configFlags } from '../../../src/cli/config-options.js'
import { OPTIONS } from '../../../src/config/options.js'

describe('config options on the command line', () => {
  it('adds one flag per option key, its help naming the variable and the default', () => {
    const command = addConfigOptions(new Command('x'), ['maxSize', 'httpsAddr'])
    assert.deepEqual(command.options.map(o => o.long), ['--max-size', '--https-addr'])
    const [maxSize, httpsAddr] = command.options
    assert.equal(maxSize?.description, `${OPTIONS.maxSize.description} [env CACHE_MAX_SIZE] (default 20GB)`)
    assert.equal(httpsAddr?.description, `${OPTIONS.httpsAddr.description} [env CACHE_HTTPS_ADDR]`, 'an empty default is not shown')
  })

  it('a flag has no commander default: an unset flag leaves the environment in charge', () => {
    const command = addConfigOptions(new Command('x'), ['maxSize', 'logLevel']).exitOverride()
    command.parse(['--log-level', 'debug'], { from: 'user' })
    assert.deepEqual(configFlags(command.opts()), { logLevel: 'debug' })
  })

  it('keeps only string values of known options', () => {
    assert.deepEqual(configFlags({ maxSize: '1GB', json: true, url: 'http://x', dir: undefined, bootstrap: ['a'] }), { maxSize: '1GB' })
  })
})
