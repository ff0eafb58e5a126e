// Octokit through the p2p-cache sidecar's API cache.
//
// usage: GITHUB_TOKEN=... node octokit.mjs [OWNER/REPO]    (default $GITHUB_REPOSITORY)
//        npm install @octokit/rest   (once, next to this file)
//
// The API base is GITHUB_API_URL, as for @actions/github, and defaults to the sidecar's `github`
// upstream. On a GitHub Actions runner, GITHUB_API_URL is always set (to https://api.github.com),
// and a workflow's `env:` can't override GITHUB_* variables. Set it in the step's shell instead:
//   GITHUB_API_URL=http://127.0.0.1:9080/github node octokit.mjs
import { Octokit } from '@octokit/rest'

const baseUrl = process.env.GITHUB_API_URL ?? 'http://127.0.0.1:9080/github'
const [owner, repo] = (process.argv[2] ?? process.env.GITHUB_REPOSITORY ?? '').split('/')
if (owner === undefined || owner === '' || repo === undefined || repo === '') {
  console.error('usage: node octokit.mjs OWNER/REPO (or set GITHUB_REPOSITORY)')
  process.exit(2)
}

// With a token, each GET is revalidated upstream with that token: REVALIDATED (a 304 from GitHub,
// no rate limit spent) after the first call. Without a token, public answers are HIT while fresh.
const octokit = new Octokit({ auth: process.env.GITHUB_TOKEN, baseUrl })

/** One line per call: what was asked, and where the answer came from. */
function show (what, res) {
  const cache = res.headers['x-cache'] ?? '(none: this call did not go through p2p-cache)'
  console.log(`${what}: ${res.status} X-Cache: ${cache} X-RateLimit-Remaining: ${res.headers['x-ratelimit-remaining'] ?? '-'}`)
}

console.log(`API: ${baseUrl}`)
const res = await octokit.rest.repos.get({ owner, repo })
show(`repos.get ${res.data.full_name}`, res)

// Pagination stays on the cache: the sidecar rewrites the Link URLs to point at itself.
// (A repository with issues turned off answers 410.)
let page = 0
try {
  for await (const issues of octokit.paginate.iterator(octokit.rest.issues.listForRepo, { owner, repo, per_page: 100 })) {
    show(`issues.listForRepo page ${++page} (${issues.data.length} issues)`, issues)
  }
} catch (err) {
  if (err.status !== 410) throw err
  console.log(`issues.listForRepo: 410 ${err.message}`)
}
