// compose/ cannot be started here (no Docker engine), so it is checked instead: promtool checks the
// Prometheus config and alert rules and runs the rules' unit tests; docker-compose.yml runs real
// `rill` subcommands and agrees with the scrape config and the mounted files; and every metric the
// Grafana dashboard and the alert rules query is one a real worker and a real ingest export (with
// samples, after traffic through the pipeline, a ledger stage and a low wallet included).
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { parse } from 'yaml';
import { createInstance } from './helpers/instance.ts';
import type { TestInstance } from './helpers/instance.ts';
import { runRill } from './helpers/rill-process.ts';
import { waitFor } from './helpers/wait.ts';
import { outstanding } from './helpers/pipeline.ts';
import { writeTopology } from './helpers/topology-file.ts';
import { merchantIds, sampleBody } from './helpers/transactions.ts';
import { entryArgs } from '../core/entry.ts';
import { createLogger } from '../core/logger.ts';
import { createRegistry } from '../core/metrics.ts';
import type { Registry } from '../core/metrics.ts';
import { startWorkerObservability } from '../core/observability/worker-observability.ts';
import { EventAppender } from '../ingest/append/index.ts';
import { createApiKey } from '../core/api-keys.ts';
import { startTestIngest } from '../ingest/testing.ts';
import type { TestIngest } from '../ingest/testing.ts';
import { startWorker } from '../cli/start-worker.ts';
import type { Worker } from '../cli/start-worker.ts';

const ROOT = new URL('..', import.meta.url).pathname;
const COMPOSE = join(ROOT, 'compose');
const file = (...p: string[]) => join(COMPOSE, ...p);

/** Runs promtool; a missing promtool fails the test (it is a CI requirement, never a skip). */
function promtool(args: string[], input?: string): { code: number; output: string } {
  const r = spawnSync('promtool', args, { cwd: ROOT, input, encoding: 'utf8' });
  if ((r.error as NodeJS.ErrnoException | undefined)?.code === 'ENOENT') {
    assert.fail('promtool not found on PATH: install Debian\'s "prometheus" package (apt-get install -y prometheus), which provides /usr/bin/promtool');
  }
  if (r.error) throw r.error;
  return { code: r.status ?? 1, output: `${r.stdout}${r.stderr}` };
}

// YAML merge keys (<<: *anchor) are part of the compose format
const compose = parse(readFileSync(file('docker-compose.yml'), 'utf8'), { merge: true }) as {
  services: Record<string, Service>;
  volumes?: Record<string, unknown>;
};
interface Service {
  image?: string;
  build?: { context: string; dockerfile: string };
  command?: string[] | string;
  environment?: Record<string, string>;
  deploy?: { replicas?: number };
  volumes?: string[];
  depends_on?: Record<string, { condition: string }> | string[];
}
const prometheus = parse(readFileSync(file('prometheus', 'prometheus.yml'), 'utf8')) as {
  rule_files: string[];
  scrape_configs: { job_name: string; metrics_path?: string; dns_sd_configs?: { names: string[]; port: number }[] }[];
};
const alerts = parse(readFileSync(file('prometheus', 'alerts.yml'), 'utf8')) as { groups: { name: string; rules: { alert: string; expr: string }[] }[] };
const dashboard = JSON.parse(readFileSync(file('grafana', 'dashboards', 'rill.json'), 'utf8')) as { uid: string; panels: Panel[] };
interface Panel {
  title?: string;
  datasource?: { uid?: string };
  targets?: { expr?: string; datasource?: { uid?: string } }[];
  panels?: Panel[];
}

const rillServices = Object.entries(compose.services).filter(([, s]) => s.build?.dockerfile === 'compose/Dockerfile');

