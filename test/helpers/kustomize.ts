// A small reader of kustomization.yaml for the manifest tests (kustomize itself is not a project
// dependency): `resources` (files and directories), `configMapGenerator` (files), `images` and
// JSON 6902 `patches` with a target. It leaves out the name-hash suffix kustomize gives generated
// ConfigMaps (it rewrites every reference alike, so the references the tests follow stay equal).
import { readFileSync, statSync } from 'node:fs';
import { basename, join } from 'node:path';
import { parse, parseAllDocuments } from 'yaml';

export interface K8sObject {
  apiVersion: string;
  kind: string;
  metadata: { name: string; labels?: Record<string, string> };
  [field: string]: unknown;
}

interface Kustomization {
  resources?: string[];
  configMapGenerator?: { name: string; files: string[] }[];
  images?: { name: string; newName?: string; newTag?: string }[];
  patches?: { target: { group?: string; version?: string; kind: string; name: string }; patch: string }[];
}

interface PatchOp {
  op: 'add' | 'replace' | 'remove';
  path: string;
  value?: unknown;
}

export function kustomize(dir: string): K8sObject[] {
  const k = parse(readFileSync(join(dir, 'kustomization.yaml'), 'utf8')) as Kustomization;
  const out: K8sObject[] = [];
  for (const r of k.resources ?? []) {
    const p = join(dir, r);
    if (statSync(p).isDirectory()) out.push(...kustomize(p));
    else for (const doc of parseAllDocuments(readFileSync(p, 'utf8'))) if (doc.contents) out.push(doc.toJS() as K8sObject);
  }
  for (const g of k.configMapGenerator ?? []) {
    const data = Object.fromEntries(g.files.map((f) => [basename(f), readFileSync(join(dir, f), 'utf8')]));
    out.push({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: g.name }, data });
  }
  for (const img of k.images ?? []) {
    for (const c of out.flatMap(containersOf)) {
      const [name, tag] = c.image.split(':');
      if (name !== img.name) continue;
      c.image = `${img.newName ?? name}:${img.newTag ?? tag ?? 'latest'}`;
    }
  }
  for (const p of k.patches ?? []) {
    const [group, version] = [p.target.group ?? '', p.target.version];
    const targets = out.filter((o) => {
      const [g, v] = o.apiVersion.includes('/') ? o.apiVersion.split('/') : ['', o.apiVersion];
      return o.kind === p.target.kind && o.metadata.name === p.target.name && g === group && (!version || v === version);
    });
    if (targets.length !== 1) throw new Error(`patch target ${p.target.kind}/${p.target.name} matches ${targets.length} objects`);
    for (const op of parse(p.patch) as PatchOp[]) applyOp(targets[0]!, op);
  }
  return out;
}

export interface Container {
  name: string;
  image: string;
  args?: string[];
  env?: { name: string; value?: string; valueFrom?: Record<string, unknown> }[];
  ports?: { name?: string; containerPort: number }[];
  [field: string]: unknown;
}

/** The containers of a workload's pod template (Deployment, StatefulSet, Job). */
export function containersOf(o: K8sObject): Container[] {
  const spec = o.spec as { template?: { spec?: { containers?: Container[] } } } | undefined;
  return spec?.template?.spec?.containers ?? [];
}

function applyOp(root: unknown, op: PatchOp): void {
  const parts = op.path
    .split('/')
    .slice(1)
    .map((s) => s.replace(/~1/g, '/').replace(/~0/g, '~'));
  const last = parts.pop()!;
  let node = root as Record<string, unknown>;
  for (const part of parts) {
    const next = node[part];
    if (next === undefined || next === null) throw new Error(`patch path ${op.path}: no ${part}`);
    node = next as Record<string, unknown>;
  }
  if (Array.isArray(node)) {
    const i = last === '-' ? node.length : Number(last);
    if (op.op === 'add') node.splice(i, 0, op.value);
    else if (op.op === 'replace') node[i] = op.value;
    else node.splice(i, 1);
  } else if (op.op === 'remove') delete node[last];
  else node[last] = op.value;
}
