// Drives the npm `winston-loki` transport (protobuf + snappy, Basic auth)
// against a tailcast on loopback: node winston_loki.js URL TOKEN
// Logs four lines through one winston logger, waits until the transport
// has had every batch answered, and prints what it used. Exits 1 on any
// transport error. Modules come from NODE_PATH (.ci/ingest-loki.sh).
const { createLogger } = require('winston')
const LokiTransport = require('winston-loki')

const [url, token] = process.argv.slice(2)
let failed = false
const transport = new LokiTransport({
  host: url,
  basicAuth: `loki:${token}`,
  // Sent unescaped by winston-loki in the protobuf label string.
  labels: { app: 'winston-demo', note: 'say "hi", C:\\tmp\\' },
  json: false,
  batching: true,
  interval: 0.05,
  clearOnError: true,
  onConnectionError: (err) => { failed = true; console.error(`winston-loki error: ${err.message}`) }
})
const logger = createLogger({ transports: [transport] })

async function main () {
  console.log(`content-type ${transport.batcher.contentType}`)
  for (let i = 0; i < 3; i++) logger.info(`winston line ${i}`)
  logger.warn('winston warning')
  // Let winston hand the lines to the transport, then wait for the answers.
  await new Promise((resolve) => setImmediate(resolve))
  await transport.flush()
  await transport.close()
  console.log(failed ? 'failed' : 'sent 4')
  process.exit(failed ? 1 : 0)
}
main().catch((err) => { console.error(err); process.exit(1) })
