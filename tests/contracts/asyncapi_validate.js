// Validates an AsyncAPI document with the AsyncAPI parser (from npm: `make contract-tools`).
// node asyncapi_validate.js <dir holding node_modules> <document>
// Prints each diagnostic; exits 0 when the document parses with no error, 1 otherwise.
const { Parser } = require(process.argv[2] + '/node_modules/@asyncapi/parser');
const fs = require('fs');

(async () => {
  const parser = new Parser();
  const { document, diagnostics } = await parser.parse(fs.readFileSync(process.argv[3], 'utf8'));
  const severity = ['error', 'warning', 'info', 'hint'];
  for (const d of diagnostics) {
    console.log(`${severity[d.severity]} ${d.code} ${d.path.join('.')}: ${d.message}`);
  }
  const ok = document !== undefined && !diagnostics.some((d) => d.severity === 0);
  if (ok) {
    const counts = [document.channels().length, document.operations().length, document.messages().length];
    console.log(`valid: ${counts[0]} channels, ${counts[1]} operations, ${counts[2]} messages`);
  }
  process.exit(ok ? 0 : 1);
})();
