/**
 * `npm run bench:guard`: the guard's content rules on the labelled prompts in bench/guard — false positives on the
 * benign prompts and recall per rule on the attacks, for the set the rules were written against and for a
 * held-out set written afterwards (never used to tune them) — and how long a check takes.
 */
import { contentRulesMatching } from "../src/guard/rules";
import { attackPrompts, benignPrompts } from "../tests/helpers/guard-set";

function evaluate(name: string, benign: string[], attacks: Array<{ rule: string; prompt: string }>) {
  const falsePositives = benign.filter((p) => contentRulesMatching(p).length > 0);
  const perRule = new Map<string, { caught: number; total: number }>();
  for (const { rule, prompt } of attacks) {
    const stats = perRule.get(rule) ?? { caught: 0, total: 0 };
    stats.total++;
    if (contentRulesMatching(prompt).includes(rule as never)) stats.caught++;
    perRule.set(rule, stats);
  }
  console.log(`\n${name}: ${benign.length} benign, ${attacks.length} attacks`);
  console.log(
    `  false positives: ${falsePositives.length} (${((100 * falsePositives.length) / benign.length).toFixed(1)} %)`,
  );
  for (const p of falsePositives) console.log(`    - ${p.slice(0, 100)}`);
  for (const [rule, { caught, total }] of perRule)
    console.log(`  ${rule}: recall ${caught}/${total} (${(caught / total).toFixed(2)})`);
}

evaluate("written against (asserted in tests)", benignPrompts(), attackPrompts());
evaluate("held out", benignPrompts("heldout-benign.txt"), attackPrompts("heldout-attacks.txt"));

const long = `${"The quarterly report shows steady growth across regions. ".repeat(900)} Thanks!`;
const started = performance.now();
for (let i = 0; i < 100; i++) contentRulesMatching(long);
console.log(
  `\ncheck of a 50,000-character request (its last 20,000 read): ${((performance.now() - started) / 100).toFixed(2)} ms`,
);