describe('compose: Prometheus', () => {
  test('promtool check rules: alerts.yml', () => {
    const r = promtool(['check', 'rules', 'compose/prometheus/alerts.yml']);
    assert.equal(r.code, 0, r.output);
    assert.match(r.output, /SUCCESS: \d+ rules found/);
  });

  test('promtool check config: prometheus.yml (and the rule files it names)', () => {
    const r = promtool(['check', 'config', 'compose/prometheus/prometheus.yml']);
    assert.equal(r.code, 0, r.output);
    assert.match(r.output, /SUCCESS: 1 rule files found/);
  });

  test('promtool test rules: the alerts fire (and stay quiet) as meant', () => {
    const r = promtool(['test', 'rules', 'compose/prometheus/alerts.test.yml']);
    assert.equal(r.code, 0, r.output);
  });

  test('the required alerts exist', () => {
    const rules = alerts.groups.flatMap((g) => g.rules);
    const byName = new Map(rules.map((r) => [r.alert, r.expr]));
    assert.match(byName.get('RillDeadLettersGrowing') ?? '', /rill_dead_letters/);
    assert.match(byName.get('RillGroupLagHigh') ?? '', /rill_group_lag/);
    assert.match(byName.get('RillWorkerHeartbeatMissing') ?? '', /rill_worker_heartbeat_timestamp_seconds/);
    assert.match(byName.get('RillWalletLowBalance') ?? '', /rill_alerts_emitted_total\{type="wallet_low"\}/);
    assert.match(byName.get('RillIngest5xxRate') ?? '', /rill_ingest_requests_total\{status=~"5\.\."\}/);
    assert.match(byName.get('RillWebhookDeliveriesFailing') ?? '', /rill_webhook_deliveries_total\{outcome="failed"\}/);
    const lag = rules.find((r) => r.alert === 'RillGroupLagHigh') as { for?: string } | undefined;
    assert.equal(lag?.for, '5m');
  });

  test('scrape jobs find the compose services on the ports they serve', () => {
    const job = (name: string) => prometheus.scrape_configs.find((j) => j.job_name === name);
    const ingest = job('rill-ingest');
    const worker = job('rill-worker');
    assert.ok(ingest && worker, 'rill-ingest and rill-worker jobs');
    assert.deepEqual(ingest.dns_sd_configs?.[0]?.names, ['ingest']);
    assert.equal(String(ingest.dns_sd_configs?.[0]?.port), compose.services.ingest!.environment!.PORT);
    assert.deepEqual(worker.dns_sd_configs?.[0]?.names, ['worker']);
    assert.equal(worker.dns_sd_configs?.[0]?.port, 9464);
    assert.equal(compose.services.worker!.environment!.METRICS_PORT, '9464');
    assert.equal(ingest.metrics_path ?? '/metrics', '/metrics');
    for (const f of prometheus.rule_files) assert.ok(existsSync(file('prometheus', f)), `rule file ${f}`);
  });
});

