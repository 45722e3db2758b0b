// Parse and validate an AsyncAPI document with the maintained @asyncapi/parser (schema
// validation, $ref resolution and its built-in Spectral rules), then print one JSON object:
// {diagnostics: [{severity, code, message, path}], channels: [...], operations: [...]}.
// Usage: node validate_asyncapi.mjs docs/asyncapi.yaml
import { readFile } from "node:fs/promises";
import { Parser, DiagnosticSeverity } from "@asyncapi/parser";

const SEVERITY = {
  [DiagnosticSeverity.Error]: "error",
  [DiagnosticSeverity.Warning]: "warning",
  [DiagnosticSeverity.Information]: "information",
  [DiagnosticSeverity.Hint]: "hint",
};

const file = process.argv[2];
const text = await readFile(file, "utf8");
const { document, diagnostics } = await new Parser().parse(text, { source: file });
const out = {
  diagnostics: diagnostics.map((d) => ({
    severity: SEVERITY[d.severity] ?? String(d.severity),
    code: String(d.code),
    message: d.message,
    path: d.path.join("/"),
  })),
  parsed: document !== undefined,
};
if (document) {
  out.channels = document.channels().all().map((c) => ({
    id: c.id(),
    address: c.address(),
    messages: c.messages().all().map((m) => m.id()),
    parameters: c.parameters().all().map((p) => p.id()),
  }));
  out.operations = document.operations().all().map((o) => ({
    id: o.id(),
    action: o.action(),
    channels: o.channels().all().map((c) => c.address()),
    tags: o.tags().all().map((t) => t.name()),
    messages: o.messages().all().map((m) => m.id()),
  }));
  out.messages = document.messages().all().map((m) => ({
    id: m.id(),
    key: m.bindings().get("kafka")?.value()?.key ?? null,
    headers: m.hasHeaders() ? m.headers().json() : null,
    payload: m.hasPayload() ? m.payload().json() : null,
  }));
}
process.stdout.write(JSON.stringify(out) + "\n");
