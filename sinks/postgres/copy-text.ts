// COPY ... FROM STDIN (FORMAT text) encoding: tab-separated columns, \N for null, and backslash,
// tab, newline and carriage return escaped. Rows are written as bytes into large shared chunks
// (no string per row, no rope to flatten, little for the GC to trace), and each row keeps a view of
// its bytes; a batch is one Buffer.concat of its rows' views, sent as one COPY write.
const SPECIAL = /[\\\t\n\r]/;
const SPECIAL_ALL = /[\\\t\n\r]/g;
const ESCAPES: Record<string, string> = { '\\': '\\\\', '\t': '\\t', '\n': '\\n', '\r': '\\r' };

/** A string as a COPY text field (most need no escaping: one regex test, no copy). */
export function copyText(s: string): string {
  return SPECIAL.test(s) ? s.replace(SPECIAL_ALL, (c) => ESCAPES[c]!) : s;
}

const CHUNK_BYTES = 1 << 20;
const TAB = 9;
const NEWLINE = 10;

/**
 * Appends COPY text to a chunk; row() and take() mark out a row's bytes. A row that does not fit
 * in what is left of the chunk moves to a new one (its bytes so far copied over); a chunk is freed
 * by the GC once no row's view points into it.
 */
export class CopyTextWriter {
  private chunk = Buffer.allocUnsafeSlow(CHUNK_BYTES);
  private pos = 0;
  private start = 0;

  /** Begins a row (or a run of rows taken together). */
  row(): this {
    this.start = this.pos;
    return this;
  }

  /** The bytes written since row() (or the last take()), as a view; the next take() starts after them. */
  take(): Buffer {
    const view = this.chunk.subarray(this.start, this.pos);
    this.start = this.pos;
    return view;
  }

  /** A field of any value: null and undefined as \N, a string escaped, anything else as its string (for Postgres to judge). */
  value(v: unknown): this {
    if (v === null || v === undefined) return this.nul();
    return typeof v === 'string' ? this.text(v) : this.raw(String(v));
  }

  /** A string field, escaped. */
  text(s: string): this {
    return this.raw(copyText(s));
  }

  /** Text that needs no escaping (digits, a constant, an ISO time). */
  raw(s: string): this {
    this.room(s.length * 3);
    this.pos += this.chunk.write(s, this.pos);
    return this;
  }

  nul(): this {
    this.room(2);
    this.chunk[this.pos++] = 0x5c; // \
    this.chunk[this.pos++] = 0x4e; // N
    return this;
  }

  tab(): this {
    this.room(1);
    this.chunk[this.pos++] = TAB;
    return this;
  }

  newline(): this {
    this.room(1);
    this.chunk[this.pos++] = NEWLINE;
    return this;
  }

  /** Makes room for `bytes` more: a new chunk, with the row so far moved to its start. */
  private room(bytes: number): void {
    if (this.pos + bytes <= this.chunk.length) return;
    const sofar = this.pos - this.start;
    const next = Buffer.allocUnsafeSlow(Math.max(CHUNK_BYTES, 2 * (sofar + bytes)));
    this.chunk.copy(next, 0, this.start, this.pos);
    this.chunk = next;
    this.start = 0;
    this.pos = sofar;
  }
}