describe('compose: docker-compose.yml and the Dockerfile', () => {
  test('the services are there, with the documented settings', () => {
    const s = compose.services;
    for (const name of ['redis', 'postgres', 'migrate', 'ingest', 'worker', 'prometheus', 'grafana']) assert.ok(s[name], `service ${name}`);
    const redisCmd = s.redis!.command as string[];
    const flag = (f: string) => redisCmd[redisCmd.indexOf(f) + 1];
    assert.equal(flag('--appendonly'), 'yes');
    assert.equal(flag('--appendfsync'), 'everysec');
    assert.equal(flag('--maxmemory-policy'), 'noeviction');
    const text = readFileSync(file('docker-compose.yml'), 'utf8');
    assert.match(text, /always\s+= .*zero loss/, 'the comment on appendfsync always');
    assert.match(text, /everysec = .*~1 s/, 'the comment on appendfsync everysec');
    assert.match(s.postgres!.image ?? '', /^postgres:16\b/);
    assert.equal(s.ingest!.deploy?.replicas, 2);
    assert.equal(s.worker!.deploy?.replicas, 2);
    assert.deepEqual(s.migrate!.command, ['migrate']);
    for (const name of ['ingest', 'worker']) {
      const deps = s[name]!.depends_on as Record<string, { condition: string }>;
      assert.equal(deps.migrate?.condition, 'service_completed_successfully', `${name} waits for migrate`);
    }
  });

  test('the Dockerfile builds on a supported Node LTS (node:24-slim) and runs bin/rill.mjs', () => {
    assert.ok(rillServices.length >= 3, 'migrate, ingest and worker build the Rill image');
    for (const [name, s] of rillServices) {
      const context = resolve(COMPOSE, s.build!.context);
      assert.equal(context, resolve(ROOT), `${name}: the build context is the repository`);
      assert.ok(existsSync(join(context, s.build!.dockerfile)), `${name}: ${s.build!.dockerfile} exists`);
    }
    const docker = readFileSync(file('Dockerfile'), 'utf8');
    const froms = [...docker.matchAll(/^FROM\s+(\S+)/gm)].map((m) => m[1]);
    assert.ok(froms.length && froms.every((f) => f === 'node:24-slim'), `FROM node:24-slim (got ${froms.join(', ')})`);
    assert.match(docker, /^ENTRYPOINT \["node", "bin\/rill\.mjs"\]$/m);
    const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { bin: Record<string, string>; dependencies: Record<string, string> };
    assert.equal(pkg.bin.rill, 'bin/rill.mjs');
    // the runtime stage installs without devDependencies: what bin/rill.mjs needs must be a dependency
    assert.match(docker, /npm ci --omit=dev/);
    assert.ok(pkg.dependencies.tsx, 'tsx is a runtime dependency (bin/rill.mjs falls back to it; .ts plugins load through it)');
    assert.ok(existsSync(join(ROOT, 'bin', 'rill.mjs')));
    for (const f of ['topology.yaml', 'package-lock.json']) assert.ok(existsSync(join(ROOT, f)), `${f} (copied into the image)`);
    const ignore = readFileSync(file('Dockerfile.dockerignore'), 'utf8');
    assert.match(ignore, /^node_modules$/m);
  });

  test('every Rill service runs a real rill subcommand with options it knows', async () => {
    const commands = new Map<string, string[]>();
    for (const [name, s] of rillServices) {
      const argv = Array.isArray(s.command)
        ? s.command
        : String(s.command ?? '')
            .split(/\s+/)
            .filter(Boolean);
      assert.ok(argv.length, `${name} has a command`);
      commands.set(name, argv);
    }
    for (const [name, argv] of commands) {
      const { code, output } = await runRill([argv[0]!, '--help'], {});
      assert.equal(code, 0, `${name}: rill ${argv[0]} --help: ${output}`);
      assert.doesNotMatch(output, /unknown command/);
      for (const opt of argv.slice(1).filter((a) => a.startsWith('--'))) {
        assert.ok(output.includes(opt.split('=')[0]!), `${name}: rill ${argv[0]} knows ${opt}`);
      }
    }
  });

  test('mounted files exist and Grafana is provisioned with the datasource the dashboard uses', () => {
    const mounts = Object.values(compose.services)
      .flatMap((s) => s.volumes ?? [])
      .filter((v) => v.startsWith('./'));
    assert.ok(mounts.length >= 4);
    for (const m of mounts) assert.ok(existsSync(resolve(COMPOSE, m.split(':')[0]!)), `mounted ${m}`);
    const ds = parse(readFileSync(file('grafana', 'provisioning', 'datasources', 'prometheus.yml'), 'utf8')) as {
      datasources: { uid: string; type: string; url: string }[];
    };
    assert.equal(ds.datasources[0]?.type, 'prometheus');
    assert.equal(ds.datasources[0]?.url, 'http://prometheus:9090');
    const provider = parse(readFileSync(file('grafana', 'provisioning', 'dashboards', 'rill.yml'), 'utf8')) as { providers: { options: { path: string } }[] };
    const dashMount = compose.services.grafana!.volumes!.find((v) => v.startsWith('./grafana/dashboards:'))!;
    assert.equal(provider.providers[0]?.options.path, dashMount.split(':')[1]);
    const uids = new Set<string>();
    for (const p of allPanels(dashboard.panels)) {
      if (p.datasource?.uid) uids.add(p.datasource.uid);
      for (const t of p.targets ?? []) if (t.datasource?.uid) uids.add(t.datasource.uid);
    }
    assert.deepEqual([...uids], [ds.datasources[0]!.uid]);
  });
});

function allPanels(panels: readonly Panel[]): Panel[] {
  return panels.flatMap((p) => [p, ...allPanels(p.panels ?? [])]);
}

const KEYWORDS = new Set(['and', 'or', 'unless', 'bool', 'offset', 'by', 'without', 'on', 'ignoring', 'group_left', 'group_right', 'inf', 'nan', 'atan2']);
/** Series Prometheus itself makes (not exported by Rill). */
const PROMETHEUS_SERIES = new Set(['up']);

/** The metric names a PromQL expression selects. */
function promqlMetricNames(expr: string): Set<string> {
  let s = expr
    .replace(/"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|`[^`]*`/g, '""') // string literals
    .replace(/\{[^}]*\}/g, '') // label matchers
    .replace(/\[[^\]]*\]/g, '') // ranges and subqueries
    .replace(/\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)/g, ' '); // label lists
  s = s.replace(/\$\w+/g, ' '); // Grafana variables
  const names = new Set<string>();
  for (const m of s.matchAll(/(\d[\w.]*)|([A-Za-z_:][\w:]*)(\s*\()?/g)) {
    const [, num, ident, call] = m;
    if (num || !ident || call || KEYWORDS.has(ident.toLowerCase())) continue;
    names.add(ident);
  }
  return names;
}

