import assert from 'node:assert/strict'
import {
  InvalidImageReferenceError,
  InvalidPlatformError,
  formatPlatform,
  hostPlatform,
  manifestReference,
  parseImageReference,
  parsePlatform,
  platformMatches,
  type ImageReference
} from '../../../src/oci/image-ref.js'

const DIGEST = 'sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855'

function parts (input: string): Omit<ImageReference, 'input'> {
  const { host, repository, tag, digest } = parseImageReference(input)
  return { host, repository, tag, digest }
}

function rejects (input: string, reason: RegExp): void {
  assert.throws(() => parseImageReference(input), (err: unknown) => {
    assert.ok(err instanceof InvalidImageReferenceError, `${input}: ${String(err)}`)
    assert.equal(err.code, 'REFERENCE_INVALID')
    assert.match(err.message, reason, input)
    assert.match(err.message, /expected \[HOST\[:PORT\]\/\]NAME\[:TAG\]/, 'the message shows the expected form')
    return true
  })
}

describe('parseImageReference: docker-style references, split for the mirror', () => {
  it('a bare name has no host (Docker Hub) and no tag; the tag defaults to latest when asked', () => {
    assert.deepEqual(parts('alpine'), { host: undefined, repository: 'alpine', tag: undefined, digest: undefined })
    assert.equal(manifestReference(parseImageReference('alpine')), 'latest')
    assert.deepEqual(parts('library/alpine:3.20'), { host: undefined, repository: 'library/alpine', tag: '3.20', digest: undefined })
  })

  it("the first component is a host only with a dot, a colon, or when it is localhost (docker's rule)", () => {
    assert.equal(parts('ghcr.io/org/img:tag').host, 'ghcr.io')
    assert.equal(parts('ghcr.io/org/img:tag').repository, 'org/img')
    assert.equal(parts('localhost/x').host, 'localhost')
    assert.equal(parts('myorg/img').host, undefined, 'a plain first component is part of the name')
    assert.equal(parts('myorg/img').repository, 'myorg/img')
  })

  it('a registry port is not mistaken for a tag', () => {
    assert.deepEqual(parts('localhost:5000/x:y'), { host: 'localhost:5000', repository: 'x', tag: 'y', digest: undefined })
    assert.deepEqual(parts('registry.local:5000/team/app'), {
      host: 'registry.local:5000',
      repository: 'team/app',
      tag: undefined,
      digest: undefined
    })
    assert.deepEqual(parts('[::1]:5000/x:1'), { host: '[::1]:5000', repository: 'x', tag: '1', digest: undefined })
    assert.equal(parts('10.0.0.2:5000/x').host, '10.0.0.2:5000')
  })

  it('the host is lowercased and index.docker.io becomes docker.io', () => {
    assert.equal(parts('GHCR.IO/org/img').host, 'ghcr.io')
    assert.deepEqual(parts('index.docker.io/library/alpine:3'), {
      host: 'docker.io',
      repository: 'library/alpine',
      tag: '3',
      digest: undefined
    })
    assert.equal(parts('docker.io/library/alpine').host, 'docker.io')
  })

  it('a digest wins over the tag when asking the registry, and both are kept', () => {
    const ref = parseImageReference(`ghcr.io/org/img:1.0@${DIGEST}`)
    assert.equal(ref.tag, '1.0')
    assert.equal(ref.digest, DIGEST)
    assert.equal(manifestReference(ref), DIGEST)
    assert.equal(ref.input, `ghcr.io/org/img:1.0@${DIGEST}`)
    assert.equal(manifestReference(parseImageReference(`alpine@${DIGEST}`)), DIGEST)
    assert.equal(manifestReference(parseImageReference('alpine:edge')), 'edge')
  })

  it('empty input, whitespace, a missing name: each rejected with the reason', () => {
    rejects('', /it is empty/)
    rejects('   ', /it is empty/)
    rejects('alpine :3', /whitespace/)
    rejects('ghcr.io/', /repository name is missing/)
    rejects(':latest', /repository name is missing/)
  })

  it('a bad digest says only sha256 is supported', () => {
    rejects('alpine@sha256:abc', /"sha256:abc" is not a digest: only sha256/)
    rejects(`alpine@sha512:${'a'.repeat(128)}`, /only sha256/)
    rejects('alpine@', /is not a digest/)
  })

  it('a bad tag or host is named in the message', () => {
    rejects('alpine:-x', /"-x" is not a valid tag/)
    rejects(`alpine:${'t'.repeat(129)}`, /is not a valid tag/)
    rejects('bad_host.io/x', /"bad_host.io" is not a registry host/)
    rejects('-bad.io/x', /is not a registry host/)
  })

  it('an uppercase repository is told apart from other bad names', () => {
    rejects('MyOrg/Img', /has uppercase letters; repository names are lowercase/)
    rejects('ghcr.io/org/a___b', /"org\/a___b" is not a repository name/)
  })

  it('a huge input is cut in the message', () => {
    const huge = `${'a'.repeat(5000)}:-`
    assert.throws(() => parseImageReference(huge), (err: unknown) => err instanceof Error && err.message.length < 1000)
  })
})

describe('platforms: os/arch[/variant] as in an image index', () => {
  it('parses and formats OCI platform names, lowercased', () => {
    assert.deepEqual(parsePlatform('linux/amd64'), { os: 'linux', architecture: 'amd64' })
    assert.deepEqual(parsePlatform('Linux/ARM/v7'), { os: 'linux', architecture: 'arm', variant: 'v7' })
    assert.equal(formatPlatform({ os: 'linux', architecture: 'arm64', variant: 'v8' }), 'linux/arm64/v8')
    assert.equal(formatPlatform({ os: 'linux', architecture: 'amd64', variant: '' }), 'linux/amd64')
  })

  it('rejects what is not OS/ARCH[/VARIANT] with an example of the form', () => {
    for (const text of ['linux', 'linux/', 'linux/arm/v7/x', 'linux amd64', '']) {
      assert.throws(
        () => parsePlatform(text),
        (err: unknown) => err instanceof InvalidPlatformError && /e\.g\. linux\/amd64/.test(err.message),
        text
      )
    }
  })

  it('matches index entries the way containerd does: arm64 is v8 and arm is v7 when unwritten', () => {
    assert.equal(platformMatches({ os: 'linux', architecture: 'arm64', variant: 'v8' }, { os: 'linux', architecture: 'arm64' }), true)
    assert.equal(platformMatches({ os: 'linux', architecture: 'arm', variant: 'v7' }, { os: 'linux', architecture: 'arm' }), true)
    assert.equal(
      platformMatches({ os: 'linux', architecture: 'arm', variant: 'v6' }, { os: 'linux', architecture: 'arm', variant: 'v7' }),
      false
    )
    assert.equal(
      platformMatches({ os: 'linux', architecture: 'arm' }, { os: 'linux', architecture: 'arm', variant: 'v5' }),
      true,
      'no variant wanted: any does'
    )
    assert.equal(platformMatches({ os: 'linux', architecture: 'amd64' }, { os: 'windows', architecture: 'amd64' }), false)
    assert.equal(platformMatches({ os: 'linux', architecture: 'amd64' }, { os: 'linux', architecture: 'arm64' }), false)
  })

  it('the host platform uses OCI names (amd64, not x64)', () => {
    const p = hostPlatform()
    assert.ok(['linux', 'windows'].includes(p.os))
    assert.notEqual(p.architecture, 'x64')
    assert.deepEqual(parsePlatform(formatPlatform(p)), p)
  })
})
