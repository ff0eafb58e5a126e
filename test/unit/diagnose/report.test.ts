import assert from 'node:assert/strict'
import { fail, ok, skip, warn, type Finding } from '../../../src/diagnose/finding.js'
import { REPORT_SCHEMA, renderText, verdictOf, type Report } from '../../../src/diagnose/report.js'

function report (findings: Finding[], unusable = false): Report {
  return {
    schema: REPORT_SCHEMA,
    version: '1.2.3',
    startedAt: '2026-01-01T00:00:00.000Z',
    durationMs: 42,
    probePeerId: null,
    sidecar: null,
    network: { mode: 'bridge', container: true },
    ...verdictOf(findings, unusable),
    findings
  }
}

describe('diagnose report: verdict, exit code and the text form', () => {
  it('warnings alone are healthy (exit 0); any failure is problems (exit 1)', () => {
    assert.deepEqual(verdictOf([ok('a', 'x'), warn('b', 'y', 'fix')], false), {
      verdict: 'healthy',
      exitCode: 0,
      counts: { ok: 1, warn: 1, fail: 0, skip: 0 }
    })
    assert.deepEqual(verdictOf([ok('a', 'x'), fail('b', 'y', 'fix'), skip('c', 'z')], false), {
      verdict: 'problems',
      exitCode: 1,
      counts: { ok: 1, warn: 0, fail: 1, skip: 1 }
    })
  })

  it('unusable input (a malformed --bootstrap address) wins over failures: exit 2', () => {
    assert.deepEqual(verdictOf([fail('bootstrap.address', 'malformed', 'fix')], true).exitCode, 2)
    assert.equal(verdictOf([], true).verdict, 'unusable-input')
  })

  it('text: one line per finding with its mark, the fix under it, and a summary line', () => {
    const text = renderText(
      report([ok('clock', 'in sync'), warn('storage.space', 'little room', 'lower CACHE_MAX_SIZE'), skip('sidecar.http', 'none running')])
    )
    assert.equal(
      text,
      [
        'p2p-cache diagnose 1.2.3 (bridge network, in a container)',
        '  ✓ clock          in sync',
        '  ! storage.space  little room',
        '                   fix: lower CACHE_MAX_SIZE',
        '  - sidecar.http   none running',
        '',
        'healthy: 1 ok, 1 warning, 0 failures (42 ms)',
        ''
      ].join('\n')
    )
  })

  it('text: bootstrap findings are grouped under their peer, indented', () => {
    const peer = '/ip4/10.0.0.7/tcp/9000'
    const text = renderText(report([
      ok('bootstrap.address', 'parses', undefined, peer),
      fail('bootstrap.tcp', 'refused', 'start the peer', undefined, peer),
      ok('clock', 'in sync')
    ]))
    assert.equal(
      text,
      [
        'p2p-cache diagnose 1.2.3 (bridge network, in a container)',
        `  bootstrap peer ${peer}`,
        '    ✓ bootstrap.address  parses',
        '    ✗ bootstrap.tcp      refused',
        '                         fix: start the peer',
        '  ✓ clock              in sync',
        '',
        'problems found: 2 ok, 0 warnings, 1 failure (42 ms)',
        ''
      ].join('\n')
    )
  })
})
