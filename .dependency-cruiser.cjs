// `npm run depcheck`: the dependency rules of design §8, checked in CI (.ci/run).
// Dependencies point inward: cli/ wires everything; ingest/, processors/ and sinks/ import core/;
// core/ imports none of them (processors and sinks are found by name through a registry); a
// processor imports only core, through core/processor-kit.ts; console/ reads through core, not the
// edge, a processor or a sink; the bench only core/index.ts (the public entry point); nothing
// imports cli/main.ts and no command another; the client stands alone (it ships as rill/client);
// no cycles. No exceptions: what two of them share lives in core/.
/** @type {import('dependency-cruiser').IConfiguration} */
module.exports = {
  forbidden: [
    {
      name: 'no-circular',
      severity: 'error',
      comment: 'No import cycles (type-only imports included: they are cycles in the design all the same).',
      from: {},
      to: { circular: true },
    },
    {
      name: 'core-imports-inward-only',
      severity: 'error',
      comment: 'core/ is the engine: it imports none of the edge, the processors, the sinks, the CLI, the bench or the console.',
      from: { path: '^core/' },
      to: { path: '^(ingest|processors|sinks|cli|bench|console|client)/' },
    },
    {
      name: 'processors-import-only-core',
      severity: 'error',
      comment: 'A processor imports core (and its own folder), nothing else of Rill.',
      from: { path: '^processors/([^/]+)/', pathNot: '\\.test\\.ts$' },
      to: { path: '^(ingest|sinks|cli|bench|console|client|test)/|^processors/', pathNot: ['^processors/$1/'] },
    },
    {
      name: 'processors-import-core-through-processor-kit',
      severity: 'error',
      comment:
        "A processor imports core only through core/processor-kit.ts: the contract (core/processor.ts), and the types and helpers of core a processor uses (design §8: a processor imports only core's public types). The rest of core can move without touching a processor.",
      from: { path: '^processors/', pathNot: '\\.test\\.ts$' },
      to: { path: '^core/', pathNot: '^core/processor-kit\\.ts$' },
    },
    {
      name: 'edges-do-not-import-the-cli',
      severity: 'error',
      comment: 'ingest/, sinks/ and console/ are wired by cli/, never the other way round.',
      from: { path: '^(ingest|sinks|console)/', pathNot: '\\.test\\.ts$' },
      to: { path: '^(cli|bench)/' },
    },
    {
      name: 'bench-drives-rill-from-outside',
      severity: 'error',
      comment:
        'bench/ drives Rill through its CLI and HTTP API like any user (plus its baselines); of the code it imports only the public entry point core/index.ts (the `rill` package).',
      from: { path: '^bench/' },
      to: { path: '^(core|ingest|processors|sinks|console|cli|client)/', pathNot: '^core/index\\.ts$' },
    },
    {
      name: 'cli-main-is-the-entry-point',
      severity: 'error',
      comment: 'cli/main.ts loads the commands; nothing imports it back (what commands share is in cli/io.ts).',
      from: { path: '^(core|ingest|processors|sinks|cli|bench|client|console)/', pathNot: '\\.test\\.ts$' },
      to: { path: '^cli/main\\.ts$' },
    },
    {
      name: 'commands-do-not-import-commands',
      severity: 'error',
      comment: 'A command (cli/commands/x.ts) is one subcommand; what two of them share lives in cli/ (run-*.ts, io.ts, context.ts).',
      from: { path: '^cli/commands/' },
      to: { path: '^cli/commands/' },
    },
    {
      name: 'ingest-imports-core',
      severity: 'error',
      comment:
        'ingest/ (the HTTP edge) imports core/, not processors/ or sinks/: what it shares with a processor or a sink (the review queue, the merchant webhook endpoints, queue and event types) lives in core/.',
      from: { path: '^ingest/', pathNot: '\\.test\\.ts$' },
      to: { path: '^(processors|sinks)/' },
    },
    {
      name: 'sinks-import-core',
      severity: 'error',
      comment:
        'A sink imports core/ (and its own folder), not ingest/, processors/ or another sink: what it shares with them (the webhook event types and ids, the endpoints) lives in core/.',
      from: { path: '^sinks/([^/]+)/', pathNot: '\\.test\\.ts$' },
      to: { path: '^(ingest|processors|sinks)/', pathNot: ['^sinks/$1/'] },
    },
    {
      name: 'console-reads-through-core',
      severity: 'error',
      comment:
        'console/ reads through core/ (the same code as the CLI), not ingest/, processors/ or sinks/. Its tests may start an ingest (console.test.ts). Its .tsx views are not parsed (options.exclude) and keep to the same rule.',
      from: { path: '^console/', pathNot: '\\.test\\.ts$' },
      to: { path: '^(ingest|processors|sinks)/' },
    },
    {
      name: 'consumer-engine-through-its-entry-point',
      severity: 'error',
      comment:
        'Outside core/, the consumer engine is used through core/consumer/index.ts (GroupConsumer, StageRunner, runLoop, Settlement): its parts can move without touching the sinks or the worker.',
      from: { path: '^(ingest|processors|sinks|cli|console|bench)/', pathNot: '\\.test\\.ts$' },
      to: { path: '^core/consumer/', pathNot: '^core/consumer/index\\.ts$' },
    },
    {
      name: 'consumer-parts-below-the-runner',
      severity: 'error',
      comment: "The stage runner wires the consumer engine's parts (one file per part, docs/architecture.md); no part imports it back.",
      from: { path: '^core/consumer/', pathNot: '^core/consumer/(index|stage-runner)\\.ts$' },
      to: { path: '^core/consumer/stage-runner\\.ts$' },
    },
    {
      name: 'group-consumer-knows-no-stage',
      severity: 'error',
      comment: 'group-consumer.ts is the skeleton stages and sinks share: it reads, loops and settles, and imports none of the stage-only parts.',
      from: { path: '^core/consumer/group-consumer\\.ts$' },
      to: { path: '^core/consumer/(stage-runner|ordered-partitions|parking|cap-hold|chain-[^/]+|retry-schedule|batch-types|decode|routing|spans)\\.ts$' },
    },
    {
      name: 'client-stands-alone',
      severity: 'error',
      comment: 'rill/client is shipped on its own: only its own files.',
      from: { path: '^client/' },
      to: { path: '^(?!client/)', dependencyTypes: ['local', 'aliased'] },
    },
    {
      name: 'production-code-does-not-import-tests',
      severity: 'error',
      from: { path: '^(core|ingest|processors|sinks|cli|bench|client|console)/', pathNot: '\\.test\\.ts$' },
      to: { path: '(^test/|\\.test\\.ts$)' },
    },
  ],
  options: {
    doNotFollow: { path: 'node_modules' },
    // .tsx (the console's JSX views) is left out: dependency-cruiser hands swc no JSX option, so it
    // cannot parse them; the console's .ts modules (routes, data, sessions) are checked
    exclude: { path: '^(node_modules|dist)/|\\.tsx$' },
    tsPreCompilationDeps: true,
    parser: 'swc', // TypeScript 7 has no compiler API for dependency-cruiser's tsc parser
    enhancedResolveOptions: { extensions: ['.ts', '.mjs', '.js'] },
    moduleSystems: ['es6'],
  },
};
