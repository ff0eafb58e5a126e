/**
 * Baseline for the local-hit rows: the plainest `node:http` file server. Every GET answers
 * 200 with the file named by BENCH_FILE, piped from fs.createReadStream (default
 * highWaterMark unless BENCH_FS_CHUNK_KIB is set). Prints "listening <port>" once bound.
 *
 * Kept as plain JavaScript run with `node --input-type=module -e` so the baseline process
 * carries no loader (tsx adds a hooks thread and ~40 MB of RSS), like the compiled sidecar.
 */
export const FILE_SERVER_SOURCE = `
import { createReadStream } from 'node:fs'
import { stat } from 'node:fs/promises'
import { createServer } from 'node:http'
import { pipeline } from 'node:stream/promises'

const file = process.env.BENCH_FILE
if (!file) { console.error('BENCH_FILE is not set'); process.exit(2) }
const chunkKiB = Number(process.env.BENCH_FS_CHUNK_KIB ?? '0')
const streamOpts = chunkKiB > 0 ? { highWaterMark: chunkKiB * 1024 } : {}

const server = createServer((req, res) => {
  (async () => {
    const { size } = await stat(file)
    res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': size })
    if (req.method === 'HEAD') { res.end(); return }
    await pipeline(createReadStream(file, streamOpts), res)
  })().catch(() => { res.destroy() })
})

server.listen(0, '127.0.0.1', () => { console.log('listening ' + server.address().port) })

const shutdown = () => { server.close(); server.closeAllConnections(); process.exit(0) }
process.on('SIGTERM', shutdown)
process.on('SIGINT', shutdown)
// The bench may die without stopping us (SIGKILL): once re-parented, exit.
const parent = process.ppid
setInterval(() => { if (process.ppid !== parent) shutdown() }, 1000).unref()
`
