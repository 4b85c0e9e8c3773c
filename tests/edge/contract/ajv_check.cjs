// Compile every docs/schemas/*.schema.json with ajv 8's defaults (`new Ajv()`: draft-07 and
// strict mode, as Node-RED's JSON node does) and validate captured messages against them.
//
// usage: node ajv_check.cjs SCHEMA_DIR CASES.json
// CASES.json: {"valid": {"<schema name>": [msg, ...]}, "invalid": {"<schema name>": [...]}}
// Prints one JSON report and exits 0 only if every schema compiled, every valid message
// passed and every invalid one failed. ajv is found through NODE_PATH (installed by npm
// outside the repository, see .ci/run).
"use strict";
const fs = require("fs");
const path = require("path");
const Ajv = require("ajv");

const [schemaDir, casesFile] = process.argv.slice(2);
if (!schemaDir || !casesFile) {
  console.error("usage: node ajv_check.cjs SCHEMA_DIR CASES.json");
  process.exit(2);
}
const cases = JSON.parse(fs.readFileSync(casesFile, "utf8"));
const report = { ajv: require("ajv/package.json").version, compiled: [], problems: [], checked: 0 };
const validators = {};
for (const file of fs.readdirSync(schemaDir).filter((f) => f.endsWith(".schema.json")).sort()) {
  const name = file.slice(0, -".schema.json".length);
  try {
    const ajv = new Ajv();
    validators[name] = ajv.compile(JSON.parse(fs.readFileSync(path.join(schemaDir, file), "utf8")));
    report.compiled.push(name);
  } catch (err) {
    report.problems.push(`${name}: does not compile: ${err.message}`);
  }
}
for (const [expect, groups] of Object.entries(cases)) {
  for (const [name, messages] of Object.entries(groups)) {
    const validate = validators[name];
    if (!validate) {
      report.problems.push(`${name}: no compiled schema for ${messages.length} message(s)`);
      continue;
    }
    messages.forEach((msg, i) => {
      report.checked += 1;
      const ok = validate(msg);
      if (expect === "valid" && !ok) {
        report.problems.push(`${name}[${i}] rejected: ${JSON.stringify(validate.errors)}`);
      } else if (expect === "invalid" && ok) {
        report.problems.push(`${name}[${i}] accepted, but must be rejected`);
      }
    });
  }
}
console.log(JSON.stringify(report));
process.exit(report.problems.length ? 1 : 0);
