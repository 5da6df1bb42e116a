// Parse each AsyncAPI file given with the official parser (@asyncapi/parser), resolving relative $refs
// from the file's location. Prints one JSON line per diagnostic, then "OK <file>" or "INVALID <file>".
// Exit 0 only if every file parsed and none has an error-level diagnostic.
import { Parser, fromFile, DiagnosticSeverity } from '@asyncapi/parser';

const parser = new Parser();
let failed = false;
for (const path of process.argv.slice(2)) {
  const { document, diagnostics } = await fromFile(parser, path).parse();
  let errors = 0;
  for (const d of diagnostics) {
    if (d.severity === DiagnosticSeverity.Error) errors += 1;
    console.log(JSON.stringify({ file: path, severity: d.severity, code: d.code, message: d.message, path: d.path.join('.') }));
  }
  const ok = document !== undefined && errors === 0;
  console.log(`${ok ? 'OK' : 'INVALID'} ${path}`);
  failed ||= !ok;
}
process.exit(failed ? 1 : 0);
