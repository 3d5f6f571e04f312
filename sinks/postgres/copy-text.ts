// COPY ... FROM STDIN (FORMAT text) encoding: tab-separated columns, \N for null, and backslash,
// tab, newline and carriage return escaped. A row's text is built as one short-lived string and
// written at once into a large shared chunk (one native write per row; nothing per row left for the
// GC to trace but a view of its bytes); a batch is one Buffer.concat of its rows' views, sent as
// one COPY write.
const SPECIAL = /[\\\t\n\r]/;
const SPECIAL_ALL = /[\\\t\n\r]/g;
const ESCAPES: Record<string, string> = { '\\': '\\\\', '\t': '\\t', '\n': '\\n', '\r': '\\r' };

/** A string as a COPY text field (most need no escaping: one regex test, no copy). */
export function copyText(s: string): string {
  return SPECIAL.test(s) ? s.replace(SPECIAL_ALL, (c) => ESCAPES[c]!) : s;
}

/** Any value as a field: null and undefined as \N, a string escaped, anything else as its string (for Postgres to judge). */
export function copyField(v: unknown): string {
  if (v === null || v === undefined) return '\\N';
  return typeof v === 'string' ? copyText(v) : String(v);
}

const CHUNK_BYTES = 1 << 20;

/**
 * Appends COPY text to a chunk and hands out views of what was appended. Text that does not fit in
 * what is left of the chunk goes to a new one; a chunk is freed by the GC once no view points into it.
 */
export class CopyTextWriter {
  private chunk = Buffer.allocUnsafeSlow(CHUNK_BYTES);
  private pos = 0;

  /** `text` (already COPY text) as bytes: a view that stays valid for as long as it is held. */
  append(text: string): Buffer {
    if (!text) return EMPTY;
    // UTF-8 takes at most 3 bytes per UTF-16 unit
    if (this.pos + text.length * 3 > this.chunk.length) {
      this.chunk = Buffer.allocUnsafeSlow(Math.max(CHUNK_BYTES, text.length * 3));
      this.pos = 0;
    }
    const start = this.pos;
    this.pos += this.chunk.write(text, start);
    return this.chunk.subarray(start, this.pos);
  }
}

const EMPTY = Buffer.alloc(0);
