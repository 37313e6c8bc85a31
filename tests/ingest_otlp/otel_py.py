"""Sends log records to tailcast's /v1/logs with the OpenTelemetry Python
SDK and its OTLP/HTTP protobuf exporter (tests/ingest_otlp.rs runs it).

Usage: otel_py.py SERVICE COUNT gzip|none simple|batch
The endpoint comes from OTEL_EXPORTER_OTLP_LOGS_ENDPOINT. Record i has
time BASE + i*1000 ns, body "py line i ✓" (the last one a map body),
attributes order.id=i, user=ann, env=record; the resource has
service.name=SERVICE and env=resource; record 0 is inside a span whose
trace and span ids are printed. Prints one line per export and "done N";
exits 1 if any export failed.
"""

import sys

from opentelemetry import trace
from opentelemetry._logs import SeverityNumber
from opentelemetry.exporter.otlp.proto.http import Compression
from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import BatchLogRecordProcessor, SimpleLogRecordProcessor
from opentelemetry.sdk.resources import Resource

BASE = 1_796_623_200_000_000_000
TRACE_ID = 0x5B8EFFF798038103D269B633813FC60C
SPAN_ID = 0xEEE19B7EC3C1B174

service, count, compression, mode = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
failures = []


class CheckedExporter(OTLPLogExporter):
    """The exporter, printing what each export returned."""

    def export(self, batch):
        result = super().export(batch)
        print(f"export {len(batch)} records: {result.name}", flush=True)
        if result.name != "SUCCESS":
            failures.append(result)
        return result


exporter = CheckedExporter(
    compression=Compression.Gzip if compression == "gzip" else Compression.NoCompression,
    timeout=10,
)
processor = (
    SimpleLogRecordProcessor(exporter)
    if mode == "simple"
    else BatchLogRecordProcessor(exporter, max_export_batch_size=512, schedule_delay_millis=60_000)
)
provider = LoggerProvider(resource=Resource.create({"service.name": service, "env": "resource"}))
provider.add_log_record_processor(processor)
logger = provider.get_logger("tailcast.ingest.test", "1.0")

span = trace.NonRecordingSpan(
    trace.SpanContext(
        trace_id=TRACE_ID, span_id=SPAN_ID, is_remote=False, trace_flags=trace.TraceFlags(1)
    )
)
in_span = trace.set_span_in_context(span)
print(f"trace_id {TRACE_ID:032x} span_id {SPAN_ID:016x}", flush=True)

levels = [
    (SeverityNumber.INFO, None),
    (SeverityNumber.WARN, "WARNING"),
    (SeverityNumber.ERROR, None),
]
for i in range(count):
    number, text = levels[i % 3]
    body = {"k": i, "ok": True} if i == count - 1 else f"py line {i} ✓"
    logger.emit(
        timestamp=BASE + i * 1000,
        context=in_span if i == 0 else None,
        severity_number=number,
        severity_text=text,
        body=body,
        attributes={"order.id": i, "user": "ann", "env": "record"},
    )

provider.force_flush()
provider.shutdown()
print(f"done {count}", flush=True)
sys.exit(1 if failures else 0)
