// Computes src/rt/is_url_vectors.json from inputs.json with the real
// validator.js, so the Rust port in src/rt/is_url.rs is checked against the
// library class-validator's @IsUrl delegates to, not against our reading of it.
import { readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import validator from 'validator';

const here = dirname(fileURLToPath(import.meta.url));
const pinned = JSON.parse(readFileSync(join(here, 'package.json'), 'utf8')).dependencies.validator;
if (validator.version !== pinned) {
  throw new Error(`validator ${validator.version} installed, ${pinned} pinned: run npm ci`);
}

// The options of @IsUrl({ protocols: ['https'], require_protocol: true }).
// A fresh object per call: isURL merges its defaults into the object it gets.
const options = () => ({ protocols: ['https'], require_protocol: true });

const inputs = JSON.parse(readFileSync(join(here, 'inputs.json'), 'utf8'));
const seen = new Set();
for (const input of inputs) {
  if (typeof input !== 'string') throw new Error(`not a string: ${JSON.stringify(input)}`);
  if (!input.isWellFormed()) throw new Error(`lone surrogate (Rust &str cannot hold it): ${JSON.stringify(input)}`);
  if (seen.has(input)) throw new Error(`duplicate input: ${JSON.stringify(input)}`);
  seen.add(input);
}

// Invisible characters (controls, format characters, separators other than
// the ASCII space, private use, unassigned) are written as \u escapes so the
// file shows what each vector really holds.
const visible = (json) =>
  json.replace(/(?! )[\p{C}\p{Z}]/gu, (ch) =>
    Array.from({ length: ch.length }, (_, i) => `\\u${ch.charCodeAt(i).toString(16).padStart(4, '0')}`).join(''),
  );

const lines = inputs.map(
  (input) => `  ${visible(JSON.stringify({ input, valid: validator.isURL(input, options()) }))}`,
);
const out = join(here, '..', '..', 'src', 'rt', 'is_url_vectors.json');
writeFileSync(out, `[\n${lines.join(',\n')}\n]\n`);
const valid = inputs.filter((input) => validator.isURL(input, options())).length;
console.log(`validator ${validator.version}: ${inputs.length} vectors (${valid} valid) -> ${out}`);
