import assert from 'node:assert/strict'
import { isTagKey, parseTagKey, tagKey } from '../../../src/oci/tag-key.js'

describe('tag keys: the swarm-wide name of a tag resolution', () => {
  it('round-trips upstream (with a port), nested repository, tag and accept class', () => {
    const key = tagKey('registry.local:5000', 'org/team/img', 'v1.2.3', 'single')
    assert.equal(key, 'tag:registry.local:5000/org/team/img:v1.2.3#single')
    assert.deepEqual(parseTagKey(key), { upstream: 'registry.local:5000', repo: 'org/team/img', tag: 'v1.2.3', acceptClass: 'single' })
    assert.equal(isTagKey(key), true)
  })

  it('keeps index and single resolutions apart', () => {
    assert.notEqual(tagKey('docker.io', 'library/alpine', 'latest', 'index'), tagKey('docker.io', 'library/alpine', 'latest', 'single'))
    assert.equal(parseTagKey('tag:docker.io/library/alpine:latest#index')?.acceptClass, 'index')
  })

  it('refuses keys a lying peer could announce: bad class, bad repository, bad tag, not a tag key', () => {
    for (const key of [
      'tag:docker.io/library/alpine:latest#all',
      'tag:docker.io/Library/Alpine:latest#index',
      'tag:docker.io/../etc:latest#index',
      'tag:docker.io/alpine:.hidden#index',
      'tag:docker.io/alpine#index',
      'sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855',
      'tag:docker.io/alpine:latest#index\n'
    ]) {
      assert.equal(parseTagKey(key), undefined, key)
      assert.equal(isTagKey(key), false, key)
    }
  })
})
