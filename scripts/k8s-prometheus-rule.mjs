// Writes deploy/kubernetes/base/prometheus-rule.yaml: compose's alert rules
// (compose/prometheus/alerts.yml, the one source) as a Prometheus Operator PrometheusRule.
// test/kubernetes-manifests.test.ts fails when the two differ: run `node scripts/k8s-prometheus-rule.mjs`.
import { readFileSync, writeFileSync } from 'node:fs';
import { parse, stringify } from 'yaml';

const root = new URL('..', import.meta.url).pathname;
const alerts = parse(readFileSync(`${root}compose/prometheus/alerts.yml`, 'utf8'));
const rule = {
  apiVersion: 'monitoring.coreos.com/v1',
  kind: 'PrometheusRule',
  metadata: { name: 'rill', labels: { 'app.kubernetes.io/name': 'rill' } },
  spec: { groups: alerts.groups },
};
const header = '# Generated from compose/prometheus/alerts.yml by scripts/k8s-prometheus-rule.mjs: edit that file, then rerun.\n';
writeFileSync(`${root}deploy/kubernetes/base/prometheus-rule.yaml`, header + stringify(rule, { lineWidth: 0 }));