/** Series names a registry exports (histograms as _bucket/_sum/_count), and those with samples. */
async function seriesOf(registry: Registry): Promise<{ exported: Set<string>; sampled: Set<string> }> {
  const exported = new Set<string>();
  const sampled = new Set<string>();
  for (const m of await registry.getMetricsAsJSON()) {
    const type = String(m.type);
    const names =
      type === 'histogram'
        ? [`${m.name}_bucket`, `${m.name}_sum`, `${m.name}_count`]
        : type === 'summary'
          ? [m.name, `${m.name}_sum`, `${m.name}_count`]
          : [m.name];
    for (const n of names) exported.add(n);
    for (const v of m.values as { metricName?: string }[]) sampled.add(v.metricName ?? m.name);
  }
  return { exported, sampled };
}

describe('compose: every metric the dashboard and the alerts query is exported by Rill', () => {
  let inst: TestInstance;
  let worker: Worker | undefined;
  let observability: { stop(): Promise<void> } | undefined;
  let ingest: TestIngest | undefined;
  const workerRegistry = createRegistry();

  before(async () => {
    inst = await createInstance('composemetrics');
  });
  after(async () => {
    await ingest?.server.close();
    await observability?.stop();
    await worker?.stop();
    await inst?.cleanup();
  });

  test('the PromQL extraction finds metric names only', () => {
    assert.deepEqual(
      [
        ...promqlMetricNames('histogram_quantile(0.99, sum by (le, sink) (rate(rill_x_bucket{a="b",c=~"5.."}[5m]))) > 10 and on (topic) up{job="w"} offset 5m'),
      ].sort(),
      ['rill_x_bucket', 'up'],
    );
    assert.deepEqual([...promqlMetricNames('time() - max by (worker) (rill_hb) > 30')], ['rill_hb']);
  });

  test('worker (engine topology + a ledger stage) and ingest after traffic', async () => {
    // the engine topology, plus the ledger (it owns rill_alerts_emitted_total, the wallet-low alert)
    // and the risk stage before it (rill_risk_decisions_total, the anomaly-burst alert; it allows all)
    const { topology } = writeTopology({
      'topics.scored': { partitions: 8 },
      'topics.settled': { partitions: 8 },
      'topics.alerts': { partitions: 8, external: true },
      'stages.risk': {
        input: 'validated',
        processor: 'risk',
        output: 'scored',
        ordering: 'key',
        batch: 100,
        lease_ttl: '2s',
        dead_letter: {},
        config: { thresholds: { default: { review: 101, block: 101 } } },
      },
      'stages.ledger': {
        input: 'scored',
        processor: 'ledger',
        output: 'settled',
        ordering: 'key',
        batch: 100,
        lease_ttl: '2s',
        retry: { attempts: 2, base: '10ms', max: '20ms' },
        dead_letter: {},
        config: { low_balance: { default: 10_000 }, alerts_topic: 'alerts' },
      },
      'sinks.postgres.input': 'settled',
      'sinks.postgres.max_wait': '20ms',
      // merchant webhooks (rill_webhook_*): events from the settled topic, delivered by the sink
      'topics.webhook_events': { partitions: 8 },
      'stages.webhook-events': { input: 'settled', processor: 'webhook-events', output: 'webhook_events', ordering: 'key', lease_ttl: '2s', dead_letter: {} },
      'sinks.webhooks': { type: 'webhooks', input: 'webhook_events' },
    });
    const logger = createLogger('silent');
    worker = await startWorker({ env: inst.env, topology, registry: workerRegistry, logger });
    // what cli/start-worker.ts starts beside the stages (see core/observability/worker-observability.ts)
    observability = startWorkerObservability({
      redis: inst.redis,
      keys: inst.keys,
      topology,
      id: `compose-test-${process.pid}`,
      host: 'test',
      components: worker.components,
      registry: workerRegistry,
      logger,
      heartbeatMs: 200,
      streamStatsMs: 200,
    });

    const appender = new EventAppender(inst.redis, topology, inst.keys, { timeoutMs: 5_000 });
    const merchants = merchantIds(10);
    // the mix, its refunds naming a payin of their merchant accepted before (some exceed it or
    // differ in currency: failed rows with their codes); chargebacks of merchants with no payin yet are left out
    const payinOf = new Map<string, string>();
    for (let i = 0; i < 200; i++) {
      const body = sampleBody(i, merchants);
      if (body.type === 'refund' || body.type === 'chargeback') {
        const payin = payinOf.get(body.merchant_id);
        if (!payin) continue;
        body.reference = payin;
      }
      const { id } = await appender.append(body);
      if (body.type === 'payin') payinOf.set(body.merchant_id, id);
    }
    await appender.append({ type: 'payin', merchant_id: 'm_bad', amount: 100, currency: 'ZAR' }); // failed: currency_not_allowed
    // a dead letter: an entry validate cannot read (its body is not JSON)
    await inst.redis.xadd(inst.keys.lane(topology.ingest.topic, 0, 'normal'), '*', ...entryArgs({ txId: 'tx_unreadable', event: 'not json' }));
    // a wallet dipping under its threshold: the payout after the payin has been posted
    await appender.append({ type: 'payin', merchant_id: 'm_low', amount: 20_000, currency: 'USD' });
    await waitFor('the payin in Postgres', async () => {
      const { rows } = await inst.pool.query<{ n: string }>("SELECT count(*) AS n FROM transactions WHERE merchant_id = 'm_low'");
      return Number(rows[0]!.n) === 1;
    });
    await appender.append({ type: 'payout', merchant_id: 'm_low', amount: 15_000, currency: 'USD' });

    ingest = await startTestIngest(inst, { topology });
    const key = await createApiKey(inst.pool, { merchantId: 'm_http' });
    const post = (body: unknown, auth = true) =>
      fetch(`${ingest!.url}/v1/transactions`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', ...(auth ? { authorization: `Bearer ${key}` } : {}) },
        body: JSON.stringify(body),
      });
    assert.equal((await post({ type: 'payin', merchant_id: 'm_http', amount: 500, currency: 'EUR' })).status, 202);
    assert.equal((await post({ type: 'payin', merchant_id: 'm_http', amount: -1, currency: 'EUR' })).status, 400);
    assert.equal((await post({}, false)).status, 401);
    assert.equal((await fetch(`${ingest.url}/healthz`)).status, 200);

    await waitFor('the pipeline to drain', async () => (await outstanding(inst.redis, inst.keys, topology)) === 0, 60_000);
    await waitFor('a wallet_low alert', async () => {
      const v = (await workerRegistry.getSingleMetric('rill_alerts_emitted_total')?.get())?.values ?? [];
      return v.some((x) => x.labels.type === 'wallet_low' && x.value >= 1);
    });
    await waitFor('the stream gauges to see the dead letters', async () => {
      const v = (await workerRegistry.getSingleMetric('rill_dead_letters')?.get())?.values ?? [];
      return v.some((x) => x.labels.stage === 'validate' && x.value >= 1);
    });

    const w = await seriesOf(workerRegistry);
    const i = await seriesOf(ingest.registry);
    const exported = new Set([...w.exported, ...i.exported]);
    const sampled = new Set([...w.sampled, ...i.sampled]);

    const used = new Map<string, string[]>(); // metric → where
    const note = (expr: string, where: string) => {
      for (const n of promqlMetricNames(expr)) used.set(n, [...(used.get(n) ?? []), where]);
    };
    for (const g of alerts.groups) for (const r of g.rules) note(r.expr, `alert ${r.alert}`);
    for (const p of allPanels(dashboard.panels)) for (const t of p.targets ?? []) if (t.expr) note(t.expr, `panel "${p.title}"`);
    assert.ok(used.size >= 15, `found ${used.size} metric names`);
    for (const required of [
      'rill_ingest_requests_total',
      'rill_ingest_request_duration_seconds_bucket',
      'rill_group_lag',
      'rill_dead_letters',
      'rill_sink_rows_total',
      'rill_end_to_end_latency_seconds_bucket',
    ]) {
      assert.ok(used.has(required), `the dashboard or alerts use ${required}`);
    }

    const missing: string[] = [];
    const unsampled: string[] = [];
    for (const [name, where] of used) {
      if (PROMETHEUS_SERIES.has(name)) continue;
      if (!name.startsWith('rill_') || !exported.has(name)) missing.push(`${name} (${where.join(', ')})`);
      else if (!sampled.has(name)) unsampled.push(`${name} (${where.join(', ')})`);
    }
    assert.deepEqual(missing, [], 'metrics queried but not exported by Rill');
    assert.deepEqual(unsampled, [], 'metrics exported but without a sample after the traffic');
  });
});
