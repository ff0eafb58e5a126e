import assert from 'node:assert/strict'
import { isRepositoryName, isTag } from '../../../src/oci/reference.js'

describe('reference: repository names and tags (distribution grammar)', () => {
  it('accepts the names registries use', () => {
    for (const name of ['alpine', 'library/alpine', 'org/team/img', 'a.b', 'a_b', 'a__b', 'a-b', 'a---b', 'x0/y1']) {
      assert.equal(isRepositoryName(name), true, name)
    }
  })

  it('rejects names that could leave the data dir or are not in the grammar', () => {
    for (
      const name of ['', '..', '../etc', '/alpine', 'alpine/', 'a//b', 'a%2fb', 'Alpine', 'a___b', '-a', 'a-', 'a.', '.a', 'a b', 'a:b']
    ) {
      assert.equal(isRepositoryName(name), false, JSON.stringify(name))
    }
  })

  it('bounds a name at 255 characters', () => {
    const component = 'a'.repeat(50)
    const name255 = `${[component, component, component, component, component].join('/')}`
    assert.equal(name255.length, 254)
    assert.equal(isRepositoryName(`${name255}b`), true)
    assert.equal(isRepositoryName(`${name255}bc`), false)
  })

  it('tags: word characters, dots and dashes, up to 128, not starting with . or -', () => {
    for (const tag of ['latest', '3.20', 'v1.2.3-rc_1', '_x', 'A'.repeat(128)]) assert.equal(isTag(tag), true, tag)
    for (const tag of ['', '.hidden', '-x', 'a/b', 'a:b', 'a b', 'A'.repeat(129), 'sha256@x']) assert.equal(isTag(tag), false, tag)
  })
})
