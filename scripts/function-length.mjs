// Part of `npm run lint`: no function in src/ longer than 80 lines unless a comment right
// above it starts "Long because" and says why (a closure holding one connection's or one
// module's state is the usual reason; the steps inside it are then held to the rule). A
// function returned directly by one that carries the reason shares it.

import { readFileSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import ts from 'typescript';

const MAX_LINES = 80;
const files = execFileSync('git', ['ls-files', 'src'], { encoding: 'utf8' })
  .split('\n')
  .filter((f) => f.endsWith('.ts'));

const isFunction = (n) => ts.isFunctionDeclaration(n) || ts.isArrowFunction(n) || ts.isFunctionExpression(n) || ts.isMethodDeclaration(n);

function nameOf(n) {
  if (n.name) return n.name.getText();
  if (ts.isVariableDeclaration(n.parent) || ts.isPropertyAssignment(n.parent)) return n.parent.name.getText();
  return '(anonymous)';
}

const failures = [];
for (const file of files) {
  const text = readFileSync(file, 'utf8');
  const lines = text.split('\n');
  const sf = ts.createSourceFile(file, text, ts.ScriptTarget.Latest, true);
  const lineOf = (pos) => sf.getLineAndCharacterOfPosition(pos).line;
  /** The comment lines directly above the statement that holds the function say "Long because". */
  const hasReason = (n) => {
    let holder = n;
    while (holder.parent && !ts.isSourceFile(holder.parent) && !ts.isBlock(holder.parent) && !ts.isModuleBlock(holder.parent)) holder = holder.parent;
    for (let l = lineOf(holder.getStart()) - 1; l >= 0 && /^\s*(\/\/|\/?\*)/.test(lines[l]); l--) if (/Long because/.test(lines[l])) return true;
    return false;
  };
  const visit = (n, reasonAbove) => {
    let reason = false;
    if (isFunction(n)) {
      reason = hasReason(n);
      const length = lineOf(n.getEnd()) - lineOf(n.getStart()) + 1;
      const returnedByExcused = reasonAbove && ts.isReturnStatement(n.parent);
      if (length > MAX_LINES && !reason && !returnedByExcused)
        failures.push(`${file}:${lineOf(n.getStart()) + 1}: ${nameOf(n)} is ${length} lines; split it or say "Long because …" above it`);
    }
    ts.forEachChild(n, (c) => visit(c, isFunction(n) ? reason : reasonAbove));
  };
  visit(sf, false);
}
for (const f of failures) console.error(f);
if (failures.length > 0) process.exit(1);
