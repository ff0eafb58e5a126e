import assert from 'node:assert/strict'
import {
  DEFAULT_MANIFEST_ACCEPT,
  DOCKER_MANIFEST,
  DOCKER_MANIFEST_LIST,
  OCI_INDEX,
  OCI_MANIFEST,
  acceptClass,
  acceptedTypes,
  accepts,
  declaredMediaType,
  manifestType,
  manifestTypeOfBody,
  upstreamAccept
} from '../../../src/oci/media-types.js'

function json (value: unknown): Buffer {
  return Buffer.from(JSON.stringify(value))
}

describe('media types: Accept negotiation for manifests', () => {
  it('reads the types of an Accept header, one or repeated, dropping q-values and parameters', () => {
    assert.deepEqual(acceptedTypes(undefined), [])
    assert.deepEqual(acceptedTypes(`${OCI_MANIFEST};q=0.9, ${DOCKER_MANIFEST}`), [OCI_MANIFEST, DOCKER_MANIFEST])
    assert.deepEqual(acceptedTypes([OCI_INDEX, ` ${DOCKER_MANIFEST_LIST.toUpperCase()} ; q=0.5`]), [OCI_INDEX, DOCKER_MANIFEST_LIST])
    assert.deepEqual(acceptedTypes(' , ,'), [])
  })

  it('no Accept or a wildcard takes any manifest; a concrete list only its own types', () => {
    assert.equal(accepts([], OCI_INDEX), true)
    assert.equal(accepts(['*/*'], OCI_INDEX), true)
    assert.equal(accepts(['application/*'], DOCKER_MANIFEST), true)
    assert.equal(accepts([DOCKER_MANIFEST], OCI_MANIFEST), false)
    assert.equal(accepts([DOCKER_MANIFEST, OCI_MANIFEST], OCI_MANIFEST), true)
  })

  it('asks upstream for every known type when the client named none (distribution hides OCI manifests otherwise)', () => {
    for (const t of [OCI_MANIFEST, OCI_INDEX, DOCKER_MANIFEST, DOCKER_MANIFEST_LIST]) assert.ok(DEFAULT_MANIFEST_ACCEPT.includes(t), t)
    assert.equal(upstreamAccept([]), DEFAULT_MANIFEST_ACCEPT)
    assert.equal(upstreamAccept(['*/*']), DEFAULT_MANIFEST_ACCEPT)
    assert.equal(upstreamAccept([DOCKER_MANIFEST, '*/*']), DOCKER_MANIFEST, 'concrete types are passed on, wildcards dropped')
  })

  it('tag resolutions are cached per class: clients that take an index and those that do not', () => {
    assert.equal(acceptClass([]), 'index')
    assert.equal(acceptClass(['*/*']), 'index')
    assert.equal(acceptClass([DOCKER_MANIFEST_LIST, DOCKER_MANIFEST]), 'index')
    assert.equal(acceptClass([OCI_INDEX]), 'index')
    assert.equal(acceptClass([DOCKER_MANIFEST, OCI_MANIFEST]), 'single')
  })
})

describe('media types: what a manifest body is', () => {
  it('declaredMediaType is the mediaType field when it is a type we serve, else undefined', () => {
    assert.equal(declaredMediaType(json({ mediaType: OCI_INDEX, manifests: [] })), OCI_INDEX)
    assert.equal(declaredMediaType(json({ mediaType: 'application/vnd.oci.image.config.v1+json' })), undefined)
    assert.equal(declaredMediaType(json({ mediaType: 42 })), undefined)
    assert.equal(declaredMediaType(Buffer.from('{not json')), undefined)
    assert.equal(declaredMediaType(json(null)), undefined)
    assert.equal(declaredMediaType(json({ schemaVersion: 2 })), undefined)
  })

  it('manifestTypeOfBody falls back to the shape: manifests makes an index, config + layers a manifest', () => {
    assert.equal(manifestTypeOfBody(json({ schemaVersion: 2, manifests: [] })), OCI_INDEX)
    assert.equal(manifestTypeOfBody(json({ schemaVersion: 2, config: { digest: 'x' }, layers: [] })), OCI_MANIFEST)
    assert.equal(
      manifestTypeOfBody(json({ mediaType: DOCKER_MANIFEST, config: {}, layers: [] })),
      DOCKER_MANIFEST,
      'the declared type wins'
    )
    assert.equal(manifestTypeOfBody(json({ config: null, layers: [] })), undefined)
    assert.equal(manifestTypeOfBody(json({ config: {}, layers: 'x' })), undefined)
    assert.equal(manifestTypeOfBody(Buffer.from('<html>rate limited</html>')), undefined)
  })

  it('manifestType keeps a stated manifest type, and sees through a generic Content-Type', () => {
    const index = json({ manifests: [] })
    assert.equal(manifestType(DOCKER_MANIFEST_LIST, index), DOCKER_MANIFEST_LIST)
    assert.equal(manifestType('application/octet-stream', index), OCI_INDEX)
    assert.equal(manifestType('application/json', Buffer.from('not json')), 'application/json', 'what is neither keeps its stated type')
    assert.equal(manifestType(undefined, Buffer.from('not json')), undefined)
  })
})
