// deploy/kubernetes/ cannot be applied here (no cluster), so it is read as Kubernetes would read
// it: every object of the base and of each overlay validates against its API schema
// (kubernetes-models, with KEDA's and the Prometheus Operator's CRD models), and against the code:
// the args are real `rill` commands, every env name is one Rill reads, the processes started with
// the manifests' env serve the probes' paths on the probes' ports, the grace period covers the
// stop, the alert rules are compose's, and the topology ConfigMap is the repository's topology.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse } from 'yaml';
import { kustomize, containersOf } from './helpers/kustomize.ts';
import type { Container, K8sObject } from './helpers/kustomize.ts';
import { createInstance } from './helpers/instance.ts';
import type { TestInstance } from './helpers/instance.ts';
import { runRill, spawnRill } from './helpers/rill-process.ts';
import type { RillProcess } from './helpers/rill-process.ts';
import { waitFor } from './helpers/wait.ts';
import { loadTopology } from '../core/topology/load.ts';
import { Keys } from '../core/keys.ts';

const ROOT = new URL('..', import.meta.url).pathname;
const BASE = join(ROOT, 'deploy/kubernetes/base');
const OVERLAYS = readdirSync(join(ROOT, 'deploy/kubernetes/overlays')).map((d) => join(ROOT, 'deploy/kubernetes/overlays', d));
const base = kustomize(BASE);
const find = (objs: K8sObject[], kind: string, name: string) => {
  const o = objs.find((x) => x.kind === kind && x.metadata.name === name);
  assert.ok(o, `${kind}/${name}`);
  return o;
};
const workloads = (objs: K8sObject[]) => objs.filter((o) => containersOf(o).length);
const podSpec = (o: K8sObject) => (o.spec as { template: { spec: PodSpec; metadata: { labels: Record<string, string> } } }).template;
interface PodSpec {
  terminationGracePeriodSeconds?: number;
  securityContext?: { runAsNonRoot?: boolean; runAsUser?: number };
  volumes?: { name: string; configMap?: { name: string } }[];
  containers: Container[];
}
interface Probe {
  httpGet: { path: string; port: string | number };
}

/** The model class of an object's apiVersion and kind (core, KEDA, Prometheus Operator). */
async function modelOf(o: K8sObject): Promise<new (data: unknown) => { validate(): void }> {
  const [group, version] = o.apiVersion.includes('/') ? o.apiVersion.split('/') : ['', o.apiVersion];
  const pkg =
    group === 'keda.sh'
      ? '@kubernetes-models/keda/keda.sh'
      : group === 'monitoring.coreos.com'
        ? '@kubernetes-models/prometheus-operator/monitoring.coreos.com'
        : group
          ? `kubernetes-models/${group}`
          : 'kubernetes-models';
  const mod = (await import(`${pkg}/${version}/${o.kind}`)) as Record<string, new (data: unknown) => { validate(): void }>;
  const cls = mod[o.kind];
  assert.ok(cls, `a model for ${o.apiVersion} ${o.kind}`);
  return cls;
}

describe('kubernetes: objects validate against their API schemas', () => {
  for (const [name, objs] of [['base', base], ...OVERLAYS.map((d) => [d.split('/').pop()!, kustomize(d)] as const)] as const) {
    test(`${name}: every object`, async () => {
      assert.ok(objs.length >= 14, `${objs.length} objects`);
      for (const o of objs) {
        const Model = await modelOf(o);
        assert.doesNotThrow(() => new Model(o).validate(), `${o.kind}/${o.metadata.name}`);
      }
    });
  }

  test('the validation is real: a broken object fails it', async () => {
    const ingest = structuredClone(find(base, 'Deployment', 'rill-ingest'));
    podSpec(ingest).spec.containers[0]!.ports![0]!.containerPort = '8080' as unknown as number;
    const Model = await modelOf(ingest);
    assert.throws(() => new Model(ingest).validate(), /containerPort must be integer/);
  });

  test('the base has every part: ingest, workers, migrations, topology, autoscaling, budgets, monitoring', () => {
    const kinds = base.map((o) => `${o.kind}/${o.metadata.name}`).sort();
    assert.deepEqual(kinds, [
      'ConfigMap/rill-topology',
      'Deployment/rill-ingest',
      'HorizontalPodAutoscaler/rill-ingest',
      'Job/rill-migrate',
      'PodDisruptionBudget/rill-ingest',
      'PodDisruptionBudget/rill-worker',
      'PodMonitor/rill-worker',
      'PrometheusRule/rill',
      'ScaledObject/rill-worker',
      'Service/rill-ingest',
      'Service/rill-worker',
      'ServiceMonitor/rill-ingest',
      'StatefulSet/rill-worker',
      'TriggerAuthentication/rill-redis',
    ]);
  });
});

