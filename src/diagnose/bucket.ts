import { hostname } from 'node:os'
import type { Config } from '../config/options.js'
import { Bucket } from '../bucket/bucket.js'
import { formatBucketUrl } from '../bucket/bucket-url.js'
import { fail, ok, skip, warn, type Finding } from './finding.js'
import { readBounded } from '../io/bounded-body.js'

/** How long each bucket request of the check may take. */
const REQUEST_TIMEOUT_MS = 10_000
/** A clock this far off the bucket's is reported (S3 refuses signatures 15 minutes off). */
const SKEW_WARN_MS = 60_000
const SKEW_FAIL_MS = 15 * 60_000

/**
 * The bucket tier (issue 27): CACHE_S3_URL answers with this host's credentials, takes a write
 * and gives it back (the object `diagnose/<host name>` under the prefix, left for the bucket's
 * lifecycle rule), and its clock agrees with this host's; a running sidecar's bucket errors and
 * dropped uploads. Skipped without CACHE_S3_URL.
 */
export async function checkBucket (config: Config, stats: Record<string, unknown> | undefined): Promise<Finding[]> {
  if (config.s3Url === undefined) {
    return [skip('bucket.reachable', 'CACHE_S3_URL is unset: no second tier (what no runner holds comes from the upstream)')]
  }
  const url = formatBucketUrl(config.s3Url)
  const bucket = new Bucket({ url: config.s3Url, endpoint: config.s3Endpoint, forcePathStyle: config.s3ForcePathStyle })
  const facts = { bucket: url, endpoint: config.s3Endpoint ?? 'AWS S3' }
  const findings: Finding[] = []
  const key = `diagnose/${hostname().replace(/[^A-Za-z0-9._-]/g, '_').slice(0, 100) || 'host'}`
  try {
    let skew: number
    try {
      skew = await bucket.clockSkewMs(key, { signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS) })
    } catch (err) {
      return [
        fail(
          'bucket.reachable',
          `${url} did not answer (${(err as Error).message})`,
          'check CACHE_S3_ENDPOINT (and CACHE_S3_FORCE_PATH_STYLE for MinIO or Ceph), the network path to it, and AWS_REGION for AWS',
          { ...facts, error: (err as Error).message }
        )
      ]
    }
    findings.push(ok('bucket.reachable', `${url} answers`, facts))
    const secs = Math.round(skew / 1000)
    if (Math.abs(skew) >= SKEW_FAIL_MS) {
      findings.push(
        fail(
          'bucket.clock',
          `this host's clock is ${secs} s off the bucket's: S3 refuses requests signed more than 15 minutes off`,
          'synchronise the clock (chrony, systemd-timesyncd)',
          { skewS: secs }
        )
      )
    } else if (Math.abs(skew) >= SKEW_WARN_MS) {
      findings.push(
        warn(
          'bucket.clock',
          `this host's clock is ${secs} s off the bucket's`,
          'synchronise the clock (chrony, systemd-timesyncd) before it drifts past 15 minutes, when S3 refuses every request',
          { skewS: secs }
        )
      )
    } else {
      findings.push(ok('bucket.clock', `this host's clock agrees with the bucket's (${secs} s)`, { skewS: secs }))
    }
    const probe = Buffer.from(`p2p-cache diagnose ${new Date().toISOString()}`)
    try {
      const signal = AbortSignal.timeout(REQUEST_TIMEOUT_MS)
      await bucket.put(key, probe, { contentType: 'text/plain', signal })
      const back = await bucket.get(key, { signal })
      const read = back === undefined ? Buffer.alloc(0) : await readBounded(back.body, probe.byteLength) ?? Buffer.alloc(0)
      if (!read.equals(probe)) {
        throw new Error(back === undefined ? 'the object written was not there' : 'the object read back differs from the one written')
      }
      findings.push(ok('bucket.writable', `${url} takes a write and gives it back (${key})`, { key }))
    } catch (err) {
      findings.push(
        fail(
          'bucket.writable',
          `${url} refused a write or a read of it (${(err as Error).message})`,
          "allow s3:PutObject and s3:GetObject on the prefix to this host's credentials (the README has the policy); nothing is cached in the bucket until then",
          { key, error: (err as Error).message }
        )
      )
    }
  } finally {
    bucket.close()
  }
  const count = (name: string): number => typeof stats?.[name] === 'number' ? stats[name] : 0
  if (count('s3_errors') > 0 || count('s3_uploads_dropped') > 0) {
    findings.push(
      warn(
        'bucket.live',
        `the running sidecar counted ${count('s3_errors')} bucket errors and ${count('s3_uploads_dropped')} dropped uploads`,
        'read its log lines with "component":"bucket" for the failing requests',
        { errors: count('s3_errors'), dropped: count('s3_uploads_dropped'), bad: count('s3_bad_objects') }
      )
    )
  }
  return findings
}
