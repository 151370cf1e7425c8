// Parse each AsyncAPI document named on the command line with @asyncapi/parser and print its
// diagnostics as JSON lines; exit 1 if any has severity error (0), 2 on a usage or read error.
import { readFile } from "node:fs/promises";
import { Parser } from "@asyncapi/parser";

const SEVERITY = ["error", "warning", "info", "hint"];
const files = process.argv.slice(2);
if (files.length === 0) {
  console.error("usage: node validate.mjs <asyncapi.json>...");
  process.exit(2);
}
const parser = new Parser();
let failed = false;
for (const file of files) {
  const { document, diagnostics } = await parser.parse(await readFile(file, "utf8"));
  for (const d of diagnostics) {
    const severity = SEVERITY[d.severity] ?? String(d.severity);
    failed ||= d.severity === 0;
    console.log(JSON.stringify({ file, severity, code: d.code, path: d.path.join("/"), message: d.message }));
  }
  failed ||= document === undefined;
}
process.exit(failed ? 1 : 0);
