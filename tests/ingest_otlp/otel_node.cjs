// Sends log records to tailcast's /v1/logs with the OpenTelemetry JS logs
// SDK and @opentelemetry/exporter-logs-otlp-http, which sends OTLP JSON
// (tests/ingest_otlp.rs runs it with NODE_PATH at the installed modules).
//
// Usage: node otel_node.cjs SERVICE COUNT
// The endpoint comes from OTEL_EXPORTER_OTLP_LOGS_ENDPOINT. Record i has
// time BASE_MS + i ms, body "node line i" (the last one a map body),
// attributes order.id=i, user=bob, ratio=0.5, ok=true. Prints one line per
// export and "done N"; exits 1 if any export failed.
'use strict';

const { SeverityNumber } = require('@opentelemetry/api-logs');
const { OTLPLogExporter } = require('@opentelemetry/exporter-logs-otlp-http');
const { resourceFromAttributes } = require('@opentelemetry/resources');
const { LoggerProvider, BatchLogRecordProcessor } = require('@opentelemetry/sdk-logs');

const BASE_MS = 1796623200000;
const [service, countText] = process.argv.slice(2);
const count = Number(countText);
let failures = 0;

const exporter = new OTLPLogExporter({ url: process.env.OTEL_EXPORTER_OTLP_LOGS_ENDPOINT });
const exportOnce = exporter.export.bind(exporter);
exporter.export = (logs, done) =>
  exportOnce(logs, (result) => {
    console.log(`export ${logs.length} records: code ${result.code}${result.error ? ' ' + result.error : ''}`);
    if (result.code !== 0) failures += 1;
    done(result);
  });

const provider = new LoggerProvider({
  resource: resourceFromAttributes({ 'service.name': service }),
  processors: [new BatchLogRecordProcessor(exporter, { maxExportBatchSize: 512, scheduledDelayMillis: 60000 })],
});
const logger = provider.getLogger('tailcast.ingest.node', '1.0');
const levels = [
  [SeverityNumber.DEBUG, undefined],
  [SeverityNumber.INFO, 'Info'],
  [SeverityNumber.FATAL, undefined],
];
for (let i = 0; i < count; i += 1) {
  const [severityNumber, severityText] = levels[i % 3];
  logger.emit({
    timestamp: new Date(BASE_MS + i),
    severityNumber,
    severityText,
    body: i === count - 1 ? { k: i, list: [1, 'two'] } : `node line ${i}`,
    attributes: { 'order.id': i, user: 'bob', ratio: 0.5, ok: true },
  });
}

(async () => {
  await provider.forceFlush();
  await provider.shutdown();
  console.log(`done ${count}`);
  process.exit(failures ? 1 : 0);
})();