describe('kubernetes: the manifests agree with each other', () => {
  test('selectors (Services, budgets, monitors) match the pods they mean, and named ports exist', () => {
    const podLabels = (n: string) => podSpec(find(base, n === 'rill-ingest' ? 'Deployment' : 'StatefulSet', n)).metadata.labels;
    const matches = (sel: Record<string, string>, labels: Record<string, string>) => Object.entries(sel).every(([k, v]) => labels[k] === v);
    for (const n of ['rill-ingest', 'rill-worker']) {
      const svc = find(base, 'Service', n).spec as { selector: Record<string, string>; ports: { targetPort: string }[] };
      assert.ok(matches(svc.selector, podLabels(n)), `Service ${n}`);
      const portNames = podSpec(find(base, n === 'rill-ingest' ? 'Deployment' : 'StatefulSet', n)).spec.containers[0]!.ports!.map((p) => p.name);
      for (const p of svc.ports) assert.ok(portNames.includes(p.targetPort), `Service ${n} port ${p.targetPort}`);
      const pdb = find(base, 'PodDisruptionBudget', n).spec as { selector: { matchLabels: Record<string, string> } };
      assert.ok(matches(pdb.selector.matchLabels, podLabels(n)), `PDB ${n}`);
      // a selector that matched both would let one budget cover the other's pods
      const other = n === 'rill-ingest' ? 'rill-worker' : 'rill-ingest';
      assert.ok(!matches(pdb.selector.matchLabels, podLabels(other)), `PDB ${n} leaves ${other} alone`);
    }
    const sm = find(base, 'ServiceMonitor', 'rill-ingest').spec as {
      selector: { matchLabels: Record<string, string> };
      endpoints: { port: string; path: string }[];
    };
    assert.ok(matches(sm.selector.matchLabels, find(base, 'Service', 'rill-ingest').metadata.labels ?? {}));
    assert.deepEqual(
      sm.endpoints.map((e) => [e.port, e.path]),
      [['http', '/metrics']],
    );
    const pm = find(base, 'PodMonitor', 'rill-worker').spec as {
      selector: { matchLabels: Record<string, string> };
      podMetricsEndpoints: { port: string; path: string }[];
    };
    assert.ok(matches(pm.selector.matchLabels, podLabels('rill-worker')));
    assert.deepEqual(
      pm.podMetricsEndpoints.map((e) => [e.port, e.path]),
      [['metrics', '/metrics']],
    );
    const hpa = find(base, 'HorizontalPodAutoscaler', 'rill-ingest').spec as { scaleTargetRef: { kind: string; name: string } };
    assert.deepEqual([hpa.scaleTargetRef.kind, hpa.scaleTargetRef.name], ['Deployment', 'rill-ingest']);
  });

  test('the ConfigMap carries the repository topology, and every workload mounts it where RILL_TOPOLOGY points', () => {
    const data = (find(base, 'ConfigMap', 'rill-topology') as K8sObject & { data: Record<string, string> }).data;
    assert.equal(data['topology.yaml'], readFileSync(join(ROOT, 'topology.yaml'), 'utf8'), 'deploy/kubernetes/base/topology.yaml equals topology.yaml');
    for (const w of workloads(base)) {
      const spec = podSpec(w).spec;
      const c = spec.containers[0]!;
      const path = c.env!.find((e) => e.name === 'RILL_TOPOLOGY')!.value!;
      const mount = (c.volumeMounts as { name: string; mountPath: string }[]).find((m) => path.startsWith(`${m.mountPath}/`))!;
      assert.ok(mount, `${w.metadata.name}: a mount holds ${path}`);
      assert.equal(spec.volumes!.find((v) => v.name === mount.name)?.configMap?.name, 'rill-topology');
      assert.equal(path.slice(mount.mountPath.length + 1), 'topology.yaml');
    }
  });

  test("workers scale on lag up to the partition count; the scaler reads the entry stage's real stream", () => {
    const topology = loadTopology(join(BASE, 'topology.yaml'));
    const so = find(base, 'ScaledObject', 'rill-worker').spec as {
      scaleTargetRef: { kind: string; name: string };
      maxReplicaCount: number;
      minReplicaCount: number;
      triggers: { type: string; metadata: Record<string, string>; authenticationRef?: { name: string } }[];
    };
    assert.deepEqual([so.scaleTargetRef.kind, so.scaleTargetRef.name], ['StatefulSet', 'rill-worker']);
    const partitions = Math.max(...Object.values(topology.stages).map((s) => topology.topics[s.input]!.partitions));
    assert.equal(so.maxReplicaCount, partitions, 'one owner per partition: more workers than partitions add nothing');
    assert.ok(so.minReplicaCount >= 2, 'two workers at least: one can be replaced while the other serves');
    const prom = so.triggers.find((t) => t.type === 'prometheus')!;
    assert.match(prom.metadata.query!, /\brill_group_lag\b/);
    const rs = so.triggers.find((t) => t.type === 'redis-streams')!;
    const prefix = podSpec(find(base, 'StatefulSet', 'rill-worker')).spec.containers[0]!.env!.find((e) => e.name === 'RILL_PREFIX')!.value!;
    const entryStage = Object.entries(topology.stages).find(([, s]) => s.input === topology.ingest.topic)!;
    assert.equal(rs.metadata.stream, new Keys(prefix).lane(topology.ingest.topic, 0, 'normal'));
    assert.equal(rs.metadata.consumerGroup, entryStage[0]);
    assert.equal(find(base, 'TriggerAuthentication', rs.authenticationRef!.name).metadata.name, 'rill-redis');
  });

  test("the PrometheusRule carries compose's alert rules exactly (scripts/k8s-prometheus-rule.mjs)", () => {
    const compose = parse(readFileSync(join(ROOT, 'compose/prometheus/alerts.yml'), 'utf8')) as { groups: unknown };
    const rule = find(base, 'PrometheusRule', 'rill').spec as { groups: unknown };
    assert.deepEqual(rule.groups, compose.groups, 'run `node scripts/k8s-prometheus-rule.mjs` after editing compose/prometheus/alerts.yml');
  });

  test('the Redis Cluster overlay sets REDIS_CLUSTER for ingest and workers and the cluster scaler', () => {
    const objs = kustomize(join(ROOT, 'deploy/kubernetes/overlays/redis-cluster'));
    for (const w of workloads(objs).filter((o) => o.kind !== 'Job')) {
      assert.equal(containersOf(w)[0]!.env!.find((e) => e.name === 'REDIS_CLUSTER')?.value, '1', w.metadata.name);
    }
    const so = find(objs, 'ScaledObject', 'rill-worker').spec as { triggers: { type: string }[] };
    assert.ok(so.triggers.some((t) => t.type === 'redis-cluster-streams'));
  });
});

