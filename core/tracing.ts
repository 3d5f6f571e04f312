// OpenTelemetry tracing. A trace starts at ingest and continues through every stage and the sink:
// its context travels in the stream entry's `tp` field (W3C traceparent). Off unless
// OTEL_EXPORTER_OTLP_ENDPOINT is set (or a test installs an exporter): then no span is created and
// no `tp` is written, so tracing costs nothing when off.
import { context, propagation, ROOT_CONTEXT, SpanStatusCode, trace } from '@opentelemetry/api';
import type { Context, Span, Tracer } from '@opentelemetry/api';
import { W3CTraceContextPropagator } from '@opentelemetry/core';
import { BasicTracerProvider, SimpleSpanProcessor } from '@opentelemetry/sdk-trace-base';
import type { SpanExporter } from '@opentelemetry/sdk-trace-base';

export type { Span };
let enabled = false;
let shutdown: (() => Promise<void>) | undefined;

export function tracingEnabled(): boolean {
  return enabled;
}

/** Starts the OTLP exporter when OTEL_EXPORTER_OTLP_ENDPOINT is set; a no-op otherwise. */
export async function initTracing(serviceName: string, env: NodeJS.ProcessEnv = process.env): Promise<void> {
  if (enabled || !env.OTEL_EXPORTER_OTLP_ENDPOINT) return;
  const { NodeSDK } = await import('@opentelemetry/sdk-node');
  const { OTLPTraceExporter } = await import('@opentelemetry/exporter-trace-otlp-http');
  const sdk = new NodeSDK({
    serviceName: env.OTEL_SERVICE_NAME || serviceName,
    traceExporter: new OTLPTraceExporter(),
    instrumentations: [],
    textMapPropagator: new W3CTraceContextPropagator(),
  });
  sdk.start();
  enabled = true;
  shutdown = () => sdk.shutdown();
}

/** Tests: route spans to `exporter`, synchronously. */
export function installTestTracing(exporter: SpanExporter): void {
  const provider = new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] });
  trace.setGlobalTracerProvider(provider);
  propagation.setGlobalPropagator(new W3CTraceContextPropagator());
  enabled = true;
  shutdown = () => provider.shutdown();
}

export async function shutdownTracing(): Promise<void> {
  await shutdown?.();
}

function tracer(): Tracer {
  return trace.getTracer('rill');
}

function parentOf(traceparent: string | undefined): Context {
  return traceparent ? propagation.extract(ROOT_CONTEXT, { traceparent }) : ROOT_CONTEXT;
}

/** A span for one event, child of the trace its entry carries (a new trace when none). */
export function startEventSpan(name: string, traceparent: string | undefined, attributes: Record<string, string | number>): Span | undefined {
  if (!enabled) return undefined;
  return tracer().startSpan(name, { attributes }, parentOf(traceparent));
}

/** The traceparent to write into the next entry so the next span is this one's child. */
export function traceparentOf(span: Span | undefined): string | undefined {
  if (!span) return undefined;
  const carrier: Record<string, string> = {};
  propagation.inject(trace.setSpan(context.active(), span), carrier);
  return carrier.traceparent;
}

export function endSpan(span: Span | undefined, error?: Error): void {
  if (!span) return;
  if (error) {
    span.recordException(error);
    span.setStatus({ code: SpanStatusCode.ERROR, message: error.message });
  }
  span.end();
}

/** The trace id of an entry's traceparent, for log lines. */
export function traceIdOf(traceparent: string | undefined): string | undefined {
  return traceparent?.split('-')[1];
}
