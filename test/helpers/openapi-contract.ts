// Real answers checked against the OpenAPI document: the status must be documented for that
// operation, the media type too, and a JSON body must validate against its schema (ajv, JSON
// Schema 2020-12, the dialect of OpenAPI 3.1).
import assert from 'node:assert/strict';
import { Ajv2020 } from 'ajv/dist/2020.js';
import type { ValidateFunction } from 'ajv';
import addFormatsModule from 'ajv-formats';
import type { OpenApiDocument } from '../../ingest/openapi/spec.ts';

// ajv-formats is CommonJS with a default export
const addFormats = addFormatsModule as unknown as (ajv: Ajv2020) => Ajv2020;

type Json = Record<string, unknown>;

export interface CheckedAnswer {
  status: number;
  contentType: string;
  body: unknown;
}

export class OpenApiContract {
  private readonly ajv = new Ajv2020({ strict: false, allErrors: true });
  private readonly validators = new Map<string, ValidateFunction>();
  private readonly templates: { path: string; re: RegExp }[];
  /** Every (method path status) a check saw: the test can show what it covered. */
  readonly seen = new Set<string>();

  constructor(private readonly doc: OpenApiDocument) {
    addFormats(this.ajv);
    this.ajv.addSchema(doc as Json, 'spec');
    this.templates = Object.keys(doc.paths).map((path) => ({
      path,
      re: new RegExp(`^${path.replace(/[.]/g, '\\.').replace(/\{[^}]+\}/g, '[^/]+')}$`),
    }));
  }

  /** The documented path template a concrete path matches. */
  template(pathname: string): string | undefined {
    return this.templates.find((t) => t.re.test(pathname))?.path;
  }

  /** Fetch `url` and check the answer; returns it read (a JSON body parsed). */
  async fetch(url: string, init: RequestInit = {}): Promise<CheckedAnswer> {
    const res = await fetch(url, init);
    const method = (init.method ?? 'GET').toLowerCase();
    const text = await res.text();
    return this.check(method, new URL(url).pathname, res.status, res.headers.get('content-type') ?? '', text);
  }

  check(method: string, pathname: string, status: number, contentType: string, text: string): CheckedAnswer {
    const path = this.template(pathname);
    assert.ok(path, `${method.toUpperCase()} ${pathname}: no such path in the OpenAPI document`);
    const op = this.doc.paths[path]?.[method] as Json | undefined;
    assert.ok(op, `${method.toUpperCase()} ${path}: no such operation in the OpenAPI document`);
    const responses = op.responses as Record<string, Json>;
    const response = responses[String(status)];
    assert.ok(response, `${method.toUpperCase()} ${path} answered ${status}, which the document does not list (${Object.keys(responses).join(', ')})`);
    this.seen.add(`${method.toUpperCase()} ${path} ${status}`);
    if (response.content === undefined) {
      // documented without a body (204): there must be none
      assert.equal(text, '', `${method.toUpperCase()} ${path} ${status}: the document says no body`);
      return { status, contentType: '', body: undefined };
    }
    const media = contentType.split(';')[0]!.trim().toLowerCase();
    const content = response.content as Json;
    assert.ok(media in content, `${method.toUpperCase()} ${path} ${status}: content type ${media} is not documented (${Object.keys(content).join(', ')})`);
    let body: unknown = text;
    if (media.endsWith('json')) {
      body = JSON.parse(text);
      const validate = this.validator(path, method, String(status), media);
      assert.ok(
        validate(body),
        `${method.toUpperCase()} ${path} ${status}: body does not match the document: ${this.ajv.errorsText(validate.errors)}\n${text.slice(0, 500)}`,
      );
    }
    return { status, contentType: media, body };
  }

  private validator(path: string, method: string, status: string, media: string): ValidateFunction {
    const pointer = ['paths', path, method, 'responses', status, 'content', media, 'schema'].map((p) => p.replace(/~/g, '~0').replace(/\//g, '~1')).join('/');
    const key = `spec#/${pointer}`;
    let v = this.validators.get(key);
    if (!v) {
      v = this.ajv.compile({ $ref: key });
      this.validators.set(key, v);
    }
    return v;
  }
}
