import assert from 'node:assert/strict'
import { lruEvictable, planEviction, planRoom, type EvictionCandidate, type EvictionPolicy } from '../../../src/store/eviction.js'
import type { Digest } from '../../../src/oci/digest.js'

const MB = 1_000_000
const now = 10_000_000
const policy: EvictionPolicy = { maxSize: 10 * MB, highWatermark: 0.9, lowWatermark: 0.5, minAgeMs: 0 }
const nobodyReads = (): boolean => false

/** A blob named by one letter (the 8th character of its digest), last accessed at `accessedAt`. */
function c (name: string, size: number, accessedAt: number, pinned = false): EvictionCandidate {
  return {
    digest: `sha256:${name.padEnd(64, '0')}` as Digest,
    record: { size, accessedAt, createdAt: 0, mtimeMs: 0, ...(pinned ? { pinned } : {}) }
  }
}

function names (victims: EvictionCandidate[]): string[] {
  return victims.map(v => v.digest[7] ?? '?')
}

describe('planEviction: which blobs go when the store passes its high watermark (docs/design.md §3.5)', () => {
  it('does nothing up to and including the high watermark', () => {
    const all = [c('a', 4 * MB, 0), c('b', 5 * MB, 0)]
    assert.deepEqual(planEviction(all, 8 * MB, policy, now, nobodyReads).victims, [])
    assert.deepEqual(planEviction(all, 9 * MB, policy, now, nobodyReads).victims, [], 'exactly at 90 % stays')
  })

  it('removes least recently used first, down to the low watermark, skipping pinned and in-use blobs', () => {
    const all = [c('a', 3 * MB, 10), c('b', 3 * MB, 5, true), c('c', 3 * MB, 1), c('d', 3 * MB, 20)]
    const plan = planEviction(all, 12 * MB, policy, now, d => d.startsWith('sha256:d'))
    assert.deepEqual(names(plan.victims), ['c', 'a'])
    assert.equal(plan.overrodeMinAge, false)
  })

  it('stops as soon as the low watermark is reached instead of emptying the store', () => {
    const all = [c('a', 2 * MB, 1), c('b', 2 * MB, 2), c('c', 2 * MB, 3), c('d', 2 * MB, 4), c('e', 1.5 * MB, 5)]
    const plan = planEviction(all, 9.5 * MB, policy, now, nobodyReads)
    assert.deepEqual(names(plan.victims), ['a', 'b', 'c'], '9.5 → 3.5 MB: the third one reaches 5 MB or less')
  })

  it('keeps blobs used within the minimum age while the store is within its hard bound', () => {
    const young = { ...policy, minAgeMs: 60_000 }
    const all = [c('a', 3 * MB, now - 1000), c('b', 3 * MB, now - 120_000), c('c', 3.5 * MB, now - 10)]
    const plan = planEviction(all, 9.5 * MB, young, now, nobodyReads)
    assert.deepEqual(names(plan.victims), ['b'], 'only the one older than a minute goes, though the low watermark is not reached')
    assert.equal(plan.overrodeMinAge, false)
  })

  it('over the hard bound, recently used blobs go too and the plan says so', () => {
    const young = { ...policy, minAgeMs: 1000 }
    const all = [c('a', 4 * MB, now - 10), c('b', 4 * MB, now - 5), c('c', 3 * MB, now - 1)]
    const plan = planEviction(all, 11 * MB, young, now, nobodyReads)
    assert.deepEqual(names(plan.victims), ['a'], 'only down to the hard bound, not the low watermark')
    assert.equal(plan.overrodeMinAge, true)
    assert.equal(planEviction(all, 9.5 * MB, young, now, nobodyReads).victims.length, 0)
  })

  it('never takes pinned or in-use blobs, even when that leaves the store over its hard bound', () => {
    const all = [c('a', 6 * MB, 1, true), c('b', 6 * MB, 2)]
    const plan = planEviction(all, 12 * MB, policy, now, d => d.startsWith('sha256:b'))
    assert.deepEqual(plan.victims, [])
  })

  it('force (gc) prunes to the low watermark even below the high one, still honouring the minimum age', () => {
    const all = [c('a', 3 * MB, now - 100_000), c('b', 3 * MB, now - 90_000), c('c', 2 * MB, now - 10)]
    assert.deepEqual(planEviction(all, 8 * MB, policy, now, nobodyReads).victims, [], 'not forced: below 90 %')
    assert.deepEqual(names(planEviction(all, 8 * MB, policy, now, nobodyReads, true).victims), ['a'])
    const young = { ...policy, minAgeMs: 95_000 }
    assert.deepEqual(names(planEviction(all, 8 * MB, young, now, nobodyReads, true).victims), ['a'], 'b is younger than the minimum age')
  })
})

describe('planRoom: what goes when the filesystem itself is full', () => {
  it('frees at least the bytes asked for, least recently used first, whatever their age', () => {
    const all = [c('a', 100, now), c('b', 300, now - 1), c('c', 50, now - 2)]
    assert.deepEqual(names(planRoom(all, 200, nobodyReads, now)), ['c', 'b'])
    assert.deepEqual(names(planRoom(all, 50, nobodyReads, now)), ['c'])
  })

  it('returns fewer than asked (or none) when only pinned or in-use blobs are left', () => {
    const all = [c('a', 100, 1, true), c('b', 300, 2), c('c', 50, 3)]
    assert.deepEqual(names(planRoom(all, 10_000, d => d.startsWith('sha256:b'), now)), ['c'])
    assert.deepEqual(planRoom([c('a', 100, 1, true)], 1, nobodyReads, now), [])
  })

  it('asks for nothing when no bytes are needed', () => {
    assert.deepEqual(planRoom([c('a', 100, 1)], 0, nobodyReads, now), [])
  })
})

describe('lruEvictable', () => {
  it("orders by last access and leaves the caller's list as it was", () => {
    const all = [c('a', 1, 30), c('b', 1, 10, true), c('c', 1, 20), c('d', 1, 5)]
    const before = names(all)
    assert.deepEqual(names(lruEvictable(all, d => d.startsWith('sha256:d'), now)), ['c', 'a'])
    assert.deepEqual(names(all), before)
  })
})

describe("kept blobs (keepUntil: the local namespace's CACHE_LOCAL_TTL)", () => {
  const kept = (name: string, size: number, accessedAt: number, keepUntil: number): EvictionCandidate => {
    const candidate = c(name, size, accessedAt)
    return { ...candidate, record: { ...candidate.record, keepUntil } }
  }

  it('are never chosen while kept, not even past the hard bound or on a full filesystem, and are chosen like the rest once the time has passed', () => {
    const all = [kept('a', 4 * MB, 1, now + 1), c('b', 4 * MB, 2), kept('c', 4 * MB, 3, now)]
    const plan = planEviction(all, 12 * MB, policy, now, nobodyReads)
    assert.deepEqual(names(plan.victims), ['b', 'c'], "a is kept one more ms; c's time is up")
    assert.deepEqual(names(planRoom(all, 100 * MB, nobodyReads, now)), ['b', 'c'])
    assert.deepEqual(names(lruEvictable(all, nobodyReads, now + 1)), ['a', 'b', 'c'])
  })
})
