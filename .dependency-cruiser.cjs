/**
 * The layers of src/ (issue 28; drawn in the README's "Architecture" section). A folder may import
 * its own layer's folders and the layers below it, never one above; no module cycle crosses a
 * folder. `npm run lint` checks it (dependency-cruiser, swc parser: TypeScript 7 has no JS API).
 */
const LAYERS = [
  ['oci', 'keys', 'clock', 'io', 'log', 'metrics', 'version', 'errors', 'lifecycle'], // primitives
  ['http'], // HTTP server primitives (listen, limits, ranges, answers)
  ['store', 'upstream', 'p2p', 'bucket'], // sources
  ['resolver'], // local store → peers → bucket → upstream
  ['records'], // small records over the swarm
  ['registry', 'apicache', 'proxy', 'push', 'actionscache', 'admin', 'ui'], // fronts
  ['config'], // the option table (parsers of the fronts' and sources' values)
  ['sidecar', 'diagnose'], // wiring (src/sidecar/) and the checks
  ['cli']
]

const folder = name => `^src/${name}/`
const above = i => LAYERS.slice(i + 1).flat()

module.exports = {
  forbidden: [
    ...LAYERS.flatMap((layer, i) => i === LAYERS.length - 1
      ? []
      : [{
          name: `layer-${layer.join('-')}`,
          comment: `${layer.join(', ')} may not import a layer above it (${above(i).join(', ')})`,
          severity: 'error',
          from: { path: layer.map(folder).join('|') },
          to: { path: above(i).map(folder).join('|') }
        }]),
    {
      name: 'no-cycle-across-folders',
      comment: 'an import cycle that crosses folders ties two concerns together',
      severity: 'error',
      from: { path: '^src/([^/]+)/' },
      to: { circular: true, viaSomeNot: '^src/$1/' }
    },
    {
      name: 'known-folder',
      comment: 'every folder of src/ has a layer: add a new one to LAYERS',
      severity: 'error',
      from: { path: '^src/', pathNot: [...LAYERS.flat().map(folder), '^src/[^/]+[.]ts$'].join('|') },
      to: {}
    }
  ],
  options: {
    parser: 'swc',
    tsPreCompilationDeps: true,
    doNotFollow: { path: 'node_modules' },
    exclude: { path: '^(dist|node_modules)/' }
  }
}