/** Env names the code reads (readEnv and every direct read), plus the standard OTEL_* ones. */
function envNamesRead(): Set<string> {
  const names = new Set<string>();
  const walk = (dir: string) => {
    for (const n of readdirSync(dir)) {
      const p = join(dir, n);
      if (statSync(p).isDirectory()) walk(p);
      else if (/\.(ts|mjs)$/.test(n) && !n.endsWith('.test.ts')) {
        const text = readFileSync(p, 'utf8');
        for (const m of text.matchAll(/\benv(?:\.|\[')([A-Z][A-Z0-9_]+)|Var\(env, '([A-Z][A-Z0-9_]+)'/g)) names.add(m[1] ?? m[2]!);
      }
    }
  };
  for (const d of ['core', 'cli', 'ingest', 'sinks', 'processors', 'bin']) walk(join(ROOT, d));
  return names;
}

describe('kubernetes: the manifests agree with the code', () => {
  test('every container is non-root, read-only, unprivileged, with resources and a grace period that covers its stop', () => {
    for (const w of workloads(base)) {
      const spec = podSpec(w).spec;
      assert.equal(spec.securityContext?.runAsNonRoot, true, `${w.metadata.name} runAsNonRoot`);
      assert.equal(spec.securityContext?.runAsUser, 1000, `${w.metadata.name}: the image's node user`);
      for (const c of spec.containers) {
        const sc = c.securityContext as { readOnlyRootFilesystem: boolean; allowPrivilegeEscalation: boolean; capabilities: { drop: string[] } };
        assert.equal(sc.readOnlyRootFilesystem, true);
        assert.equal(sc.allowPrivilegeEscalation, false);
        assert.deepEqual(sc.capabilities.drop, ['ALL']);
        const r = c.resources as { requests: { cpu: string; memory: string }; limits: { memory: string } };
        assert.ok(r.requests.cpu && r.requests.memory && r.limits.memory, `${c.name} resources`);
        assert.equal(c.image, 'rill:0.1.0');
      }
    }
    // the commands give a stop 15 s (stopWithin) after ingest's shutdown delay
    const ingest = podSpec(find(base, 'Deployment', 'rill-ingest')).spec;
    const delayMs = Number(ingest.containers[0]!.env!.find((e) => e.name === 'RILL_SHUTDOWN_DELAY_MS')!.value);
    assert.ok(ingest.terminationGracePeriodSeconds! >= delayMs / 1000 + 15, 'ingest grace ≥ delay + 15 s');
    assert.ok(podSpec(find(base, 'StatefulSet', 'rill-worker')).spec.terminationGracePeriodSeconds! >= 15, 'worker grace ≥ 15 s');
  });

  test('every env name the manifests set is one Rill reads', () => {
    const read = envNamesRead();
    for (const n of [
      'REDIS_URL',
      'DATABASE_URL',
      'RILL_TOPOLOGY',
      'RILL_PREFIX',
      'RILL_PG_SCHEMA',
      'PORT',
      'METRICS_PORT',
      'LOG_LEVEL',
      'RILL_CONSUMER',
      'RILL_SHUTDOWN_DELAY_MS',
      'REDIS_CLUSTER',
    ]) {
      assert.ok(read.has(n), `the scan finds ${n}`);
    }
    for (const dir of [BASE, ...OVERLAYS]) {
      for (const w of workloads(kustomize(dir))) {
        for (const e of containersOf(w).flatMap((c) => c.env ?? [])) {
          assert.ok(read.has(e.name) || e.name.startsWith('OTEL_'), `${w.metadata.name}: ${e.name} is read by Rill`);
        }
      }
    }
    // a worker's consumer id is its pod name (static membership)
    const consumer = podSpec(find(base, 'StatefulSet', 'rill-worker')).spec.containers[0]!.env!.find((e) => e.name === 'RILL_CONSUMER');
    assert.deepEqual(consumer?.valueFrom, { fieldRef: { fieldPath: 'metadata.name' } });
  });

  test('the args are real rill commands', async () => {
    for (const w of workloads(base)) {
      for (const c of containersOf(w)) {
        const [cmd, ...rest] = c.args!;
        const { code, output } = await runRill([cmd!, '--help'], {});
        assert.equal(code, 0, `${w.metadata.name}: rill ${cmd} --help: ${output}`);
        for (const opt of rest.filter((a) => a.startsWith('--'))) assert.ok(output.includes(opt.split('=')[0]!), `rill ${cmd} knows ${opt}`);
      }
    }
  });

  describe("ingest and a worker started with the manifests' env serve the probes", () => {
    let inst: TestInstance;
    let dir: string;
    const procs: RillProcess[] = [];
    before(async () => {
      inst = await createInstance('k8sprobes');
      dir = mkdtempSync(join(tmpdir(), 'rill-k8s-'));
    });
    after(async () => {
      await Promise.all(procs.map((p) => p.kill('SIGTERM')));
      await inst?.cleanup();
      rmSync(dir, { recursive: true, force: true });
    });

    /** The container's env as the kubelet would give it, on this test's instance. */
    function envOf(w: K8sObject): Record<string, string> {
      const c = containersOf(w)[0]!;
      const secrets: Record<string, string> = {
        'redis-url': inst.env.redisUrl,
        'database-url': inst.env.databaseUrl,
        'webhook-secret-key': Buffer.alloc(32, 7).toString('base64'),
      };
      const out: Record<string, string> = {};
      for (const e of c.env ?? []) {
        const from = e.valueFrom as { secretKeyRef?: { key: string }; fieldRef?: { fieldPath: string } } | undefined;
        if (e.value !== undefined) out[e.name] = e.value;
        else if (from?.secretKeyRef) out[e.name] = secrets[from.secretKeyRef.key]!;
        else if (from?.fieldRef?.fieldPath === 'metadata.name') out[e.name] = `${w.metadata.name}-0`;
        assert.ok(out[e.name] !== undefined, `${e.name} resolved`);
      }
      // the ConfigMap's files where the pod would mount them
      const mount = (c.volumeMounts as { name: string; mountPath: string }[]).find((m) => m.name === 'topology')!;
      const data = (find(base, 'ConfigMap', 'rill-topology') as K8sObject & { data: Record<string, string> }).data;
      const mounted = join(dir, mount.mountPath);
      mkdirSync(mounted, { recursive: true });
      for (const [f, text] of Object.entries(data)) writeFileSync(join(mounted, f), text);
      out.RILL_TOPOLOGY = join(dir, out.RILL_TOPOLOGY!);
      // this test's own keys and schema, and a free port (the named port is checked against the env)
      return { ...out, RILL_PREFIX: inst.vars.RILL_PREFIX!, RILL_PG_SCHEMA: inst.vars.RILL_PG_SCHEMA!, RILL_SHUTDOWN_DELAY_MS: '0' };
    }

    async function checkProbes(w: K8sObject, portVar: string, started: RegExp): Promise<void> {
      const c = containersOf(w)[0]!;
      const env = envOf(w);
      const probes = (['startupProbe', 'readinessProbe', 'livenessProbe'] as const).map((k) => [k, c[k] as Probe] as const);
      for (const [k, p] of probes) {
        assert.ok(p?.httpGet, `${w.metadata.name} ${k}`);
        const port = c.ports!.find((x) => x.name === p.httpGet.port);
        assert.equal(String(port?.containerPort), env[portVar], `${k}: port ${p.httpGet.port} is ${portVar}`);
      }
      const proc = spawnRill(c.args!, { ...env, [portVar]: '0' });
      procs.push(proc);
      await waitFor(`${w.metadata.name} started`, () => started.test(proc.output()) || proc.child.exitCode !== null, 60_000);
      const port = Number(started.exec(proc.output())?.[1]);
      assert.ok(port > 0, proc.output());
      for (const [k, p] of probes) {
        const url = `http://127.0.0.1:${port}${p.httpGet.path}`;
        await waitFor(`${k} ${url} answers 200`, async () => (await fetch(url).catch(() => undefined))?.status === 200, 30_000);
      }
      assert.equal(await proc.kill('SIGTERM'), 0, proc.output());
    }

    test('ingest: startup, readiness and liveness', async () => {
      await checkProbes(find(base, 'Deployment', 'rill-ingest'), 'PORT', /"port":(\d+),"msg":"ingest listening"/);
    });

    test('worker: startup, readiness and liveness', async () => {
      await checkProbes(find(base, 'StatefulSet', 'rill-worker'), 'METRICS_PORT', /"metricsPort":\{[^}]*"port":(\d+)[^}]*\}[^\n]*"msg":"worker started"/);
    });
  });
});
